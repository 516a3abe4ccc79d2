/**
 * The relay on the Upstash driver, end to end inside workerd: a 2xx means the message is in Redis,
 * an unreachable Redis means 503 with Retry-After (never a false 2xx), and delivery costs few
 * billed commands.
 */
import { beforeEach, describe, expect, it } from "vitest";
import { relayFor } from "../../src/runtime/isolate.ts";
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

    it("writes a scheduled run's outcomes in group commits: fewer commands than messages", async () => {
      const env = upstashEnv({ IMMEDIATE_DELIVERY: "false", DELIVERY_BATCH_SIZE: "50" });
      const gateway = gatewayApi();
      await call(env, "GET", "/health");
      const tag = crypto.randomUUID().slice(0, 8);
      const batch = Array.from({ length: 40 }, (_, i) =>
        email({ to: [`g${i}-${tag}@example.com`] }),
      );
      const res = await call(env, "POST", "/emails/batch", { json: batch });
      expect(res.status).toBe(200);
      await tick(env); // loads the scripts, so the run below counts only its own commands
      const more = Array.from({ length: 40 }, (_, i) =>
        email({ to: [`h${i}-${tag}@example.com`] }),
      );
      expect((await call(env, "POST", "/emails/batch", { json: more })).status).toBe(200);
      const before = await gateway.commands();
      const report = await relayFor(env).runScheduled();
      const used = (await gateway.commands()) - before;
      expect(report).toMatchObject({ messages: 40, delivered: 40, unrecorded: 0 });
      await sink.waitFor(80, 10_000, { to: `-${tag}@` });
      // One claim, then the outcomes: one command each without grouping (41 in all).
      expect(used).toBeLessThan(30);
    });
  },
);
