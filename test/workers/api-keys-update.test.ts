/**
 * PATCH /api-keys/:id (resend.apiKeys.update): rename, and change permission and policy only
 * within the calling key's own policy. Through the Workers entry with the SDK, on the in-memory
 * store and on Upstash (the compare-and-set script).
 */
import { beforeEach, describe, expect, it } from "vitest";
import { CLIENT_IP, sdk } from "../support/sdk.ts";
import { call, email, type TestEnv, testEnv, upstashEnv } from "../support/worker.ts";

const headers = { "cf-connecting-ip": CLIENT_IP };

async function createKey(env: TestEnv, body: Record<string, unknown>, token?: string) {
  const res = await call(env, "POST", "/api-keys", {
    token,
    headers,
    json: { name: "k", ...body },
  });
  expect(res.status).toBe(201);
  return res.body as { id: string; token: string };
}

async function listed(env: TestEnv, id: string) {
  const res = await call(env, "GET", "/api-keys");
  return res.body.data.find((k: { id: string }) => k.id === id);
}

for (const [driver, makeEnv] of [
  ["memory", testEnv],
  ["upstash", upstashEnv],
] as const) {
  describe(`PATCH /api-keys/:id (${driver})`, () => {
    let env: TestEnv;
    beforeEach(() => {
      env = makeEnv({ KEY_CACHE_SECONDS: "0" });
    });

    it("renames a key with resend.apiKeys.update and answers { object, id }", async () => {
      const key = await createKey(env, { permission: "sending_access" });
      const res = await sdk(env).apiKeys.update(key.id, { name: "renamed" });
      expect(res.error).toBeNull();
      expect(res.data).toEqual({ object: "api_key", id: key.id });
      const after = await listed(env, key.id);
      expect(after.name).toBe("renamed");
      expect(after.permission).toBe("sending_access");
      // The token still works: same digest.
      expect((await call(env, "POST", "/emails", { token: key.token, json: email() })).status).toBe(
        200,
      );
    });

    it("narrows a policy, and the key is held to it on its next request", async () => {
      const key = await createKey(env, { permission: "sending_access" });
      const res = await call(env, "PATCH", `/api-keys/${key.id}`, {
        json: { allowed_recipients: ["*@example.org"], rate_limit: "5/1m" },
      });
      expect(res.status).toBe(200);
      const sent = await call(env, "POST", "/emails", { token: key.token, json: email() });
      expect(sent.status).toBe(403);
      expect(sent.body.message).toMatch(/^to: ann@example\.com/);
      expect(await listed(env, key.id)).toMatchObject({
        allowed_recipients: ["*@example.org"],
        rate_limit: "5/1m",
      });
    });

    it("removes a restriction with null, and leaves other fields alone", async () => {
      const key = await createKey(env, { allowed_from: ["*@example.com"], rate_limit: "5/1m" });
      const res = await call(env, "PATCH", `/api-keys/${key.id}`, {
        json: { allowed_from: null },
      });
      expect(res.status).toBe(200);
      const after = await listed(env, key.id);
      expect(after.allowed_from).toBeUndefined();
      expect(after.rate_limit).toBe("5/1m");
    });

    it("answers 404 for an unknown id, and 422 naming the field for bad input", async () => {
      const missing = await sdk(env).apiKeys.update(crypto.randomUUID(), { name: "x" });
      expect(missing.error?.statusCode).toBe(404);
      const key = await createKey(env, {});
      for (const [json, field] of [
        [{}, "body"],
        [{ name: "" }, "name"],
        [{ allowed_from: ["not a pattern"] }, "allowed_from[0]"],
        [{ allowed_ips: ["300.1.1.1"] }, "allowed_ips[0]"],
        [{ rate_limit: "lots" }, "rate_limit"],
        [{ allowed_senders: ["*@example.com"] }, ""],
      ] as const) {
        const res = await call(env, "PATCH", `/api-keys/${key.id}`, { json });
        expect(res.status, JSON.stringify(json)).toBe(422);
        expect(res.body.message, JSON.stringify(json)).toContain(field);
      }
    });

    it("refuses a sending_access key", async () => {
      const key = await createKey(env, { permission: "sending_access" });
      const res = await sdk(env, key.token).apiKeys.update(key.id, { name: "mine now" });
      expect(res.error?.statusCode).toBe(401);
      expect(res.error?.name).toBe("restricted_api_key");
      expect((await listed(env, key.id)).name).toBe("k");
    });
  });
}

