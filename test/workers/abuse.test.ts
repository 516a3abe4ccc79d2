/**
 * What garbage traffic costs: invalid API keys and posts to unknown form and hook ids, through the
 * real Worker against Redis behind the Upstash gateway, counting the gateway's billed commands
 * that name the test's key prefix. The same garbage again is answered from the isolate's negative
 * cache; fresh garbage is refused per client network once it failed FAILURE_LIMIT times.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { BoundedCache, FAILURE_LIMIT, FAILURE_WINDOW_MS } from "../../src/auth/abuse.ts";
import { gatewayApi, requireRedis } from "../support/services.ts";
import { type CallResult, call, email, type TestEnv, upstashEnv } from "../support/worker.ts";

const redis = requireRedis();
const gateway = gatewayApi();

describe.skipIf(redis.skip)(`garbage traffic${redis.label}`, () => {
  let env: TestEnv;
  let prefix: string;
  let tag: string;
  beforeEach(async () => {
    env = upstashEnv({ IMMEDIATE_DELIVERY: "false" });
    prefix = env.REDIS_KEY_PREFIX as string;
    tag = crypto.randomUUID().slice(0, 8);
    await call(env, "GET", "/health");
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  /** Commands `run` cost, counting those that name this test's prefix. */
  const cost = async (run: () => Promise<unknown>) => {
    const before = await gateway.commands(prefix);
    await run();
    return (await gateway.commands(prefix)) - before;
  };
  const from = (ip: string) => ({ "cf-connecting-ip": ip });
  const sendAs = (token: string, ip: string) =>
    call(env, "POST", "/emails", { token, json: email(), headers: from(ip) });
  const statuses = (results: CallResult[]) => results.map((r) => r.status);

  it("answers 50 requests with the same invalid key for at most one Upstash command", async () => {
    const results: CallResult[] = [];
    const used = await cost(async () => {
      for (let i = 0; i < 50; i++) results.push(await sendAs(`re_invalid_${tag}`, "198.51.100.1"));
    });
    expect(new Set(statuses(results))).toEqual(new Set([403]));
    expect(results[49]?.body.name).toBe("invalid_api_key");
    expect(used).toBeLessThanOrEqual(1);
  });

  it("refuses a network with 429 after FAILURE_LIMIT unknown keys, without a lookup, and no other network or cached key", async () => {
    const created = await call(env, "POST", "/api-keys", {
      json: { name: `k-${tag}`, permission: "sending_access" },
    });
    const good = created.body.token as string;
    // Used once before the flood: cached in the isolate.
    expect((await sendAs(good, "192.0.2.10")).status).toBe(200);

    const results: CallResult[] = [];
    const used = await cost(async () => {
      for (let i = 0; i < 50; i++)
        results.push(await sendAs(`re_random_${crypto.randomUUID()}`, "192.0.2.10"));
    });
    expect(statuses(results)).toEqual([
      ...Array(FAILURE_LIMIT).fill(403),
      ...Array(50 - FAILURE_LIMIT).fill(429),
    ]);
    const limited = results[FAILURE_LIMIT];
    expect(limited?.body.name).toBe("rate_limit_exceeded");
    expect(Number(limited?.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(Number(limited?.headers.get("retry-after"))).toBeLessThanOrEqual(
      FAILURE_WINDOW_MS / 1000,
    );
    // One lookup per failure up to the limit, none after it.
    expect(used).toBeLessThanOrEqual(FAILURE_LIMIT);

    expect((await sendAs(good, "192.0.2.10")).status).toBe(200);
    expect((await sendAs(`re_random_${crypto.randomUUID()}`, "192.0.2.11")).status).toBe(403);
    // The same /64 is one network; another /64 is not.
    for (let i = 0; i < FAILURE_LIMIT; i++)
      await sendAs(`re_random_${crypto.randomUUID()}`, `2001:db8:${tag.slice(0, 4)}:1::${i + 1}`);
    expect(
      (await sendAs(`re_random_${crypto.randomUUID()}`, `2001:db8:${tag.slice(0, 4)}:1::ffff`))
        .status,
    ).toBe(429);
    expect(
      (await sendAs(`re_random_${crypto.randomUUID()}`, `2001:db8:${tag.slice(0, 4)}:2::1`)).status,
    ).toBe(403);
  });

  it("lets a key work at once on the isolate that created it, even after its token was refused there", async () => {
    // The next token is made from these bytes, so it can be tried before it exists.
    const bytes = new Uint8Array(24).fill(7);
    const predicted = `re_${btoa(String.fromCharCode(...bytes))
      .replace(/\+/g, "-")
      .replace(/\//g, "_")
      .replace(/=+$/, "")}`;
    expect((await sendAs(predicted, "198.51.100.2")).status).toBe(403);
    const random = vi.spyOn(crypto, "getRandomValues").mockImplementation((array) => {
      if (array instanceof Uint8Array) array.set(bytes.subarray(0, array.length));
      return array;
    });
    const created = await call(env, "POST", "/api-keys", {
      json: { name: `k-${tag}`, permission: "sending_access" },
    });
    random.mockRestore();
    expect(created.body.token).toBe(predicted);
    expect((await sendAs(predicted, "198.51.100.2")).status).toBe(200);
  });

  it("answers 50 posts to an unknown form id for at most one Upstash command", async () => {
    const id = crypto.randomUUID();
    const results: CallResult[] = [];
    const used = await cost(async () => {
      for (let i = 0; i < 50; i++)
        results.push(
          await call(env, "POST", `/f/${id}`, {
            token: null,
            json: { message: "hi" },
            headers: { ...from("198.51.100.3"), origin: "https://site.example" },
          }),
        );
    });
    expect(new Set(statuses(results))).toEqual(new Set([404]));
    expect(used).toBeLessThanOrEqual(1);
  });

  it("answers 50 posts to an unknown hook id for at most one Upstash command", async () => {
    const id = crypto.randomUUID();
    const results: CallResult[] = [];
    const used = await cost(async () => {
      for (let i = 0; i < 50; i++)
        results.push(
          await call(env, "POST", `/hooks/${id}`, {
            token: null,
            json: {},
            headers: from("198.51.100.4"),
          }),
        );
    });
    expect(new Set(statuses(results))).toEqual(new Set([404]));
    expect(used).toBeLessThanOrEqual(1);
  });

  it("refuses a network with 429 after FAILURE_LIMIT distinct unknown hook and form ids, without a lookup", async () => {
    const results: CallResult[] = [];
    const used = await cost(async () => {
      for (let i = 0; i < 40; i++) {
        const path = i % 2 ? `/hooks/${crypto.randomUUID()}` : `/f/${crypto.randomUUID()}`;
        results.push(
          await call(env, "POST", path, { token: null, json: {}, headers: from("198.51.100.5") }),
        );
      }
    });
    expect(statuses(results)).toEqual([
      ...Array(FAILURE_LIMIT).fill(404),
      ...Array(40 - FAILURE_LIMIT).fill(429),
    ]);
    expect(used).toBeLessThanOrEqual(FAILURE_LIMIT);
  });
});

describe("the isolate's caches are bounded", () => {
  it("keeps at most its size in entries, evicting the oldest first, and forgets expired ones", () => {
    const cache = new BoundedCache<number>(3);
    for (let i = 0; i < 5; i++) cache.set(`k${i}`, i, 1_000);
    expect(cache.size).toBe(3);
    expect(cache.get("k0", 0)).toBeUndefined();
    expect(cache.get("k1", 0)).toBeUndefined();
    expect(cache.get("k4", 0)).toBe(4);
    expect(cache.get("k4", 1_000)).toBeUndefined();
    expect(cache.size).toBe(2);
  });
});
