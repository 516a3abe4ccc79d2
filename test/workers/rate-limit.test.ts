/** Rate limits with both limiters: @upstash/ratelimit on real Redis (through the gateway) and the
 * in-memory store's copy of its sliding window. A contract both pass on a controlled clock (the
 * same requests get the same answers and the same header values), then the limits per key, form
 * visitor and hook through the real Worker entry with each store, and what a limited send costs in
 * Upstash commands. */
import { afterEach, describe, expect, it, vi } from "vitest";
import { memoryRateLimiter } from "../../src/auth/memory-rate-limit.ts";
import {
  type RateLimit,
  RateLimitError,
  type RateLimiter,
  rateLimitHeaders,
  upstashRateLimiter,
} from "../../src/auth/rate-limit.ts";
import { UpstashStore } from "../../src/store/upstash/store.ts";
import { gatewayApi, redisSkipReason, services, uniquePrefix } from "../support/services.ts";
import { ADMIN, call, email, type TestEnv, testEnv, upstashEnv } from "../support/worker.ts";

const skip = redisSkipReason();

/** A limiter and the clock it reads: set the time, then ask. */
interface Clocked {
  limiter: RateLimiter;
  at(ms: number): void;
}

function memoryLimiter(): Clocked {
  let now = 0;
  return {
    limiter: memoryRateLimiter(() => now),
    at: (ms) => {
      now = ms;
    },
  };
}

function upstashLimiter(): Clocked {
  // @upstash/ratelimit reads Date.now() itself; only Date is faked, so fetch and timers run.
  vi.useFakeTimers({ toFake: ["Date"] });
  const { upstash } = services();
  const store = new UpstashStore({ url: upstash.url, token: upstash.token, prefix: "unused:" });
  return {
    limiter: upstashRateLimiter(store.libraryClient(), uniquePrefix()),
    at: (ms) => vi.setSystemTime(ms),
  };
}

const LIMITERS: [string, () => Clocked, boolean][] = [
  ["the in-memory limiter", memoryLimiter, false],
  ["@upstash/ratelimit on Redis", upstashLimiter, Boolean(skip)],
];

/** What a client sees: allowed or not, and the headers of the answer. */
async function ask(c: Clocked, ms: number, identifier: string, limit: RateLimit) {
  c.at(ms);
  const r = await c.limiter.check(identifier, limit);
  const headers = r.allowed ? rateLimitHeaders(r, ms) : new RateLimitError(r, ms).headers;
  return { allowed: r.allowed, ...headers };
}

const W = 60_000;
const FOUR: RateLimit = { requests: 4, windowSeconds: 60 };
// The start of a fixed window (windows are aligned to the epoch), an hour ahead of real time.
const BASE = (Math.floor(Date.now() / 3_600_000) + 1) * 3_600_000;

const ok = (remaining: number, reset: number) => ({
  allowed: true,
  "ratelimit-limit": "4",
  "ratelimit-remaining": String(remaining),
  "ratelimit-reset": String(reset),
});
const refused = (reset: number) => ({
  allowed: false,
  "ratelimit-limit": "4",
  "ratelimit-remaining": "0",
  "ratelimit-reset": String(reset),
  "retry-after": String(Math.max(1, reset)),
});

afterEach(() => {
  vi.useRealTimers();
});

