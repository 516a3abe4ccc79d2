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
 * Timings are short so that this runs in seconds: retries from 1 s to 4 s, a 1 s SMTP timeout, a
 * 6 s lease (the least the relay accepts for that timeout), a cron tick every second (the lease is
 * 6 ticks, as the default 300 s lease is 5 minutes of the every-minute cron). Everything listens
 * on 127.0.0.1 and is closed at the end; the Redis keys live under a random prefix and are deleted.
 */
import { randomBytes } from "node:crypto";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { createTestHarness, type TestHarness } from "wrangler";
import {
  type FaultPlan,
  type FaultStats,
  type SmtpSink,
  startSmtpSink,
} from "../dev/smtp-sink/index.ts";
import { startUpstashGateway, type UpstashGateway } from "../dev/upstash-gateway.ts";
import {
  buildLedger,
  type Generation,
  type Ledger,
  type Observations,
  type PlannedMessage,
  type RelayLog,
  type RelayView,
  type SendRecord,
  type Window,
} from "./ledger.ts";

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

export interface KillReport {
  /** Messages due when the run started. */
  due: number;
  /** Messages the server had received from the run when it was killed. */
  deliveredBeforeKill: number;
  /** Of those, the ones whose 250 was still pending (the server has them; the run never knew). */
  unansweredAtKill: number;
  killedAfterMs: number;
  /**
   * Messages the dead run had claimed and not committed: their lease token was still set in Redis
   * after the kill. Each must come back, and not before its lease ran out.
   */
  held: number;
  /** Of those, how many the server received again (all of them, once the run drained). */
  heldBack: number;
  /** Received again before their lease ran out (must be 0: two owners at once). */
  heldEarly: number;
  /** First copy after the kill minus the end of the lease. */
  heldBackAfterLeaseMs: { min: number; max: number };
}

export interface OutageReport {
  ms: number;
  sends: number;
  refusedStatuses: Record<string, number>;
  ticksDuring: number;
  /** Copies the server received while the store was down (runs already past their claim). */
  deliveriesDuring: number;
  /** From the store coming back to the next copy at the server. */
  firstDeliveryAfterMs: number | null;
}

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

/**
 * The relay's settings for the run (README configuration table); short on purpose. The lease is
 * the shortest the relay accepts for this SMTP timeout (6 x SMTP_TIMEOUT_SECONDS, src/config.ts).
 */
export const TIMINGS = {
  retryFirstSeconds: 1,
  retryMaxSeconds: 4,
  leaseSeconds: 6,
  smtpTimeoutSeconds: 1,
  connections: 3,
  batchSize: 25,
  tickMs: 1000,
};

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const ADMIN = `faults-admin-${randomBytes(16).toString("hex")}`;
const STALL_MS = (TIMINGS.smtpTimeoutSeconds + 1) * 1000;
/** A retry is due at most this long after a temporary failure (first delay + 20 % jitter). */
const FIRST_RETRY_DUE_MS = TIMINGS.retryFirstSeconds * 1200 + 100;
/** Messages the lease-overrun phases send: eight rounds of stalls; one tarpit round. */
const STALL_OVERRUN_MESSAGES = 8 * TIMINGS.connections;
const TARPIT_MESSAGES = TIMINGS.connections;

export type OverrunKind = "stalls" | "tarpit";

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

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));

function isFinished(view: RelayView | undefined): boolean {
  return view?.delivery.recipients.every((r) => r.status !== "pending") ?? false;
}

