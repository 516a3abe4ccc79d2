/**
 * The fault run: the real Worker in workerd (wrangler's test harness) against a real Redis (through
 * the Upstash-compatible gateway) and a real SMTP server (the recording sink), both started here and
 * both made to fail on purpose, while messages are sent and cron ticks keep firing. Afterwards every
 * accepted recipient must be delivered or recorded as failed (see faults/ledger.ts).
 *
 * Phases, in order (sizes are shares of `messages`; the lease-overrun phases send 24 and 3):
 * 1. flaky SMTP: the server answers 421/451 at the greeting, MAIL, RCPT or DATA, drops connections
 *    mid-DATA and stalls past the client's timeout, for counter-based and seeded shares;
 * 2. SMTP down: the server stops listening for a window while sends go on;
 * 3. store down: the Redis gateway stops listening for a window; every send then must be refused
 *    (503), scheduled runs must pause, and resume after;
 *    then a drain with a healthy server;
 * 4. kill: one scheduled run with many messages due is killed (the workerd instance is closed, as
 *    a deploy does) after it delivered a third of them; a new instance starts, and what the dead
 *    run had claimed must come back once its lease runs out; then a drain;
 * 5. lease overrun: a run is still busy when its lease runs out, and the next tick (the cron does
 *    not wait for a slow run) claims what it holds: once slowed by stalls past the timeout, once
 *    by a tarpit (every reply late, none past the timeout);
 *    then the final drain, bounded by the deadline.
 *
 * Timings are short so that this runs in seconds (faults/timings.ts). Everything listens on
 * 127.0.0.1 and is closed at the end; the Redis keys live under a random prefix and are deleted.
 *
 * This module sets the run up and orders the phases; each phase is its own module under phases/,
 * sharing a FaultRun (context.ts: the server, the gateway, the relay's instances, the cron and the
 * record of sends); notes.ts words the report.
 */
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { type FaultStats, type SmtpSink, startSmtpSink } from "../dev/smtp-sink/index.ts";
import { startUpstashGateway, type UpstashGateway } from "../dev/upstash-gateway.ts";
import { within } from "./async.ts";
import { FaultRun, isFinished } from "./context.ts";
import { buildLedger, type Ledger, type Observations } from "./ledger.ts";
import { faultNotes } from "./notes.ts";
import { flakyPlan, flakySmtp } from "./phases/flaky.ts";
import { type KillReport, killRun } from "./phases/kill.ts";
import { leaseOverruns, type OverrunKind, type OverrunReport } from "./phases/overrun.ts";
import { smtpDown } from "./phases/smtp-down.ts";
import { type OutageReport, storeDown } from "./phases/store-down.ts";
import { RelayGenerations } from "./relay.ts";
import { Ticker } from "./ticker.ts";
import { STALL_OVERRUN_MESSAGES, TARPIT_MESSAGES, TIMINGS } from "./timings.ts";

export { flakyPlan } from "./phases/flaky.ts";
export type { KillReport } from "./phases/kill.ts";
export type { OverrunKind, OverrunReport } from "./phases/overrun.ts";
export type { OutageReport } from "./phases/store-down.ts";
export { TIMINGS } from "./timings.ts";

export interface FaultRunOptions {
  /**
   * Messages to send in all; the lease-overrun phases take a fixed 24 (stalls) and 3 (tarpit) of
   * them, the other phases share the rest (at least 28).
   */
  messages: number;
  /** The whole run stops waiting for deliveries after this long. */
  deadlineMs: number;
  /** Seeds the message mix and the probability faults. */
  seed: number;
  /** The Redis the gateway fronts (default redis://127.0.0.1:6379). */
  redisUrl?: string;
  /** How long the flaky phase keeps its faults on waiting for its messages (default 12 s). */
  flakyHoldMs?: number;
  /** How long the SMTP server and the store are each down (default 3 s). */
  outageMs?: number;
  /** Which lease-overrun phases to run (default both). */
  overruns?: OverrunKind[];
  /** Progress lines (default: none). */
  progress?: (line: string) => void;
  /** Every SMTP session event of the server, with a timestamp (default: none). */
  smtpLog?: (line: string) => void;
}

export interface FaultRunResult {
  ledger: Ledger;
  observations: Observations;
  /** What each fault did, as lines for the report. */
  notes: string[];
  faults: { flaky: FaultStats | undefined };
  kill: KillReport | undefined;
  outage: OutageReport | undefined;
  overruns: OverrunReport[];
}

/** How many messages each phase sends (the lease-overrun phases send fixed numbers). */
function phaseSizes(messages: number, kinds: OverrunKind[]) {
  const fixed =
    (kinds.includes("stalls") ? STALL_OVERRUN_MESSAGES : 0) +
    (kinds.includes("tarpit") ? TARPIT_MESSAGES : 0);
  const rest = Math.max(28, messages - fixed);
  const sizes = {
    flaky: Math.round(rest * 0.5),
    smtpDown: Math.round(rest * 0.17),
    storeDown: Math.max(3, Math.round(rest * 0.11)),
    kill: 0,
  };
  sizes.kill = Math.max(6, rest - sizes.flaky - sizes.smtpDown - sizes.storeDown);
  return sizes;
}

