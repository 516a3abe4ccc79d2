/**
 * `npm run bench:throughput`: messages per second from the queue to an SMTP server, next to
 * nodemailer's own pooled transport sending the same messages straight to the same server, in the
 * same run, rounds interleaved, reported as a ratio (machines here are shared and noisy: only the
 * ratio means much). The relay runs in workerd (wrangler's test harness) on the Upstash gateway
 * over the local redis-server; everything is on loopback. It stops by itself in about a minute.
 *
 * Relay side: N messages are accepted first (batches of 100, not timed), then the clock runs from
 * the scheduled run's start until the SMTP server has recorded all N. Direct side: the same N
 * messages through nodemailer with pool: true and the same number of connections.
 */
import { randomUUID } from "node:crypto";
import os from "node:os";
import { join } from "node:path";
import nodemailer from "nodemailer";

process.env.CLOUDFLARE_CF_FETCH_ENABLED ??= "false";
process.env.WRANGLER_SEND_METRICS ??= "false";

const { createTestHarness } = await import("wrangler");
const { startUpstashGateway } = await import("../dev/upstash-gateway.ts");
const { startSmtpSink } = await import("../dev/smtp-sink/index.ts");

const N = Number(process.env.BENCH_MESSAGES ?? 300);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = 3;
const CLIENT = process.env.SMTP_CLIENT ?? "nodemailer";
const started = performance.now();
const log = (line: string) =>
  console.log(`[${((performance.now() - started) / 1000).toFixed(1).padStart(5)}s] ${line}`);

const gateway = await startUpstashGateway({ token: `tp-${randomUUID()}` });
const sink = await startSmtpSink({ tls: "none" });
const admin = `bench-admin-${randomUUID()}`;
const harness = createTestHarness({
  root: join(import.meta.dirname, ".."),
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
        REDIS_KEY_PREFIX: `bench:tp:${randomUUID().slice(0, 8)}:`,
        IMMEDIATE_DELIVERY: "false",
        SMTP_MAX_CONNECTIONS: String(CONNECTIONS),
        SMTP_CLIENT: CLIENT,
        DELIVERY_BATCH_SIZE: "100",
        RATE_LIMIT: "100000/1s",
        LOG_LEVEL: "warn",
        SMTP_EHLO_NAME: "bench.test",
      },
    },
  ],
});
const direct = nodemailer.createTransport({
  pool: true,
  maxConnections: CONNECTIONS,
  maxMessages: 100,
  host: "127.0.0.1",
  port: sink.port,
  ignoreTLS: true,
  name: "bench.test",
});

const message = (to: string) => ({
  from: "Bench <bench@acme.test>",
  to: [to],
  subject: "Throughput",
  text: "A short transactional message, the same for the relay and the direct reference.\n",
});

try {
  const { url } = await harness.listen();
  const headers = { authorization: `Bearer ${admin}`, "content-type": "application/json" };
  const accept = async (tag: string) => {
    for (let i = 0; i < N; i += 100) {
      const batch = Array.from({ length: Math.min(100, N - i) }, (_, j) =>
        message(`${tag}-${i + j}@example.com`),
      );
      const res = await fetch(`${url.origin}/emails/batch`, {
        method: "POST",
        headers,
        body: JSON.stringify(batch),
      });
      if (res.status !== 200) throw new Error(`batch: ${res.status} ${await res.text()}`);
    }
  };
  const relayRound = async (tag: string) => {
    await accept(tag);
    const t0 = performance.now();
    // One scheduled run claims batch after batch until nothing is due.
    const run = harness.getWorker().scheduled({ cron: "* * * * *", scheduledTime: new Date() });
    await sink.waitFor(N, 60_000, { to: `${tag}-` });
    const t1 = performance.now();
    await run;
    return t1 - t0;
  };
  const directRound = async (tag: string) => {
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: N }, (_, i) => {
        const m = message(`${tag}-${i}@example.com`);
        return direct.sendMail({ ...m, envelope: { from: "bench@acme.test", to: m.to } });
      }),
    );
    return performance.now() - t0;
  };

  log(`warming up (N=${N}, ${CONNECTIONS} connections, ${ROUNDS} rounds)`);
  await relayRound(`warm-r-${randomUUID().slice(0, 6)}`);
  await directRound(`warm-d-${randomUUID().slice(0, 6)}`);
  const relayRates: number[] = [];
  const directRates: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    // Alternate which goes first, so drift on a shared machine hits both alike.
    const order = r % 2 === 0 ? ["relay", "direct"] : ["direct", "relay"];
    for (const side of order) {
      const tag = `${side}-${r}-${randomUUID().slice(0, 6)}`;
      const ms = side === "relay" ? await relayRound(tag) : await directRound(tag);
      const rate = (N * 1000) / ms;
      (side === "relay" ? relayRates : directRates).push(rate);
      log(
        `round ${r + 1} ${side.padEnd(6)} ${N} messages in ${ms.toFixed(0)} ms: ${rate.toFixed(0)} msg/s`,
      );
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
  const ratios = relayRates.map((r, i) => r / (directRates[i] ?? r));
  console.log(`
Machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? "?"}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}

| Path | Messages per round | Connections | msg/s (median of ${ROUNDS}) |
| ---- | -----------------: | ----------: | -----------------: |
| relay (${CLIENT} in workerd): queue → scheduled run → SMTP | ${N} | ${CONNECTIONS} | ${median(relayRates).toFixed(0)} |
| direct: nodemailer pool → SMTP | ${N} | ${CONNECTIONS} | ${median(directRates).toFixed(0)} |

Relay / direct, per round: ${ratios.map((x) => x.toFixed(2)).join(", ")} (median ${median(ratios).toFixed(2)}; goal 0.80 or better)
`);
} finally {
  direct.close();
  await harness.close();
  await sink.close();
  await gateway.close();
}
