/**
 * Managing webhook endpoints, independent of HTTP: register, change, enable or disable, remove,
 * rotate the signing secret, and read an endpoint's event log. The routes (src/http/routes/webhooks.ts)
 * read the request, call these and shape the answer. Records keep the camelCase fields existing
 * deployments hold (WebhookRecord).
 */
import { ConflictError, NotFoundError, StoreUnavailableError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { EndpointEvent, EventDelivery, EventSummary, RelayStore } from "../store/store.ts";
import {
  checkEndpointUrl,
  checkEvents,
  newSigningSecret,
  type WebhookRecord,
} from "./endpoints.ts";
import { possibleEventIds } from "./events.ts";

/** An endpoint as stored: its record, and whether it is enabled (subscribed). */
export interface Endpoint {
  record: WebhookRecord;
  enabled: boolean;
}

/** What an update may change; fields left undefined stay as they are. */
export interface EndpointChange {
  endpoint?: unknown;
  events?: unknown;
  status?: "enabled" | "disabled";
}

export interface WebhookEndpointsDeps {
  store: RelayStore;
  /** Allow http and https to loopback hosts (development and tests). */
  allowLoopback: boolean;
  now: () => number;
  log: Logger;
}

/** Store calls answer 503 when the store is down, as sending does. */
async function stored<T>(op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    throw new StoreUnavailableError(err);
  }
}

export class WebhookEndpoints {
  readonly #deps: WebhookEndpointsDeps;

  constructor(deps: WebhookEndpointsDeps) {
    this.#deps = deps;
  }

  /** Registers an endpoint, enabled, with a new signing secret. `by` is the caller's key id. */
  async create(input: { endpoint: unknown; events: unknown }, by: string): Promise<WebhookRecord> {
    const { store, allowLoopback, now, log } = this.#deps;
    const endpoint = checkEndpointUrl(input.endpoint, allowLoopback);
    const events = checkEvents(input.events);
    const record: WebhookRecord = {
      id: crypto.randomUUID(),
      endpoint,
      events,
      secret: newSigningSecret(),
      createdAt: now(),
    };
    await stored(() => store.putWebhook(record.id, record, events));
    log.info("webhook.created", { webhook_id: record.id, by });
    return record;
  }

  /** Every endpoint, newest first. */
  async list(): Promise<Endpoint[]> {
    const all = await stored(() => this.#deps.store.listWebhooks<WebhookRecord>());
    return all.sort((a, b) => b.record.createdAt - a.record.createdAt);
  }

  /** One endpoint; NotFoundError when there is none. */
  async get(id: string): Promise<Endpoint> {
    const found = await stored(() => this.#deps.store.getWebhook<WebhookRecord>(id));
    if (!found) throw new NotFoundError("Webhook");
    return found;
  }

  /**
   * Applies a change to an endpoint read with `get` (so a missing one is answered before its
   * body is read). Disabling records why and when; enabling clears that.
   */
  async update(found: Endpoint, change: EndpointChange, by: string): Promise<void> {
    const { store, allowLoopback, now, log } = this.#deps;
    const record: WebhookRecord = { ...found.record };
    if (change.endpoint !== undefined) {
      record.endpoint = checkEndpointUrl(change.endpoint, allowLoopback);
    }
    if (change.events !== undefined) record.events = checkEvents(change.events);
    const enabled = change.status === undefined ? found.enabled : change.status === "enabled";
    if (enabled) {
      delete record.disabledReason;
      delete record.disabledAt;
    } else if (found.enabled) {
      record.disabledReason = "disabled through the API";
      record.disabledAt = now();
    }
    await stored(() => store.putWebhook(record.id, record, enabled ? record.events : null));
    log.info("webhook.updated", {
      webhook_id: record.id,
      status: enabled ? "enabled" : "disabled",
      by,
    });
  }

  /** Removes an endpoint with its queued events. */
  async remove(found: Endpoint, by: string): Promise<void> {
    await stored(() => this.#deps.store.deleteWebhook(found.record.id));
    this.#deps.log.info("webhook.deleted", { webhook_id: found.record.id, by });
  }

  /** Replaces the signing secret; the new record (with the secret) is returned once. */
  async rotateSecret(found: Endpoint): Promise<WebhookRecord> {
    // Events still queued are signed with the new secret when they are sent.
    const record: WebhookRecord = { ...found.record, secret: newSigningSecret() };
    await stored(() =>
      this.#deps.store.putWebhook(record.id, record, found.enabled ? record.events : null),
    );
    this.#deps.log.info("webhook.secret_rotated", { webhook_id: record.id });
    return record;
  }

  /** The newest `limit` events queued for an endpoint, newest first. */
  async events(found: Endpoint, limit: number): Promise<EventSummary[]> {
    return stored(() => this.#deps.store.eventLog(found.record.id, limit));
  }

  /** `events` with each event's attempts and next attempt (still one store command). */
  async recent(found: Endpoint, limit: number): Promise<EndpointEvent[]> {
    return stored(() => this.#deps.store.endpointEvents(found.record.id, limit));
  }

  /** One event queued for an endpoint, with its attempts; NotFoundError when unknown. */
  async event(found: Endpoint, eventId: string): Promise<EventDelivery> {
    const event = await stored(() => this.#deps.store.eventDelivery(found.record.id, eventId));
    if (!event) throw new NotFoundError("Webhook event");
    return event;
  }

  /**
   * Sends an event to its endpoint again: a new delivery (a new id, so a receiver that already
   * took the first one does not drop it as a duplicate) with the same payload and a fresh retry
   * schedule; the original keeps its attempts. A disabled endpoint is refused: enabling it is a
   * decision of its own. Answers the new event's id; the next dispatch sends it. While the
   * event's last replay is unfinished, answers that replay's id and queues nothing more.
   */
  async replay(found: Endpoint, eventId: string, by: string): Promise<string> {
    const { store, now, log } = this.#deps;
    if (!found.enabled) throw disabledEndpoint();
    const newId = crypto.randomUUID();
    const result = await stored(() => store.replayEvent(found.record.id, eventId, newId, now()));
    if (result === "missing") throw new NotFoundError("Webhook event");
    // Disabled between the read and the replay (by a failing delivery, or another operator).
    if (result === "disabled") throw disabledEndpoint();
    if (typeof result === "object") {
      log.info("webhook.event_replay_pending", {
        webhook_id: found.record.id,
        event_id: eventId,
        replay_id: result.pending,
        by,
      });
      return result.pending;
    }
    log.info("webhook.event_replayed", {
      webhook_id: found.record.id,
      event_id: eventId,
      replay_id: newId,
      by,
    });
    return newId;
  }

  /** One email's events as queued for each endpoint, with their attempts (one store command). */
  async ofEmail(
    emailId: string,
    attempts: number,
    recipients: readonly string[] = [],
  ): Promise<EndpointEvent[]> {
    return stored(() =>
      this.#deps.store.emailEvents(possibleEventIds(emailId, attempts, recipients)),
    );
  }
}

function disabledEndpoint(): ConflictError {
  return new ConflictError(
    "This webhook endpoint is disabled: enable it (PATCH /webhooks/:id with status enabled) before replaying its events",
  );
}
