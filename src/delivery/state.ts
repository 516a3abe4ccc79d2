/**
 * Pure functions over a message's delivery state: the state a new message starts in, how an
 * attempt's per-recipient outcomes change it, and the Resend `last_event` it shows.
 */
import type { RecipientOutcome } from "../smtp/transport.ts";
import type { NextStep } from "../store/store.ts";
import { type DeliveryState, MAX_HISTORY, type QueuedMessage } from "../store/types.ts";
import { type RetrySchedule, retryDelayMs, statedWaitMs } from "./retry.ts";

export function initialState(recipients: string[], scheduledAt: number | null): DeliveryState {
  return {
    attempts: 0,
    nextAttemptAt: null,
    scheduledAt,
    canceledAt: null,
    recipients: recipients.map((address) => ({ address, status: "pending" })),
    history: [],
  };
}

export function pendingRecipients(state: DeliveryState): string[] {
  return state.recipients.filter((r) => r.status === "pending").map((r) => r.address);
}

export interface Policy {
  maxQueueAgeMs: number;
  retentionMs: number;
  retry: RetrySchedule;
}

/** Applies one attempt's outcomes. Recipients not tried keep their state. */
export function applyOutcomes(
  message: QueuedMessage,
  state: DeliveryState,
  outcomes: RecipientOutcome[],
  now: number,
  policy: Policy,
  random: () => number = Math.random,
): {
  state: DeliveryState;
  next: NextStep;
  counts: { delivered: number; failed: number; deferred: number };
} {
  // Queue age counts from when the message became due: a message scheduled days ahead has not
  // been waiting for delivery all that time.
  const dueSince = Math.max(message.createdAt, state.scheduledAt ?? message.createdAt);
  const expired = now - dueSince >= policy.maxQueueAgeMs;
  const byAddress = new Map(outcomes.map((o) => [o.address.toLowerCase(), o]));
  let delivered = 0;
  let failed = 0;
  let deferred = 0;
  const recipients = state.recipients.map((r) => {
    const o = byAddress.get(r.address.toLowerCase());
    if (!o || r.status !== "pending") return r;
    if (o.status === "accepted") {
      delivered++;
      return { address: r.address, status: "delivered" as const, reply: o.reply, at: now };
    }
    if (o.status === "permanent" || expired) {
      failed++;
      const reply =
        o.status === "permanent"
          ? o.reply
          : {
              ...o.reply,
              text: `${o.reply.text} (gave up: queued longer than ${Math.round(policy.maxQueueAgeMs / 3_600_000)} h)`,
            };
      return { address: r.address, status: "failed" as const, reply, at: now };
    }
    deferred++;
    return { address: r.address, status: "pending" as const, reply: o.reply, at: now };
  });
  const attempts = state.attempts + 1;
  const representative =
    outcomes.find((o) => o.status === "permanent") ??
    outcomes.find((o) => o.status === "temporary") ??
    outcomes[0];
  const history = [
    ...state.history,
    {
      at: now,
      tried: outcomes.length,
      delivered,
      failed,
      deferred,
      ...(representative ? { reply: representative.reply } : {}),
      ...(representative?.host ? { host: representative.host } : {}),
    },
  ].slice(-MAX_HISTORY);

  const stillPending = recipients.some((r) => r.status === "pending");
  const nextAttemptAt = stillPending ? now + nextDelayMs(outcomes, attempts, policy, random) : null;
  return {
    state: { ...state, attempts, recipients, history, nextAttemptAt },
    next:
      nextAttemptAt === null
        ? { kind: "done", retainMs: policy.retentionMs }
        : { kind: "due", at: nextAttemptAt },
    counts: { delivered, failed, deferred },
  };
}

/**
 * The backoff delay, unless a server said how long to wait: then that wait (the longest any
 * deferred recipient was told), bounded by the schedule's ceiling.
 */
function nextDelayMs(
  outcomes: RecipientOutcome[],
  attempts: number,
  policy: Policy,
  random: () => number,
): number {
  const stated = outcomes
    .filter((o) => o.status === "temporary")
    .map((o) => statedWaitMs(o.reply.text))
    .filter((ms): ms is number => ms !== null);
  if (stated.length > 0) return Math.min(Math.max(...stated, 1000), policy.retry.maxMs);
  return retryDelayMs(attempts, random, policy.retry);
}

/** Marks every pending recipient canceled. */
export function cancelState(state: DeliveryState, now: number): DeliveryState {
  return {
    ...state,
    canceledAt: now,
    nextAttemptAt: null,
    recipients: state.recipients.map((r) =>
      r.status === "pending" ? { ...r, status: "canceled" as const, at: now } : r,
    ),
  };
}

export type LastEvent =
  | "scheduled"
  | "queued"
  | "delivery_delayed"
  | "delivered"
  | "bounced"
  | "complained"
  | "canceled"
  | "suppressed";

/**
 * Resend's `last_event` for the relay's states. "delivered" means the smart host accepted the
 * message for every recipient it was sent to (the relay's responsibility ends there); "bounced"
 * means at least one recipient failed for good; "delivery_delayed" means an attempt failed
 * temporarily and a retry is due.
 *
 * "suppressed" means no recipient is left to try and none was delivered or failed: every one was
 * held back by the suppression list (src/delivery/suppress.ts). So a message with one suppressed
 * and one delivered recipient is "delivered", one with a suppressed and a refused recipient is
 * "bounced" (a real refusal says more than a recipient never tried), and one with a recipient
 * still pending shows "delivery_delayed" as before. Canceled wins over all, as it always did.
 *
 * With bounce intake (src/bounces/), a later report can move a delivered message on: "bounced"
 * when a recipient's server bounced it afterwards, "complained" when a recipient marked it as spam
 * (the latest thing a report can say, so it wins over a bounce).
 */
export function lastEvent(state: DeliveryState, now: number): LastEvent {
  if (state.canceledAt !== null) return "canceled";
  const pending = state.recipients.filter((r) => r.status === "pending").length;
  if (state.attempts === 0) {
    return state.scheduledAt !== null && state.scheduledAt > now ? "scheduled" : "queued";
  }
  if (pending > 0) return "delivery_delayed";
  if (state.recipients.some((r) => r.complaint)) return "complained";
  if (state.recipients.some((r) => r.status === "failed" || r.status === "bounced"))
    return "bounced";
  const delivered = state.recipients.some((r) => r.status === "delivered");
  return !delivered && state.recipients.some((r) => r.status === "suppressed")
    ? "suppressed"
    : "delivered";
}

/**
 * Whether "retry now" fits: the message was tried, has recipients left and waits for a later
 * attempt, and no run holds it. Not for one scheduled for later (that is reschedule), nor a
 * canceled or finished one.
 */
export function canRetryNow(
  state: DeliveryState,
  leasedUntil: number | null,
  now: number,
): boolean {
  return (
    state.canceledAt === null &&
    state.attempts > 0 &&
    state.recipients.some((r) => r.status === "pending") &&
    state.nextAttemptAt !== null &&
    state.nextAttemptAt > now &&
    (leasedUntil === null || leasedUntil <= now)
  );
}
