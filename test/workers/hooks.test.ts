/**
 * Inbound hooks through the real Workers entry: real signatures (node:crypto's HMAC the way
 * GitHub documents it, the standardwebhooks package's Webhook.sign), messages read back from the
 * plain SMTP sink and parsed, the in-memory store for most tests and real Redis through the
 * Upstash gateway for the rate limit, the replay guard and the command count.
 */
import { createHmac, randomBytes } from "node:crypto";
import PostalMime from "postal-mime";
import { Webhook } from "standardwebhooks";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { FAILURE_LIMIT } from "../../src/auth/abuse.ts";
import { loadConfig } from "../../src/config.ts";
import { ConfigError } from "../../src/errors.ts";
import { createApp } from "../../src/http/app.ts";
import { IN_FLIGHT_TTL_MS } from "../../src/idempotency.ts";
import { silentLogger } from "../../src/log.ts";
import { createRelay } from "../../src/runtime/compose.ts";
import { MemoryStore } from "../../src/store/memory/store.ts";
import type { EnqueueOutcome, NewEntry } from "../../src/store/store.ts";
import { gatewayApi, requireRedis, sinkApi } from "../support/services.ts";
import {
  ADMIN,
  type CallResult,
  call,
  type TestEnv,
  testEnv,
  tick,
  upstashEnv,
} from "../support/worker.ts";

const sink = sinkApi("plain");
const redis = requireRedis();
let env: TestEnv;
let rcpt: string;

beforeEach(() => {
  env = testEnv();
  // Sinks are shared: each test sends to its own address and reads only its own messages.
  rcpt = `hook.${crypto.randomUUID().slice(0, 12)}@example.com`;
});

const PUSH = {
  ref: "refs/heads/main",
  repository: { full_name: "acme/widgets" },
  pusher: { name: "ann" },
  head_commit: { message: "Fix <script>alert(1)</script> & more" },
  commits: [
    { id: "a1b2c3", message: "First" },
    { id: "d4e5f6", message: "Second" },
  ],
};

function hookDefinition(verify: Record<string, unknown>, over: Record<string, unknown> = {}) {
  return {
    name: "test hook",
    from: "Hooks <hooks@example.com>",
    to: [rcpt],
    subject: "[{{repository.full_name}}] push by {{pusher.name}}",
    text: "{{#commits}}- {{id}} {{message}}\n{{/commits}}Missing: [{{no.such.field}}]",
    html: "<p>{{head_commit.message}}</p>",
    verify,
    ...over,
  };
}

async function createHook(
  verify: Record<string, unknown>,
  over: Record<string, unknown> = {},
  token: string = ADMIN,
): Promise<CallResult> {
  return call(env, "POST", "/hooks", { token, json: hookDefinition(verify, over) });
}

/** Posts to a hook as a webhook sender would: no API key, its own headers. */
function deliver(
  path: string,
  body: string,
  headers: Record<string, string> = {},
): Promise<CallResult> {
  return call(env, "POST", path, {
    token: null,
    body,
    headers: { "content-type": "application/json", ...headers },
  });
}

/** GitHub's documented signature: "sha256=" + hex HMAC-SHA256 of the raw body with the secret. */
function githubSignature(secret: string, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
}

function standardHeaders(
  secret: string,
  body: string,
  msgId = `msg_${crypto.randomUUID()}`,
  at = new Date(),
) {
  return {
    "webhook-id": msgId,
    "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
    "webhook-signature": new Webhook(secret).sign(msgId, at, body),
  };
}

async function received(count = 1) {
  return sink.waitFor(count, 10_000, { to: rcpt });
}

/** Lets any delivery that was (wrongly) queued reach the sink, then counts this test's mail. */
async function countReceived(): Promise<number> {
  await new Promise((r) => setTimeout(r, 300));
  return (await sink.messages({ to: rcpt })).length;
}

