/**
 * `npm run bench:webhooks`: what webhook events cost in Upstash commands, measured and printed (no
 * assertions). The relay runs in workerd (wrangler's test harness) over the Upstash-compatible
 * gateway and the local redis-server, delivers to a recording SMTP sink and POSTs its events to a
 * node:http receiver that answers 204, all on loopback. It stops by itself and deletes its keys.
 *
 * For N messages sent as one batch and delivered by cron runs (IMMEDIATE_DELIVERY=false), it
 * counts commands at the gateway, the way Upstash bills them:
 *   a. with no endpoint registered (the baseline);
 *   b. with one endpoint subscribed to every event (each message makes email.sent and
 *      email.delivered), until every event reached the receiver;
 *   c. with three endpoints, the same;
 *   d. an idle cron run with endpoints registered and nothing due.
 */
import { createHash, randomUUID } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Redis as IORedis } from "ioredis";

process.env.CLOUDFLARE_CF_FETCH_ENABLED ??= "false";
process.env.WRANGLER_SEND_METRICS ??= "false";

const { createTestHarness } = await import("wrangler");
const { startUpstashGateway } = await import("../dev/upstash-gateway.ts");
const { startSmtpSink } = await import("../dev/smtp-sink/index.ts");
const { STORE_SCRIPTS } = await import("../src/store/upstash/scripts/index.ts");

const N = 50;
const DEADLINE_MS = 120_000;
const runId = randomUUID().slice(0, 8);
const started = performance.now();
const progress = (line: string) =>
  console.log(`[${((performance.now() - started) / 1000).toFixed(1).padStart(5)}s] ${line}`);

const closers: (() => Promise<unknown>)[] = [];
async function cleanup(): Promise<void> {
  for (const close of closers.reverse()) await close().catch(() => {});
}
setTimeout(async () => {
  console.error(`bench: over the ${DEADLINE_MS / 1000} s budget; closing`);
  await cleanup();
  process.exit(2);
}, DEADLINE_MS).unref();

const scripts = new Map(
  Object.entries(STORE_SCRIPTS).map(([name, text]) => [
    createHash("sha1").update(text).digest("hex"),
    name.toLowerCase().replaceAll("_", " "),
  ]),
);
function operationOf(command: string[]): string {
  const [name = "", first = "", numkeys = "0", ...rest] = command;
  if (name.startsWith("EVAL")) {
    const sha = name.startsWith("EVALSHA") ? first : createHash("sha1").update(first).digest("hex");
    const known = scripts.get(sha.toLowerCase());
    if (known) return known;
    if (rest.slice(0, Number(numkeys)).some((k) => k.includes(":rl:"))) return "rate limit";
    return `script ${sha.slice(0, 8)}`;
  }
  return name.toLowerCase();
}

const redis = new IORedis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379", { lazyConnect: true });
redis.on("error", () => {});
await redis.connect();
closers.push(async () => {
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `wbench:${runId}:*`, "COUNT", 1000);
    cursor = next;
    if (keys.length) await redis.unlink(...keys);
  } while (cursor !== "0");
  redis.disconnect();
});

const gateway = await startUpstashGateway({ token: `bench-${randomUUID()}` });
closers.push(() => gateway.close());
const sink = await startSmtpSink({ tls: "none" });
closers.push(() => sink.close());

let received = 0;
const receiver = createServer((req, res) => {
  req.resume();
  req.on("end", () => {
    received++;
    res.writeHead(204).end();
  });
});
await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
closers.push(() => new Promise((r) => receiver.close(r)));
const receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;

const admin = `bench-admin-${randomUUID()}`;
const harness = createTestHarness({
  workers: [
    {
      configPath: "wrangler.toml",
      secrets: {
        ADMIN_TOKEN: admin,
        SMTP_URL: sink.url,
        UPSTASH_REDIS_REST_URL: gateway.url,
        UPSTASH_REDIS_REST_TOKEN: gateway.token,
      },
      vars: {
        REDIS_KEY_PREFIX: `wbench:${runId}:`,
        IMMEDIATE_DELIVERY: "false",
        RATE_LIMIT: "100000/1s",
        WEBHOOK_ALLOW_LOOPBACK: "true",
        LOG_LEVEL: "warn",
      },
    },
  ],
});
closers.push(() => harness.close());
const { url } = await harness.listen();
const headers = { authorization: `Bearer ${admin}`, "content-type": "application/json" };
const cron = () => harness.getWorker().scheduled({ cron: "* * * * *", scheduledTime: new Date() });

