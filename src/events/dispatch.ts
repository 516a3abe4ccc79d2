/**
 * Sends queued events to their endpoints: claims the heads of due event chains (one chain per
 * endpoint and email, so events about one email arrive in order), POSTs each signed per Standard
 * Webhooks, and writes the outcome back under the claim's lease, like mail delivery does.
 *
 * A 2xx is success. 410 Gone disables the endpoint at once (as Svix does). Anything else, a
 * redirect, a network error or a timeout is a failed attempt, retried after the next wait of the
 * schedule; after the last one the event is given up ("failed"), and the endpoint is disabled when
 * no delivery to it has succeeded since its failures began.
 */
import { Webhook } from "standardwebhooks";
import type { WebhookConfig } from "../config.ts";
import type { Logger } from "../log.ts";
import type { ClaimedEvent, EventAttempt, EventOutcome, RelayStore } from "../store/store.ts";
import type { WebhookRecord } from "./endpoints.ts";

export const USER_AGENT = "edge-smtp-relay-webhooks/1";
/** Chains claimed per store round trip. */
export const EVENT_BATCH = 20;
/** POSTs in flight at once (Workers allow six connections opening at a time). */
export const EVENT_CONCURRENCY = 6;
/** How much of a receiver's answer is kept with the attempt. */
const RESPONSE_KEPT = 500;
/** Attempts kept per event (the schedule allows at most 20 retries). */
const ATTEMPTS_KEPT = 21;

export interface DispatchContext {
  store: RelayStore;
  config: WebhookConfig;
  /** How long a finished event stays readable in the event log. */
  retainMs: number;
  now: () => number;
  log: Logger;
}

export interface DispatchReport {
  events: number;
  delivered: number;
  retried: number;
  failed: number;
  dropped: number;
  /** Outcomes that could not be written back (lease lost or store down): sent again later. */
  unrecorded: number;
}

/** One POST to an endpoint; the runtime entry may replace the plain fetch (setEndpointFetch). */
export type EndpointFetch = (
  url: string,
  init: { method: string; headers: Record<string, string>; body: string; signal: AbortSignal },
  allowLoopback: boolean,
) => Promise<Response>;

// Workers: the runtime's fetch, which goes out through Cloudflare's network (see
// checkEndpointUrl). A redirect is a failed attempt: the signature was made for this URL's owner.
const plainFetch: EndpointFetch = (url, init) => fetch(url, { ...init, redirect: "manual" });
let endpointFetch: EndpointFetch = plainFetch;

/**
 * Replaces how events are POSTed, for every relay in this process: the Deno entry installs
 * pinnedFetch (resolve, check every address, connect only to those). Without an argument, back to
 * the plain fetch.
 */
export function setEndpointFetch(f: EndpointFetch = plainFetch): void {
  endpointFetch = f;
}

/** A lease long enough for a batch's POSTs to run `EVENT_CONCURRENCY` at a time. */
export function eventLeaseMs(config: WebhookConfig): number {
  return Math.ceil(EVENT_BATCH / EVENT_CONCURRENCY + 1) * config.timeoutMs + 10_000;
}

/**
 * The Standard Webhooks headers for one delivery of `payload`, twice: `webhook-*` (the standard)
 * and `svix-*` with the same values, because Resend signs through Svix and its docs tell
 * receivers to read `svix-id`, `svix-timestamp` and `svix-signature`. The id is the event id, the
 * same on every retry, so receivers deduplicate on it.
 */
export function signedHeaders(
  secret: string,
  eventId: string,
  payload: string,
  at: Date,
): Record<string, string> {
  const timestamp = String(Math.floor(at.getTime() / 1000));
  const signature = new Webhook(secret).sign(eventId, at, payload);
  return {
    "content-type": "application/json",
    "user-agent": USER_AGENT,
    "webhook-id": eventId,
    "webhook-timestamp": timestamp,
    "webhook-signature": signature,
    "svix-id": eventId,
    "svix-timestamp": timestamp,
    "svix-signature": signature,
  };
}

/** Sends due events until none is due or `budgetMs` is spent. */
export async function dispatchEvents(
  ctx: DispatchContext,
  budgetMs: number,
): Promise<DispatchReport> {
  const report: DispatchReport = {
    events: 0,
    delivered: 0,
    retried: 0,
    failed: 0,
    dropped: 0,
    unrecorded: 0,
  };
  const started = ctx.now();
  const leaseMs = eventLeaseMs(ctx.config);
  while (ctx.now() - started < budgetMs) {
    let claimed: ClaimedEvent[];
    try {
      claimed = await ctx.store.claimEvents(ctx.now(), EVENT_BATCH, leaseMs);
    } catch (err) {
      ctx.log.error("store.unavailable", { op: "claim_events", error: String(err) });
      break;
    }
    if (claimed.length === 0) break;
    let next = 0;
    const worker = async () => {
      while (next < claimed.length) {
        const event = claimed[next++];
        if (event) await sendOne(event, ctx, report);
      }
    };
    await Promise.all(Array.from({ length: Math.min(EVENT_CONCURRENCY, claimed.length) }, worker));
    // No early stop on a short batch: a sent head makes the next event of its chain due at once.
  }
  if (report.events > 0) {
    ctx.log.info("webhook.run", { ...report, ms: ctx.now() - started });
  }
  return report;
}