/** Runs `fn` over `items`, `limit` at a time. */
async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** Resolves with the promise's value, or `fallback` after `ms`. */
function within<T>(promise: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<T>((r) => {
      timer = setTimeout(() => r(fallback), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

export async function runFaultScenario(options: FaultRunOptions): Promise<FaultRunResult> {
  const progress = options.progress ?? (() => {});
  const started = Date.now();
  const deadline = started + options.deadlineMs;
  const say = (line: string) =>
    progress(`[faults +${((Date.now() - started) / 1000).toFixed(1)}s] ${line}`);
  const runId = randomBytes(4).toString("hex");
  const prefix = `faults:${runId}:`;
  const random = generator(options.seed);
  const redisUrl = options.redisUrl ?? "redis://127.0.0.1:6379";
  const outageMs = options.outageMs ?? 3000;

  const sends: SendRecord[] = [];
  const phases: Window[] = [];
  const storeOutages: Window[] = [];
  const generations: Generation[] = [];
  const logs: RelayLog[] = [];
  const notes: string[] = [];
  let harness: TestHarness | undefined;
  let generation: Generation | undefined;

  const gateway: UpstashGateway = await startUpstashGateway({
    redisUrl,
    token: `faults-${randomBytes(12).toString("hex")}`,
  });
  let sink: SmtpSink | undefined;
  // Read-only looks at the store behind the relay's back (leases after the kill), and cleanup.
  const store = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  store.on("error", () => {});
  const closers: (() => Promise<unknown>)[] = [
    async () => store.disconnect(),
    () => gateway.close(),
  ];
  const ticker = new Ticker(() => harness, TIMINGS.tickMs);

  try {
    const smtpLog = options.smtpLog;
    sink = await startSmtpSink({
      name: "faults-sink.localhost",
      ...(smtpLog ? { log: (line: string) => smtpLog(`${new Date().toISOString()} ${line}`) } : {}),
    });
    const smtp = sink;
    closers.push(() => smtp.close());

    // ---- the relay: one workerd instance per generation ----
    const collectLogs = () => {
      if (!harness || !generation) return;
      for (const entry of harness.getLogs()) {
        let parsed: Record<string, unknown>;
        try {
          parsed = JSON.parse(entry.message) as Record<string, unknown>;
        } catch {
          continue;
        }
        if (typeof parsed.event !== "string") continue;
        const detail = parsed.reason ?? parsed.error ?? parsed.op;
        logs.push({
          generation: generation.name,
          at: entry.timestamp,
          event: parsed.event,
          ...(typeof parsed.email_id === "string" ? { emailId: parsed.email_id } : {}),
          ...(detail === undefined ? {} : { detail: String(detail) }),
        });
      }
      harness.clearLogs();
    };
    const startGeneration = async () => {
      const name = `gen${generations.length + 1}.faults.test`;
      const next = createTestHarness({
        root: ROOT,
        workers: [
          {
            configPath: "wrangler.toml",
            secrets: {
              ADMIN_TOKEN: ADMIN,
              SMTP_URL: smtp.url,
              UPSTASH_REDIS_REST_URL: gateway.url,
              UPSTASH_REDIS_REST_TOKEN: gateway.token,
            },
            vars: {
              REDIS_KEY_PREFIX: prefix,
              RETRY_FIRST_SECONDS: String(TIMINGS.retryFirstSeconds),
              RETRY_MAX_SECONDS: String(TIMINGS.retryMaxSeconds),
              DELIVERY_LEASE_SECONDS: String(TIMINGS.leaseSeconds),
              SMTP_TIMEOUT_SECONDS: String(TIMINGS.smtpTimeoutSeconds),
              // The stalls after DATA are meant to outlast the client's wait for the final reply
              // (default 600 s): give it the short timeout too.
              SMTP_DATA_TIMEOUT_SECONDS: String(TIMINGS.smtpTimeoutSeconds),
              SMTP_MAX_CONNECTIONS: String(TIMINGS.connections),
              DELIVERY_BATCH_SIZE: String(TIMINGS.batchSize),
              // Tells this instance's deliveries apart at the server.
              SMTP_EHLO_NAME: name,
              LOG_LEVEL: "warn",
              // One admin key sends everything here; a per-key request limit is not under test.
              RATE_LIMIT: "100000/1s",
            },
          },
        ],
      });
      await next.listen();
      harness = next;
      generation = { name, startedAt: Date.now() };
      generations.push(generation);
    };
    /**
     * Closes the current instance; `killedRunStartedAt` marks it as having died in the middle of
     * the delivery run that began then.
     */
    const stopGeneration = async (killedRunStartedAt?: number) => {
      const current = harness;
      if (!current || !generation) return;
      const closing = generation;
      collectLogs();
      harness = undefined;
      await current.close();
      // Only now is the instance surely gone: anything it sent before this is its own.
      if (killedRunStartedAt !== undefined) {
        closing.killedAt = Date.now();
        closing.killedRunStartedAt = killedRunStartedAt;
      }
    };
    closers.push(() => stopGeneration());
    await startGeneration();

    // ---- talking to the relay ----
    const request = async (method: string, path: string, body?: unknown) => {
      const current = harness;
      if (!current) return { status: 0, json: undefined as unknown };
      try {
        const res = await current.fetch(path, {
          method,
          headers: {
            authorization: `Bearer ${ADMIN}`,
            ...(body === undefined ? {} : { "content-type": "application/json" }),
          },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        const text = await res.text();
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = text;
        }
        return { status: res.status, json };
      } catch (error) {
        return { status: 0, json: String(error) };
      }
    };

    const accepted = () =>
      sends.flatMap((s) => s.messages).filter((m): m is PlannedMessage & { id: string } => !!m.id);
    const views = new Map<string, RelayView>();
    const readViews = async (ids: string[]) => {
      await pool(ids, 8, async (id) => {
        const res = await request("GET", `/emails/${id}`);
        if (res.status === 200) views.set(id, res.json as RelayView);
      });
    };
    /** Waits until every id satisfies `done` (re-reading views), or until `until`. */
    const waitUntil = async (
      ids: string[],
      done: (view: RelayView | undefined) => boolean,
      until: number,
    ) => {
      let open = ids.filter((id) => !done(views.get(id)));
      while (open.length > 0 && Date.now() < until) {
        await readViews(open);
        open = open.filter((id) => !done(views.get(id)));
        if (open.length > 0) await sleep(400);
      }
      return open.length;
    };
    const attempted = (v: RelayView | undefined) =>
      v !== undefined && (v.delivery.attempts > 0 || isFinished(v));

    let counter = 0;
    /** Requests for `count` messages; `fixed` recipients each (no bounce), or 2 to 4 and a bounce now and then. */
    const plan = (phase: string, count: number, fixed?: number): SendRecord[] => {
      const out: SendRecord[] = [];
      let left = count;
      while (left > 0) {
        // About a third of the requests are batches of 2 to 5.
        const size = random() < 0.35 ? Math.min(left, 2 + Math.floor(random() * 4)) : 1;
        const messages: PlannedMessage[] = [];
        for (let i = 0; i < size; i++) {
          const tag = `${phase}-${++counter}`;
          const n = fixed ?? 2 + Math.floor(random() * 3);
          const recipients = Array.from({ length: n }, (_, j) => `${tag}-r${j}@run-${runId}.test`);
          // One message in eight has a recipient the server refuses for good (550).
          if (fixed === undefined && random() < 0.125) {
            recipients.push(`${tag}-bounce@run-${runId}.test`);
          }
          messages.push({ tag, recipients });
        }
        out.push({
          phase,
          kind: size > 1 || random() < 0.2 ? "batch" : "single",
          sentAt: 0,
          answeredAt: 0,
          status: -1,
          messages,
        });
        left -= size;
      }
      return out;
    };
    const emailBody = (m: PlannedMessage) => {
      const [to, ...rest] = m.recipients;
      const cc = rest.filter((_, i) => i % 2 === 0);
      const bcc = rest.filter((_, i) => i % 2 === 1);
      return {
        from: "Fault Run <faults@acme.test>",
        to: [to],
        ...(cc.length ? { cc } : {}),
        ...(bcc.length ? { bcc } : {}),
        subject: `fault run ${m.tag}`,
        text: `Message ${m.tag} of fault run ${runId}.\n${"Lorem ipsum dolor sit amet. ".repeat(8)}`,
        html: `<p>Message <b>${m.tag}</b> of fault run ${runId}.</p>`,
      };
    };
    const send = async (record: SendRecord) => {
      for (const m of record.messages) {
        for (const r of m.recipients) if (r.includes("-bounce@")) smtp.rejectRecipient(r, 550);
      }
      sends.push(record);
      record.sentAt = Date.now();
      const res =
        record.kind === "single"
          ? await request("POST", "/emails", emailBody(record.messages[0] as PlannedMessage))
          : await request("POST", "/emails/batch", record.messages.map(emailBody));
      record.answeredAt = Date.now();
      record.status = res.status;
      if (res.status >= 200 && res.status < 300) {
        const json = res.json as { id?: string; data?: { id: string }[] };
        const ids = record.kind === "single" ? [json.id] : (json.data ?? []).map((d) => d.id);
        record.messages.forEach((m, i) => {
          const id = ids[i];
          if (id) m.id = id;
        });
      } else {
        const err = res.json as { name?: string; message?: string } | string;
        record.error = typeof err === "string" ? err : `${err?.name}: ${err?.message}`;
      }
    };
    const phase = async (name: string, body: () => Promise<void>) => {
      const from = Date.now();
      say(`${name}…`);
      await body();
      phases.push({ name, from, to: Date.now() });
    };
    const drain = async (name: string, until: number) => {
      await phase(name, async () => {
        const open = await waitUntil(
          accepted().map((m) => m.id),
          isFinished,
          until,
        );
        say(`${name}: ${open === 0 ? "every message finished" : `${open} still open`}`);
      });
    };
    const budgetLeft = () => deadline - Date.now();

    // ---- sizes ----
    const kinds = options.overruns ?? ["stalls", "tarpit"];
    const fixed =
      (kinds.includes("stalls") ? STALL_OVERRUN_MESSAGES : 0) +
      (kinds.includes("tarpit") ? TARPIT_MESSAGES : 0);
    const rest = Math.max(28, options.messages - fixed);
    const sizes = {
      flaky: Math.round(rest * 0.5),
      smtpDown: Math.round(rest * 0.17),
      storeDown: Math.max(3, Math.round(rest * 0.11)),
      kill: 0,
    };
    sizes.kill = Math.max(6, rest - sizes.flaky - sizes.smtpDown - sizes.storeDown);

    ticker.start();

    // ---- 1. flaky SMTP ----
    const flaky = flakyPlan(options.seed);
    let flakyStats: FaultStats | undefined;
    await phase("flaky SMTP", async () => {
      smtp.setFaults(flaky.plan);
      // Sends spread over about 3 s, then the faults stay on until these messages are finished
      // (bounded), so retries meet them too, from the scheduled runs as well as immediate attempts.
      const batch = plan("flaky", sizes.flaky);
      await pool(batch, 2, async (s) => {
        await send(s);
        await sleep(6000 / batch.length);
      });
      const ids = batch.flatMap((s) => s.messages.flatMap((m) => (m.id ? [m.id] : [])));
      const open = await waitUntil(
        ids,
        isFinished,
        Math.min(deadline, Date.now() + (options.flakyHoldMs ?? 12_000)),
      );
      say(`flaky SMTP: ${ids.length - open} of ${ids.length} messages finished under faults`);
    });

    // ---- 2. SMTP down for a window ----
    await phase("SMTP down", async () => {
      await smtp.down();
      const from = Date.now();
      const batch = plan("smtpdown", sizes.smtpDown);
      for (const s of batch) {
        await send(s);
        await sleep((outageMs * 0.6) / batch.length);
      }
      await sleep(outageMs - (Date.now() - from));
      await smtp.up();
    });

    // ---- 3. store down for a window ----
    let outage: OutageReport | undefined;
    await phase("store down", async () => {
      // An immediate attempt holds its message for a fixed 2 minutes (not DELIVERY_LEASE_SECONDS):
      // if the outage caught one before its commit, the message would wait that long. Let them end.
      const stuck = await waitUntil(
        accepted().map((m) => m.id),
        attempted,
        Date.now() + 15_000,
      );
      if (stuck > 0) say(`store down: ${stuck} immediate attempt(s) still open, going ahead`);
      const ticksBefore = ticker.fired;
      await gateway.down();
      const from = Date.now();
      const batch = plan("storedown", sizes.storeDown);
      for (const s of batch) {
        await send(s);
        await sleep((outageMs * 0.6) / batch.length);
      }
      await sleep(outageMs - (Date.now() - from));
      const to = Date.now();
      await gateway.up();
      storeOutages.push({ name: "store down", from, to });
      const statuses: Record<string, number> = {};
      for (const s of batch) statuses[s.status] = (statuses[s.status] ?? 0) + 1;
      const during = smtp.messages.filter((m) => {
        const at = Date.parse(m.receivedAt);
        return at >= from && at <= to;
      }).length;
      outage = {
        ms: to - from,
        sends: batch.length,
        refusedStatuses: statuses,
        ticksDuring: ticker.fired - ticksBefore,
        deliveriesDuring: during,
        firstDeliveryAfterMs: null,
      };
      // Resumption: the next copy after the store came back (bounded wait).
      const after = await within(
        (async () => {
          while (Date.now() - to < 10_000) {
            const next = smtp.messages.find((m) => Date.parse(m.receivedAt) > to);
            if (next) return Date.parse(next.receivedAt) - to;
            await sleep(50);
          }
          return null;
        })(),
        11_000,
        null,
      );
      outage.firstDeliveryAfterMs = after;
    });

    // ---- drain with a healthy server ----
    smtp.clearFaults();
    await drain("drain after faults", deadline);
    // Only now: a stall still going on when the faults were cleared has ended since.
    flakyStats = structuredClone(smtp.faults().stats);

    // ---- 4. kill a delivery run ----
    let kill: KillReport | undefined;
    if (budgetLeft() > 20_000) {
      await phase("kill a run", async () => {
        await ticker.pause();
        await smtp.down();
        const batch = plan("kill", sizes.kill);
        await pool(batch, 4, send);
        const ids = batch.flatMap((s) => s.messages.flatMap((m) => (m.id ? [m.id] : [])));
        await waitUntil(ids, attempted, Date.now() + 10_000);
        // A slow server: each 250 comes 150 ms after the message is taken, so the kill finds
        // some messages taken whose run never heard the 250.
        smtp.setFaults({ rules: [], latencyMs: 150 });
        await smtp.up();
        await sleep(FIRST_RETRY_DUE_MS);
        await readViews(accepted().map((m) => m.id));
        const due = accepted().filter((m) => !isFinished(views.get(m.id))).length;
        const k = Math.max(1, Math.ceil(ids.length / 3));
        const before = smtp.messages.length;
        const runStarted = Date.now();
        const worker = harness?.getWorker();
        const run = worker?.scheduled({ cron: "* * * * *", scheduledTime: new Date() });
        run?.catch(() => {});
        await smtp.waitFor(k, 15_000, { to: "kill-" }).catch(() => []);
        await stopGeneration(runStarted);
        const killedAt = Date.now();
        const deliveredBeforeKill = smtp.messages.length - before;
        say(
          `kill: closed the instance after the server took ${deliveredBeforeKill} of ${due} due messages`,
        );
        // Which messages did the dead run still hold? Read the leases from Redis itself (the
        // layout is in src/store/upstash.ts: hash m:<id>, l = lease token, lu = lease end).
        const held = new Map<string, number>();
        for (const m of accepted()) {
          const [token, until] = await store.hmget(`${prefix}m:${m.id}`, "l", "lu");
          if (token && Number(until) > killedAt) held.set(m.tag, Number(until));
        }
        await sleep(200); // let pending 250s find their connections gone
        const unansweredAtKill = smtp.messages.slice(before).filter((m) => m.unanswered).length;
        smtp.clearFaults();
        await startGeneration();
        ticker.resume();
        await waitUntil(
          accepted().map((m) => m.id),
          isFinished,
          Math.min(deadline, Date.now() + 60_000),
        );
        // When did the held messages come back?
        const offsets: number[] = [];
        for (const [tag, until] of held) {
          const first = smtp.messages.find(
            (m) =>
              Date.parse(m.receivedAt) > killedAt && m.rcptTo.some((r) => r.startsWith(`${tag}-`)),
          );
          if (first) offsets.push(Date.parse(first.receivedAt) - until);
        }
        kill = {
          due,
          deliveredBeforeKill,
          unansweredAtKill,
          killedAfterMs: killedAt - runStarted,
          held: held.size,
          heldBack: offsets.length,
          heldEarly: offsets.filter((ms) => ms < 0).length,
          heldBackAfterLeaseMs: {
            min: offsets.length ? Math.min(...offsets) : 0,
            max: offsets.length ? Math.max(...offsets) : 0,
          },
        };
      });
    } else say("kill a run: skipped, too close to the deadline");

    // ---- 5. lease overrun: a run still busy when its lease ends, and the next tick ----
    const overruns: OverrunReport[] = [];
    const overrun = async (
      name: string,
      tag: string,
      count: number,
      recipients: number,
      faults: FaultPlan,
    ) => {
      await phase(name, async () => {
        // Start from an empty queue, so that the first run claims this phase's messages only.
        await waitUntil(
          accepted().map((m) => m.id),
          isFinished,
          Math.min(deadline, Date.now() + 30_000),
        );
        await ticker.pause();
        await smtp.down();
        const batch = plan(tag, count, recipients);
        await pool(batch, 4, send);
        const ids = batch.flatMap((s) => s.messages.flatMap((m) => (m.id ? [m.id] : [])));
        await waitUntil(ids, attempted, Date.now() + 10_000);
        const logsBefore = logs.length;
        smtp.setFaults(faults);
        await smtp.up();
        await sleep(FIRST_RETRY_DUE_MS);
        const worker = harness?.getWorker();
        const first = worker?.scheduled({ cron: "* * * * *", scheduledTime: new Date() });
        const firstAt = Date.now();
        // The next cron tick, as the cron fires it: on time, whether or not the last run ended.
        await sleep(TIMINGS.leaseSeconds * 1000 + 400);
        const second = worker?.scheduled({ cron: "* * * * *", scheduledTime: new Date() });
        const secondAfter = Date.now() - firstAt;
        await within(
          Promise.allSettled([first, second]).then(() => {}),
          60_000,
          undefined,
        );
        const stats = smtp.faults().stats;
        smtp.clearFaults();
        collectLogs();
        const logged = (event: string) =>
          logs.slice(logsBefore).filter((l) => l.event === event).length;
        overruns.push({
          name,
          tag,
          messages: ids.length,
          recipients,
          stalls: stats.stalls.length,
          secondRunAfterMs: secondAfter,
          unrecorded: logged("delivery.unrecorded"),
          skipped: logged("delivery.skipped_lease_short"),
        });
        ticker.resume();
      });
    };
    if (kinds.includes("stalls") && budgetLeft() > 30_000) {
      // Stalls on every connection for six rounds: the first run needs longer than its lease
      // for the messages it claimed. It must leave what it has no room for (the relay starts a
      // transaction only with 2 x SMTP_TIMEOUT_SECONDS of lease left) to the next run.
      await overrun("lease overrun: stalls", "overrun", STALL_OVERRUN_MESSAGES, 2, {
        rules: [{ at: "mail", action: "stall", ms: STALL_MS, limit: 6 * TIMINGS.connections }],
      });
    }
    if (kinds.includes("tarpit") && budgetLeft() > 30_000) {
      // A tarpit: every reply just under the timeout, so nothing times out, but one transaction
      // to seven recipients takes 9 replies x 0.9 x SMTP_TIMEOUT_SECONDS, longer than the lease,
      // though it started with the whole lease left.
      await overrun("lease overrun: tarpit", "tarpit", TARPIT_MESSAGES, 7, {
        rules: [],
        tarpitMs: TIMINGS.smtpTimeoutSeconds * 900,
      });
    }

    await drain("final drain", deadline);
    await ticker.pause();

    // ---- read what the relay recorded ----
    const ids = accepted().map((m) => m.id);
    views.clear();
    for (let round = 0; round < 3 && views.size < ids.length; round++) {
      await readViews(ids.filter((id) => !views.has(id)));
    }
    collectLogs();
    const finishedAt = Math.max(...phases.map((p) => p.to));
    const observations: Observations = {
      sends,
      server: smtp.messages.map((m) => ({
        rcptTo: m.rcptTo,
        raw: m.raw,
        receivedAt: m.receivedAt,
        clientName: m.clientName,
        ...(m.unanswered ? { unanswered: true as const } : {}),
      })),
      views,
      logs,
      generations,
      storeOutages,
      phases,
      finishedAt,
      deadlineReached: ids.some((id) => !isFinished(views.get(id))),
    };
    const ledger = buildLedger(observations);

    // ---- notes: what each fault exercised ----
    if (flakyStats) {
      notes.push(
        `flaky SMTP: ${flakyStats.connections} connections, ${flakyStats.transactions} transactions; strikes:`,
      );
      flaky.labels.forEach((label, i) => {
        notes.push(`  ${String(flakyStats?.hits[i] ?? 0).padStart(4)}  ${label}`);
      });
      const gaveUp = flakyStats.stalls
        .map((s) => s.clientGaveUpAfterMs)
        .filter((n): n is number => n !== null);
      const cut = flakyStats.stalls.filter((s) => s.cutByDown).length;
      notes.push(
        `  stalls: ${flakyStats.stalls.length}; the relay gave up on ${gaveUp.length} by itself, after ${gaveUp.length ? `${Math.min(...gaveUp)}-${Math.max(...gaveUp)} ms` : "-"} (SMTP_TIMEOUT_SECONDS=${TIMINGS.smtpTimeoutSeconds})${cut ? `; ${cut} cut short when the server went down` : ""}`,
      );
    }
    if (outage) {
      notes.push(
        `store down ${outage.ms} ms: ${outage.sends} send(s) answered ${Object.entries(
          outage.refusedStatuses,
        )
          .map(([s, n]) => `${n}×${s}`)
          .join(
            ", ",
          )}; ${outage.ticksDuring} cron ticks during it; ${outage.deliveriesDuring} copies reached the server during it (runs already past their claim); first copy ${outage.firstDeliveryAfterMs === null ? "never" : `${outage.firstDeliveryAfterMs} ms`} after the store came back`,
      );
    }
    if (kill) {
      notes.push(
        `kill: ${kill.due} messages due; the instance was closed ${kill.killedAfterMs} ms into the run, after the server had taken ${kill.deliveredBeforeKill} (${kill.unansweredAtKill} of them with the 250 still pending); the dead run held ${kill.held} claimed-but-uncommitted message(s); ${kill.heldBack} came back, ${kill.heldBackAfterLeaseMs.min}-${kill.heldBackAfterLeaseMs.max} ms after their lease ran out (${kill.heldEarly} before it)`,
      );
    }
    for (const o of overruns) {
      const duplicated = ledger.duplicates.records.filter((d) =>
        d.recipient.startsWith(`${o.tag}-`),
      );
      notes.push(
        `${o.name}: ${o.messages} messages to ${o.recipients} recipients each, ${o.stalls} stalled transactions, a second run ${o.secondRunAfterMs} ms after the first (lease ${TIMINGS.leaseSeconds * 1000} ms); the relay logged ${o.skipped} "delivery.skipped_lease_short" and ${o.unrecorded} "delivery.unrecorded" (lease lost); ${duplicated.length} recipient(s) got the message twice`,
      );
    }
    notes.push(
      `cron ticks: ${ticker.fired} fired, ${ticker.interrupted} interrupted by the kill, ${ticker.skipped} skipped (${ticker.maxInFlight} runs already in flight); Upstash commands: ${gateway.commands()}; generations: ${generations.map((g) => `${g.name}${g.killedAt ? " (killed)" : ""}`).join(", ")}`,
    );
    return {
      ledger,
      observations,
      notes,
      faults: { flaky: flakyStats },
      kill,
      outage,
      overruns,
    };
  } finally {
    await within(ticker.pause(), 20_000, undefined);
    await deleteKeys(store, prefix).catch(() => {});
    for (const close of closers.reverse()) await close().catch(() => {});
  }
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

/**
 * The cron, compressed: a scheduled event every `everyMs`, whether or not the last run ended (as
 * Cloudflare's cron does), up to `maxInFlight` at once so the run stays bounded.
 */
class Ticker {
  fired = 0;
  skipped = 0;
  interrupted = 0;
  readonly maxInFlight = 8;
  readonly #harness: () => TestHarness | undefined;
  readonly #everyMs: number;
  readonly #inFlight = new Set<Promise<void>>();
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(harness: () => TestHarness | undefined, everyMs: number) {
    this.#harness = harness;
    this.#everyMs = everyMs;
  }

  start(): void {
    this.resume();
  }

  resume(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => this.#tick(), this.#everyMs);
  }

  /** Stops ticking and waits (bounded) for the runs in flight. */
  async pause(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await within(Promise.allSettled([...this.#inFlight]), 30_000, []);
  }

  #tick(): void {
    const harness = this.#harness();
    if (!harness) return;
    if (this.#inFlight.size >= this.maxInFlight) {
      this.skipped++;
      return;
    }
    this.fired++;
    const run = harness
      .getWorker()
      .scheduled({ cron: "* * * * *", scheduledTime: new Date() })
      .then(
        () => {},
        () => {
          this.interrupted++;
        },
      )
      .finally(() => this.#inFlight.delete(run));
    this.#inFlight.add(run);
  }
}
