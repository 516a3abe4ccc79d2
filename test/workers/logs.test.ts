/**
 * The request log (GET /logs, GET /logs/:id) through the Workers entry: what an entry holds, that
 * no secret, body or query string reaches the stored data (read raw from Redis), a sending key's
 * own view, the cap, what is not logged, and that a store failure while logging never fails or
 * delays the answer.
 */
import { Redis } from "@upstash/redis";
import { describe, expect, it, vi } from "vitest";
import { loadConfig } from "../../src/config.ts";
import { createApp } from "../../src/http/app.ts";
import { silentLogger } from "../../src/log.ts";
import { RequestLog } from "../../src/request-log.ts";
import { createRelay } from "../../src/runtime/compose.ts";
import { MemoryStore } from "../../src/store/memory/store.ts";
import { uuidV7Time } from "../../src/store/shared.ts";
import { requireRedis, services } from "../support/services.ts";
import { ADMIN, call, email, type TestEnv, testEnv, upstashEnv } from "../support/worker.ts";

const redis = requireRedis();
const UA = "logs-test/1.0";

async function sendingKey(env: TestEnv, name: string): Promise<{ id: string; token: string }> {
  const made = await call(env, "POST", "/api-keys", {
    json: { name, permission: "sending_access" },
  });
  expect(made.status).toBe(201);
  return made.body;
}

function send(env: TestEnv, token = ADMIN, subject = "Hello") {
  return call(env, "POST", "/emails", {
    token,
    json: email({ subject }),
    headers: { "user-agent": UA },
  });
}

const drivers: [string, () => TestEnv][] = [["memory", () => testEnv()]];
if (!redis.skip) drivers.push(["upstash", () => upstashEnv()]);

