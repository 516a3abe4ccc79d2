/**
 * Phase 5, lease overrun: a run is still busy when its lease runs out, and the next tick (the
 * cron does not wait for a slow run) claims what it holds: once slowed by stalls past the timeout,
 * once by a tarpit (every reply late, none past the timeout).
 */
import type { FaultPlan } from "../../dev/smtp-sink/index.ts";
import { sleep, within } from "../async.ts";
import { type FaultRun, isFinished } from "../context.ts";
import {
  FIRST_RETRY_DUE_MS,
  STALL_MS,
  STALL_OVERRUN_MESSAGES,
  TARPIT_MESSAGES,
  TIMINGS,
} from "../timings.ts";

export type OverrunKind = "stalls" | "tarpit";

export interface OverrunReport {
  name: string;
  /** Its messages' recipients start with this. */
  tag: string;
  messages: number;
  recipients: number;
  stalls: number;
  secondRunAfterMs: number;
  /** Relay log lines "delivery.unrecorded" (lease lost) during the phase. */
  unrecorded: number;
  /** Relay log lines "delivery.skipped_lease_short" (not started: too little lease left). */
  skipped: number;
}

/** The overrun phases asked for, while the deadline leaves room for them. */
export async function leaseOverruns(run: FaultRun, kinds: OverrunKind[]): Promise<OverrunReport[]> {
  const overruns: OverrunReport[] = [];
  if (kinds.includes("stalls") && run.budgetLeft() > 30_000) {
    // Stalls on every connection for six rounds: the first run needs longer than its lease
    // for the messages it claimed. It must leave what it has no room for (the relay starts a
    // transaction only with 2 x SMTP_TIMEOUT_SECONDS of lease left) to the next run.
    overruns.push(
      await overrun(run, "lease overrun: stalls", "overrun", STALL_OVERRUN_MESSAGES, 2, {
        rules: [{ at: "mail", action: "stall", ms: STALL_MS, limit: 6 * TIMINGS.connections }],
      }),
    );
  }
  if (kinds.includes("tarpit") && run.budgetLeft() > 30_000) {
    // A tarpit: every reply just under the timeout, so nothing times out, but one transaction
    // to seven recipients takes 9 replies x 0.9 x SMTP_TIMEOUT_SECONDS, longer than the lease,
    // though it started with the whole lease left.
    overruns.push(
      await overrun(run, "lease overrun: tarpit", "tarpit", TARPIT_MESSAGES, 7, {
        rules: [],
        tarpitMs: TIMINGS.smtpTimeoutSeconds * 900,
      }),
    );
  }
  return overruns;
}

async function overrun(
  run: FaultRun,
  name: string,
  tag: string,
  count: number,
  recipients: number,
  faults: FaultPlan,
): Promise<OverrunReport> {
  let report: OverrunReport | undefined;
  await run.phase(name, async () => {
    const { smtp, relay } = run;
    // Start from an empty queue, so that the first run claims this phase's messages only.
    await run.waitUntil(run.acceptedIds(), isFinished, Math.min(run.deadline, Date.now() + 30_000));
    const ids = await run.backlog(tag, count, recipients);
    const logsBefore = relay.logs.length;
    smtp.setFaults(faults);
    await smtp.up();
    await sleep(FIRST_RETRY_DUE_MS);
    const first = relay.scheduled();
    const firstAt = Date.now();
    // The next cron tick, as the cron fires it: on time, whether or not the last run ended.
    await sleep(TIMINGS.leaseSeconds * 1000 + 400);
    const second = relay.scheduled();
    const secondAfter = Date.now() - firstAt;
    await within(
      Promise.allSettled([first, second]).then(() => {}),
      60_000,
      undefined,
    );
    const stats = smtp.faults().stats;
    smtp.clearFaults();
    relay.collectLogs();
    const logged = (event: string) =>
      relay.logs.slice(logsBefore).filter((l) => l.event === event).length;
    report = {
      name,
      tag,
      messages: ids.length,
      recipients,
      stalls: stats.stalls.length,
      secondRunAfterMs: secondAfter,
      unrecorded: logged("delivery.unrecorded"),
      skipped: logged("delivery.skipped_lease_short"),
    };
    run.ticker.resume();
  });
  return report as OverrunReport;
}
