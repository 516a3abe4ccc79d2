/**
 * `npm run bench`: what the relay costs and how fast it hands a message over, measured and printed
 * (no assertions). It runs the relay in workerd from wrangler.toml (wrangler's test harness), with
 * the Upstash-compatible gateway over the local redis-server (127.0.0.1:6379) and a recording SMTP
 * sink, all on loopback. The run takes well under a minute and stops by itself, closing what it
 * started and deleting its Redis keys.
 *
 * The standard: machines are shared and noisy, so every latency is compared with a reference
 * measured in the same process, interleaved with it, and reported as a ratio; and Upstash bills
 * per command, so commands are counted at the gateway, the way Upstash counts them (each command of
 * a pipeline, an EVAL/EVALSHA as one).
 *
 * 1. Upstash commands per delivered message, with a warm key cache and loaded scripts (a warm-up
 *    send and delivery precede every measured window):
 *    a. scheduled path (IMMEDIATE_DELIVERY=false): one POST /emails/batch of N, then cron runs
 *       until all N reached the sink;
 *    b. immediate path (IMMEDIATE_DELIVERY=true): N sequential POST /emails, each delivered by the
 *       attempt made right after accepting;
 *    c. an idle cron run (nothing due).
 *    Commands are attributed to the store's scripts by SHA-1 of their text, taken from
 *    src/store/upstash/scripts/index.ts (STORE_SCRIPTS), so the breakdown follows the source as it changes.
 * 2. Latency through the immediate path: POST -> answer, and POST -> the sink recording the message
 *    (its 250), against nodemailer sending the same message straight to the same sink over a fresh
 *    non-pooled connection (what an app does without the relay), and one EVAL through the gateway.
 */
import { createHash, randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { connect } from "node:net";
import os from "node:os";
import { join } from "node:path";
import { Redis as UpstashRedis } from "@upstash/redis";
import { Redis as IORedis } from "ioredis";
import nodemailer from "nodemailer";

// Set before wrangler starts Miniflare: no fetch of Request.cf from workers.cloudflare.com and no
// wrangler metrics, so the run stays on loopback.
process.env.CLOUDFLARE_CF_FETCH_ENABLED ??= "false";
process.env.WRANGLER_SEND_METRICS ??= "false";

const { createTestHarness } = await import("wrangler");
const { startUpstashGateway } = await import("../dev/upstash-gateway.ts");
const { startSmtpSink } = await import("../dev/smtp-sink/index.ts");
type TestHarness = ReturnType<typeof createTestHarness>;

const SCHEDULED_SIZES = [20, 50, 100];
const IMMEDIATE_COUNT = 50;
const LATENCY_SENDS = 100;
const LATENCY_WARMUP = 5;
const BATCH_SIZE = 25; // DELIVERY_BATCH_SIZE for the scheduled path (the relay's default)
const DEADLINE_MS = 170_000;
const WAIT_MS = 20_000;

const started = performance.now();
const root = join(import.meta.dirname, "..");
const runId = randomUUID().slice(0, 8);
const keyPattern = `bench:${runId}:*`;

function progress(line: string): void {
  const s = ((performance.now() - started) / 1000).toFixed(1).padStart(5);
  console.log(`[${s}s] ${line}`);
}

// ---------------------------------------------------------------------------------------------
// Machine facts

const cpus = os.cpus();
const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const admin = new IORedis(redisUrl, { maxRetriesPerRequest: 1, lazyConnect: true });
admin.on("error", () => {});

async function versionOf(pkg: string): Promise<string> {
  try {
    const path = join(root, "node_modules", pkg, "package.json");
    return (JSON.parse(await readFile(path, "utf8")) as { version: string }).version;
  } catch {
    return "?";
  }
}

// ---------------------------------------------------------------------------------------------
// Cleanup and the time bound

const closers: (() => Promise<unknown>)[] = [];
let cleaning: Promise<void> | undefined;

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const close of closers.reverse()) {
      await close().catch((err: unknown) => console.error(`close failed: ${String(err)}`));
    }
  })();
  return cleaning;
}

async function abort(reason: string, code: number): Promise<never> {
  console.error(`bench: ${reason}; closing everything and exiting`);
  const hard = setTimeout(() => process.exit(code), 15_000);
  hard.unref();
  await cleanup();
  process.exit(code);
}

