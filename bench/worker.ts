/**
 * What the throughput benches (throughput.ts, fanout.ts) share: their services, and the Worker
 * as they run it.
 *
 * Services: the Upstash gateway over the local redis-server, the SMTP sink, and the latency proxy
 * in front of the sink that adds the round-trip time and counts round trips and connections.
 *
 * The Worker: wrangler.toml in workerd (wrangler's test harness,
 * so the DELIVERY_HELPER service binding is there too), on the Upstash gateway, sending to
 * `smtpUrl`, with no immediate attempt (every message goes by the scheduled run being measured),
 * no rate limit in the way, warnings only, and its own key prefix. `vars` add to or override that.
 */
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { createTestHarness } from "wrangler";
import { startLatencyProxy } from "../dev/latency-proxy.ts";
import { startSmtpSink } from "../dev/smtp-sink/index.ts";
import { startUpstashGateway } from "../dev/upstash-gateway.ts";

export function benchWorker(options: {
  admin: string;
  smtpUrl: string;
  gateway: { url: string; token: string };
  vars: Record<string, string>;
}) {
  return createTestHarness({
    root: join(import.meta.dirname, ".."),
    workers: [
      {
        configPath: "wrangler.toml",
        secrets: {
          ADMIN_TOKEN: options.admin,
          SMTP_URL: options.smtpUrl,
          UPSTASH_REDIS_REST_URL: options.gateway.url,
          UPSTASH_REDIS_REST_TOKEN: options.gateway.token,
        },
        vars: {
          REDIS_KEY_PREFIX: `bench:${randomUUID().slice(0, 8)}:`,
          IMMEDIATE_DELIVERY: "false",
          RATE_LIMIT: "100000/1s",
          LOG_LEVEL: "warn",
          SMTP_EHLO_NAME: "bench.test",
          ...options.vars,
        },
      },
    ],
  });
}

export async function startBenchServices() {
  const gateway = await startUpstashGateway({ token: `bench-${randomUUID()}` });
  const sink = await startSmtpSink({ tls: "none" });
  const proxy = await startLatencyProxy({ host: "127.0.0.1", port: sink.port });
  return {
    gateway,
    sink,
    proxy,
    smtpUrl: `smtp+insecure://${proxy.host}:${proxy.port}`,
    async close() {
      await proxy.close();
      await sink.close();
      await gateway.close();
    },
  };
}
