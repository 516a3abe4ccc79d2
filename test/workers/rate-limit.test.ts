/** Rate limits per key with @upstash/ratelimit on real Redis: 429 with Retry-After and Resend's
 * ratelimit-* headers, per-key limits, and what a limited send costs in Upstash commands. */
import { describe, expect, it } from "vitest";
import { gatewayApi, redisSkipReason } from "../support/services.ts";
import { ADMIN, call, email, testEnv, upstashEnv } from "../support/worker.ts";

const skip = redisSkipReason();

// Windows are an hour long: the sliding window weighs the previous fixed window less as the new
// one goes on, so requests that straddle a boundary of a short window can see the count drop,
// and a busy machine makes that likely. An hour makes it vanishingly rare.

describe.skipIf(Boolean(skip))(`rate limits${skip ? ` (skipped: ${skip})` : ""}`, () => {
  it("answers 429 with Retry-After and ratelimit headers once a key is over its limit", async () => {
    const env = upstashEnv({ RATE_LIMIT: "3/1h", IMMEDIATE_DELIVERY: "false" });
    const results = [];
    for (let i = 0; i < 5; i++) results.push(await call(env, "POST", "/emails", { json: email() }));
    expect(results.map((r) => r.status)).toEqual([200, 200, 200, 429, 429]);
    expect(results[0]?.headers.get("ratelimit-limit")).toBe("3");
    expect(results[0]?.headers.get("ratelimit-remaining")).toBe("2");
    const limited = results[3];
    expect(limited?.body).toMatchObject({ statusCode: 429, name: "rate_limit_exceeded" });
    expect(Number(limited?.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(Number(limited?.headers.get("retry-after"))).toBeLessThanOrEqual(3600);
    expect(limited?.headers.get("ratelimit-remaining")).toBe("0");
  });

  it("counts each key separately and honours a key's own limit", async () => {
    const env = upstashEnv({ RATE_LIMIT: "2/1h", IMMEDIATE_DELIVERY: "false" });
    const generous = (
      await call(env, "POST", "/api-keys", {
        json: { name: "bulk", permission: "sending_access", rate_limit: "5/1h" },
      })
    ).body.token;
    const statuses = [];
    for (let i = 0; i < 6; i++)
      statuses.push(
        (await call(env, "POST", "/emails", { token: generous, json: email() })).status,
      );
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
    // The admin key has its own window (it created the key above: one request used).
    expect((await call(env, "GET", "/api-keys", { token: ADMIN })).status).toBe(200);
    expect((await call(env, "GET", "/api-keys", { token: ADMIN })).status).toBe(429);
  });

  it("refuses a malformed per-key limit, naming the field", async () => {
    const res = await call(testEnv(), "POST", "/api-keys", {
      json: { name: "x", rate_limit: "lots" },
    });
    expect(res.status).toBe(422);
    expect(res.body.message).toMatch(/^rate_limit: /);
  });

  it("costs one command per request, and none once a key is known to be over", async () => {
    const env = upstashEnv({ RATE_LIMIT: "2/1h", IMMEDIATE_DELIVERY: "false" });
    const prefix = env.REDIS_KEY_PREFIX as string;
    const gateway = gatewayApi();
    await call(env, "GET", "/health");
    const before = await gateway.commands(prefix);
    await call(env, "POST", "/emails", { json: email() });
    const oneSend = (await gateway.commands(prefix)) - before;
    // enqueue + rate limit (the first call of a script may add one EVAL after a NOSCRIPT).
    expect(oneSend).toBeLessThanOrEqual(3);
    await call(env, "POST", "/emails", { json: email() });
    expect((await call(env, "POST", "/emails", { json: email() })).status).toBe(429);
    const atLimit = await gateway.commands(prefix);
    expect((await call(env, "POST", "/emails", { json: email() })).status).toBe(429);
    expect((await gateway.commands(prefix)) - atLimit).toBe(0);
  });
});