describe.each(LIMITERS)("limiter contract: %s", (_name, make, skipped) => {
  it.skipIf(skipped)(
    "weighs the previous window, refuses until the window's end once over, and counts each identifier and limit apart",
    async () => {
      const c = make();
      const t = (windows: number) => BASE + windows * W;
      const answers = [];
      for (let i = 0; i < 4; i++) answers.push(await ask(c, t(0.1), "a", FOUR));
      // 54 s to the window's end.
      expect(answers).toEqual([ok(3, 54), ok(2, 54), ok(1, 54), ok(0, 54)]);
      expect(await ask(c, t(0.2), "a", FOUR)).toEqual(refused(48));
      expect(await ask(c, t(0.2), "b", FOUR)).toEqual(ok(3, 48));
      expect(await ask(c, t(0.2), "a", { requests: 10, windowSeconds: 60 })).toEqual({
        ...ok(9, 48),
        "ratelimit-limit": "10",
      });
      expect(await ask(c, t(0.9), "a", FOUR)).toEqual(refused(6));
      // A quarter into the next window the previous four weigh floor(0.75 * 4) = 3.
      expect(await ask(c, t(1.25), "a", FOUR)).toEqual(ok(0, 45));
      expect(await ask(c, t(1.25), "a", FOUR)).toEqual(refused(45));
      // The weighted count is down to floor(0.4 * 4) + 1 = 2, but a refused identifier stays
      // refused until the window ends, and at its very end.
      expect(await ask(c, t(1.6), "a", FOUR)).toEqual(refused(24));
      expect(await ask(c, t(2), "a", FOUR)).toEqual(refused(0));
      // Refusals are not counted: the previous window holds the one allowed request.
      expect(await ask(c, t(2.5), "a", FOUR)).toEqual(ok(3, 30));
      // Two windows back no longer counts.
      expect(await ask(c, t(4.1), "a", FOUR)).toEqual(ok(3, 54));
      // b's window is long over.
      expect(await ask(c, t(4.1), "b", FOUR)).toEqual(ok(3, 54));
    },
  );
});

describe.skipIf(Boolean(skip))("limiter contract: both limiters together", () => {
  it("answer a long irregular sequence of requests alike", async () => {
    const memory = memoryLimiter();
    const upstash = upstashLimiter();
    // A fixed pseudo-random walk (LCG) over five windows, two identifiers and two limits.
    let seed = 20261;
    const next = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const limits: RateLimit[] = [FOUR, { requests: 7, windowSeconds: 60 }];
    let ms = BASE + 1234;
    const seen = { memory: [] as unknown[], upstash: [] as unknown[] };
    for (let i = 0; i < 80; i++) {
      ms += Math.floor(next() * 0.15 * W);
      const identifier = next() < 0.6 ? "a" : "b";
      const limit = limits[next() < 0.7 ? 0 : 1] as RateLimit;
      seen.memory.push(await ask(memory, ms, identifier, limit));
      seen.upstash.push(await ask(upstash, ms, identifier, limit));
    }
    expect(ms - BASE).toBeGreaterThan(4 * W);
    expect(seen.memory).toEqual(seen.upstash);
    // Not a trivial walk: both answers occur.
    const allowed = seen.memory.filter((a) => (a as { allowed: boolean }).allowed).length;
    expect(allowed).toBeGreaterThan(10);
    expect(allowed).toBeLessThan(70);
  });
});

// Windows below are an hour long: the sliding window weighs the previous fixed window less as the
// new one goes on, so requests that straddle a boundary of a short window can see the count drop,
// and a busy machine makes that likely. An hour makes it vanishingly rare.

const STORES: [string, (o?: TestEnv) => TestEnv, boolean][] = [
  ["the in-memory store", testEnv, false],
  ["Upstash", upstashEnv, Boolean(skip)],
];

