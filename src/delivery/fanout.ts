/**
 * Fan-out: a scheduled run that will not send what is due within its budget starts further
 * invocations of the relay (helpers), each with its own SMTP connections, because one Workers
 * invocation may hold only six. On Cloudflare a helper is a call through a service binding to the
 * Worker itself (src/runtime/workers.ts, entrypoint DeliveryHelper): no other product to set up,
 * not reachable from the internet, and tied to the run's lifetime (the run awaits its helpers, so
 * none outlives it). Helpers share the run's thread, so fan-out adds connections, not CPU: it pays
 * where the smart host is far away and each message waits on round trips.
 *
 * The decision is made as messages finish, from the last claim's count of what is still due and
 * the rate this run has sent at so far: helpers are started when the backlog would outlast the time left,
 * as many as the backlog needs, never more than DELIVERY_FANOUT − 1 in all, and no more than the
 * smart host's free connection slots can serve (src/store/slot-ports.ts). Helpers do not fan out.
 */
import type { Logger } from "../log.ts";
import type { DeliveryReport } from "./deliver.ts";

/** What a run hands a helper: its slot holder name and when to stop claiming. */
export interface HelperRequest {
  holder: string;
  until: number;
}

/** What a helper answers when it is done. */
export interface HelperReport extends DeliveryReport {
  batches: number;
  /** Connections it was granted (0: the cap was reached, or nothing was due any more). */
  connections: number;
  /** Its deliveries queued webhook events (the run dispatches them). */
  eventsQueued: boolean;
}

/** Starts one helper invocation; resolves when it is done. */
export type StartHelper = (request: HelperRequest) => Promise<HelperReport>;

export interface FanoutOptions {
  /** Invocations in all, this run included (DELIVERY_FANOUT). */
  invocations: number;
  start: StartHelper;
  /** This run's slot holder name; helpers get `<runId>.<n>`. */
  runId: string;
  /** When claiming stops, for the run and its helpers alike. */
  until: number;
  /** Connections one invocation opens (SMTP_MAX_CONNECTIONS). */
  perInvocation: number;
  now: () => number;
  log: Logger;
}

/** How much a run knows after a claim. */
export interface Progress {
  /** Messages still due, beyond what this run holds. */
  dueLeft: number;
  /** Free connection slots on the smart host, when the cap is kept. */
  slotsFree?: number | undefined;
  /** Messages this run has finished so far. */
  sent: number;
}

export interface FanoutResult {
  helpers: number;
  failed: number;
  reports: HelperReport[];
}

export class Fanout {
  readonly #options: FanoutOptions;
  readonly #since: number;
  readonly #running: Promise<HelperReport | null>[] = [];
  #failed = 0;

  constructor(options: FanoutOptions) {
    this.#options = options;
    this.#since = options.now();
  }

  get started(): number {
    return this.#running.length;
  }

  /** After a claim: starts the helpers the backlog needs, if any. */
  consider(progress: Progress): void {
    const n = helpersNeeded({
      ...progress,
      invocations: this.#options.invocations,
      started: this.#running.length,
      elapsedMs: this.#options.now() - this.#since,
      msLeft: this.#options.until - this.#options.now(),
      perInvocation: this.#options.perInvocation,
    });
    if (n <= 0) return;
    this.#options.log.info("delivery.fanout", {
      helpers: n,
      due: progress.dueLeft,
      sent: progress.sent,
      ...(progress.slotsFree !== undefined ? { slots_free: progress.slotsFree } : {}),
    });
    for (let i = 0; i < n; i++) this.#running.push(this.#startOne(this.#running.length + 1));
  }

  #startOne(n: number): Promise<HelperReport | null> {
    const { runId, until, start, log } = this.#options;
    return start({ holder: `${runId}.${n}`, until }).catch((err: unknown) => {
      // Whatever it had claimed comes back when the lease ends, as after a crash.
      this.#failed++;
      log.error("delivery.fanout_helper_failed", { helper: n, error: String(err) });
      return null;
    });
  }

  /** Waits for every helper started. */
  async settle(): Promise<FanoutResult> {
    const reports = (await Promise.all(this.#running)).filter((r): r is HelperReport => r !== null);
    return { helpers: this.#running.length, failed: this.#failed, reports };
  }
}

/**
 * Helpers to start now: enough that every invocation at this run's rate sends the backlog in the
 * time left, within DELIVERY_FANOUT and the free slots. None until the run has a rate: it has
 * finished two messages for each of its connections, so every connection has been opened and
 * has sent at least once (the first message on a connection also pays for connecting).
 */
export function helpersNeeded(p: {
  dueLeft: number;
  slotsFree?: number | undefined;
  sent: number;
  invocations: number;
  started: number;
  elapsedMs: number;
  msLeft: number;
  perInvocation: number;
}): number {
  const room = p.invocations - 1 - p.started;
  if (room <= 0 || p.dueLeft <= 0 || p.msLeft <= 0) return 0;
  if (p.sent < 2 * p.perInvocation || p.elapsedMs <= 0) return 0;
  const perInvocationLeft = (p.sent / p.elapsedMs) * p.msLeft;
  const wanted = Math.ceil(p.dueLeft / perInvocationLeft) - 1 - p.started;
  const slotBound =
    p.slotsFree === undefined ? room : Math.ceil(p.slotsFree / Math.max(1, p.perInvocation));
  return Math.max(0, Math.min(wanted, room, slotBound));
}
