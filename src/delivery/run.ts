/**
 * A scheduled run's delivery loop: claims due messages batch after batch and keeps every
 * connection busy. The next batch is claimed while the last messages of the current one are
 * still being sent (claim ahead), so no connection sits idle between batches waiting for the
 * store: at a smart host tens of milliseconds away, that wait, at every batch boundary, is what
 * separated the relay from a direct pooled send.
 *
 * At most one claim is in flight, and it starts only when no more than `concurrency` messages are
 * left waiting, so a run holds at most one batch beyond the messages being sent: the memory bound
 * of CLAIM_BUDGET_BYTES per claim still holds, twice over at worst. A message claimed ahead waits
 * its turn under its lease; deliverOne skips one whose lease grew too short meanwhile.
 *
 * Outcomes are written in group commits, and a run whose write-backs fail stops starting sends
 * until the store answers again (store-health.ts): what it sends it must be able to record.
 */
import type { Logger } from "../log.ts";
import type { ClaimedEntry } from "../store/types.ts";
import { type DeliveryContext, type DeliveryReport, deliverOne, emptyReport } from "./deliver.ts";
import { groupCommits } from "./group-commit.ts";
import { WriteBackHealth } from "./store-health.ts";

/** Where a run's messages come from: one claim per call. Throws when the store is unreachable. */
export type ClaimNext = () => Promise<{ entries: ClaimedEntry[]; more: boolean }>;

export interface RunResult {
  report: DeliveryReport;
  batches: number;
  /** Why claiming stopped early, when a claim failed (the messages already claimed still went). */
  claimError?: unknown;
  /** Set when write-backs failed for good: the claimed messages this run then left unsent. */
  halted?: number;
}

/**
 * Delivers until a claim finds nothing more due, `mayClaim` says the run's budget is spent, or a
 * claim fails; then waits for every write-back.
 */
export async function deliverRun(
  claimNext: ClaimNext,
  runContext: DeliveryContext,
  mayClaim: () => boolean,
  /** Told the number of messages finished so far, after each (fan-out measures its rate by it). */
  onSent?: (sent: number) => void,
): Promise<RunResult> {
  // Outcomes that end close together are written in one command (group-commit.ts).
  const health = new WriteBackHealth();
  const ctx: DeliveryContext = {
    ...runContext,
    commit: runContext.commit ?? groupCommits(runContext.store),
    health,
  };
  const report = emptyReport();
  const commits: Promise<void>[] = [];
  const waiting: ClaimedEntry[] = [];
  const result: RunResult = { report, batches: 0 };
  let more = true;
  let sent = 0;
  let claiming: Promise<void> | null = null;

  const claim = (): Promise<void> | null => {
    if (claiming || !more || health.troubled || !mayClaim()) return claiming;
    claiming = claimNext()
      .then(({ entries, more: after }) => {
        if (entries.length > 0) result.batches++;
        waiting.push(...entries);
        more = after && entries.length > 0;
      })
      .catch((err: unknown) => {
        more = false;
        result.claimError = err;
      })
      .finally(() => {
        claiming = null;
      });
    return claiming;
  };

  const worker = async () => {
    for (;;) {
      if (waiting.length <= ctx.concurrency) claim();
      // While the store cannot take outcomes, start nothing new (store-health.ts).
      if (!(await health.ready())) break;
      const entry = waiting.shift();
      if (entry) {
        await deliverOne(entry, ctx, report, commits);
        onSent?.(++sent);
        continue;
      }
      const pending = claiming ?? claim();
      if (!pending) return;
      await pending;
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, ctx.concurrency) }, worker));
  await Promise.all(commits);
  if (health.halted) {
    // Not started: they come back when their lease ends, as after a crash, but were never sent.
    report.skipped += waiting.length;
    result.halted = waiting.length;
    waiting.length = 0;
  }
  return result;
}

/**
 * Delivers the given claimed entries (the attempt made right after accepting) through the same
 * loop as a scheduled run, so it has the same store-health gate: once write-backs fail, it starts
 * no further send it could not record, and what it leaves unsent comes back when its lease ends.
 */
export function deliverEntries(entries: ClaimedEntry[], ctx: DeliveryContext): Promise<RunResult> {
  let given = false;
  return deliverRun(
    async () => {
      const batch = given ? [] : entries;
      given = true;
      return { entries: batch, more: false };
    },
    { ...ctx, concurrency: Math.max(1, Math.min(ctx.concurrency, entries.length)) },
    () => true,
  );
}

/** What a run's operator must hear: a claim that failed, write-backs that gave up. */
export function logRunTrouble(log: Logger, run: RunResult): void {
  if (run.claimError !== undefined)
    log.error("store.unavailable", { op: "claim", error: String(run.claimError) });
  if (run.halted !== undefined)
    log.error("delivery.halted", {
      reason: "write-backs failed: the store is unreachable",
      left_unsent: run.halted,
    });
}