describe.each(drivers)("the request log (%s store)", (_name, makeEnv) => {
  it("lists a send with its endpoint, status, key, user agent and the email it created", async () => {
    const env = makeEnv();
    const sent = await send(env);
    expect(sent.status).toBe(200);
    const batch = await call(env, "POST", "/emails/batch", { json: [email(), email()] });
    const listed = await call(env, "GET", "/logs");
    expect(listed.status).toBe(200);
    expect(listed.body.object).toBe("list");
    expect(listed.body.has_more).toBe(false);
    const [batchLog, sendLog] = listed.body.data;
    expect(batchLog).toMatchObject({
      endpoint: "/emails/batch",
      method: "POST",
      response_status: 200,
      api_key_id: "admin",
      email_ids: batch.body.data.map((d: { id: string }) => d.id),
    });
    expect(sendLog).toMatchObject({
      endpoint: "/emails",
      response_status: 200,
      user_agent: UA,
      email_ids: [sent.body.id],
    });
    expect(Date.parse(sendLog.created_at)).toBeGreaterThan(Date.now() - 60_000);
    const one = await call(env, "GET", `/logs/${sendLog.id}`);
    expect(one.status).toBe(200);
    expect(one.body).toEqual({
      object: "log",
      ...sendLog,
      request_body: null,
      response_body: null,
    });
    // The reads themselves are logged too (the GET /logs/:id is now the newest).
    const again = await call(env, "GET", "/logs?limit=1");
    expect(again.body.data[0]).toMatchObject({ endpoint: `/logs/${sendLog.id}`, method: "GET" });
    expect(again.body.has_more).toBe(true);
  });

  it("pages with after and before, and names a bad parameter", async () => {
    const env = makeEnv();
    for (let i = 0; i < 4; i++) await call(env, "GET", `/emails/${crypto.randomUUID()}`);
    const first = await call(env, "GET", "/logs?limit=2");
    const ids = first.body.data.map((d: { id: string }) => d.id);
    const next = await call(env, "GET", `/logs?limit=2&after=${ids[1]}`);
    expect(next.body.data).toHaveLength(2);
    expect(next.body.data[0].id < ids[1]).toBe(true);
    const back = await call(env, "GET", `/logs?limit=2&before=${next.body.data[0].id}`);
    expect(back.body.data.map((d: { id: string }) => d.id)).toEqual(ids);
    for (const [q, field] of [
      ["limit=0", "limit"],
      ["limit=101", "limit"],
      ["after=nope", "after"],
      [`after=${ids[0]}&before=${ids[1]}`, "after"],
    ]) {
      const bad = await call(env, "GET", `/logs?${q}`);
      expect(bad.status, q).toBe(422);
      expect(bad.body.message.startsWith(`${field}:`), bad.body.message).toBe(true);
    }
    expect((await call(env, "GET", `/logs/${crypto.randomUUID()}`)).status).toBe(404);
    expect((await call(env, "GET", "/logs/not-an-id")).status).toBe(404);
  });

  it("shows a sending key only its own requests; another key's entry is not found", async () => {
    const env = makeEnv();
    const a = await sendingKey(env, "a");
    const b = await sendingKey(env, "b");
    const sentA = await send(env, a.token);
    const sentB = await send(env, b.token);
    const seenA = await call(env, "GET", "/logs", { token: a.token });
    expect(seenA.status).toBe(200);
    expect(seenA.body.data.every((d: { api_key_id: string }) => d.api_key_id === a.id)).toBe(true);
    expect(seenA.body.data.flatMap((d: { email_ids: string[] }) => d.email_ids)).toEqual([
      sentA.body.id,
    ]);
    const all = await call(env, "GET", "/logs");
    const bLog = all.body.data.find(
      (d: { email_ids: string[] }) => d.email_ids[0] === sentB.body.id,
    );
    expect(bLog.api_key_id).toBe(b.id);
    expect((await call(env, "GET", `/logs/${bLog.id}`, { token: a.token })).status).toBe(404);
    expect((await call(env, "GET", `/logs/${bLog.id}`, { token: b.token })).status).toBe(200);
    // A user agent that spells out another key's id does not put the entry in that key's view.
    await call(env, "GET", "/emails", {
      token: b.token,
      headers: { "user-agent": `x","keyId":"${a.id}","y":"` },
    });
    const stillA = await call(env, "GET", "/logs?limit=100", { token: a.token });
    expect(stillA.body.data.every((d: { api_key_id: string }) => d.api_key_id === a.id)).toBe(true);
    // The admin's key creations are the admin's, not a's.
    expect(
      all.body.data.filter((d: { endpoint: string }) => d.endpoint === "/api-keys"),
    ).toHaveLength(2);
  });

  it("keeps the newest REQUEST_LOG_MAX entries", async () => {
    const env = makeEnv();
    env.REQUEST_LOG_MAX = "10";
    for (let i = 0; i < 14; i++) await call(env, "GET", `/emails/${crypto.randomUUID()}`);
    const listed = await call(env, "GET", "/logs?limit=100");
    // 10 kept; this GET /logs is logged after its own answer.
    expect(listed.body.data).toHaveLength(10);
    expect(listed.body.has_more).toBe(false);
  });

  it("does not log requests without a valid key, public form posts, /health or 429s", async () => {
    const env = makeEnv();
    const made = await call(env, "POST", "/api-keys", {
      json: { name: "slow", permission: "sending_access", rate_limit: "2/1m" },
    });
    expect(made.status).toBe(201);
    const slow = made.body.token;
    expect((await call(env, "GET", "/health", { token: null })).status).toBe(200);
    expect((await call(env, "GET", "/emails/x", { token: null })).status).toBe(401);
    expect((await call(env, "GET", "/emails/x", { token: "re_wrong" })).status).toBe(403);
    expect((await call(env, "POST", `/f/${crypto.randomUUID()}`, { token: null })).status).toBe(
      404,
    );
    const unknownHook = `/hooks/${crypto.randomUUID()}`;
    expect((await call(env, "POST", unknownHook, { token: null })).status).toBe(404);
    for (let i = 0; i < 2; i++) {
      expect((await call(env, "GET", "/logs", { token: slow })).status).toBe(200);
    }
    expect((await call(env, "GET", "/logs", { token: slow })).status).toBe(429);
    const listed = await call(env, "GET", "/logs?limit=100");
    const seen = listed.body.data.map(
      (d: { endpoint: string; response_status: number }) => `${d.endpoint} ${d.response_status}`,
    );
    expect(seen).toEqual(["/logs 200", "/logs 200", "/api-keys 201"]);
  });

  it("stores no secret, body or query string: the hook's URL secret is redacted", async () => {
    const env = makeEnv();
    const key = await sendingKey(env, "secretive");
    const hook = await call(env, "POST", "/hooks", {
      json: {
        name: "h",
        from: "Hooks <hooks@example.com>",
        to: ["ops@example.com"],
        subject: "Hook {{title}}",
        text: "{{title}}",
        verify: { type: "url_secret" },
      },
    });
    expect(hook.status).toBe(201);
    const { id: hookId, secret } = hook.body;
    const delivered = await call(env, "POST", `/hooks/${hookId}/${secret}?token=q-secret-1`, {
      token: null,
      json: { title: "body-secret-2" },
    });
    expect(delivered.status).toBe(202);
    const rotated = await call(env, "POST", `/hooks/${hookId}/rotate`);
    expect(rotated.status).toBe(200);
    await call(env, "POST", "/emails?from=q-secret-3@example.com", {
      token: key.token,
      json: email({ subject: "subject-secret-4", text: "text-secret-5" }),
    });
    const listed = await call(env, "GET", "/logs?limit=100");
    const endpoints = listed.body.data.map((d: { endpoint: string }) => d.endpoint);
    expect(endpoints).toContain(`/hooks/${hookId}/[redacted]`);
    expect(endpoints).toContain(`/hooks/${hookId}/rotate`);
    const hookLog = listed.body.data.find((d: { endpoint: string }) =>
      d.endpoint.endsWith("[redacted]"),
    );
    expect(hookLog).toMatchObject({ api_key_id: null, response_status: 202 });
    expect(hookLog.email_ids).toEqual([delivered.body.id]);
    const secrets = [
      secret,
      rotated.body.secret,
      key.token,
      ADMIN,
      "q-secret-1",
      "body-secret-2",
      "q-secret-3",
      "subject-secret-4",
      "text-secret-5",
    ];
    const answered = JSON.stringify(listed.body);
    for (const s of secrets) expect(answered).not.toContain(s);
    if (env.UPSTASH_REDIS_REST_URL) {
      const { upstash } = services();
      const raw = new Redis({
        url: upstash.url,
        token: upstash.token,
        automaticDeserialization: false,
      });
      const prefix = env.REDIS_KEY_PREFIX;
      const stored = JSON.stringify([
        await raw.hgetall(`${prefix}rl:d`),
        await raw.zrange(`${prefix}rl:i`, 0, -1),
      ]);
      expect(stored).toContain(`/hooks/${hookId}/[redacted]`);
      for (const s of secrets) expect(stored).not.toContain(s);
      const ttl = await raw.pttl(`${prefix}rl:d`);
      expect(ttl).toBeGreaterThan(6 * 24 * 3_600_000);
    }
  });

  it("REQUEST_LOG=off logs nothing", async () => {
    const env = makeEnv();
    env.REQUEST_LOG = "off";
    await send(env);
    const listed = await call(env, "GET", "/logs");
    expect(listed.body.data).toEqual([]);
  });
});

