/**
 * The delivery stage: one claimed message's attempt over the SMTP transport, its outcome written
 * back as soon as its SMTP transaction ends, so a crash repeats as little as possible. The loop
 * that runs attempts, for a cron run and for the attempt right after accepting, is run.ts.
 */

import { DEFAULT_SUPPRESSION_EXPIRY, type SuppressionExpiry } from "../config/suppression.ts";
import { deliveryEvents, type EventDraft } from "../events/events.ts";
import type { Logger } from "../log.ts";
import { latin1ToBytes } from "../mail/bytes.ts";
import type { SmtpTransport } from "../smtp/transport.ts";
import type { CommitItem, RelayStore, Suppression } from "../store/store.ts";
import type { ClaimedEntry } from "../store/types.ts";
import type { CommitOne } from "./group-commit.ts";
import { applyOutcomes, type Policy, pendingRecipients } from "./state.ts";
import type { WriteBackHealth } from "./store-health.ts";
import { countHeld, deadAddresses, holdSuppressed } from "./suppress.ts";

/**
 * A write-back that failed (the store unreachable for a moment) is tried again while the lease
 * has more than this left: a commit must land before another run can claim the message, or that
 * run sends it a second time. It covers one commit with the store client's own retries (three
 * attempts, 100 and 200 ms apart) and the network time of each.
 */
export const WRITE_BACK_LEASE_MARGIN_MS = 2_000;
/** The first pause before a write-back is tried again; it doubles up to the ceiling. */
const WRITE_BACK_FIRST_PAUSE_MS = 250;
const WRITE_BACK_MAX_PAUSE_MS = 4_000;

export interface DeliveryContext {
  store: RelayStore;
  transport: SmtpTransport;
  policy: Policy;
  /** Messages sent at the same time (the transport pools that many connections). */
  concurrency: number;
  /** Lease time one SMTP transaction needs; a message with less left is not started. */
  sendWindowMs: number;
  /** How far a renewal extends a lease while a transaction is still running. */
  leaseMs: number;
  /**
   * How long a suppression list entry of each origin lasts (ms), null: for ever
   * (SUPPRESSION_EXPIRY_DAYS); absent: the defaults (src/config/suppression.ts).
   */
  suppressionExpiryMs?: SuppressionExpiry;
  /** How an outcome is written: grouped with others (group-commit.ts), or alone by default. */
  commit?: CommitOne;
  /** Told of every write-back, so a run stops sending what it could not record (store-health.ts). */
  health?: WriteBackHealth;
  now: () => number;
  log: Logger;
  /**
   * The envelope sender (MAIL FROM) for an email when BOUNCE_DOMAIN is set: its VERP return path
   * (src/mail/verp.ts), so later bounces come back to the relay; undefined: the message's own
   * envelope sender, as accepted. The From header is the message's and is never touched, and the
   * relay adds no Return-Path header (the receiving server writes that from MAIL FROM).
   */
  returnPath?: ((emailId: string) => Promise<string | undefined>) | undefined;
}

export interface DeliveryReport {
  messages: number;
  delivered: number;
  deferred: number;
  failed: number;
  /** Outcomes that could not be written back (lease lost or store down): retried after the lease. */
  unrecorded: number;
  /** Claimed but not started: too little of the lease was left. They return when it ends. */
  skipped: number;
}

export function emptyReport(): DeliveryReport {
  return { messages: 0, delivered: 0, deferred: 0, failed: 0, unrecorded: 0, skipped: 0 };
}

export async function deliverOne(
  entry: ClaimedEntry,
  ctx: DeliveryContext,
  report: DeliveryReport,
  commits: Promise<void>[],
): Promise<void> {
  const { message } = entry;
  // Past its lease another run may already have this message: sending it too would deliver it
  // twice. Start only with room for a whole transaction; otherwise leave it to the lease's end.
  if (entry.leasedUntil !== null && ctx.now() + ctx.sendWindowMs > entry.leasedUntil) {
    report.skipped++;
    ctx.log.warn("delivery.skipped_lease_short", {
      email_id: message.id,
      leased_until: new Date(entry.leasedUntil).toISOString(),
    });
    return;
  }
  // Recipients on the suppression list (found by the claim or enqueue command) are not tried.
  const hold = holdSuppressed(entry.state, entry.suppressed, ctx.now());
  const to = pendingRecipients(hold.state);
  const sending = to.length > 0 && entry.state.canceledAt === null;
  let from = message.envelope.from;
  if (sending && ctx.returnPath) {
    try {
      from = (await ctx.returnPath(message.id)) ?? from;
    } catch (err) {
      // Its secret is in the store: sending without the return path would lose this message's
      // bounces, so it waits for its lease to end, like a message with too little lease left.
      report.skipped++;
      ctx.log.warn("delivery.return_path_unavailable", {
        email_id: message.id,
        error: String(err),
      });
      return;
    }
  }
  report.messages++;
  let outcomes: Awaited<ReturnType<SmtpTransport["send"]>> = [];
  if (sending) {
    const stop = keepLease(entry, ctx);
    try {
      // The key and the sender as accepted choose the route (SMTP_ROUTES, src/smtp/routes.ts).
      outcomes = await ctx.transport.send({ from, to }, latin1ToBytes(entry.raw), {
        keyId: message.keyId,
        sender: message.envelope.from,
      });
    } finally {
      stop();
    }
  }
  const now = ctx.now();
  const applied = applyOutcomes(message, hold.state, outcomes, now, ctx.policy);
  const { next, counts } = applied;
  const state = countHeld(applied.state, hold.held);
  // Written with the state change, in the same store command, or not at all: the events, and
  // the addresses this attempt proved dead for the suppression list.
  const events = deliveryEvents(message, entry.state, state, now);
  const expiry = ctx.suppressionExpiryMs ?? DEFAULT_SUPPRESSION_EXPIRY;
  const dead = deadAddresses(message, entry.state, state, now, expiry.bounce);
  report.delivered += counts.delivered;
  report.deferred += counts.deferred;
  report.failed += counts.failed;
  commits.push(writeBack(entry, { state, next, events, dead }, ctx, report));
  ctx.log.info("delivery.attempt", {
    email_id: message.id,
    key_id: message.keyId,
    attempt: state.attempts,
    ...counts,
    ...(hold.held ? { suppressed: hold.held } : {}),
    ...(dead.length ? { newly_suppressed: dead.length } : {}),
    next_attempt_at:
      state.nextAttemptAt === null ? null : new Date(state.nextAttemptAt).toISOString(),
    reply: outcomes.find((o) => o.status !== "accepted")?.reply ?? outcomes[0]?.reply ?? null,
  });
}

