/**
 * The Upstash gateway (dev/upstash-gateway.ts) driven by the unmodified @upstash/redis client, with
 * real Redis behind it. What the relay's Upstash driver relies on is pinned here: byte-exact values
 * in both response encodings, pipelines and transactions with per-command errors, scripts, auth,
 * refusals, billing counts, and an outage that looks like one.
 */
import { Redis, type RedisConfigNodejs } from "@upstash/redis";
import { Redis as IORedis } from "ioredis";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  MAX_REQUEST_BYTES,
  MAX_RESPONSE_BYTES,
  startUpstashGateway,
  type UpstashGateway,
} from "../../dev/upstash-gateway.ts";
import { requireRedis, services, uniquePrefix } from "../support/services.ts";

const redisRequired = requireRedis();
const TOKEN = "gateway-test-token";

// Every code point from 0 to 255 plus astral characters: stored as UTF-8, these bytes are not
// valid UTF-8 text on their own, so only a faithful base64 path brings them back intact.
const BINARYISH = `${Array.from({ length: 256 }, (_, i) => String.fromCharCode(i)).join("")}\u{1F4E7}\uFFFD`;

describe.skipIf(redisRequired.skip)(`Upstash gateway${redisRequired.label}`, () => {
  let gateway: UpstashGateway;
  let direct: IORedis;
  let prefix: string;
  const client = (extra: Partial<RedisConfigNodejs> = {}) =>
    new Redis({ url: gateway.url, token: TOKEN, retry: false, ...extra });
  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${gateway.url}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });

  beforeAll(async () => {
    // The Redis the rest of the run uses (test/global-setup.ts), not a fixed address.
    const redisUrl = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
    gateway = await startUpstashGateway({ token: TOKEN, redisUrl });
    direct = new IORedis(redisUrl);
  });
  beforeEach(() => {
    prefix = uniquePrefix();
    gateway.resetCounters();
  });
  afterEach(async () => {
    const keys = await direct.keys(`${prefix}*`);
    if (keys.length) await direct.del(...keys);
  });
  afterAll(async () => {
    await gateway?.close();
    direct?.disconnect();
  });

  const key = (name: string) => `${prefix}${name}`;

  it.each([
    ["base64 (the client's default)", {}],
    ["no response encoding", { responseEncoding: false as const }],
  ])("round-trips ASCII, UTF-8 and binary-ish strings with %s", async (_name, options) => {
    const redis = client(options);
    const values = {
      ascii: "hello world",
      utf8: "héllo wörld ✓ — 你好 \u{1F600}",
      binaryish: BINARYISH,
      ok: "OK",
      empty: "",
    };
    for (const [name, value] of Object.entries(values)) {
      expect(await redis.set(key(name), value)).toBe("OK");
      expect(await redis.get(key(name))).toBe(value);
      // Redis holds exactly the UTF-8 bytes of what was sent.
      expect(await direct.getBuffer(key(name))).toEqual(Buffer.from(value, "utf8"));
    }
    expect(await redis.mget(...Object.keys(values).map(key))).toEqual(Object.values(values));
    expect(await redis.get(key("missing"))).toBeNull();
  });

  it("answers base64 strings, plain integers and null on the wire, leaving only OK unencoded", async () => {
    await direct.set(key("bin"), Buffer.from([0xff, 0x00, 0xc3, 0x28]));
    await direct.rpush(key("list"), "a", "é");
    const base64 = { "Upstash-Encoding": "base64" };

    expect(await (await post("/", ["SET", key("s"), "v"], base64)).json()).toEqual({
      result: "OK",
    });
    expect(await (await post("/", ["GET", key("bin")], base64)).json()).toEqual({
      result: Buffer.from([0xff, 0x00, 0xc3, 0x28]).toString("base64"),
    });
    expect(await (await post("/", ["INCR", key("n")], base64)).json()).toEqual({ result: 1 });
    expect(await (await post("/", ["GET", key("none")], base64)).json()).toEqual({ result: null });
    expect(await (await post("/", ["LRANGE", key("list"), 0, -1], base64)).json()).toEqual({
      result: [Buffer.from("a").toString("base64"), Buffer.from("é").toString("base64")],
    });
    // Without the header the same reply is plain text.
    expect(await (await post("/", ["LRANGE", key("list"), 0, -1])).json()).toEqual({
      result: ["a", "é"],
    });
  });

  it("stores objects as JSON and gives them back parsed, as the client does", async () => {
    const redis = client();
    const value = { id: "m-1", to: ["a@example.com"], attempts: 2, nested: { ok: true, n: null } };
    await redis.set(key("obj"), value);
    expect(await redis.get(key("obj"))).toEqual(value);
    expect(JSON.parse((await direct.get(key("obj"))) as string)).toEqual(value);
    await redis.hset(key("hash"), { a: 1, b: { c: "d" } });
    expect(await redis.hgetall(key("hash"))).toEqual({ a: 1, b: { c: "d" } });
  });

  it("runs a pipeline in order and reports a failing command next to the others' results", async () => {
    const redis = client();
    const p = redis.pipeline();
    p.set(key("p"), "1");
    p.incr(key("p"));
    p.hset(key("p"), { f: "x" }); // WRONGTYPE: p holds a string
    p.get(key("p"));
    const results = await p.exec({ keepErrors: true });
    expect(results.map((r) => r.result)).toEqual(["OK", 2, undefined, 2]);
    expect(results[2]?.error).toMatch(/^WRONGTYPE/);

    // Without keepErrors the client throws, naming the command that failed.
    const q = redis.pipeline();
    q.set(key("q"), "1");
    q.lpush(key("q"), "x");
    await expect(q.exec()).rejects.toThrow(/Command 2 \[ lpush \] failed: WRONGTYPE/);
    expect(await direct.get(key("q"))).toBe("1");
  });

  it("runs multi-exec as one transaction: results per command, runtime errors inline, queueing errors abort all", async () => {
    const redis = client();
    const tx = redis.multi();
    tx.set(key("t"), "1");
    tx.incr(key("t"));
    tx.lpush(key("t"), "x");
    tx.incr(key("t"));
    const results = await tx.exec({ keepErrors: true });
    expect(results.map((r) => r.result)).toEqual(["OK", 2, undefined, 3]);
    expect(results[2]?.error).toMatch(/^WRONGTYPE/);

    // A command Redis refuses while queueing (wrong arity) discards the whole transaction:
    // the SET before it is not applied.
    const res = await post("/multi-exec", [["SET", key("aborted"), "1"], ["INCR"]]);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(/^EXECABORT/);
    expect(await direct.exists(key("aborted"))).toBe(0);
  });

  it("runs Lua through createScript: EVALSHA first, EVAL when the script is not loaded", async () => {
    const redis = client();
    // A unique script, so it cannot already be in Redis's script cache.
    const script = redis.createScript<[string, string, number]>(
      `-- ${prefix}\nreturn {ARGV[1], redis.call('GET', KEYS[1]), redis.call('INCR', KEYS[1])}`,
    );
    await direct.set(key("counter"), "41");
    // The client parses "41" (a bulk string from GET) as JSON, so it arrives as a number.
    expect(await script.exec([key("counter")], ["é"])).toEqual(["é", 41, 42]);
    expect(await script.exec([key("counter")], ["b"])).toEqual(["b", 42, 43]);
    expect(gateway.commandLog().map((c) => c[0])).toEqual(["EVALSHA", "EVAL", "EVALSHA"]);
    expect(await script.eval([key("counter")], ["c"])).toEqual(["c", 43, 44]);
  });

  it("refuses a wrong or missing token with 401 and the client's Unauthorized error", async () => {
    const wrong = new Redis({ url: gateway.url, token: "not-the-token", retry: false });
    await expect(wrong.get("anything")).rejects.toThrow(/^Unauthorized/);
    const missing = await fetch(gateway.url, { method: "POST", body: '["PING"]' });
    expect(missing.status).toBe(401);
    expect(await missing.json()).toEqual({ error: "Unauthorized" });
    expect(gateway.commands()).toBe(0);
  });

  it("refuses blocking commands, WATCH, SUBSCRIBE and MONITOR, naming them", async () => {
    const redis = client();
    await expect(redis.exec(["BLPOP", key("l"), "1"])).rejects.toThrow(/'BLPOP'/);
    for (const command of [
      ["BRPOP", key("l"), "1"],
      ["BLMOVE", key("a"), key("b"), "LEFT", "RIGHT", "1"],
      ["BZPOPMIN", key("z"), "1"],
      ["XREAD", "BLOCK", "100", "STREAMS", key("x"), "$"],
      ["WATCH", key("w")],
      ["SUBSCRIBE", "channel"],
      ["MONITOR"],
    ]) {
      const res = await post("/", command);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: string }).error).toContain(`'${command[0]}`);
    }
    // XREAD without BLOCK is an ordinary command.
    await direct.xadd(key("x"), "1-1", "f", "v");
    expect(await redis.exec(["XREAD", "COUNT", "1", "STREAMS", key("x"), "0"])).toEqual([
      [key("x"), [["1-1", ["f", "v"]]]],
    ]);
  });

  it("answers Redis errors with HTTP 400 and Redis's text", async () => {
    await direct.set(key("s"), "text");
    const res = await post("/", ["INCR", key("s")]);
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: "ERR value is not an integer or out of range" });
    await expect(client().incr(key("s"))).rejects.toThrow(/not an integer/);
  });

  it("accepts the path form, with a body as the last argument", async () => {
    expect(await (await post(`/set/${encodeURIComponent(key("p"))}/v1`, "")).json()).toEqual({
      result: "OK",
    });
    expect(await (await post(`/set/${encodeURIComponent(key("b"))}`, "from body")).json()).toEqual({
      result: "OK",
    });
    const got = await fetch(`${gateway.url}/get/${encodeURIComponent(key("b"))}`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(await got.json()).toEqual({ result: "from body" });
    expect(await direct.get(key("p"))).toBe("v1");
  });

  it("refuses request bodies over 10 MB with 413", async () => {
    const big = "x".repeat(MAX_REQUEST_BYTES);
    const res = await post("/", ["SET", key("big"), big]);
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: string }).error).toMatch(/max request size/);
    expect(await direct.exists(key("big"))).toBe(0);
    // Just under the limit is fine.
    const ok = await post("/", ["SET", key("big"), "x".repeat(MAX_REQUEST_BYTES - 1024)]);
    expect(ok.status).toBe(200);
  });

  it("takes 10 MB as 10,000,000 bytes for a request", async () => {
    // Between 10,000,000 and 10 MiB: over the limit as Upstash may count it.
    const res = await post("/", ["SET", key("mib"), "x".repeat(10 * 1024 * 1024 - 1024)]);
    expect(res.status).toBe(413);
    expect(MAX_REQUEST_BYTES).toBe(10_000_000);
  });

  it("answers 400 with an error instead of a response over 10 MB, after running the command", async () => {
    // Base64 makes 8,000,000 stored bytes a 10,666,668-character result: over the limit.
    await direct.set(key("wide"), "y".repeat(8_000_000));
    const res = await post("/", ["GET", key("wide")], { "upstash-encoding": "base64" });
    expect(res.status).toBe(400);
    const { error } = (await res.json()) as { error: string };
    expect(error).toMatch(/^ERR max response size exceeded/);
    expect(error).toContain(String(MAX_RESPONSE_BYTES));
    // The client sees an error, not a value; the same bytes unencoded fit.
    await expect(client().get(key("wide"))).rejects.toThrow(/max response size/);
    const plain = await post("/", ["GET", key("wide")]);
    expect(plain.status).toBe(200);
    // A write whose answer is too large has still happened (Redis ran it before the answer).
    const script = `redis.call('SET', KEYS[1], 'ran'); return redis.call('GET', KEYS[2])`;
    const wrote = await post("/", ["EVAL", script, "2", key("ran"), key("wide")], {
      "upstash-encoding": "base64",
    });
    expect(wrote.status).toBe(400);
    expect(await direct.get(key("ran"))).toBe("ran");
  });

  it("counts billed commands as Upstash does: each one in a pipeline or transaction, a script as one", async () => {
    const redis = client();
    await redis.set(key("a"), "1");
    expect(gateway.commands()).toBe(1);

    const p = redis.pipeline();
    p.get(key("a"));
    p.get(key("b"));
    p.incr(key("c"));
    await p.exec();
    expect(gateway.commands()).toBe(4);

    const tx = redis.multi();
    tx.incr(key("c"));
    tx.incr(key("c"));
    await tx.exec();
    expect(gateway.commands()).toBe(6);

    await redis.eval(
      "return redis.call('INCR', KEYS[1]) + redis.call('INCR', KEYS[1])",
      [key("d")],
      [],
    );
    expect(gateway.commands()).toBe(7);

    // The client auto-pipelines concurrent calls into one request; each still counts.
    await Promise.all([redis.get(key("a")), redis.get(key("b")), redis.get(key("c"))]);
    expect(gateway.commands()).toBe(10);
    expect(gateway.commandLog().slice(-3)).toEqual([
      ["GET", key("a")],
      ["GET", key("b")],
      ["GET", key("c")],
    ]);

    gateway.resetCounters();
    expect(gateway.commands()).toBe(0);
    expect(gateway.commandLog()).toEqual([]);
  });

  it("looks unreachable while down and works again after up", async () => {
    const redis = client();
    await redis.set(key("k"), "before");
    await gateway.down();
    try {
      const error = await redis.get(key("k")).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(error).toBeInstanceOf(Error);
      expect(String((error?.cause as { code?: string } | undefined)?.code)).toBe("ECONNREFUSED");
    } finally {
      await gateway.up();
    }
    expect(await redis.get(key("k"))).toBe("before");
    expect(new URL(gateway.url).port).toBe(String(gateway.port));
  });

  it("drops a matching request unseen, or runs it and loses the reply, as many times as asked", async () => {
    // `retry: false` still makes a second attempt in @upstash/redis 1.x; zero retries is one try.
    const redis = client({ retry: { retries: 0 } });
    try {
      gateway.addFault({ contains: key("dropped"), mode: "drop" });
      gateway.addFault({ contains: key("lost"), command: "INCR", mode: "lose-reply", times: 2 });
      await expect(redis.set(key("dropped"), "x")).rejects.toThrow();
      // Dropped before Redis saw it: nothing was written.
      expect(await direct.get(key("dropped"))).toBeNull();
      // Lost replies: the client errs both times, yet each INCR ran.
      await expect(redis.incr(key("lost"))).rejects.toThrow();
      await expect(redis.incr(key("lost"))).rejects.toThrow();
      expect(await direct.get(key("lost"))).toBe("2");
      // Used up: the next one is answered, and other commands never matched.
      expect(await redis.incr(key("lost"))).toBe(3);
      expect(await redis.set(key("dropped"), "y")).toBe("OK");
      expect(gateway.clearFaults().map((f) => f.struck)).toEqual([1, 2]);
    } finally {
      gateway.clearFaults();
    }
  });
});

describe.skipIf(redisRequired.skip)(
  `the gateway started by global setup${redisRequired.label}`,
  () => {
    it("serves @upstash/redis with the provided URL and token", async () => {
      const { upstash } = services();
      const redis = new Redis({ url: upstash.url, token: upstash.token, retry: false });
      const k = `${uniquePrefix()}probe`;
      try {
        expect(await redis.set(k, "ok ✓")).toBe("OK");
        expect(await redis.get(k)).toBe("ok ✓");
      } finally {
        await redis.del(k);
      }
    });
  },
);