describe("a store failure while logging", () => {
  class FailingLog extends MemoryStore {
    mode: "throw" | "hang" | "ok" = "throw";
    writes = 0;
    override appendRequestLogs(...args: Parameters<MemoryStore["appendRequestLogs"]>) {
      this.writes++;
      if (this.mode === "throw") return Promise.reject(new Error("store down"));
      if (this.mode === "hang") return new Promise<void>(() => {});
      return super.appendRequestLogs(...args);
    }
  }

  function harness() {
    const store = new FailingLog();
    const relay = createRelay(loadConfig({ ADMIN_TOKEN: ADMIN, RATE_LIMIT: "10000/1s" }), {
      store,
      log: silentLogger,
    });
    const background: Promise<unknown>[] = [];
    const app = createApp({
      relay: () => relay,
      background: (_c, p) => background.push(p),
      clientIp: () => "192.0.2.9",
    });
    const request = (method: string, path: string, body?: unknown) =>
      app.request(`https://relay.test${path}`, {
        method,
        headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    return { store, background, request };
  }

  it("answers as usual when the write throws, and the next request's write carries the entry", async () => {
    const { store, background, request } = harness();
    const res = await request("POST", "/emails", email());
    expect(res.status).toBe(200);
    const { id } = (await res.json()) as { id: string };
    await Promise.all(background);
    expect(store.writes).toBe(1);
    store.mode = "ok";
    expect((await request("GET", `/emails/${id}`)).status).toBe(200);
    await Promise.all(background);
    // One write (one command) carried both entries.
    expect(store.writes).toBe(2);
    const listed = (await (await request("GET", "/logs")).json()) as {
      data: { email_ids: string[] }[];
    };
    expect(listed.data).toHaveLength(2);
    expect(listed.data[1]?.email_ids).toEqual([id]);
  });

  it("answers at once when the write never returns", async () => {
    const { store, background, request } = harness();
    store.mode = "hang";
    const started = Date.now();
    const res = await request("POST", "/emails", email());
    expect(res.status).toBe(200);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(background).toHaveLength(1);
    await vi.waitFor(() => expect(store.writes).toBe(1));
  });
});

describe("request log ids", () => {
  it("are UUIDv7 and sort in the order one isolate made them, within a millisecond too", async () => {
    const store = new MemoryStore();
    const config = loadConfig({}).requestLog;
    const at = Date.now();
    const log = new RequestLog(store, config, () => at, silentLogger);
    const facts = {
      at,
      method: "GET",
      status: 200,
      keyId: "k",
      userAgent: null,
      emailIds: [],
      ms: 1,
    };
    for (let i = 0; i < 5; i++) await log.record({ ...facts, path: `/emails/${i}` });
    // The clock stepping back does not put an entry before earlier ones.
    await log.record({ ...facts, at: at - 5000, path: "/emails/5" });
    const { entries } = await log.list({ keyId: "k", permission: "full_access" }, { limit: 10 });
    expect(entries.map((e) => e.endpoint)).toEqual([5, 4, 3, 2, 1, 0].map((i) => `/emails/${i}`));
    for (const e of entries) {
      expect(e.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(uuidV7Time(e.id)).toBe(at);
    }
  });
});