setTimeout(
  () => void abort(`over the ${DEADLINE_MS / 1000} s time budget`, 2),
  DEADLINE_MS,
).unref();
process.once("SIGINT", () => void abort("interrupted", 130));

/** Deletes this run's keys straight in Redis (not through the gateway: no counted commands). */
async function deleteRunKeys(): Promise<number> {
  let cursor = "0";
  let deleted = 0;
  do {
    const [next, keys] = await admin.scan(cursor, "MATCH", keyPattern, "COUNT", 1000);
    cursor = next;
    if (keys.length > 0) deleted += await admin.unlink(...keys);
  } while (cursor !== "0");
  return deleted;
}

// ---------------------------------------------------------------------------------------------
// Statistics

interface Summary {
  n: number;
  p50: number;
  p90: number;
  max: number;
}

function summarize(values: number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p: number) => sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
  return { n: sorted.length, p50: rank(50), p90: rank(90), max: sorted.at(-1) ?? NaN };
}

const ms = (v: number) => (v >= 100 ? v.toFixed(0) : v.toFixed(1));
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
const fmtSummary = (s: Summary) => `p50 ${ms(s.p50)} / p90 ${ms(s.p90)} / max ${ms(s.max)} ms`;

// ---------------------------------------------------------------------------------------------
// Attributing commands

/** SHA-1 of each store script, from their final text (scripts share Lua pieces). */
async function storeScripts(): Promise<Map<string, string>> {
  const { STORE_SCRIPTS } = await import("../src/store/upstash/scripts/index.ts");
  const map = new Map<string, string>();
  for (const [name, text] of Object.entries(STORE_SCRIPTS)) {
    map.set(createHash("sha1").update(text).digest("hex"), name.toLowerCase().replaceAll("_", " "));
  }
  return map;
}

const scripts = await storeScripts();

/** What a logged command did: a store script by name, the rate limiter, a key lookup, ... */
function operationOf(command: string[], prefix: string): string {
  const [name = "", first = "", numkeys = "0", ...rest] = command;
  if (name === "EVAL" || name === "EVALSHA" || name === "EVAL_RO" || name === "EVALSHA_RO") {
    const sha = name.startsWith("EVALSHA") ? first : createHash("sha1").update(first).digest("hex");
    const known = scripts.get(sha.toLowerCase());
    if (known) return known;
    const keys = rest.slice(0, Number(numkeys));
    if (keys.some((k) => k.startsWith(`${prefix}rl:`))) return "rate limit";
    return `script ${sha.slice(0, 8)}`;
  }
  if (name === "GET" && first.startsWith(`${prefix}k:`)) return "key lookup";
  return name.toLowerCase();
}

interface Tally {
  total: number;
  byName: Map<string, number>;
  byOperation: Map<string, number>;
}

function tally(log: string[][], prefix: string): Tally {
  const byName = new Map<string, number>();
  const byOperation = new Map<string, number>();
  for (const command of log) {
    const name = command[0] ?? "?";
    byName.set(name, (byName.get(name) ?? 0) + 1);
    const op = operationOf(command, prefix);
    byOperation.set(op, (byOperation.get(op) ?? 0) + 1);
  }
  return { total: log.length, byName, byOperation };
}

const ORDER = [
  "rate limit",
  "key lookup",
  "touch key",
  "enqueue",
  "claim",
  "commit",
  "append request log",
];
function fmtCounts(counts: Map<string, number>): string {
  const rank = (k: string) => (ORDER.includes(k) ? ORDER.indexOf(k) : ORDER.length);
  return [...counts]
    .sort(([a], [b]) => rank(a) - rank(b) || a.localeCompare(b))
    .map(([k, v]) => `${k} ${v}`)
    .join(", ");
}

// ---------------------------------------------------------------------------------------------
// Services

const gateway = await startUpstashGateway({ token: `bench-${randomUUID()}` });
closers.push(() => gateway.close());
const sink = await startSmtpSink({ tls: "none" });
closers.push(() => sink.close());
await admin.connect();
closers.push(async () => {
  const n = await deleteRunKeys();
  progress(`deleted ${n} Redis keys matching ${keyPattern}`);
  admin.disconnect();
});
const redisVersion = /redis_version:(\S+)/.exec(await admin.info("server"))?.[1] ?? "?";

