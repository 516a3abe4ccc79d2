/**
 * Phase 1, flaky SMTP: the server answers 421/451 at the greeting, MAIL, RCPT or DATA, drops
 * connections mid-DATA and stalls past the client's timeout, for counter-based and seeded shares,
 * while messages are sent and the cron ticks; the faults stay on until those messages finish.
 */
import type { FaultPlan } from "../../dev/smtp-sink/index.ts";
import { pool, sleep } from "../async.ts";
import { type FaultRun, idsOf, isFinished } from "../context.ts";
import { STALL_MS } from "../timings.ts";

/**
 * The flaky server. Transaction-counted rules are offset so that they rarely coincide; the first
 * rule that selects a transaction owns it. Labels are for the report.
 */
export function flakyPlan(seed: number): { plan: FaultPlan; labels: string[] } {
  const rules: [string, FaultPlan["rules"][number]][] = [
    ["421 at MAIL, every 7th transaction", { at: "mail", action: "reply", code: 421, every: 7 }],
    [
      "451 to the first RCPT, every 5th from the 8th",
      { at: "rcpt", action: "reply", code: 451, every: 5, offset: 3 },
    ],
    [
      "connection dropped mid-DATA (after 200 bytes), every 11th from the 12th",
      { at: "data", action: "drop", afterBytes: 200, every: 11, offset: 1 },
    ],
    [
      "451 after DATA, every 13th from the 17th",
      { at: "data", action: "reply", code: 451, every: 13, offset: 4 },
    ],
    [
      `stall ${STALL_MS} ms after DATA, every 17th from the 19th`,
      { at: "data", action: "stall", ms: STALL_MS, every: 17, offset: 2 },
    ],
    [
      "451 at MAIL, seeded 5 % of transactions",
      { at: "mail", action: "reply", code: 451, probability: 0.05, seed },
    ],
    [
      `stall ${STALL_MS} ms before the greeting, every 19th connection`,
      { at: "connect", action: "stall", ms: STALL_MS, every: 19 },
    ],
    [
      "421 greeting, every 17th connection from the 21st",
      { at: "connect", action: "reply", code: 421, every: 17, offset: 4 },
    ],
  ];
  return { plan: { rules: rules.map(([, r]) => r) }, labels: rules.map(([l]) => l) };
}

export async function flakySmtp(
  run: FaultRun,
  plan: FaultPlan,
  count: number,
  holdMs: number,
): Promise<void> {
  await run.phase("flaky SMTP", async () => {
    run.smtp.setFaults(plan);
    // Sends spread over about 3 s, then the faults stay on until these messages are finished
    // (bounded), so retries meet them too, from the scheduled runs as well as immediate attempts.
    const batch = run.plan("flaky", count);
    await pool(batch, 2, async (s) => {
      await run.send(s);
      await sleep(6000 / batch.length);
    });
    const ids = idsOf(batch);
    const open = await run.waitUntil(ids, isFinished, Math.min(run.deadline, Date.now() + holdMs));
    run.say(`flaky SMTP: ${ids.length - open} of ${ids.length} messages finished under faults`);
  });
}