describe.each(STORES)("rate limits with %s", (_name, makeEnv, skipped) => {
  it.skipIf(skipped)(
    "answers 429 with Retry-After and ratelimit headers once a key is over its limit",
    async () => {
      const env = makeEnv({ RATE_LIMIT: "3/1h", IMMEDIATE_DELIVERY: "false" });
      const results = [];
      for (let i = 0; i < 5; i++)
        results.push(await call(env, "POST", "/emails", { json: email() }));
      expect(results.map((r) => r.status)).toEqual([200, 200, 200, 429, 429]);
      expect(results[0]?.headers.get("ratelimit-limit")).toBe("3");
      expect(results[0]?.headers.get("ratelimit-remaining")).toBe("2");
      expect(Number(results[0]?.headers.get("ratelimit-reset"))).toBeLessThanOrEqual(3600);
      const limited = results[3];
      expect(limited?.body).toMatchObject({ statusCode: 429, name: "rate_limit_exceeded" });
      expect(Number(limited?.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      expect(Number(limited?.headers.get("retry-after"))).toBeLessThanOrEqual(3600);
      expect(limited?.headers.get("ratelimit-remaining")).toBe("0");
    },
  );

  it.skipIf(skipped)("counts each key separately and honours a key's own limit", async () => {
    const env = makeEnv({ RATE_LIMIT: "2/1h", IMMEDIATE_DELIVERY: "false" });
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

  it.skipIf(skipped)(
    "limits a form per visitor and as a whole, and a hook on its own",
    async () => {
      const env = makeEnv({ IMMEDIATE_DELIVERY: "false", HOOK_RATE_LIMIT: "1/1h" });
      const site = "https://www.example.com";
      const form = await call(env, "POST", "/forms", {
        json: {
          from: "Website <forms@example.com>",
          to: [`rl.${crypto.randomUUID().slice(0, 12)}@example.com`],
          fields: [{ name: "message", required: true }],
          allowed_origins: [site],
          min_fill_seconds: 0,
          ip_rate_limit: "1/1h",
          rate_limit: "2/1h",
        },
      });
      expect(form.status).toBe(201);
      const submit = (ip: string) =>
        call(env, "POST", `/f/${form.body.id}`, {
          token: null,
          json: { message: "Hello" },
          headers: { origin: site, "sec-fetch-mode": "cors", "cf-connecting-ip": ip },
        });
      expect((await submit("198.51.100.1")).status).toBe(200);
      const again = await submit("198.51.100.1");
      expect(again.status).toBe(429);
      expect(again.body.name).toBe("rate_limit_exceeded");
      expect(Number(again.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      expect((await submit("198.51.100.2")).status).toBe(200);
      // A third visitor has an allowance of its own, but the form's is spent.
      expect((await submit("198.51.100.3")).status).toBe(429);

      const hook = await call(env, "POST", "/hooks", {
        json: {
          from: "Hooks <hooks@example.com>",
          to: [`rl.${crypto.randomUUID().slice(0, 12)}@example.com`],
          subject: "Ping",
          text: "Ping",
          verify: { type: "url_secret" },
        },
      });
      expect(hook.status).toBe(201);
      const deliver = () =>
        call(env, "POST", new URL(hook.body.secret_url).pathname, { token: null, json: {} });
      expect((await deliver()).status).toBe(202);
      const limited = await deliver();
      expect(limited.status).toBe(429);
      expect(limited.body.name).toBe("rate_limit_exceeded");
    },
  );
});

describe("rate limit configuration", () => {
  it("refuses a malformed per-key limit, naming the field", async () => {
    const res = await call(testEnv(), "POST", "/api-keys", {
      json: { name: "x", rate_limit: "lots" },
    });
    expect(res.status).toBe(422);
    expect(res.body.message).toMatch(/^rate_limit: /);
  });
});

describe.skipIf(Boolean(skip))(`rate limit cost${skip ? ` (skipped: ${skip})` : ""}`, () => {
  it("costs one command per request, and none once a key is known to be over", async () => {
    const env = upstashEnv({ RATE_LIMIT: "2/1h", IMMEDIATE_DELIVERY: "false" });
    const prefix = env.REDIS_KEY_PREFIX as string;
    const gateway = gatewayApi();
    await call(env, "GET", "/health");
    const before = await gateway.commands(prefix);
    await call(env, "POST", "/emails", { json: email() });
    const oneSend = (await gateway.commands(prefix)) - before;
    // enqueue + rate limit + the domain list (src/domains.ts: read once per KEY_CACHE_SECONDS in
    // an isolate; the first call of a script may add one EVAL after a NOSCRIPT).
    expect(oneSend).toBeLessThanOrEqual(4);
    await call(env, "POST", "/emails", { json: email() });
    expect((await call(env, "POST", "/emails", { json: email() })).status).toBe(429);
    const atLimit = await gateway.commands(prefix);
    expect((await call(env, "POST", "/emails", { json: email() })).status).toBe(429);
    expect((await gateway.commands(prefix)) - atLimit).toBe(0);
  });
});