const machine = {
  cpus: cpus.length,
  model: cpus[0]?.model.trim() ?? "?",
  node: process.version,
  date: new Date().toISOString(),
  load: os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(" "),
  wrangler: await versionOf("wrangler"),
  nodemailer: await versionOf("nodemailer"),
  redis: redisVersion,
};
progress(
  `machine: ${machine.cpus} × ${machine.model}, node ${machine.node}, load ${machine.load}, ${machine.date}`,
);
progress(
  `wrangler ${machine.wrangler}, nodemailer ${machine.nodemailer}, redis-server ${machine.redis}; gateway ${gateway.url}, sink ${sink.url}`,
);

/** Waits until the gateway saw no command for `quietMs` (background commits have landed). */
async function settle(quietMs = 300, maxMs = 5_000): Promise<void> {
  const until = performance.now() + maxMs;
  let last = gateway.commands();
  let since = performance.now();
  while (performance.now() < until) {
    await new Promise((r) => setTimeout(r, 50));
    const now = gateway.commands();
    if (now !== last) {
      last = now;
      since = performance.now();
    } else if (performance.now() - since >= quietMs) return;
  }
}

// ---------------------------------------------------------------------------------------------
// The relay in workerd

interface Relay {
  name: string;
  base: string;
  prefix: string;
  harness: TestHarness;
  close: () => Promise<void>;
  headers: Record<string, string>;
  adminHeaders: Record<string, string>;
}

async function startRelay(name: string, vars: Record<string, string>): Promise<Relay> {
  const adminToken = `bench-admin-${randomUUID()}`;
  const prefix = `bench:${runId}:${name}:`;
  const harness = createTestHarness({
    root,
    workers: [
      {
        configPath: "wrangler.toml",
        secrets: {
          ADMIN_TOKEN: adminToken,
          SMTP_URL: sink.url,
          UPSTASH_REDIS_REST_URL: gateway.url,
          UPSTASH_REDIS_REST_TOKEN: gateway.token,
        },
        vars: {
          REDIS_KEY_PREFIX: prefix,
          LOG_LEVEL: "warn",
          SMTP_EHLO_NAME: "bench.test",
          // The default (10/1s) would refuse a sequential benchmark; the limiter still runs and
          // costs its command on every request.
          RATE_LIMIT: "100000/1s",
          ...vars,
        },
      },
    ],
  });
  let closed: Promise<void> | undefined;
  const close = () => {
    closed ??= harness.close();
    return closed;
  };
  closers.push(close);
  const t0 = performance.now();
  const { url } = await harness.listen();
  const base = url.origin;
  const adminHeaders = {
    authorization: `Bearer ${adminToken}`,
    "content-type": "application/json",
  };
  // Apps send with an API key of their own, which the isolate caches (KEY_CACHE_SECONDS).
  const res = await fetch(`${base}/api-keys`, {
    method: "POST",
    headers: adminHeaders,
    body: JSON.stringify({ name: "bench", permission: "sending_access" }),
  });
  if (res.status !== 201) throw new Error(`POST /api-keys: ${res.status} ${await res.text()}`);
  const { token } = (await res.json()) as { token: string };
  progress(
    `relay "${name}" up in workerd in ${ms(performance.now() - t0)} ms (${Object.entries(vars)
      .map(([k, v]) => `${k}=${v}`)
      .join(", ")})`,
  );
  return {
    name,
    base,
    prefix,
    harness,
    close,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    adminHeaders,
  };
}

function email(to: string, subject: string) {
  return {
    from: "Bench <bench@acme.test>",
    to: [to],
    subject,
    text: "A short transactional message, the same for the relay and the direct reference.\n",
  };
}