describe("GitHub-style HMAC hooks", () => {
  it("queues a push signed with X-Hub-Signature-256 and delivers it rendered, escaped for each part", async () => {
    const created = await createHook({ type: "hmac_sha256" });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      object: "hook",
      id: expect.any(String),
      url: `https://relay.test/hooks/${created.body.id}`,
      verify: { type: "hmac_sha256", header: "X-Hub-Signature-256", prefix: "sha256=" },
      secret: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
    });
    const { id, secret } = created.body;

    const body = JSON.stringify(PUSH);
    const res = await deliver(`/hooks/${id}`, body, {
      "x-github-event": "push",
      "x-hub-signature-256": githubSignature(secret, body),
    });
    expect(res.status).toBe(202);
    expect(res.body).toEqual({ id: expect.any(String) });

    const [got] = await received();
    expect(got?.mailFrom).toBe("hooks@example.com");
    expect(got?.rcptTo).toEqual([rcpt]);
    const parsed = await PostalMime.parse(got?.raw ?? "");
    expect(parsed.subject).toBe("[acme/widgets] push by ann");
    expect(parsed.text?.trimEnd()).toBe("- a1b2c3 First\n- d4e5f6 Second\nMissing: []");
    expect(parsed.html?.trimEnd()).toBe(
      "<p>Fix &lt;script&gt;alert(1)&lt;/script&gt; &amp; more</p>",
    );

    // The message is an ordinary email, owned by the hook (its key id).
    const email = await call(env, "GET", `/emails/${res.body.id}`);
    expect(email.status).toBe(200);
    expect(email.body.subject).toBe("[acme/widgets] push by ann");
  });

  it("accepts GitHub's form-encoded deliveries (payload=<json>), signed over the form body", async () => {
    const { id, secret } = (await createHook({ type: "hmac_sha256" })).body;
    const body = new URLSearchParams({ payload: JSON.stringify(PUSH) }).toString();
    const res = await deliver(`/hooks/${id}`, body, {
      "content-type": "application/x-www-form-urlencoded",
      "x-hub-signature-256": githubSignature(secret, body),
    });
    expect(res.status).toBe(202);
    const [got] = await received();
    expect((await PostalMime.parse(got?.raw ?? "")).subject).toBe("[acme/widgets] push by ann");
  });

  it("refuses a wrong secret, a tampered body, a missing or malformed header with 401 and queues nothing", async () => {
    const { id, secret } = (await createHook({ type: "hmac_sha256" })).body;
    const body = JSON.stringify(PUSH);
    const tampered = body.replace("ann", "eve");
    const attempts: Record<string, string>[] = [
      { "x-hub-signature-256": githubSignature("not-the-secret-at-all-123456", body) },
      { "x-hub-signature-256": githubSignature(secret, body).replace("sha256=", "sha1=") },
      { "x-hub-signature-256": githubSignature(secret, body).slice(0, 40) },
      {},
    ];
    for (const headers of attempts) {
      const res = await deliver(`/hooks/${id}`, body, headers);
      expect(res.status).toBe(401);
      expect(res.body).toEqual({
        statusCode: 401,
        name: "invalid_signature",
        message: "The request's signature or secret is missing or invalid",
      });
    }
    const res = await deliver(`/hooks/${id}`, tampered, {
      "x-hub-signature-256": githubSignature(secret, body),
    });
    expect(res.status).toBe(401);
    // A secret in the path is no proof for an HMAC hook.
    expect((await deliver(`/hooks/${id}/${secret}`, body)).status).toBe(401);

    expect(await countReceived()).toBe(0);
    const shown = await call(env, "GET", `/hooks/${id}`);
    expect(shown.body.rejected).toEqual({
      unauthorized: 6,
      stale_timestamp: 0,
      too_large: 0,
      invalid_body: 0,
      invalid_message: 0,
    });
  });

  it("takes a caller's secret, a custom header and base64 signatures (Shopify's style)", async () => {
    const secret = randomBytes(24).toString("hex");
    const created = await createHook({
      type: "hmac_sha256",
      header: "X-Shop-Hmac-Sha256",
      encoding: "base64",
      secret,
    });
    expect(created.status).toBe(201);
    expect(created.body.verify).toEqual({
      type: "hmac_sha256",
      header: "X-Shop-Hmac-Sha256",
      prefix: "",
      encoding: "base64",
    });
    const body = JSON.stringify(PUSH);
    const sig = createHmac("sha256", secret).update(body).digest("base64");
    expect(
      (await deliver(`/hooks/${created.body.id}`, body, { "x-shop-hmac-sha256": sig })).status,
    ).toBe(202);
    await received();
  });
});

