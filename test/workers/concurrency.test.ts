/**
 * Two delivery runs at once (two cron ticks in different isolates, or a tick racing the attempt
 * made right after accepting) never send the same message twice: claims are atomic and leased.
 * Runs on the Upstash driver against real Redis; two relays stand for two isolates.
 */
import { describe, expect, it } from "vitest";
import { redisSkipReason, sinkApi } from "../support/services.ts";
import { call, email, tick, upstashEnv } from "../support/worker.ts";

const sink = sinkApi("plain");
const skip = redisSkipReason();

describe.skipIf(Boolean(skip))(
  `concurrent delivery runs${skip ? ` (skipped: ${skip})` : ""}`,
  () => {
    it("delivers each message once when two isolates run the cron at the same time", async () => {
      const tag = crypto.randomUUID().slice(0, 8);
      const a = upstashEnv({ IMMEDIATE_DELIVERY: "false", DELIVERY_BATCH_SIZE: "5" });
      // Same database and prefix, different isolate (a different env builds a second relay).
      const b = { ...a, LOG_LEVEL: "warn" };
      const to = Array.from({ length: 30 }, (_, i) => `twin-${tag}-${i}@example.com`);
      const res = await call(a, "POST", "/emails/batch", {
        json: to.map((t) => email({ to: [t] })),
      });
      expect(res.status).toBe(200);
      await Promise.all([tick(a), tick(b), tick(a), tick(b)]);
      const got = await sink.waitFor(30, 10_000, { to: `twin-${tag}-` });
      await new Promise((r) => setTimeout(r, 300));
      const all = await sink.messages({ to: `twin-${tag}-` });
      expect(all.length).toBe(30);
      expect(new Set(all.flatMap((m) => m.rcptTo)).size).toBe(30);
      expect(got.length).toBe(30);
    });

    it("does not let a cron run take a message the immediate attempt holds", async () => {
      const tag = crypto.randomUUID().slice(0, 8);
      const env = upstashEnv();
      const other = { ...env, LOG_LEVEL: "warn" };
      const sends = Array.from({ length: 10 }, (_, i) =>
        call(env, "POST", "/emails", { json: email({ to: [`race-${tag}-${i}@example.com`] }) }),
      );
      const ticks = Array.from({ length: 5 }, () => tick(other));
      await Promise.all([...sends, ...ticks]);
      await tick(other);
      await sink.waitFor(10, 10_000, { to: `race-${tag}-` });
      await new Promise((r) => setTimeout(r, 300));
      const all = await sink.messages({ to: `race-${tag}-` });
      expect(all.length).toBe(10);
    });
  },
);