async function post(relay: Relay, path: string, body: unknown): Promise<unknown> {
  const res = await fetch(`${relay.base}${path}`, {
    method: "POST",
    headers: relay.headers,
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`POST ${path}: ${res.status} ${text}`);
  return JSON.parse(text);
}

async function cron(relay: Relay): Promise<void> {
  const result = await relay.harness
    .getWorker()
    .scheduled({ cron: "* * * * *", scheduledTime: new Date() });
  if (result.outcome !== "ok") throw new Error(`scheduled run: ${JSON.stringify(result)}`);
}

/** Reads each email back (outside any measured window) and counts those delivered. */
async function countDelivered(relay: Relay, ids: string[]): Promise<string> {
  const events = new Map<string, number>();
  for (const id of ids) {
    const res = await fetch(`${relay.base}/emails/${id}`, { headers: relay.headers });
    const view = (await res.json()) as { last_event?: string; delivery?: { attempts: number } };
    const key = `${view.last_event ?? res.status} after ${view.delivery?.attempts ?? "?"} attempt(s)`;
    events.set(key, (events.get(key) ?? 0) + 1);
  }
  return fmtCounts(events);
}

/** A first send and delivery: caches the key in the isolate and loads every script into Redis. */
async function warmUp(relay: Relay, viaCron: boolean): Promise<void> {
  const to = `warm-${relay.name}-${randomUUID()}@example.com`;
  gateway.resetCounters();
  const arrived = sink.waitFor(1, WAIT_MS, { to });
  await post(relay, "/emails", email(to, "warm-up"));
  if (viaCron) await cron(relay);
  await arrived;
  await settle();
  const t = tally(gateway.commandLog(), relay.prefix);
  progress(
    `relay "${relay.name}" warm-up send${viaCron ? " and cron run" : ""}: ${t.total} commands [${fmtCounts(t.byName)}] [${fmtCounts(t.byOperation)}]`,
  );
}

// ---------------------------------------------------------------------------------------------
// Latency probes: relay (immediate path), nodemailer straight to the sink, one gateway EVAL

const rest = new UpstashRedis({ url: gateway.url, token: gateway.token, enableTelemetry: false });

/** Resolves with the time the sink recorded a message for this (unique) recipient. */
function arrival(to: string): Promise<number> {
  return sink.waitFor(1, WAIT_MS, { to }).then(() => performance.now());
}

async function relaySend(relay: Relay, i: number): Promise<{ accept: number; delivered: number }> {
  const to = `lat-relay-${runId}-${i}@example.com`;
  const arrived = arrival(to);
  const t0 = performance.now();
  await post(relay, "/emails", email(to, `latency ${i}`));
  const accept = performance.now() - t0;
  return { accept, delivered: (await arrived) - t0 };
}

async function directSend(i: number): Promise<{ accept: number; delivered: number }> {
  const to = `lat-direct-${runId}-${i}@example.com`;
  const arrived = arrival(to);
  const t0 = performance.now();
  const transport = nodemailer.createTransport({
    host: sink.host,
    port: sink.port,
    secure: false,
    ignoreTLS: true,
    pool: false,
    name: "bench.test",
  });
  try {
    await transport.sendMail(email(to, `latency ${i}`));
  } finally {
    transport.close();
  }
  const accept = performance.now() - t0;
  return { accept, delivered: (await arrived) - t0 };
}

/** Connect to the sink's greeting: a fixed cost every fresh SMTP connection pays, relay or not. */
function greetingWait(): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const socket = connect(sink.port, sink.host);
    socket.once("data", () => {
      const waited = performance.now() - t0;
      socket.end("QUIT\r\n");
      resolve(waited);
    });
    socket.once("error", reject);
    socket.setTimeout(WAIT_MS, () => socket.destroy(new Error("no SMTP greeting")));
  });
}

async function evalRoundTrip(): Promise<number> {
  const t0 = performance.now();
  await rest.eval("return 1", [], []);
  return performance.now() - t0;
}

// ---------------------------------------------------------------------------------------------
// 1. Upstash commands per delivered message

interface CommandRow {
  path: string;
  messages: number;
  tally: Tally;
  extra: string;
}
const commandRows: CommandRow[] = [];
const readRows: { what: string; tally: Tally }[] = [];
const readIds: string[] = [];

function commandLine(row: CommandRow): string {
  const per = row.messages > 0 ? (row.tally.total / row.messages).toFixed(2) : "–";
  return `${row.path}: ${row.tally.total} commands, ${per} per message [${fmtCounts(row.tally.byName)}] [${fmtCounts(row.tally.byOperation)}]${row.extra ? ` ${row.extra}` : ""}`;
}

