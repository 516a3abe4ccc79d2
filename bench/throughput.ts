/**
 * `npm run bench:throughput`: messages per second from the queue to an SMTP server, next to
 * nodemailer's own pooled transport sending the same messages straight to the same server, in the
 * same run, rounds interleaved, reported as a ratio (machines here are shared and noisy: only the
 * ratio means much). The relay runs in workerd (wrangler's test harness) on the Upstash gateway
 * over the local redis-server.
 *
 * Both sides reach the SMTP server through dev/latency-proxy.ts, which adds a round-trip time
 * (BENCH_RTTS, default "0,20,50" ms), because a real smart host is 10 to 80 ms away and there
 * round trips decide; the proxy also counts the round trips each side makes per message. Each
 * client the relay can drive (BENCH_CLIENTS, default "nodemailer,worker-mailer") gets its own
 * Worker. About four minutes with the defaults.
 *
 * Relay side: N messages are accepted first (batches of 100, not timed), then the clock runs from
 * the scheduled run's start until the SMTP server has recorded all N. Direct side: the same N
 * messages through a new nodemailer pool (pool: true) with the same number of connections, so
 * each side opens its connections once per round.
 */
import { randomUUID } from "node:crypto";
import os from "node:os";
import nodemailer from "nodemailer";

process.env.CLOUDFLARE_CF_FETCH_ENABLED ??= "false";
process.env.WRANGLER_SEND_METRICS ??= "false";

const { benchWorker, startBenchServices } = await import("./worker.ts");
const { fillQueue } = await import("../dev/fill-queue.ts");

const N = Number(process.env.BENCH_MESSAGES ?? 300);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
// Six: what one invocation may open (Workers' limit on simultaneous outgoing connections).
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 6);
const RTTS = (process.env.BENCH_RTTS ?? "0,20,50").split(",").map(Number);
const CLIENTS = (process.env.BENCH_CLIENTS ?? process.env.SMTP_CLIENT ?? "nodemailer,worker-mailer")
  .split(",")
  .map((c) => c.trim());
const started = performance.now();
const log = (line: string) =>
  console.log(`[${((performance.now() - started) / 1000).toFixed(1).padStart(5)}s] ${line}`);

const services = await startBenchServices();
const { gateway, sink, proxy } = services;
const admin = `bench-admin-${randomUUID()}`;

const worker = (client: string) =>
  benchWorker({
    admin,
    smtpUrl: services.smtpUrl,
    gateway,
    vars: {
      SMTP_MAX_CONNECTIONS: String(CONNECTIONS),
      SMTP_CLIENT: client,
      DELIVERY_BATCH_SIZE: "100",
    },
  });

const MESSAGE = {
  from: "Bench <bench@acme.test>",
  subject: "Throughput",
  text: "A short transactional message, the same for the relay and the direct reference.\n",
};
const message = (to: string) => ({ ...MESSAGE, to: [to] });

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

interface Side {
  rates: number[];
  turns: number[];
}
interface Row {
  client: string;
  rtt: number;
  relay: Side;
  direct: Side;
}
const rows: Row[] = [];

/** One client's Worker, every RTT, rounds interleaved with the direct reference. */
async function benchClient(client: string): Promise<void> {
  const harness = worker(client);
  try {
    const { url } = await harness.listen();
    const accept = (tag: string) =>
      fillQueue({ origin: url.origin, token: admin, tag, count: N, message: MESSAGE });
    const relayRound = async (tag: string) => {
      // Nothing kept from earlier rounds: the sink's work per message stays the same all run.
      sink.clear();
      await accept(tag);
      proxy.reset();
      const t0 = performance.now();
      // One scheduled run claims batch after batch until nothing is due.
      const run = harness.getWorker().scheduled({ cron: "* * * * *", scheduledTime: new Date() });
      await sink.waitFor(N, 120_000, { to: `${tag}-` });
      const t1 = performance.now();
      await run;
      return t1 - t0;
    };
    // A new pool each round, as every scheduled run of the relay opens its own connections:
    // both sides pay for connecting and the greeting once per round.
    const directRound = async (tag: string) => {
      proxy.reset();
      const t0 = performance.now();
      const direct = nodemailer.createTransport({
        pool: true,
        maxConnections: CONNECTIONS,
        maxMessages: 100,
        host: proxy.host,
        port: proxy.port,
        ignoreTLS: true,
        name: "bench.test",
      });
      await Promise.all(
        Array.from({ length: N }, (_, i) => {
          const m = message(`${tag}-${i}@example.com`);
          return direct.sendMail({ ...m, envelope: { from: "bench@acme.test", to: m.to } });
        }),
      );
      const ms = performance.now() - t0;
      direct.close();
      return ms;
    };
    for (const rtt of RTTS) {
      proxy.setRtt(rtt);
      log(`${client}, ${rtt} ms RTT: warming up (N=${N}, ${CONNECTIONS} connections)`);
      await relayRound(`warm-r-${randomUUID().slice(0, 6)}`);
      await directRound(`warm-d-${randomUUID().slice(0, 6)}`);
      const row: Row = {
        client,
        rtt,
        relay: { rates: [], turns: [] },
        direct: { rates: [], turns: [] },
      };
      for (let r = 0; r < ROUNDS; r++) {
        // Alternate which goes first, so drift on a shared machine hits both alike.
        const order = r % 2 === 0 ? (["relay", "direct"] as const) : (["direct", "relay"] as const);
        for (const side of order) {
          const tag = `${side}-${r}-${randomUUID().slice(0, 6)}`;
          const ms = side === "relay" ? await relayRound(tag) : await directRound(tag);
          const rate = (N * 1000) / ms;
          const { turns, connections, thinkMs, writes } = proxy.counts();
          const perMessage = turns / N;
          row[side].rates.push(rate);
          row[side].turns.push(perMessage);
          log(
            `${client}, ${rtt} ms, round ${r + 1} ${side.padEnd(6)} ${N} messages in ${ms.toFixed(0)} ms: ${rate.toFixed(0)} msg/s, ${perMessage.toFixed(2)} round trips/message (${(writes / N).toFixed(2)} writes), ${(thinkMs / N).toFixed(1)} ms idle on the client's side per message, ${connections} connections opened`,
          );
        }
      }
      rows.push(row);
    }
  } finally {
    await harness.close();
  }
}

try {
  for (const client of CLIENTS) await benchClient(client);
  const fmt = (x: number) => x.toFixed(0).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const lines = rows.map((row) => {
    const ratios = row.relay.rates.map((r, i) => r / (row.direct.rates[i] ?? r));
    return `| ${row.client} | ${row.rtt} ms | ${fmt(median(row.relay.rates))} | ${fmt(median(row.direct.rates))} | ${median(ratios).toFixed(2)} (${ratios.map((x) => x.toFixed(2)).join(", ")}) | ${median(row.relay.turns).toFixed(2)} | ${median(row.direct.turns).toFixed(2)} |`;
  });
  console.log(`
Machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? "?"}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}
${N} messages a round, ${CONNECTIONS} SMTP connections on both sides, median of ${ROUNDS} rounds.

| Relay's client (in workerd) | RTT | Relay msg/s | Direct msg/s | Relay / direct (per round) | Round trips per message, relay | Direct |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
${lines.join("\n")}

Direct: nodemailer's pooled transport in Node, straight to the same server through the same proxy.
`);
} finally {
  await services.close();
}