async function send(n: number, tag: string): Promise<void> {
  const batch = Array.from({ length: n }, (_, i) => ({
    from: "bench@acme.test",
    to: [`r${i}@example.com`],
    subject: `${tag} ${i}`,
    text: "A short message.\n",
  }));
  const res = await fetch(`${url.origin}/emails/batch`, {
    method: "POST",
    headers,
    body: JSON.stringify(batch),
  });
  if (res.status !== 200) throw new Error(`batch: ${res.status} ${await res.text()}`);
}

async function register(): Promise<void> {
  const res = await fetch(`${url.origin}/webhooks`, {
    method: "POST",
    headers,
    body: JSON.stringify({
      endpoint: `${receiverUrl}/events`,
      events: ["email.sent", "email.delivered", "email.bounced", "email.delivery_delayed"],
    }),
  });
  if (res.status !== 201) throw new Error(`webhooks: ${res.status} ${await res.text()}`);
}

/** Sends N messages, runs cron until they and `events` events arrived; returns the tally. */
async function measure(tag: string, events: number) {
  const sinkBefore = sink.messages.length;
  const receivedBefore = received;
  gateway.resetCounters();
  await send(N, tag);
  let runs = 0;
  while (sink.messages.length < sinkBefore + N || received < receivedBefore + events) {
    if (runs > 50) throw new Error(`${tag}: not done after ${runs} cron runs`);
    await cron();
    runs++;
  }
  await new Promise((r) => setTimeout(r, 300));
  const byOp = new Map<string, number>();
  for (const c of gateway.commandLog()) {
    const op = operationOf(c);
    byOp.set(op, (byOp.get(op) ?? 0) + 1);
  }
  return { total: gateway.commands(), byOp, runs };
}

const fmt = (m: Map<string, number>) => [...m].map(([k, v]) => `${k} ${v}`).join(", ");

// Warm-up: loads every script once, so NOSCRIPT retries are not counted.
await register();
await measure("warm-up", 2 * N);
const list = (await (await fetch(`${url.origin}/webhooks`, { headers })).json()) as {
  data: { id: string }[];
};
for (const w of list.data)
  await fetch(`${url.origin}/webhooks/${w.id}`, { method: "DELETE", headers });

const rows: string[] = [];
const base = await measure("no endpoint", 0);
rows.push(
  `a. no endpoint: ${base.total} commands for ${N} messages (${(base.total / N).toFixed(2)} per message; ${base.runs} cron runs) [${fmt(base.byOp)}]`,
);
progress(rows.at(-1) as string);

let registered = 0;
for (const endpoints of [1, 3]) {
  for (; registered < endpoints; registered++) await register();
  const events = 2 * N * endpoints;
  const m = await measure(`${endpoints} endpoint(s)`, events);
  const eventOps = (m.byOp.get("claim events") ?? 0) + (m.byOp.get("commit event") ?? 0);
  rows.push(
    `${endpoints === 1 ? "b" : "c"}. ${endpoints} endpoint(s): ${m.total} commands for ${N} messages and ${events} event deliveries; ${m.total - base.total} more than without endpoints = ${((m.total - base.total) / events).toFixed(2)} per event delivery (claim events + commit event: ${eventOps}); ${m.runs} cron runs [${fmt(m.byOp)}]`,
  );
  progress(rows.at(-1) as string);
}

gateway.resetCounters();
await cron();
await new Promise((r) => setTimeout(r, 300));
rows.push(`d. idle cron run with endpoints registered: ${gateway.commands()} command(s)`);
progress(rows.at(-1) as string);

console.log(
  `\nWebhook event costs (Upstash commands, ${new Date().toISOString()}):\n${rows.join("\n")}`,
);
await cleanup();
process.exit(0);