/** N sequential POST /emails, each delivered by the attempt made right after accepting. */
async function immediateSends(relay: Relay, path: string): Promise<void> {
  sink.clear();
  const tag = `imm-${relay.name}-${randomUUID().slice(0, 8)}`;
  gateway.resetCounters();
  const t0 = performance.now();
  const ids: string[] = [];
  const answered: number[] = [];
  for (let i = 0; i < IMMEDIATE_COUNT; i++) {
    const t = performance.now();
    const { id } = (await post(
      relay,
      "/emails",
      email(`${tag}-${i}@example.com`, `immediate ${i}`),
    )) as { id: string };
    answered.push(performance.now() - t);
    ids.push(id);
  }
  await sink.waitFor(IMMEDIATE_COUNT, WAIT_MS, { to: tag });
  const deliverMs = performance.now() - t0;
  await settle();
  const row: CommandRow = {
    path,
    messages: IMMEDIATE_COUNT,
    tally: tally(gateway.commandLog(), relay.prefix),
    extra: `(no cron run; ${IMMEDIATE_COUNT} sequential POSTs answered in ${ms(summarize(answered).p50)} ms p50, all at the sink after ${ms(deliverMs)} ms)`,
  };
  commandRows.push(row);
  progress(commandLine(row));
  progress(`  read back: ${await countDelivered(relay, ids)}`);
}

