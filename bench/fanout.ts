/**
 * `npm run bench:fanout`: what fan-out (src/delivery/fanout.ts) buys. One scheduled run of the
 * Worker in workerd (wrangler's test harness, the DELIVERY_HELPER service binding to itself) with
 * a backlog it cannot send within its budget, at DELIVERY_FANOUT 1, 2 and 4, and 4 again under a
 * shared cap of 12 connections, claiming the default DELIVERY_BATCH_SIZE (25); each reports
 * messages per second over the run, the most connections open at once at the smart host, and
 * Upstash commands per delivered message.
 *
 * The smart host is the repo's SMTP sink behind dev/latency-proxy.ts (BENCH_RTT, default 50 ms):
 * at distance a connection waits on round trips, which is where more invocations pay. Every
 * configuration gets its own Worker and key prefix; rounds are interleaved across them, so drift
 * on a shared machine hits each alike, and the figure to read is the ratio to DELIVERY_FANOUT=1
 * in the same round. About four minutes with the defaults.
 */
import { randomUUID } from "node:crypto";
import os from "node:os";

process.env.CLOUDFLARE_CF_FETCH_ENABLED ??= "false";
process.env.WRANGLER_SEND_METRICS ??= "false";

const { benchWorker, startBenchServices } = await import("./worker.ts");
const { fillQueue } = await import("../dev/fill-queue.ts");

const N = Number(process.env.BENCH_MESSAGES ?? 1500);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const RTT = Number(process.env.BENCH_RTT ?? 50);
// Short enough that one invocation cannot send N within it at this distance.
const RUN_SECONDS = Number(process.env.BENCH_RUN_SECONDS ?? 5);
const CONNECTIONS = 6;
const started = performance.now();
const log = (line: string) =>
  console.log(`[${((performance.now() - started) / 1000).toFixed(1).padStart(5)}s] ${line}`);

interface Setup {
  name: string;
  fanout: number;
  cap?: number;
}
const SETUPS: Setup[] = [
  { name: "1 invocation", fanout: 1 },
  { name: "up to 2", fanout: 2 },
  { name: "up to 4", fanout: 4 },
  { name: "up to 4, cap 12", fanout: 4, cap: 12 },
];

const services = await startBenchServices();
const { gateway, sink, proxy } = services;
proxy.setRtt(RTT);
const admin = `bench-admin-${randomUUID()}`;

const worker = (setup: Setup) =>
  benchWorker({
    admin,
    smtpUrl: services.smtpUrl,
    gateway,
    vars: {
      SMTP_MAX_CONNECTIONS: String(CONNECTIONS),
      DELIVERY_RUN_SECONDS: String(RUN_SECONDS),
      DELIVERY_FANOUT: String(setup.fanout),
      ...(setup.cap ? { SMTP_HOST_MAX_CONNECTIONS: String(setup.cap) } : {}),
    },
  });

interface Sample {
  rate: number;
  peak: number;
  delivered: number;
  commandsPerMessage: number;
}
const samples = new Map<string, Sample[]>(SETUPS.map((s) => [s.name, []]));
const harnesses = SETUPS.map((setup) => ({ setup, harness: worker(setup) }));

async function round(setup: Setup, harness: ReturnType<typeof worker>, r: number) {
  const { url } = await harness.listen();
  const tag = `fo-${r}-${randomUUID().slice(0, 6)}`;
  await fillQueue({ origin: url.origin, token: admin, tag, count: N });
  proxy.reset();
  gateway.resetCounters();
  const t0 = performance.now();
  await harness.getWorker().scheduled({ cron: "* * * * *", scheduledTime: new Date() });
  const ms = performance.now() - t0;
  const delivered = sink.messages.filter((m) => m.rcptTo[0]?.startsWith(`${tag}-`)).length;
  const sample = {
    rate: (delivered * 1000) / ms,
    peak: proxy.counts().peak,
    delivered,
    commandsPerMessage: gateway.commands() / Math.max(1, delivered),
  };
  samples.get(setup.name)?.push(sample);
  log(
    `${setup.name.padEnd(16)} round ${r + 1}: ${delivered} of ${N} delivered in ${ms.toFixed(0)} ms: ${sample.rate.toFixed(0)} msg/s, ${sample.peak} connections at once, ${sample.commandsPerMessage.toFixed(2)} commands/message`,
  );
  // Leave nothing due for the next round of this Worker: a second run sends the rest.
  const mine = () => sink.messages.filter((m) => m.rcptTo[0]?.startsWith(`${tag}-`)).length;
  for (let i = 0; i < 10 && mine() < N; i++)
    await harness.getWorker().scheduled({ cron: "* * * * *", scheduledTime: new Date() });
  sink.clear();
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

try {
  log(
    `${N} messages a round, ${RTT} ms RTT, ${CONNECTIONS} connections an invocation, ${RUN_SECONDS} s budget`,
  );
  for (let r = 0; r < ROUNDS; r++) {
    for (const { setup, harness } of harnesses) await round(setup, harness, r);
  }
  const base = samples.get(SETUPS[0]?.name ?? "") ?? [];
  const lines = SETUPS.map((setup) => {
    const s = samples.get(setup.name) ?? [];
    const ratios = s.map((x, i) => x.rate / (base[i]?.rate ?? x.rate));
    return `| ${setup.name} | ${median(s.map((x) => x.rate)).toFixed(0)} | ${median(ratios).toFixed(2)} (${ratios.map((x) => x.toFixed(2)).join(", ")}) | ${Math.max(...s.map((x) => x.peak))} | ${median(s.map((x) => x.commandsPerMessage)).toFixed(2)} |`;
  });
  console.log(`
Machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? "?"}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}
${N} messages due, one scheduled run (DELIVERY_RUN_SECONDS=${RUN_SECONDS}), ${RTT} ms RTT to the smart host, ${CONNECTIONS} connections an invocation, median of ${ROUNDS} rounds.

| DELIVERY_FANOUT | Msg/s over the run | vs 1 invocation (per round) | Most connections open at once | Upstash commands per message |
| --- | ---: | ---: | ---: | ---: |
${lines.join("\n")}
`);
} finally {
  for (const { harness } of harnesses) await harness.close();
  await services.close();
}