/** xorshift32: a reproducible message mix for a seed. */
function generator(seed: number): () => number {
  let x = seed >>> 0 || 0x2545f491;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

export async function runFaultScenario(options: FaultRunOptions): Promise<FaultRunResult> {
  const started = Date.now();
  const runId = randomBytes(4).toString("hex");
  const prefix = `faults:${runId}:`;
  const redisUrl = options.redisUrl ?? "redis://127.0.0.1:6379";

  const gateway: UpstashGateway = await startUpstashGateway({
    redisUrl,
    token: `faults-${randomBytes(12).toString("hex")}`,
  });
  // Read-only looks at the store behind the relay's back (leases after the kill), and cleanup.
  const store = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  store.on("error", () => {});
  const closers: (() => Promise<unknown>)[] = [
    async () => store.disconnect(),
    () => gateway.close(),
  ];
  let relay: RelayGenerations | undefined;
  const ticker = new Ticker(() => relay?.harness, TIMINGS.tickMs);

  try {
    const smtpLog = options.smtpLog;
    const smtp: SmtpSink = await startSmtpSink({
      name: "faults-sink.localhost",
      ...(smtpLog ? { log: (line: string) => smtpLog(`${new Date().toISOString()} ${line}`) } : {}),
    });
    closers.push(() => smtp.close());
    const generations = new RelayGenerations(smtp.url, gateway, prefix);
    relay = generations;
    closers.push(() => generations.stop());
    await generations.start();
    const run = new FaultRun({
      started,
      deadline: started + options.deadlineMs,
      runId,
      prefix,
      random: generator(options.seed),
      progress: options.progress ?? (() => {}),
      smtp,
      gateway,
      store,
      relay: generations,
      ticker,
    });
    return await runPhases(run, options);
  } finally {
    await within(ticker.pause(), 20_000, undefined);
    await deleteKeys(store, prefix).catch(() => {});
    for (const close of closers.reverse()) await close().catch(() => {});
  }
}

/** The phases in order, then what the relay recorded, the ledger and the notes. */
async function runPhases(run: FaultRun, options: FaultRunOptions): Promise<FaultRunResult> {
  const outageMs = options.outageMs ?? 3000;
  const kinds = options.overruns ?? ["stalls", "tarpit"];
  const sizes = phaseSizes(options.messages, kinds);
  const { smtp, ticker } = run;
  ticker.start();

  const flaky = flakyPlan(options.seed);
  await flakySmtp(run, flaky.plan, sizes.flaky, options.flakyHoldMs ?? 12_000);
  await smtpDown(run, sizes.smtpDown, outageMs);
  const outage = await storeDown(run, sizes.storeDown, outageMs);

  // ---- drain with a healthy server ----
  smtp.clearFaults();
  await run.drain("drain after faults", run.deadline);
  // Only now: a stall still going on when the faults were cleared has ended since.
  const flakyStats: FaultStats | undefined = structuredClone(smtp.faults().stats);

  let kill: KillReport | undefined;
  if (run.budgetLeft() > 20_000) kill = await killRun(run, sizes.kill);
  else run.say("kill a run: skipped, too close to the deadline");

  const overruns = await leaseOverruns(run, kinds);

  await run.drain("final drain", run.deadline);
  await ticker.pause();

  const observations = await observe(run);
  const ledger = buildLedger(observations);
  const notes = faultNotes({
    flakyStats,
    flakyLabels: flaky.labels,
    outage,
    kill,
    overruns,
    ledger,
    ticker,
    commands: run.gateway.commands(),
    generations: run.relay.generations,
  });
  return { ledger, observations, notes, faults: { flaky: flakyStats }, kill, outage, overruns };
}

/** Reads what the relay recorded for every accepted message, and what the server received. */
async function observe(run: FaultRun): Promise<Observations> {
  const ids = run.acceptedIds();
  const { views } = run;
  views.clear();
  for (let round = 0; round < 3 && views.size < ids.length; round++) {
    await run.readViews(ids.filter((id) => !views.has(id)));
  }
  run.relay.collectLogs();
  return {
    sends: run.sends,
    server: run.smtp.messages.map((m) => ({
      rcptTo: m.rcptTo,
      raw: m.raw,
      receivedAt: m.receivedAt,
      clientName: m.clientName,
      ...(m.unanswered ? { unanswered: true as const } : {}),
    })),
    views,
    logs: run.relay.logs,
    generations: run.relay.generations,
    storeOutages: run.storeOutages,
    phases: run.phases,
    finishedAt: Math.max(...run.phases.map((p) => p.to)),
    deadlineReached: ids.some((id) => !isFinished(views.get(id))),
  };
}

/** Removes the run's keys (they would otherwise stay for RETENTION_DAYS). */
async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
    cursor = next;
    if (keys.length) await redis.unlink(...keys);
  } while (cursor !== "0");
}
