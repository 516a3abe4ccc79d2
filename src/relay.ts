/**
 * The relay's core, independent of any runtime and of which store or transport it runs on: it
 * accepts messages into the store, answers questions about them, and runs delivery. Runtime
 * entries (src/runtime/*) build one per isolate with createRelay (src/runtime/compose.ts) and hand
 * it requests and cron ticks.
 */
import { type FailureGuard, failureGuard } from "./auth/abuse.ts";
import { ApiKeys, type Principal } from "./auth/keys.ts";
import type { RateLimiter } from "./auth/rate-limit.ts";
import { type Config, sendWindowMs } from "./config.ts";
import { type DeliveryReport, emptyReport } from "./delivery/deliver.ts";
import type { HelperReport, HelperRequest, StartHelper } from "./delivery/fanout.ts";
import { deliverEntries, logRunTrouble } from "./delivery/run.ts";
import { type RunOutcome, type ScheduledDeps, scheduledRun } from "./delivery/scheduled.ts";
import { initialState, type Policy } from "./delivery/state.ts";
import { EmailSteering } from "./delivery/steer.ts";
import { DomainRegistry } from "./domains.ts";
import { StoreUnavailableError } from "./errors.ts";
import { type DispatchReport, dispatchEvents } from "./events/dispatch.ts";
import { acceptedEvents } from "./events/events.ts";
import { WebhookEndpoints } from "./events/manage.ts";
import { EmailListing } from "./listing/emails.ts";
import { EmailMetrics } from "./listing/metrics.ts";
import { OperatorOverview } from "./listing/overview.ts";
import type { Logger } from "./log.ts";
import type { Composed } from "./mail/compose.ts";
import { hasReturnPath, returnPath } from "./mail/verp.ts";
import { Records } from "./records.ts";
import { relaySecret } from "./relay-secrets.ts";
import { RequestLog } from "./request-log.ts";
import type { SmtpTransport } from "./smtp/transport.ts";
import {
  type IdempotencyRecord,
  type NewEntry,
  newLeaseToken,
  type RelayStore,
  type SuppressedRecipient,
} from "./store/store.ts";
import type { ClaimedEntry, StoredEntry } from "./store/types.ts";
import { Suppressions } from "./suppressions.ts";
import { TemplateLibrary } from "./template-library.ts";

/** Which store backs the relay, as /health reports it. */
export type StoreKind = "upstash" | "memory";

/** What the relay runs on; src/runtime/compose.ts picks each from the configuration. */
export interface RelayDeps {
  config: Config;
  store: RelayStore;
  storeKind: StoreKind;
  limiter: RateLimiter;
  /**
   * Opens an SMTP transport, or undefined when SMTP_URL is not configured; `connections` bounds
   * its default pool (a delivery run's share of a shared cap), SMTP_MAX_CONNECTIONS by default.
   */
  openTransport: ((connections?: number) => SmtpTransport) | undefined;
  log: Logger;
  now: () => number;
}

/** An accepted message, plus the claim for its immediate attempt when one should be made. */
export interface Accepted {
  ids: string[];
  immediate: ClaimedEntry[];
  /** Accepting queued webhook events (someone subscribes): worth a dispatch right away. */
  events: boolean;
}

/** Longest background dispatch after a request (Workers keep waitUntil work about 30 s). */
const IMMEDIATE_DISPATCH_MS = 15_000;

export class Relay {
  readonly config: Config;
  readonly store: RelayStore;
  readonly storeKind: StoreKind;
  readonly keys: ApiKeys;
  readonly records: Records;
  readonly templates: TemplateLibrary;
  readonly domains: DomainRegistry;
  /** `GET /emails` and `GET /emails/metrics`: the list index and the event counters. */
  readonly emailList: EmailListing;
  readonly emailMetrics: EmailMetrics;
  readonly overview: OperatorOverview;
  readonly requestLog: RequestLog;
  readonly webhooks: WebhookEndpoints;
  /** The suppression list (`/suppressions`; bounce intake adds through `reportEntry`). */
  readonly suppressions: Suppressions;
  readonly limiter: RateLimiter;
  readonly log: Logger;
  readonly now: () => number;
  readonly #openTransport: ((connections?: number) => SmtpTransport) | undefined;
  readonly #steering: EmailSteering;
  /** `store.eventsQueued` when a dispatch last started: more since then means work to send. */
  #eventsSeen = 0;