/**
 * While a transaction runs, renews the lease before it gets short, so a slow server (one that
 * answers every command just inside the timeout) cannot let another run take the message and send
 * it a second time. A renewal costs one store command, and only transactions that are still
 * running when the lease has sendWindowMs left need one. A run that dies stops renewing, and the
 * message comes back when the lease ends, as before.
 */
function keepLease(entry: ClaimedEntry, ctx: DeliveryContext): () => void {
  if (entry.leasedUntil === null) return () => {};
  let until = entry.leasedUntil;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  const schedule = (minWait = 0) => {
    const wait = Math.max(minWait, until - ctx.sendWindowMs - ctx.now());
    timer = setTimeout(async () => {
      if (stopped) return;
      const renewed = await renewLease(entry, ctx);
      if (renewed === "lost" || stopped) return;
      if (renewed === "unreachable") {
        // The store is unreachable: try again shortly, not in a tight loop.
        schedule(1_000);
        return;
      }
      until = renewed;
      schedule();
    }, wait);
  };
  schedule();
  return () => {
    stopped = true;
    if (timer !== undefined) clearTimeout(timer);
  };
}

/** One renewal: the new lease end, or why there is none. */
async function renewLease(
  entry: ClaimedEntry,
  ctx: DeliveryContext,
): Promise<number | "lost" | "unreachable"> {
  const next = ctx.now() + ctx.leaseMs;
  try {
    if (!(await ctx.store.renew(entry.message.id, entry.token, next))) {
      ctx.log.warn("delivery.lease_lost", { email_id: entry.message.id });
      return "lost";
    }
  } catch (err) {
    ctx.log.warn("delivery.lease_renew_failed", { email_id: entry.message.id, error: String(err) });
    return "unreachable";
  }
  entry.leasedUntil = next;
  ctx.log.info("delivery.lease_renewed", {
    email_id: entry.message.id,
    leased_until: new Date(next).toISOString(),
  });
  return next;
}

/**
 * Writes an attempt's outcome back. The server has answered, so an outcome that is not written
 * means the message comes back after its lease and is sent again: a failed commit is retried with
 * a short backoff while the lease has room (WRITE_BACK_LEASE_MARGIN_MS). A commit that failed may
 * still have been applied (its reply lost); the store answers "ok" to a repeat of it.
 */
async function writeBack(
  entry: ClaimedEntry,
  change: {
    state: ClaimedEntry["state"];
    next: Parameters<RelayStore["commit"]>[3];
    events: EventDraft[];
    dead: Suppression[];
  },
  ctx: DeliveryContext,
  report: DeliveryReport,
): Promise<void> {
  const { message } = entry;
  const { state, next, events, dead } = change;
  const item = {
    id: message.id,
    guard: { token: entry.token },
    state,
    next,
    events,
    suppress: dead,
  };
  const commit =
    ctx.commit ?? ((i: CommitItem) => ctx.store.commitMany([i]).then((r) => r[0] ?? "missing"));
  let pause = WRITE_BACK_FIRST_PAUSE_MS;
  ctx.health?.started();
  for (let attempt = 1; ; attempt++) {
    try {
      const result = await commit(item);
      ctx.health?.ended(true);
      if (result !== "ok") {
        report.unrecorded++;
        ctx.log.warn("delivery.unrecorded", { email_id: message.id, reason: result });
      }
      return;
    } catch (err) {
      const until = entry.leasedUntil;
      ctx.health?.failed();
      if (until === null || ctx.now() + pause + WRITE_BACK_LEASE_MARGIN_MS > until) {
        ctx.health?.ended(false);
        report.unrecorded++;
        ctx.log.error("delivery.commit_failed", {
          email_id: message.id,
          attempts: attempt,
          error: String(err),
        });
        return;
      }
      ctx.log.warn("delivery.commit_retry", {
        email_id: message.id,
        attempt,
        error: String(err),
      });
      await new Promise((resolve) => setTimeout(resolve, pause));
      pause = Math.min(2 * pause, WRITE_BACK_MAX_PAUSE_MS);
    }
  }
}
