/**
 * Fan-out in the runtime it is built for: the Worker from wrangler.toml in workerd, on real Redis
 * through the Upstash-compatible gateway, delivering through a latency proxy (40 ms round trips)
 * to a real SMTP sink. A scheduled run whose backlog outlasts its budget starts helpers through the
 * DELIVERY_HELPER service binding to the Worker itself; the proxy counts the connections open at
 * once, which the shared cap (SMTP_HOST_MAX_CONNECTIONS) must bound, and the sink records every
 * message, which must arrive exactly once.
 */
import { Redis } from "@upstash/redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fillQueue } from "../../dev/fill-queue.ts";
import { type LatencyProxy, startLatencyProxy } from "../../dev/latency-proxy.ts";
import { type SmtpSink, startSmtpSink } from "../../dev/smtp-sink/index.ts";
import { type RelayWorker, startRelayWorker } from "../support/harness.ts";
import { redisSkipReason, services } from "../support/services.ts";

const ADMIN = `fanout-admin-${crypto.randomUUID()}`;
const skip = redisSkipReason();
const PER_INVOCATION = 2;
const CAP = 5;

interface Logged {
  event?: string;
  [field: string]: unknown;
}

describe.skipIf(Boolean(skip))(
  `fan-out to helper invocations in workerd${skip ? ` (skipped: ${skip})` : ""}`,
  () => {
    let sink: SmtpSink;
    let proxy: LatencyProxy;

    beforeAll(async () => {
      sink = await startSmtpSink({ tls: "none" });
      proxy = await startLatencyProxy({ host: "127.0.0.1", port: sink.port });
      proxy.setRtt(40);
    });

    afterAll(async () => {
      await proxy?.close();
      await sink?.close();
    });

    async function relayWith(vars: Record<string, string>) {
      const prefix = `e2e:fan:${crypto.randomUUID()}:`;
      const relay = await startRelayWorker({
        adminToken: ADMIN,
        sink: "plain",
        smtpUrl: `smtp+insecure://${proxy.host}:${proxy.port}`,
        vars: {
          REDIS_KEY_PREFIX: prefix,
          IMMEDIATE_DELIVERY: "false",
          SMTP_MAX_CONNECTIONS: String(PER_INVOCATION),
          DELIVERY_BATCH_SIZE: "10",
          // One second of claiming: a backlog of 150 at 40 ms outlasts it, so the run fans out.
          DELIVERY_RUN_SECONDS: "1",
          RATE_LIMIT: "100000/1s",
          LOG_LEVEL: "info",
          ...vars,
        },
      });
      return { relay, prefix };
    }

    const accept = (relay: RelayWorker, tag: string, count: number) =>
      fillQueue({ origin: relay.url, token: ADMIN, tag, count });

    const events = (relay: RelayWorker): Logged[] =>
      relay.harness.getLogs().flatMap((log) => {
        try {
          return [JSON.parse(String(log.message)) as Logged];
        } catch {
          return [];
        }
      });

    const tick = (relay: RelayWorker) =>
      relay.harness.getWorker().scheduled({ cron: "* * * * *", scheduledTime: new Date() });

    /** Runs cron ticks until the sink has every message of `tag` (or 20 ticks). */
    async function drain(relay: RelayWorker, tag: string, count: number) {
      for (
        let i = 0;
        i < 20 && sink.messages.filter((m) => m.rcptTo[0]?.startsWith(tag)).length < count;
        i++
      )
        await tick(relay);
      return sink.messages.filter((m) => m.rcptTo[0]?.startsWith(`${tag}-`));
    }

    it("starts helpers that deliver the backlog once each, within the shared connection cap, and gives the slots back", async () => {
      const { relay, prefix } = await relayWith({
        DELIVERY_FANOUT: "3",
        SMTP_HOST_MAX_CONNECTIONS: String(CAP),
      });
      try {
        const tag = `fan-${crypto.randomUUID().slice(0, 8)}`;
        await accept(relay, tag, 150);
        proxy.reset();
        await tick(relay);
        const logged = events(relay);
        const fanned = logged.filter((e) => e.event === "delivery.fanout");
        expect(fanned.length).toBeGreaterThan(0);
        const helperRuns = logged.filter((e) => e.event === "delivery.helper_run");
        // Each helper ran in its own invocation and sent part of the backlog.
        expect(helperRuns.length).toBeGreaterThan(0);
        expect(helperRuns.every((e) => Number(e.messages) > 0)).toBe(true);
        const run = logged.find((e) => e.event === "delivery.run");
        expect(run?.helpers).toBe(helperRuns.length);
        expect(run?.helpers_failed).toBe(0);
        const { peak } = proxy.counts();
        // More than one invocation's connections were open at once, never more than the cap.
        expect(peak).toBeGreaterThan(PER_INVOCATION);
        expect(peak).toBeLessThanOrEqual(CAP);

        // Every slot was given back: the next run may take the whole cap again.
        const { upstash } = services();
        const redis = new Redis({ url: upstash.url, token: upstash.token, enableTelemetry: false });
        expect(await redis.zcard(`${prefix}cs:${proxy.host}:${proxy.port}`)).toBe(0);

        const got = await drain(relay, tag, 150);
        const recipients = got.map((m) => m.rcptTo[0]);
        expect(new Set(recipients).size).toBe(150);
        expect(recipients).toHaveLength(150);
      } finally {
        await relay.close();
      }
    }, 120_000);

    it("stays in one invocation, within its own connections, with DELIVERY_FANOUT unset", async () => {
      const { relay } = await relayWith({});
      try {
        const tag = `one-${crypto.randomUUID().slice(0, 8)}`;
        await accept(relay, tag, 150);
        proxy.reset();
        await tick(relay);
        const logged = events(relay);
        expect(logged.filter((e) => e.event === "delivery.fanout")).toEqual([]);
        expect(logged.filter((e) => e.event === "delivery.helper_run")).toEqual([]);
        expect(proxy.counts().peak).toBeLessThanOrEqual(PER_INVOCATION);
        const got = await drain(relay, tag, 150);
        expect(new Set(got.map((m) => m.rcptTo[0])).size).toBe(150);
        expect(got).toHaveLength(150);
      } finally {
        await relay.close();
      }
    }, 120_000);
  },
);