  constructor(deps: RelayDeps) {
    this.config = deps.config;
    this.store = deps.store;
    this.storeKind = deps.storeKind;
    this.limiter = deps.limiter;
    this.log = deps.log;
    this.now = deps.now;
    this.#openTransport = deps.openTransport;
    this.#steering = new EmailSteering(deps.store, {
      now: deps.now,
      log: deps.log,
      retentionMs: deps.config.retentionMs,
    });
    this.records = new Records(deps.store, deps.log);
    this.suppressions = new Suppressions(deps.store, deps.config.suppressionExpiryMs, deps.now);
    this.templates = new TemplateLibrary(deps.store, {
      log: deps.log,
      now: deps.now,
      cacheMs: deps.config.keyCacheMs,
    });
    this.domains = new DomainRegistry(deps.store, deps.config, { log: deps.log, now: deps.now });
    this.emailList = new EmailListing(deps.store, this.now);
    this.emailMetrics = new EmailMetrics(deps.store, this.now);
    this.requestLog = new RequestLog(deps.store, deps.config.requestLog, deps.now, deps.log);
    this.webhooks = new WebhookEndpoints({
      store: deps.store,
      allowLoopback: deps.config.webhooks.allowLoopback,
      now: deps.now,
      log: deps.log,
    });
    this.overview = new OperatorOverview(deps.store, this.webhooks, deps.config.leaseMs);
    this.keys = new ApiKeys(deps.store, {
      adminToken: deps.config.adminToken,
      cacheMs: deps.config.keyCacheMs,
      now: deps.now,
    });
  }

  /**
   * This request's view of its client network's failed lookups (auth/abuse.ts). One limiter per
   * relay, shared by key, form and hook lookups: garbage of every kind counts against one limit.
   */
  failureGuard(clientIp: string | undefined): FailureGuard {
    return failureGuard(this.store, clientIp, this.now());
  }

  get smtpConfigured(): boolean {
    return this.#openTransport !== undefined;
  }

  get policy(): Policy {
    return {
      maxQueueAgeMs: this.config.maxQueueAgeMs,
      retentionMs: this.config.retentionMs,
      retry: this.config.retry,
    };
  }

  /**
   * Stores composed messages, all or none. Resolves only once the store has them: that is what
   * a 2xx promises. Messages due now are leased to the caller for an immediate attempt. A
   * message from a verified domain is DKIM-signed first (src/domains.ts), so retries resend it.
   */
  async accept(
    unsigned: { composed: Composed; scheduledAt: number | null }[],
    idempotency?: IdempotencyRecord,
  ): Promise<Accepted> {
    let items: typeof unsigned;
    try {
      items = await Promise.all(
        unsigned.map(async (i) => ({ ...i, composed: await this.domains.sign(i.composed) })),
      );
    } catch (err) {
      this.log.error("store.unavailable", { op: "domains", error: String(err) });
      throw new StoreUnavailableError(err);
    }
    const now = this.now();
    const immediate = this.config.immediateDelivery && this.#openTransport !== undefined;
    const token = newLeaseToken();
    const entries: NewEntry[] = items.map(({ composed, scheduledAt }) => {
      const due = scheduledAt !== null && scheduledAt > now ? scheduledAt : now;
      const lease =
        immediate && due <= now ? { token, until: now + this.config.immediateLeaseMs } : undefined;
      const state = initialState(composed.message.envelope.to, scheduledAt);
      return {
        message: composed.message,
        raw: composed.raw,
        state,
        dueAt: due,
        events: acceptedEvents(composed.message, state, now),
        ...(lease ? { lease } : {}),
      };
    });
    const eventsBefore = this.store.eventsQueued;
    let suppressed: Record<string, SuppressedRecipient[]>;
    try {
      // The leased entries' suppressed recipients come back from the same command.
      ({ suppressed } = await this.store.enqueue(entries, idempotency));
    } catch (err) {
      this.log.error("store.unavailable", { op: "enqueue", error: String(err) });
      throw new StoreUnavailableError(err);
    }
    for (const e of entries) {
      this.log.info("email.accepted", {
        email_id: e.message.id,
        key_id: e.message.keyId,
        recipients: e.message.envelope.to.length,
        bytes: e.raw.length,
        scheduled_at:
          e.state.scheduledAt === null ? null : new Date(e.state.scheduledAt).toISOString(),
      });
    }
    return {
      events: this.store.eventsQueued > eventsBefore,
      ids: entries.map((e) => e.message.id),
      immediate: entries
        .filter((e) => e.lease)
        .map((e) => ({
          message: e.message,
          raw: e.raw,
          state: e.state,
          version: 1,
          leasedUntil: e.lease?.until ?? null,
          token,
          ...(suppressed[e.message.id] ? { suppressed: suppressed[e.message.id] } : {}),
        })),
    };
  }

  /**
   * The first attempt, right after accepting, then the events it (and accepting) queued, within
   * the time a request's background work has. Failures are left to the scheduled runs.
   */
  async deliverNow(entries: ClaimedEntry[]): Promise<DeliveryReport> {
    let report = emptyReport();
    if (entries.length > 0 && this.#openTransport) {
      const transport = this.#openTransport();
      try {
        const run = await deliverEntries(entries, this.#deliveryContext(transport));
        report = run.report;
        logRunTrouble(this.log, run);
      } finally {
        await transport.close();
      }
    }
    if (this.store.eventsQueued > this.#eventsSeen) {
      await this.dispatchSoon();
    }
    return report;
  }

  /** Sends queued events within the time a request's background work has. */
  dispatchSoon(): Promise<DispatchReport> {
    return this.dispatchEvents(Math.min(IMMEDIATE_DISPATCH_MS, this.config.webhooks.runBudgetMs));
  }

  /** Sends due webhook events for up to `budgetMs`. Mail delivery never waits for this. */
  async dispatchEvents(budgetMs = this.config.webhooks.runBudgetMs): Promise<DispatchReport> {
    this.#eventsSeen = this.store.eventsQueued;
    return dispatchEvents(
      {
        store: this.store,
        config: this.config.webhooks,
        retainMs: this.config.retentionMs,
        now: this.now,
        log: this.log,
      },
      budgetMs,
    );
  }

  /**
   * One scheduled run: claims due messages batch by batch (the next while the current one is
   * still going out: delivery/run.ts) and delivers them over one pooled transport, until the
   * queue has nothing due or the run's time budget is spent, fanning out to helpers through
   * `startHelper` when the backlog needs more connections than one invocation has
   * (delivery/fanout.ts); then the webhook events that are due.
   */
  async runScheduled(
    options: { startHelper?: StartHelper | undefined } = {},
  ): Promise<RunOutcome & { webhooks: DispatchReport | null }> {
    const started = this.now();
    const eventsBefore = this.store.eventsQueued;
    if (!this.#openTransport) {
      this.log.error("delivery.skipped", { reason: "SMTP_URL is not set: messages stay queued" });
      const idle = { ...emptyReport(), batches: 0, connections: 0, eventsDue: 0 };
      return { ...idle, webhooks: await this.dispatchEvents() };
    }
    const run = await scheduledRun(this.#scheduledDeps(this.#openTransport), {
      kind: "run",
      startHelper: options.startHelper,
    });
    if (run.batches > 0 && this.config.fanout.invocations > 1 && !options.startHelper)
      this.log.warn("delivery.fanout_unavailable", {
        reason: `DELIVERY_FANOUT is ${this.config.fanout.invocations}, but this runtime has no DELIVERY_HELPER service binding (wrangler.toml [[services]]): one invocation delivers`,
      });
    // An idle run (nothing due) happens every minute: stay quiet about it.
    if (run.batches > 0) {
      const { fanout, eventsDue: _, ...counts } = run;
      this.log.info("delivery.run", {
        ...counts,
        ...(fanout ? { helpers: fanout.helpers, helpers_failed: fanout.failed } : {}),
        ms: this.now() - started,
      });
    }
    // Events: those due at the claim, and those this run's (and its helpers') deliveries queued.
    const queued =
      this.store.eventsQueued > eventsBefore || run.fanout?.reports.some((r) => r.eventsQueued);
    const webhooks = run.eventsDue > 0 || queued ? await this.dispatchEvents() : null;
    return { ...run, webhooks };
  }

  /** A helper a scheduled run fanned out to: delivers until `request.until`, never fans out. */
  async runHelper(request: HelperRequest): Promise<HelperReport> {
    const eventsBefore = this.store.eventsQueued;
    if (!this.#openTransport) throw new Error("SMTP_URL is not set");
    const {
      fanout: _,
      eventsDue: __,
      ...run
    } = await scheduledRun(this.#scheduledDeps(this.#openTransport), { kind: "helper", request });
    if (run.batches > 0) this.log.info("delivery.helper_run", { holder: request.holder, ...run });
    return { ...run, eventsQueued: this.store.eventsQueued > eventsBefore };
  }

  #scheduledDeps(open: (connections?: number) => SmtpTransport): ScheduledDeps {
    return {
      store: this.store,
      config: this.config,
      openTransport: (connections) => open(connections),
      context: (transport, connections) => this.#deliveryContext(transport, connections),
      now: this.now,
      log: this.log,
    };
  }

  /** One email as `principal` may see it; NotFoundError otherwise (delivery/steer.ts). */
  get(id: string, principal: Principal): Promise<StoredEntry> {
    return this.#steering.get(id, principal);
  }

  reschedule(id: string, principal: Principal, at: number): Promise<void> {
    return this.#steering.reschedule(id, principal, at);
  }

  retryNow(id: string, principal: Principal): Promise<void> {
    return this.#steering.retryNow(id, principal);
  }

  cancel(id: string, principal: Principal): Promise<void> {
    return this.#steering.cancel(id, principal);
  }

  #deliveryContext(transport: SmtpTransport, connections = this.config.smtpMaxConnections) {
    return {
      store: this.store,
      transport,
      policy: this.policy,
      // Twice the connections: the pool always has the next message waiting when one finishes.
      concurrency: connections * 2,
      sendWindowMs: sendWindowMs(this.config.smtpTimeoutMs),
      leaseMs: this.config.leaseMs,
      suppressionExpiryMs: this.config.suppressionExpiryMs,
      now: this.now,
      log: this.log,
      returnPath: this.#returnPath,
    };
  }

  /** With BOUNCE_DOMAIN, each email's VERP envelope sender; the secret is the store's (see
   * relay-secrets.ts), so every isolate and every deployment makes and verifies the same tags. */
  get #returnPath() {
    const domain = this.config.bounceDomain;
    if (domain === undefined) return undefined;
    return async (id: string) =>
      hasReturnPath(id) ? returnPath(id, domain, await relaySecret(this, "bounce")) : undefined;
  }
}
