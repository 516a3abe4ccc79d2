/**
 * What the operator's overview shows beyond the counts: the queue (due, scheduled, leased, the
 * message due longest), the smart host's latest success and refusal, and the webhook endpoints
 * that are failing. For full_access and admin sessions only (the replies may name other keys'
 * recipients): the dashboard's guard sees to that. Nothing here is logged.
 *
 * Cost: one command for the queue, one for the smart host, one listing the endpoints and one
 * event-log read per enabled endpoint (at most OVERVIEW_ENDPOINTS_MAX).
 */
import type { Endpoint, WebhookEndpoints } from "../events/manage.ts";
import type { QueueDepth, QueueInsight, SmartHostOutcomes } from "../store/store.ts";

/** Enabled endpoints whose event log the overview reads. */
export const OVERVIEW_ENDPOINTS_MAX = 10;
/** The newest events of each endpoint looked at for failures. */
export const OVERVIEW_EVENTS_PER_ENDPOINT = 10;

export interface FailingEndpoint {
  id: string;
  url: string;
  enabled: boolean;
  /** Failed deliveries among the endpoint's newest events (0 for a disabled one not read). */
  failed: number;
  /** Of how many events looked at. */
  of: number;
}

export interface Overview {
  queue: QueueDepth;
  host: SmartHostOutcomes;
  failing: FailingEndpoint[];
  /** Enabled endpoints left unread past OVERVIEW_ENDPOINTS_MAX. */
  endpointsUnread: number;
}

export class OperatorOverview {
  readonly #store: QueueInsight;
  readonly #webhooks: WebhookEndpoints;
  readonly #leaseMs: number;

  constructor(store: QueueInsight, webhooks: WebhookEndpoints, leaseMs: number) {
    this.#store = store;
    this.#webhooks = webhooks;
    this.#leaseMs = leaseMs;
  }

  async read(now: number): Promise<Overview> {
    const [queue, host, endpoints] = await Promise.all([
      this.#store.queueDepth(now, this.#leaseMs),
      this.#store.smartHost(),
      this.#webhooks.list(),
    ]);
    const enabled = endpoints.filter((e) => e.enabled);
    const read = enabled.slice(0, OVERVIEW_ENDPOINTS_MAX);
    const checked = await Promise.all(read.map((e) => this.#check(e)));
    const disabled = endpoints.filter((e) => !e.enabled).map((e) => failing(e, 0, 0));
    return {
      queue,
      host,
      failing: [...disabled, ...checked.filter((e) => e.failed > 0)],
      endpointsUnread: enabled.length - read.length,
    };
  }

  async #check(e: Endpoint): Promise<FailingEndpoint> {
    const events = await this.#webhooks.events(e, OVERVIEW_EVENTS_PER_ENDPOINT);
    return failing(e, events.filter((ev) => ev.status === "failed").length, events.length);
  }
}

function failing(e: Endpoint, failed: number, of: number): FailingEndpoint {
  return { id: e.record.id, url: e.record.endpoint, enabled: e.enabled, failed, of };
}