/** What an attempt leads to: success, a retry on the schedule, or failure (at once on 410). */
function outcomeOf(
  ok: boolean,
  status: number | null,
  attempts: EventAttempt[],
  now: number,
  ctx: DispatchContext,
): EventOutcome {
  if (ok) return { kind: "success", attempts, now, retainMs: ctx.retainMs };
  if (status === 410) {
    return { kind: "failed", attempts, now, retainMs: ctx.retainMs, disable: true };
  }
  const schedule = ctx.config.retryScheduleMs;
  if (attempts.length <= schedule.length) {
    return { kind: "retry", attempts, now, at: now + (schedule[attempts.length - 1] ?? 0) };
  }
  return { kind: "failed", attempts, now, retainMs: ctx.retainMs };
}

function countOutcome(outcome: EventOutcome, report: DispatchReport): void {
  if (outcome.kind === "success") report.delivered++;
  else if (outcome.kind === "retry") report.retried++;
  else if (outcome.kind === "failed") report.failed++;
}

async function sendOne(
  event: ClaimedEvent,
  ctx: DispatchContext,
  report: DispatchReport,
): Promise<void> {
  const fields = { webhook_id: event.endpointId, event_id: event.id, email_id: event.emailId };
  if (event.endpoint === null || !event.enabled) {
    report.dropped++;
    await commit(event, { kind: "dropped", now: ctx.now(), retainMs: ctx.retainMs }, ctx, report);
    ctx.log.warn("webhook.event_dropped", {
      ...fields,
      reason: event.endpoint === null ? "endpoint deleted" : "endpoint disabled",
    });
    return;
  }
  // Past its lease another run may send this event too: start only with room for a whole POST.
  if (ctx.now() + ctx.config.timeoutMs + 1_000 > event.leasedUntil) return;
  report.events++;
  const record = JSON.parse(event.endpoint) as WebhookRecord;
  const attempt = await post(record, event, ctx);
  const attempts = [...event.attempts, attempt].slice(-ATTEMPTS_KEPT);
  const now = ctx.now();
  const ok = attempt.status !== null && attempt.status >= 200 && attempt.status < 300;
  const outcome = outcomeOf(ok, attempt.status, attempts, now, ctx);
  countOutcome(outcome, report);
  ctx.log[ok ? "info" : "warn"]("webhook.attempt", {
    ...fields,
    type: event.type,
    attempt: attempts.length,
    status: attempt.status,
    ms: attempt.ms,
    ...(attempt.error ? { error: attempt.error } : {}),
    outcome: outcome.kind,
  });
  const disabled = await commit(event, outcome, ctx, report);
  if (disabled) {
    const reason =
      attempt.status === 410
        ? "the endpoint answered 410 Gone"
        : `an event failed ${attempts.length} attempts with no success since the endpoint began failing`;
    ctx.log.warn("webhook.disabled", { webhook_id: event.endpointId, reason });
    try {
      await ctx.store.putWebhook<WebhookRecord>(
        event.endpointId,
        { ...record, disabledReason: reason, disabledAt: now },
        null,
      );
    } catch (err) {
      ctx.log.error("store.unavailable", { op: "disable_webhook", error: String(err) });
    }
  }
}

async function post(
  record: WebhookRecord,
  event: ClaimedEvent,
  ctx: DispatchContext,
): Promise<EventAttempt> {
  const started = ctx.now();
  const signal = AbortSignal.timeout(ctx.config.timeoutMs);
  try {
    const res = await endpointFetch(
      record.endpoint,
      {
        method: "POST",
        headers: signedHeaders(record.secret, event.id, event.payload, new Date(started)),
        body: event.payload,
        signal,
      },
      ctx.config.allowLoopback,
    );
    let response = "";
    try {
      response = (await res.text()).slice(0, RESPONSE_KEPT);
    } catch {
      // The answer's status is what counts; a body cut off by the timeout is not kept.
    }
    return { at: started, status: res.status, ms: ctx.now() - started, response };
  } catch (err) {
    const timedOut = signal.aborted;
    return {
      at: started,
      status: null,
      ms: ctx.now() - started,
      error: timedOut
        ? `no answer within ${ctx.config.timeoutMs / 1000} s`
        : err instanceof Error
          ? err.message
          : String(err),
    };
  }
}

/** Writes an outcome back; true when it disabled the endpoint. */
async function commit(
  event: ClaimedEvent,
  outcome: EventOutcome,
  ctx: DispatchContext,
  report: DispatchReport,
): Promise<boolean> {
  try {
    const result = await ctx.store.commitEvent(event, outcome);
    if (!result.ok) {
      report.unrecorded++;
      ctx.log.warn("webhook.unrecorded", { event_id: event.id, webhook_id: event.endpointId });
      return false;
    }
    return result.disabled;
  } catch (err) {
    report.unrecorded++;
    ctx.log.error("webhook.commit_failed", { event_id: event.id, error: String(err) });
    return false;
  }
}