describe("PATCH /api-keys/:id by a narrow full_access key", () => {
  let env: TestEnv;
  let narrow: { id: string; token: string };
  const bounds = {
    allowed_from: ["*@example.com"],
    allowed_recipients: ["*@example.org"],
    max_message_bytes: 100_000,
    allowed_ips: ["203.0.113.0/24"],
    rate_limit: "100/1m",
  };
  beforeEach(async () => {
    env = testEnv({ KEY_CACHE_SECONDS: "0" });
    narrow = await createKey(env, { permission: "full_access", ...bounds });
  });

  it("edits a key it made, within its own bounds", async () => {
    const child = await createKey(env, { permission: "sending_access" }, narrow.token);
    const res = await sdk(env, narrow.token).apiKeys.update(child.id, { name: "child" });
    expect(res.error).toBeNull();
    const ok = await call(env, "PATCH", `/api-keys/${child.id}`, {
      token: narrow.token,
      headers,
      json: { allowed_from: ["news@example.com"], rate_limit: "5/1m", max_message_bytes: 50_000 },
    });
    expect(ok.status).toBe(200);
    expect(await listed(env, child.id)).toMatchObject({
      name: "child",
      allowed_from: ["news@example.com"],
      allowed_recipients: ["*@example.org"],
    });
  });

  it("refuses every widening with 403 naming the field, and changes nothing", async () => {
    const child = await createKey(env, { permission: "sending_access" }, narrow.token);
    const before = await listed(env, child.id);
    for (const [json, field] of [
      [{ allowed_from: null }, "allowed_from"],
      [{ allowed_from: [] }, "allowed_from"],
      [{ allowed_from: ["*@example.net"] }, "allowed_from[0]"],
      [{ allowed_from: ["*@*.example.com"] }, "allowed_from[0]"],
      [{ allowed_recipients: null }, "allowed_recipients"],
      [{ allowed_recipients: ["ann@example.com"] }, "allowed_recipients[0]"],
      [{ max_message_bytes: null }, "max_message_bytes"],
      [{ max_message_bytes: 100_001 }, "max_message_bytes"],
      [{ allowed_ips: null }, "allowed_ips"],
      [{ allowed_ips: [] }, "allowed_ips"],
      [{ allowed_ips: ["203.0.0.0/16"] }, "allowed_ips[0]"],
      [{ rate_limit: null }, "rate_limit"],
      [{ rate_limit: "101/1m" }, "rate_limit"],
      [{ rate_limit: "51/30s" }, "rate_limit"],
    ] as const) {
      const res = await call(env, "PATCH", `/api-keys/${child.id}`, {
        token: narrow.token,
        headers,
        json,
      });
      expect(res.status, JSON.stringify(json)).toBe(403);
      expect(res.body.message, JSON.stringify(json)).toMatch(
        new RegExp(`^${field.replace(/[[\]]/g, "\\$&")}: `),
      );
    }
    expect(await listed(env, child.id)).toEqual(before);
  });

  it("cannot widen itself", async () => {
    const res = await call(env, "PATCH", `/api-keys/${narrow.id}`, {
      token: narrow.token,
      headers,
      json: { allowed_recipients: null },
    });
    expect(res.status).toBe(403);
    expect(res.body.message).toMatch(/^allowed_recipients: /);
  });

  it("cannot edit a wider key, not even to rename it", async () => {
    const wide = await createKey(env, { permission: "sending_access" });
    const res = await sdk(env, narrow.token).apiKeys.update(wide.id, { name: "hijacked" });
    expect(res.error?.statusCode).toBe(403);
    expect(res.error?.message).toMatch(/^allowed_from: the key to change allows more/);
    const narrower = await call(env, "PATCH", `/api-keys/${wide.id}`, {
      token: narrow.token,
      headers,
      json: bounds,
    });
    // Narrowing it into its own bounds would be taking over a key it does not cover: refused too.
    expect(narrower.status).toBe(403);
    expect((await listed(env, wide.id)).name).toBe("k");
  });

  it("ADMIN_TOKEN may widen", async () => {
    const res = await call(env, "PATCH", `/api-keys/${narrow.id}`, {
      json: { allowed_recipients: null, rate_limit: null, permission: "sending_access" },
    });
    expect(res.status).toBe(200);
    const after = await listed(env, narrow.id);
    expect(after.allowed_recipients).toBeUndefined();
    expect(after.permission).toBe("sending_access");
  });
});

describe("key cache", () => {
  it("an isolate that cached the key sees the change after KEY_CACHE_SECONDS at the latest", async () => {
    // Here the change is made in the same isolate, which forgets the key at once.
    const env = testEnv({ KEY_CACHE_SECONDS: "60" });
    const key = await createKey(env, { permission: "sending_access" });
    expect((await call(env, "POST", "/emails", { token: key.token, json: email() })).status).toBe(
      200,
    );
    await call(env, "PATCH", `/api-keys/${key.id}`, {
      json: { allowed_recipients: ["*@example.org"] },
    });
    expect((await call(env, "POST", "/emails", { token: key.token, json: email() })).status).toBe(
      403,
    );
  });
});