try {
  const scheduledRelay = await startRelay("scheduled", {
    IMMEDIATE_DELIVERY: "false",
    DELIVERY_BATCH_SIZE: String(BATCH_SIZE),
    // The mail path's own commands; the request log's are measured apart (below).
    REQUEST_LOG: "off",
  });
  await warmUp(scheduledRelay, true);

  for (const n of SCHEDULED_SIZES) {
    sink.clear();
    const tag = `sched${n}-${randomUUID().slice(0, 8)}`;
    gateway.resetCounters();
    const t0 = performance.now();
    const answer = (await post(
      scheduledRelay,
      "/emails/batch",
      Array.from({ length: n }, (_, i) => email(`${tag}-${i}@example.com`, `scheduled ${i}`)),
    )) as { data: { id: string }[] };
    const acceptMs = performance.now() - t0;
    let runs = 0;
    const deadline = performance.now() + WAIT_MS;
    while (sink.messages.filter((m) => m.rcptTo[0]?.startsWith(tag)).length < n) {
      if (performance.now() > deadline) throw new Error(`scheduled N=${n}: not all delivered`);
      await cron(scheduledRelay);
      runs++;
    }
    const deliverMs = performance.now() - t0;
    await settle();
    const row: CommandRow = {
      path: `scheduled, one batch of ${n}`,
      messages: n,
      tally: tally(gateway.commandLog(), scheduledRelay.prefix),
      extra: `(${runs} cron run(s); batch accepted in ${ms(acceptMs)} ms, all at the sink after ${ms(deliverMs)} ms)`,
    };
    commandRows.push(row);
    progress(commandLine(row));
    progress(
      `  read back: ${await countDelivered(
        scheduledRelay,
        answer.data.map((d) => d.id),
      )}`,
    );
  }

  sink.clear();
  gateway.resetCounters();
  await cron(scheduledRelay);
  await settle();
  const idle: CommandRow = {
    path: "idle cron run (nothing due)",
    messages: 0,
    tally: tally(gateway.commandLog(), scheduledRelay.prefix),
    extra: "",
  };
  commandRows.push(idle);
  progress(
    `${commandLine(idle)}; every minute that is ${idle.tally.total * 60 * 24} commands a day per relay`,
  );

  await scheduledRelay.close();

  const immediateRelay = await startRelay("immediate", {
    IMMEDIATE_DELIVERY: "true",
    REQUEST_LOG: "off",
  });
  await warmUp(immediateRelay, false);
  await immediateSends(immediateRelay, "immediate, single sends");

  // The request log: the same sends with REQUEST_LOG=on, and one GET /logs page.
  const loggedRelay = await startRelay("logged", { IMMEDIATE_DELIVERY: "true", REQUEST_LOG: "on" });
  await warmUp(loggedRelay, false);
  await immediateSends(loggedRelay, "immediate, single sends, REQUEST_LOG=on");
  {
    gateway.resetCounters();
    const res = await fetch(`${loggedRelay.base}/logs`, { headers: loggedRelay.headers });
    const page = (await res.json()) as { data?: unknown[] };
    await settle();
    const row: CommandRow = {
      path: "GET /logs (a sending key's page of 20), REQUEST_LOG=on",
      messages: 0,
      tally: tally(gateway.commandLog(), loggedRelay.prefix),
      extra: `(${res.status}, ${page.data?.length ?? 0} entries)`,
    };
    commandRows.push(row);
    progress(commandLine(row));
  }

  // 1d. What reading the list and the metrics costs (GET /emails, GET /emails/metrics), on the
  // immediate relay's index (the warm-up, the 50 sends above). The key cache is warm, so each
  // request pays its rate limit (1) and then its reads.
  for (const [what, pathOf] of [
    ["list page of 20", () => "/emails"],
    ["list page of 100", () => "/emails?limit=100"],
    ["next list page (after a cursor)", () => `/emails?limit=20&after=${readIds[0]}`],
    ["filtered list (last_event=bounced, scans all)", () => "/emails?last_event=bounced"],
    ["metrics, 7 days by day", () => "/emails/metrics?dimensions=period"],
  ] as const) {
    const path = pathOf();
    await settle();
    gateway.resetCounters();
    const res = await fetch(`${immediateRelay.base}${path}`, { headers: immediateRelay.headers });
    const body = (await res.json()) as { data?: { id: string }[] };
    if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${JSON.stringify(body)}`);
    if (what === "list page of 20") readIds.push(body.data?.at(-1)?.id ?? "");
    await settle();
    const t = tally(gateway.commandLog(), immediateRelay.prefix);
    readRows.push({ what, tally: t });
    progress(`${what}: ${t.total} commands [${fmtCounts(t.byName)}] [${fmtCounts(t.byOperation)}]`);
  }

  // ---------------------------------------------------------------------------------------------
  // 2. Latency: relay (immediate path) vs nodemailer straight to the sink vs one gateway EVAL

  sink.clear();
  for (let i = 0; i < LATENCY_WARMUP; i++) {
    await relaySend(immediateRelay, -1 - i);
    await relaySend(loggedRelay, -101 - i);
    await directSend(-1 - i);
    await evalRoundTrip();
  }
  sink.clear();
  progress(
    `latency: ${LATENCY_SENDS} rounds of relay send, direct send and one EVAL, order rotated`,
  );
  const relayAccept: number[] = [];
  const relayDelivered: number[] = [];
  const loggedAccept: number[] = [];
  const loggedDelivered: number[] = [];
  const directAccept: number[] = [];
  const directDelivered: number[] = [];
  const evals: number[] = [];
  const greetings: number[] = [];
  for (let i = 0; i < 10; i++) greetings.push(await greetingWait());
  for (let i = 0; i < LATENCY_SENDS; i++) {
    const steps = [
      async () => {
        const r = await relaySend(immediateRelay, i);
        relayAccept.push(r.accept);
        relayDelivered.push(r.delivered);
      },
      async () => {
        const d = await directSend(i);
        directAccept.push(d.accept);
        directDelivered.push(d.delivered);
      },
      async () => {
        evals.push(await evalRoundTrip());
      },
      async () => {
        const r = await relaySend(loggedRelay, LATENCY_SENDS + i);
        loggedAccept.push(r.accept);
        loggedDelivered.push(r.delivered);
      },
    ];
    for (let k = 0; k < steps.length; k++) await steps[(i + k) % steps.length]?.();
    if ((i + 1) % 25 === 0) {
      progress(
        `  ${i + 1}/${LATENCY_SENDS}: relay to 250 p50 ${ms(summarize(relayDelivered).p50)} ms, direct p50 ${ms(summarize(directDelivered).p50)} ms`,
      );
    }
  }

  // Per round, relay minus direct: both pay the sink's fixed costs, so this is what the relay adds.
  const paired = (a: number[], b: number[]) => summarize(a.map((v, i) => v - (b[i] ?? NaN)));
  const lat = {
    addedAccept: paired(relayAccept, directAccept),
    addedDelivered: paired(relayDelivered, directDelivered),
    relayAccept: summarize(relayAccept),
    relayDelivered: summarize(relayDelivered),
    directAccept: summarize(directAccept),
    directDelivered: summarize(directDelivered),
    eval: summarize(evals),
    greeting: summarize(greetings),
  };
  progress(`relay POST answered:         ${fmtSummary(lat.relayAccept)}`);
  progress(`relay POST -> SMTP 250:      ${fmtSummary(lat.relayDelivered)}`);
  progress(
    `  with REQUEST_LOG=on:        ${fmtSummary(summarize(loggedAccept))} answered, ${fmtSummary(summarize(loggedDelivered))} to 250`,
  );
  progress(`direct sendMail resolved:    ${fmtSummary(lat.directAccept)}`);
  progress(`direct start -> SMTP 250:    ${fmtSummary(lat.directDelivered)}`);
  progress(`relay - direct, to SMTP 250: ${fmtSummary(lat.addedDelivered)} (paired per round)`);
  progress(`gateway EVAL round trip:     ${fmtSummary(lat.eval)}`);
  progress(
    `sink greeting after connect: ${fmtSummary(lat.greeting)} (smtp-server's early-talker wait)`,
  );

  // ---------------------------------------------------------------------------------------------
  // The table for the README's Performance section

  const rows = commandRows.map((r) => {
    const per = r.messages > 0 ? (r.tally.total / r.messages).toFixed(2) : "–";
    return `| ${r.path} | ${r.messages || "–"} | ${r.tally.total} | ${per} | ${fmtCounts(r.tally.byName)} | ${fmtCounts(r.tally.byOperation)} |`;
  });
  const latencyRow = (what: string, relay: Summary, direct: Summary, added: Summary) =>
    `| ${what} | ${ms(relay.p50)} / ${ms(relay.p90)} / ${ms(relay.max)} | ${ms(direct.p50)} / ${ms(direct.p90)} / ${ms(direct.max)} | ${ratio(relay.p50, direct.p50)} / ${ratio(relay.p90, direct.p90)} | ${ms(added.p50)} / ${ms(added.p90)} |`;
  const batched = commandRows.filter((r) => r.path.startsWith("scheduled") && r.messages >= 20);
  const perMessage = batched.map((r) => r.tally.total / r.messages);
  const worst = Math.max(...perMessage);

  console.log(`
Measured with \`npm run bench\` on ${machine.cpus} × ${machine.model}, Node ${machine.node}, ${machine.date.slice(0, 10)} (load average ${machine.load}); relay in workerd (wrangler ${machine.wrangler} test harness), the Upstash REST gateway over redis-server ${machine.redis}, an SMTP sink, all on loopback.

Upstash commands, counted as Upstash bills them, with a warm key cache (\`DELIVERY_BATCH_SIZE=${BATCH_SIZE}\`):

| Path | Messages | Commands | Per message | By command | By operation |
| ---- | -------: | -------: | ----------: | ---------- | ------------ |
${rows.join("\n")}

Goal: at most 3 commands per message for batches of 20 or more; the scheduled path costs at most ${worst.toFixed(2)} (${worst <= 3 ? "met" : "NOT met"}). An idle cron run costs ${idle.tally.total}, so ${idle.tally.total * 1440} a day. Not in the rows: a key cache miss (each \`KEY_CACHE_SECONDS\` per isolate) adds a key lookup and a \`last_used_at\` write.

Reads (one request each, warm key cache; the rate limit is 1 of the commands):

| Read | Commands | By operation |
| ---- | -------: | ------------ |
${readRows.map((r) => `| ${r.what} | ${r.tally.total} | ${fmtCounts(r.tally.byOperation)} |`).join("\n")}

Latency in ms, p50 / p90 / max over ${LATENCY_SENDS} sequential sends, interleaved with the reference; direct = nodemailer to the same sink over a fresh connection per message. The sink (smtp-server) greets a new connection only after ${ms(lat.greeting.p50)} ms (p50, its early-talker wait), which both columns pay; the last column, relay minus direct per round, is what the relay adds:

| Measure | Relay | Direct | Relay / direct (p50 / p90) | Relay − direct (p50 / p90) |
| ------- | ----: | -----: | -------------------------: | -------------------------: |
${latencyRow("Send call answered (relay: `POST /emails`; direct: `sendMail`)", lat.relayAccept, lat.directAccept, lat.addedAccept)}
${latencyRow("Send started → SMTP 250 at the smart host", lat.relayDelivered, lat.directDelivered, lat.addedDelivered)}

The relay rows have REQUEST_LOG=off; a third relay with REQUEST_LOG=on, in the same rounds, answered in ${ms(summarize(loggedAccept).p50)} / ${ms(summarize(loggedAccept).p90)} ms (p50 / p90) and reached SMTP 250 in ${ms(summarize(loggedDelivered).p50)} / ${ms(summarize(loggedDelivered).p90)} ms: the log entry is written after the answer.

One EVAL through the gateway (\`@upstash/redis\` from Node): ${ms(lat.eval.p50)} / ${ms(lat.eval.p90)} / ${ms(lat.eval.max)} ms; relay \`POST /emails\` p50 = ${(lat.relayAccept.p50 / lat.eval.p50).toFixed(1)} × that.
`);
  progress("done");
} catch (err) {
  console.error(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
