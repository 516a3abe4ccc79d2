/**
 * The relay on the Upstash driver, end to end inside workerd: a 2xx means the message is in Redis,
 * an unreachable Redis means 503 with Retry-After (never a false 2xx), and delivery costs few
 * billed commands.
 */
import { beforeEach, describe, expect, it } from "vitest";
import { gatewayApi, redisSkipReason, sinkApi } from "../support/services.ts";
import { call, email, testEnv, tick, upstashEnv } from "../support/worker.ts";

const sink = sinkApi("plain");

describe.skipIf(Boolean(redisSkipReason()))(
  `relay on Upstash${redisSkipReason() ? ` (skipped: ${redisSkipReason()})` : ""}`,
  () => {
    beforeEach(async () => {
      await sink.reset();
    });

    it("stores the message before answering, and delivers it", async () => {
      const env = upstashEnv();
      const res = await call(env, "POST", "/emails", {
        json: email({ to: ["durable@example.com"] }),
      });
      expect(res.status).toBe(200);
      const [got] = await sink.waitFor(1);
      expect(got?.rcptTo).toEqual(["durable@example.com"]);
      // A fresh relay (a new isolate) reads the same record from Redis.
      const other = { ...env, IMMEDIATE_DELIVERY: "true" };
      const view = await call(other, "GET", `/emails/${res.body.id}`);
      expect(view.body.last_event).toBe("delivered");
    });

    it("answers 503 with Retry-After when Redis cannot be reached, and stores nothing", async () => {
      const env = testEnv({
        UPSTASH_REDIS_REST_URL: "http://127.0.0.1:9",
        UPSTASH_REDIS_REST_TOKEN: "x",
      });
      const res = await call(env, "POST", "/emails", { json: email() });
      expect(res.status).toBe(503);
      expect(res.headers.get("retry-after")).toMatch(/^\d+$/);
      expect(res.body.name).toBe("application_error");
      expect(await sink.messages()).toEqual([]);
    });

    it("uses at most 3 billed commands per message delivered through the scheduled run", async () => {
      const env = upstashEnv({ IMMEDIATE_DELIVERY: "false" });
      const gateway = gatewayApi();
      await call(env, "GET", "/health"); // build the relay before counting
      const batch = Array.from({ length: 25 }, (_, i) => email({ to: [`c${i}@example.com`] }));
      const before = await gateway.commands();
      const res = await call(env, "POST", "/emails/batch", { json: batch });
      expect(res.status).toBe(200);
      await tick(env);
      await sink.waitFor(25);
      const used = (await gateway.commands()) - before;
      // enqueue (1) + claim (1 per batch) + one commit per message, plus script loading once.
      expect(used / 25).toBeLessThanOrEqual(3);
    });
  },
);