describe("Standard Webhooks hooks", () => {
  it("queues a message signed with the standardwebhooks package", async () => {
    const created = await createHook({ type: "standard_webhooks" });
    expect(created.status).toBe(201);
    expect(created.body.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const body = JSON.stringify(PUSH);
    const res = await deliver(
      `/hooks/${created.body.id}`,
      body,
      standardHeaders(created.body.secret, body),
    );
    expect(res.status).toBe(202);
    const [got] = await received();
    expect((await PostalMime.parse(got?.raw ?? "")).subject).toBe("[acme/widgets] push by ann");
  });

  it("answers a replayed webhook-id with 200 and the first email's id, and queues nothing", async () => {
    const { id, secret } = (await createHook({ type: "standard_webhooks" })).body;
    const body = JSON.stringify(PUSH);
    const headers = standardHeaders(secret, body);
    const first = await deliver(`/hooks/${id}`, body, headers);
    expect(first.status).toBe(202);
    const again = await deliver(`/hooks/${id}`, body, headers);
    expect(again.status).toBe(200);
    expect(again.body).toEqual({ id: first.body.id, duplicate: true });
    // A sender's retry re-signs with a fresh timestamp but keeps the id: still a duplicate.
    const retry = await deliver(
      `/hooks/${id}`,
      body,
      standardHeaders(secret, body, headers["webhook-id"]),
    );
    expect(retry.status).toBe(200);
    expect(await countReceived()).toBe(1);
    expect((await call(env, "GET", `/hooks/${id}`)).body.duplicates).toBe(2);
  });

  it("refuses stale and future timestamps, wrong secrets, tampered bodies and missing headers with 401", async () => {
    const { id, secret } = (await createHook({ type: "standard_webhooks" })).body;
    const body = JSON.stringify(PUSH);
    const minutes = (n: number) => new Date(Date.now() + n * 60_000);
    const other = `whsec_${randomBytes(32).toString("base64")}`;
    const cases: [string, string, Record<string, string>][] = [
      ["6 minutes old", body, standardHeaders(secret, body, "msg_old", minutes(-6))],
      ["6 minutes ahead", body, standardHeaders(secret, body, "msg_new", minutes(6))],
      ["another secret", body, standardHeaders(other, body)],
      ["tampered body", body.replace("ann", "eve"), standardHeaders(secret, body)],
      ["no signature", body, { "webhook-id": "m1", "webhook-timestamp": String(Date.now()) }],
      ["nothing", body, {}],
    ];
    for (const [label, sent, headers] of cases) {
      const res = await deliver(`/hooks/${id}`, sent, headers);
      expect(res.status, label).toBe(401);
      expect(res.body.name, label).toBe("invalid_signature");
    }
    expect(await countReceived()).toBe(0);
    const { rejected } = (await call(env, "GET", `/hooks/${id}`)).body;
    expect(rejected.stale_timestamp).toBe(2);
    expect(rejected.unauthorized).toBe(4);
  });

  it("takes the sender's own whsec_ secret, and refuses one that is not a Standard Webhooks key", async () => {
    const secret = `whsec_${randomBytes(32).toString("base64")}`;
    const created = await createHook({ type: "standard_webhooks", secret });
    expect(created.status).toBe(201);
    expect(created.body.secret).toBe(secret);
    const body = "{}";
    expect(
      (await deliver(`/hooks/${created.body.id}`, body, standardHeaders(secret, body))).status,
    ).toBe(202);
    const bad = await createHook({ type: "standard_webhooks", secret: "whsec_c2hvcnQ=" });
    expect(bad.status).toBe(422);
    expect(bad.body.message).toMatch(/^verify\.secret: /);
  });
});

describe("URL secret and header token hooks", () => {
  it("accepts a POST to the secret URL only, and rotating replaces the secret at once", async () => {
    const created = await createHook({ type: "url_secret" });
    expect(created.status).toBe(201);
    const { id, secret, secret_url } = created.body;
    expect(secret_url).toBe(`https://relay.test/hooks/${id}/${secret}`);
    const path = new URL(secret_url).pathname;
    const body = JSON.stringify(PUSH);
    expect((await deliver(path, body)).status).toBe(202);
    expect((await deliver(`/hooks/${id}`, body)).status).toBe(401);
    expect((await deliver(`/hooks/${id}/${secret.slice(0, -1)}x`, body)).status).toBe(401);

    const rotated = await call(env, "POST", `/hooks/${id}/rotate`);
    expect(rotated.status).toBe(200);
    expect(rotated.body.secret).not.toBe(secret);
    expect((await deliver(path, body)).status).toBe(401);
    expect((await deliver(new URL(rotated.body.secret_url).pathname, body)).status).toBe(202);
    expect(await countReceived()).toBe(2);
  });

  it("checks a shared secret header, with a prefix such as Bearer", async () => {
    const created = await createHook({ type: "header" });
    expect(created.body.verify).toEqual({ type: "header", header: "X-Webhook-Token", prefix: "" });
    const { id, secret } = created.body;
    const body = JSON.stringify(PUSH);
    expect((await deliver(`/hooks/${id}`, body, { "x-webhook-token": secret })).status).toBe(202);
    expect((await deliver(`/hooks/${id}`, body, { "x-webhook-token": `${secret}x` })).status).toBe(
      401,
    );
    expect((await deliver(`/hooks/${id}`, body)).status).toBe(401);

    const token = `tok_${randomBytes(20).toString("hex")}`;
    const bearer = await createHook({
      type: "header",
      header: "Authorization",
      prefix: "Bearer ",
      secret: token,
    });
    expect(bearer.status).toBe(201);
    expect(
      (await deliver(`/hooks/${bearer.body.id}`, body, { authorization: `Bearer ${token}` }))
        .status,
    ).toBe(202);
    expect((await deliver(`/hooks/${bearer.body.id}`, body, { authorization: token })).status).toBe(
      401,
    );
    expect(await countReceived()).toBe(2);
  });
});

describe("receiving: bodies, templates and limits", () => {
  it("answers 404 for an unknown hook", async () => {
    const unknown = await deliver(`/hooks/${crypto.randomUUID()}`, "{}");
    expect(unknown.status).toBe(404);
    expect(unknown.body).toMatchObject({ statusCode: 404, name: "not_found" });
    expect((await deliver("/hooks/not-a-uuid", "{}")).status).toBe(404);
  });

  it("answers 400 for a body that is not JSON, 413 over HOOK_MAX_BODY_BYTES, and counts both", async () => {
    env = testEnv({ HOOK_MAX_BODY_BYTES: "2048" });
    const { id } = (await createHook({ type: "url_secret" })).body;
    const { secret } = (await call(env, "POST", `/hooks/${id}/rotate`)).body;
    const notJson = await deliver(`/hooks/${id}/${secret}`, "{not json");
    expect(notJson.status).toBe(400);
    expect(notJson.body.name).toBe("validation_error");
    const big = await deliver(`/hooks/${id}/${secret}`, JSON.stringify({ x: "y".repeat(3000) }));
    expect(big.status).toBe(413);
    expect(await countReceived()).toBe(0);
    const { rejected } = (await call(env, "GET", `/hooks/${id}`)).body;
    expect(rejected).toMatchObject({ invalid_body: 1, too_large: 1 });
  });

  it("renders missing fields empty and an empty body as no data, never an error", async () => {
    const created = await createHook(
      { type: "url_secret" },
      { subject: "Alert: {{alert.name}}{{^alert}} (no data){{/alert}}", html: undefined },
    );
    const res = await deliver(new URL(created.body.secret_url).pathname, "");
    expect(res.status).toBe(202);
    const [got] = await received();
    const parsed = await PostalMime.parse(got?.raw ?? "");
    expect(parsed.subject).toBe("Alert: (no data)");
    expect(parsed.text?.trimEnd()).toBe("Missing: []");
  });

  it("keeps a subject value with CR/LF on one line: it cannot add a header", async () => {
    const created = await createHook({ type: "url_secret" }, { subject: "Alert {{title}}" });
    const body = JSON.stringify({ title: "x\r\nBcc: leak@evil.example\r\nX-Injected: 1" });
    const res = await deliver(new URL(created.body.secret_url).pathname, body);
    expect(res.status).toBe(202);
    const [got] = await received();
    expect(got?.rcptTo).toEqual([rcpt]);
    const raw = got?.raw ?? "";
    expect(raw).not.toMatch(/^Bcc:/im);
    expect(raw).not.toMatch(/^X-Injected:/im);
    expect((await PostalMime.parse(raw)).subject).toBe(
      "Alert x Bcc: leak@evil.example X-Injected: 1",
    );
  });
});

describe("more receiving rules", () => {
  it("takes any JSON value as the payload: null, a number, a string, a list", async () => {
    const created = await createHook(
      { type: "url_secret" },
      { subject: "Got {{#.}}[{{.}}]{{/.}}{{x}}", html: undefined },
    );
    const path = new URL(created.body.secret_url).pathname;
    for (const body of ["null", "5", '"word"', "[1,2]"]) {
      expect((await deliver(path, body)).status, body).toBe(202);
    }
    const got = await received(4);
    const subjects = await Promise.all(
      got.map(async (m) => (await PostalMime.parse(m.raw)).subject),
    );
    expect(subjects.sort()).toEqual(["Got", "Got [1][2]", "Got [5]", "Got [word]"]);
  });

  it("refuses with 422 a rendered subject whose encoded word hides a line break, and counts it", async () => {
    const created = await createHook({ type: "url_secret" }, { subject: "Alert {{title}}" });
    const path = new URL(created.body.secret_url).pathname;
    const res = await deliver(
      path,
      JSON.stringify({ title: "=?utf-8?q?a=0D=0ABcc:_x@evil.example?=" }),
    );
    expect(res.status).toBe(422);
    expect(res.body.message).toMatch(/^subject: /);
    expect(await countReceived()).toBe(0);
    const { rejected } = (await call(env, "GET", `/hooks/${created.body.id}`)).body;
    expect(rejected.invalid_message).toBe(1);
  });

  it("takes requests only from the hook's allowed_ips, when it has them", async () => {
    const created = await createHook(
      { type: "url_secret" },
      { allowed_ips: ["192.30.252.0/22", "2606:50c0::/32"] },
    );
    expect(created.body.allowed_ips).toEqual(["192.30.252.0/22", "2606:50c0::/32"]);
    const path = new URL(created.body.secret_url).pathname;
    const from = (ip: string) => deliver(path, "{}", { "cf-connecting-ip": ip });
    expect((await from("192.30.253.7")).status).toBe(202);
    expect((await from("2606:50c0:8000::154")).status).toBe(202);
    const outside = await from("203.0.113.9");
    expect(outside.status).toBe(401);
    expect(outside.body.name).toBe("invalid_signature");
    expect((await deliver(path, "{}")).status).toBe(401);
    expect(await countReceived()).toBe(2);

    const bad = await createHook({ type: "url_secret" }, { allowed_ips: ["10.0.0.0/99"] });
    expect(bad.status).toBe(422);
    expect(bad.body.message).toMatch(/^allowed_ips\[0\]: /);
    const cleared = await call(env, "PATCH", `/hooks/${created.body.id}`, {
      json: { allowed_ips: null },
    });
    expect(cleared.body.allowed_ips).toBeNull();
    expect((await from("203.0.113.9")).status).toBe(202);
  });
});

describe("a failed queueing keeps the webhook-id until its claim lapses", () => {
  /** The in-memory store, whose next `enqueue` fails as an unreachable Redis would. */
  class FailingOnceStore extends MemoryStore {
    failNext = false;
    override async enqueue(entries: NewEntry[], ...rest: unknown[]): Promise<EnqueueOutcome> {
      if (this.failNext) {
        this.failNext = false;
        throw new Error("connection refused");
      }
      return (super.enqueue as (...a: unknown[]) => Promise<EnqueueOutcome>).call(
        this,
        entries,
        ...rest,
      );
    }
  }

  it("answers 503 with Retry-After when the outcome is unknown, 409 until the claim lapses, then takes the sender's retry", async () => {
    const clock = { t: Date.now() };
    const store = new FailingOnceStore({ now: () => clock.t });
    const relay = createRelay(loadConfig({ ADMIN_TOKEN: ADMIN }), {
      store,
      log: silentLogger,
      now: () => clock.t,
    });
    const app = createApp({ relay: () => relay, background: () => {}, clientIp: () => undefined });
    const request = (path: string, init: RequestInit) =>
      app.request(`https://relay.test${path}`, init);
    const created = await request("/hooks", {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
      body: JSON.stringify(hookDefinition({ type: "standard_webhooks" })),
    });
    const { id, secret } = (await created.json()) as { id: string; secret: string };
    const body = JSON.stringify(PUSH);
    const headers = { "content-type": "application/json", ...standardHeaders(secret, body) };

    store.failNext = true;
    const failed = await request(`/hooks/${id}`, { method: "POST", headers, body });
    expect(failed.status).toBe(503);
    expect(Number(failed.headers.get("retry-after"))).toBe(IN_FLIGHT_TTL_MS / 1000);
    // The store cannot say the write did not happen: the id stays claimed, not freed.
    const early = await request(`/hooks/${id}`, { method: "POST", headers, body });
    expect(early.status).toBe(409);
    expect(Number(early.headers.get("retry-after"))).toBe(IN_FLIGHT_TTL_MS / 1000);
    clock.t += IN_FLIGHT_TTL_MS;
    const retried = await request(`/hooks/${id}`, { method: "POST", headers, body });
    expect(retried.status).toBe(202);
    const { id: emailId } = (await retried.json()) as { id: string };
    expect(await store.get(emailId)).not.toBeNull();
    const replay = await request(`/hooks/${id}`, { method: "POST", headers, body });
    expect(replay.status).toBe(200);
    expect(await replay.json()).toEqual({ id: emailId, duplicate: true });
  });
});

describe("managing hooks", () => {
  it("lets only full_access keys manage hooks", async () => {
    const sending = await call(env, "POST", "/api-keys", {
      json: { name: "app", permission: "sending_access" },
    });
    const token = sending.body.token;
    const create = await createHook({ type: "url_secret" }, {}, token);
    expect(create.status).toBe(401);
    expect(create.body.name).toBe("restricted_api_key");
    expect((await call(env, "GET", "/hooks", { token })).body.name).toBe("restricted_api_key");
    const { id } = (await createHook({ type: "url_secret" })).body;
    for (const [method, path] of [
      ["GET", `/hooks/${id}`],
      ["PATCH", `/hooks/${id}`],
      ["POST", `/hooks/${id}/rotate`],
      ["DELETE", `/hooks/${id}`],
    ] as const) {
      const res = await call(env, method, path, {
        token,
        ...(method === "GET" || method === "DELETE" ? {} : { json: {} }),
      });
      expect(res.status, `${method} ${path}`).toBe(401);
      expect(res.body.name).toBe("restricted_api_key");
    }
    expect((await call(env, "GET", "/hooks", { token: null })).body.name).toBe("missing_api_key");
  });

  it("holds a hook to the creating key's policy, at creation and for every message", async () => {
    const key = await call(env, "POST", "/api-keys", {
      json: {
        name: "ops",
        allowed_from: ["*@example.com"],
        allowed_recipients: ["*@example.com"],
        max_message_bytes: 4000,
      },
    });
    const token = key.body.token;
    const outside = await createHook({ type: "url_secret" }, { to: ["x@elsewhere.net"] }, token);
    expect(outside.status).toBe(403);
    expect(outside.body.message).toMatch(/^to: x@elsewhere\.net/);
    const sender = await createHook({ type: "url_secret" }, { from: "ceo@example.org" }, token);
    expect(sender.status).toBe(403);
    expect(sender.body.message).toMatch(/^from: /);

    const ok = await createHook({ type: "url_secret" }, { text: "{{body}}" }, token);
    expect(ok.status).toBe(201);
    const path = new URL(ok.body.secret_url).pathname;
    const big = await deliver(path, JSON.stringify({ body: "z ".repeat(5000) }));
    expect(big.status).toBe(413);
    expect(big.body.message).toMatch(/this API key's limit of 4000/);
    expect((await deliver(path, JSON.stringify({ body: "small" }))).status).toBe(202);
    expect(await countReceived()).toBe(1);
  });

  it("refuses bad definitions naming the field", async () => {
    const cases: [Record<string, unknown>, Record<string, unknown>, RegExp][] = [
      [{ type: "url_secret" }, { html: "<p>{{{raw}}}</p>" }, /^html: may not use \{\{\{raw\}\}\}/],
      [{ type: "url_secret" }, { subject: "{{#a}}" }, /^subject: is not a valid template/],
      [{ type: "url_secret" }, { text: undefined, html: undefined }, /^text: give a text/],
      [{ type: "url_secret" }, { to: ["not an address"] }, /^to/],
      [{ type: "url_secret" }, { rate_limit: "lots" }, /^rate_limit: /],
      [{ type: "hmac_sha256", secret: "short" }, {}, /^verify\.secret: /],
      [{ type: "header", header: "Content-Type" }, {}, /^verify\.header: /],
      [{ type: "url_secret", secret: "mine" }, {}, /^verify/],
      [{ type: "carrier_pigeon" }, {}, /^verify/],
    ];
    for (const [verify, over, message] of cases) {
      const res = await createHook(verify, over);
      expect(res.status, JSON.stringify([verify, over])).toBe(422);
      expect(res.body.message, JSON.stringify([verify, over])).toMatch(message);
    }
    const missing = await call(env, "POST", "/hooks", {
      json: { from: "a@example.com", to: [rcpt], subject: "x", text: "y" },
    });
    expect(missing.status).toBe(422);
    expect(missing.body).toMatchObject({ name: "missing_required_field", message: /^verify/ });
  });

  it("lists, reads, changes and deletes hooks; no answer but create, rotate and a new verify shows a secret", async () => {
    const created = await createHook({ type: "hmac_sha256" });
    const { id, secret } = created.body;
    const list = await call(env, "GET", "/hooks");
    expect(list.status).toBe(200);
    expect(list.body).toMatchObject({ object: "list", has_more: false });
    expect(list.body.data.map((h: { id: string }) => h.id)).toEqual([id]);
    const shown = await call(env, "GET", `/hooks/${id}`);
    for (const res of [list, shown]) {
      expect(JSON.stringify(res.body)).not.toContain(secret);
      expect(JSON.stringify(res.body)).not.toMatch(/"secret/);
    }

    const patched = await call(env, "PATCH", `/hooks/${id}`, {
      json: { subject: "Changed {{ref}}", html: null },
    });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ subject: "Changed {{ref}}", html: null });
    expect(patched.body.secret).toBeUndefined();
    // The secret survives an edit that does not touch verify.
    const body = JSON.stringify(PUSH);
    const res = await deliver(`/hooks/${id}`, body, {
      "x-hub-signature-256": githubSignature(secret, body),
    });
    expect(res.status).toBe(202);
    const [got] = await received();
    expect((await PostalMime.parse(got?.raw ?? "")).subject).toBe("Changed refs/heads/main");

    const switched = await call(env, "PATCH", `/hooks/${id}`, {
      json: { verify: { type: "standard_webhooks" } },
    });
    expect(switched.status).toBe(200);
    expect(switched.body.secret).toMatch(/^whsec_/);
    expect(
      (
        await deliver(`/hooks/${id}`, body, {
          "x-hub-signature-256": githubSignature(secret, body),
        })
      ).status,
    ).toBe(401);

    const deleted = await call(env, "DELETE", `/hooks/${id}`);
    expect(deleted.body).toEqual({ object: "hook", id, deleted: true });
    expect((await call(env, "GET", `/hooks/${id}`)).status).toBe(404);
    expect((await call(env, "DELETE", `/hooks/${id}`)).status).toBe(404);
    expect(
      (await deliver(`/hooks/${id}`, body, standardHeaders(switched.body.secret, body))).status,
    ).toBe(404);
  });

  it("shows which key created a hook and which saved it last, so a revoked key's hooks can be found", async () => {
    const { id } = (await createHook({ type: "url_secret" })).body;
    const editor = (
      await call(env, "POST", "/api-keys", { json: { name: "editor", permission: "full_access" } })
    ).body;
    const patched = await call(env, "PATCH", `/hooks/${id}`, {
      token: editor.token,
      json: { subject: "Edited" },
    });
    expect(patched.status).toBe(200);
    const shown = (await call(env, "GET", `/hooks/${id}`)).body;
    expect(shown).toMatchObject({ created_by: "admin", updated_by: editor.id });
    const listed = (await call(env, "GET", "/hooks")).body.data;
    expect(listed.find((h: { id: string }) => h.id === id)).toMatchObject({
      updated_by: editor.id,
    });
  });

  it("documents the hook routes in /openapi.json", async () => {
    const res = await call(env, "GET", "/openapi.json", { token: null });
    expect(Object.keys(res.body.paths)).toEqual(
      expect.arrayContaining(["/hooks", "/hooks/{id}", "/hooks/{id}/rotate"]),
    );
  });
});

describe("configuration", () => {
  it("defaults to 60 requests a minute and 1 MiB bodies per hook", () => {
    expect(loadConfig({}).hooks).toEqual({
      rateLimit: { requests: 60, windowSeconds: 60 },
      maxBodyBytes: 1024 * 1024,
    });
  });

  it("names HOOK_RATE_LIMIT and HOOK_MAX_BODY_BYTES when they are wrong", () => {
    for (const [variable, value] of [
      ["HOOK_RATE_LIMIT", "lots"],
      ["HOOK_MAX_BODY_BYTES", "100"],
      ["HOOK_MAX_BODY_BYTES", String(26 * 1024 * 1024)],
    ] as const) {
      expect(() => loadConfig({ [variable]: value }), `${variable}=${value}`).toThrow(ConfigError);
      try {
        loadConfig({ [variable]: value });
      } catch (err) {
        expect((err as ConfigError).variable).toBe(variable);
      }
    }
  });
});

describe("secrets stay out of logs", () => {
  const spies: ReturnType<typeof vi.spyOn>[] = [];
  afterEach(() => {
    for (const spy of spies.splice(0)) spy.mockRestore();
  });

  it("logs hook events without any hook secret, signature or payload value", async () => {
    const lines: string[] = [];
    for (const method of ["log", "info", "warn", "error", "debug"] as const) {
      spies.push(
        vi.spyOn(console, method).mockImplementation((...args: unknown[]) => {
          lines.push(args.map(String).join(" "));
        }),
      );
    }
    env = testEnv({ LOG_LEVEL: "info" });
    const body = JSON.stringify({ ...PUSH, pusher: { name: "PAYLOAD-MARKER" } });
    const hmac = (await createHook({ type: "hmac_sha256" })).body;
    const std = (await createHook({ type: "standard_webhooks" })).body;
    const url = (await createHook({ type: "url_secret" })).body;
    const header = (await createHook({ type: "header" })).body;
    const signature = githubSignature(hmac.secret, body);
    const stdHeaders = standardHeaders(std.secret, body);
    await deliver(`/hooks/${hmac.id}`, body, { "x-hub-signature-256": signature });
    await deliver(`/hooks/${hmac.id}`, body, {
      "x-hub-signature-256": `${signature.slice(0, -2)}00`,
    });
    await deliver(`/hooks/${std.id}`, body, stdHeaders);
    await deliver(`/hooks/${std.id}`, body, stdHeaders);
    await deliver(new URL(url.secret_url).pathname, body);
    await deliver(`/hooks/${url.id}/wrong-${url.secret}`, body);
    await deliver(`/hooks/${header.id}`, body, { "x-webhook-token": header.secret });
    await call(env, "POST", `/hooks/${hmac.id}/rotate`);
    await received(4);

    const log = lines.join("\n");
    expect(log).toContain("hook.created");
    expect(log).toContain("hook.rejected");
    expect(log).toContain("hook.duplicate");
    expect(log).toContain("email.accepted");
    for (const secret of [
      hmac.secret,
      std.secret,
      std.secret.slice("whsec_".length),
      url.secret,
      header.secret,
      signature.slice("sha256=".length),
      stdHeaders["webhook-signature"].slice(3),
      "PAYLOAD-MARKER",
    ]) {
      expect(log).not.toContain(secret);
    }
  });
});

describe.skipIf(redis.skip)(`on Redis through the Upstash gateway${redis.label}`, () => {
  it("rate-limits each hook on its own, with Retry-After", async () => {
    env = upstashEnv({ HOOK_RATE_LIMIT: "2/1h" });
    const a = (await createHook({ type: "url_secret" })).body;
    const b = (await createHook({ type: "url_secret" })).body;
    const pathA = new URL(a.secret_url).pathname;
    expect((await deliver(pathA, "{}")).status).toBe(202);
    expect((await deliver(pathA, "{}")).status).toBe(202);
    const limited = await deliver(pathA, "{}");
    expect(limited.status).toBe(429);
    expect(limited.body.name).toBe("rate_limit_exceeded");
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
    expect((await deliver(new URL(b.secret_url).pathname, "{}")).status).toBe(202);
    // A hook's own rate_limit overrides HOOK_RATE_LIMIT.
    const c = (await createHook({ type: "url_secret" }, { rate_limit: "1/1h" })).body;
    const pathC = new URL(c.secret_url).pathname;
    expect((await deliver(pathC, "{}")).status).toBe(202);
    expect((await deliver(pathC, "{}")).status).toBe(429);
    expect(await countReceived()).toBe(4);
  });

  it("spends a hook's rate allowance only on requests whose proof passes", async () => {
    env = upstashEnv({ HOOK_RATE_LIMIT: "2/1h" });
    const hook = (await createHook({ type: "hmac_sha256" })).body;
    const body = JSON.stringify(PUSH);
    const path = `/hooks/${hook.id}`;
    // Someone who knows the URL but not the secret floods it.
    const flood: number[] = [];
    for (let i = 0; i < FAILURE_LIMIT + 10; i++)
      flood.push(
        (
          await deliver(path, body, {
            "cf-connecting-ip": "203.0.113.66",
            "x-hub-signature-256": githubSignature("not-the-secret", body),
          })
        ).status,
      );
    // Refused, then refused without a counter once over the network's failure limit.
    expect(flood).toEqual([...Array(FAILURE_LIMIT).fill(401), ...Array(10).fill(429)]);
    const signed = () =>
      deliver(path, body, {
        "cf-connecting-ip": "198.51.100.20",
        "x-hub-signature-256": githubSignature(hook.secret, body),
      });
    expect((await signed()).status).toBe(202);
    expect((await signed()).status).toBe(202);
    expect((await signed()).status).toBe(429);
    expect(await countReceived()).toBe(2);
  });

  it("ignores a replayed webhook-id across relay instances", async () => {
    env = upstashEnv();
    const { id, secret } = (await createHook({ type: "standard_webhooks" })).body;
    const body = JSON.stringify(PUSH);
    const headers = standardHeaders(secret, body);

    const first = await deliver(`/hooks/${id}`, body, headers);
    expect(first.status).toBe(202);
    // Another isolate (a fresh relay for an equal env) sees the same guard in Redis.
    const other = { ...env, LOG_LEVEL: "warn" };
    const replay = await call(other, "POST", `/hooks/${id}`, {
      token: null,
      body,
      headers: { "content-type": "application/json", ...headers },
    });
    expect(replay.status).toBe(200);
    expect(replay.body).toEqual({ id: first.body.id, duplicate: true });
    expect(await countReceived()).toBe(1);
  });

  it("treats a sender's retry after a lost enqueue reply as the duplicate it is, and sends the message once", async () => {
    env = upstashEnv({ IMMEDIATE_DELIVERY: "false" });
    const gateway = gatewayApi();
    const { id, secret } = (await createHook({ type: "standard_webhooks" })).body;
    const body = JSON.stringify(PUSH);
    // Load the scripts, so the struck EVALSHA is the enqueue itself.
    expect((await deliver(`/hooks/${id}`, body, standardHeaders(secret, body))).status).toBe(202);
    await tick(env);
    await received(1);
    const headers = standardHeaders(secret, body);
    const guard = `hook:${id}:${headers["webhook-id"]}`;
    try {
      // The enqueue runs but its replies are lost, and the check of the guard fails too.
      await gateway.addFault({
        contains: guard,
        command: "EVALSHA",
        mode: "lose-reply",
        times: 10,
      });
      await gateway.addFault({ contains: guard, command: "GET", mode: "drop", times: 10 });
      const first = await deliver(`/hooks/${id}`, body, headers);
      expect(first.status).toBe(503);
    } finally {
      await gateway.clearFaults();
    }
    const retry = await deliver(
      `/hooks/${id}`,
      body,
      standardHeaders(secret, body, headers["webhook-id"]),
    );
    expect(retry.status).toBe(200);
    expect(retry.body.duplicate).toBe(true);
    await tick(env);
    // The warm-up's message and this one's, once.
    expect(await countReceived()).toBe(2);
  });

  it("costs few Upstash commands per accepted hook request", async () => {
    const prefix = `t:${crypto.randomUUID()}:`;
    env = upstashEnv({ REDIS_KEY_PREFIX: prefix });
    const gateway = gatewayApi();
    const hmac = (await createHook({ type: "hmac_sha256" })).body;
    const std = (await createHook({ type: "standard_webhooks" })).body;
    const body = JSON.stringify(PUSH);
    const measure = async (send: () => Promise<CallResult>) => {
      const before = await gateway.commands(prefix);
      expect((await send()).status).toBe(202);
      return (await gateway.commands(prefix)) - before;
    };
    const sig = () => ({ "x-hub-signature-256": githubSignature(hmac.secret, body) });
    // A first delivery reads what every send reads once per isolate (the domain list, for DKIM).
    await deliver(`/hooks/${std.id}`, body, standardHeaders(std.secret, body));
    // The first request reads the hook; later ones find it in the isolate's cache.
    const firstHmac = await measure(() => deliver(`/hooks/${hmac.id}`, body, sig()));
    const nextHmac = await measure(() => deliver(`/hooks/${hmac.id}`, body, sig()));
    await deliver(`/hooks/${std.id}`, body, standardHeaders(std.secret, body));
    const nextStd = await measure(() =>
      deliver(`/hooks/${std.id}`, body, standardHeaders(std.secret, body)),
    );
    await received(5);
    console.info(
      `hook commands per accepted request, delivery included: hmac uncached ${firstHmac}, hmac cached ${nextHmac}, standard webhooks cached ${nextStd}`,
    );
    // Reading the hook costs one command, and only when the cache does not have it.
    expect(firstHmac - nextHmac).toBe(1);
  });
});
