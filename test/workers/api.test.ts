/**
 * The HTTP API inside workerd, through the real Workers entry, on the in-memory store with the
 * plain SMTP sink as the smart host. Resend's shapes and error names are pinned here.
 */
import { beforeEach, describe, expect, it } from "vitest";
import { sinkApi } from "../support/services.ts";
import { ADMIN, call, email, type TestEnv, testEnv, tick } from "../support/worker.ts";

const sink = sinkApi("plain");
let env: TestEnv;

beforeEach(async () => {
  env = testEnv();
  await sink.reset();
});

describe("health and documentation", () => {
  it("answers /health without a key", async () => {
    const res = await call(env, "GET", "/health", { token: null });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: "ok", store: "memory", smtp: "configured" });
  });

  it("serves an OpenAPI document describing the send API", async () => {
    const res = await call(env, "GET", "/openapi.json", { token: null });
    expect(res.status).toBe(200);
    expect(res.body.openapi).toBe("3.1.0");
    expect(Object.keys(res.body.paths)).toEqual(
      expect.arrayContaining([
        "/emails",
        "/emails/batch",
        "/emails/{id}",
        "/emails/{id}/cancel",
        "/api-keys",
      ]),
    );
    expect(res.body.components.schemas.SendEmailRequest.required).toEqual(
      expect.arrayContaining(["from", "to", "subject"]),
    );
  });

  it("answers an unknown route with Resend's not_found", async () => {
    const res = await call(env, "GET", "/nope");
    expect(res.status).toBe(404);
    expect(res.body).toMatchObject({ statusCode: 404, name: "not_found" });
  });
});

describe("authentication", () => {
  it("rejects a request without a key as missing_api_key (401)", async () => {
    const res = await call(env, "POST", "/emails", { token: null, json: email() });
    expect(res.status).toBe(401);
    expect(res.body).toEqual({
      statusCode: 401,
      name: "missing_api_key",
      message: expect.any(String),
    });
  });

  it("rejects an unknown key as invalid_api_key (403)", async () => {
    const res = await call(env, "POST", "/emails", { token: "re_unknown", json: email() });
    expect(res.status).toBe(403);
    expect(res.body.name).toBe("invalid_api_key");
  });

  it("creates a sending key that can send but not manage keys, lists it without its token, and deletes it", async () => {
    const created = await call(env, "POST", "/api-keys", {
      json: { name: "app", permission: "sending_access" },
    });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({
      id: expect.any(String),
      token: expect.stringMatching(/^re_[A-Za-z0-9_-]{32}$/),
    });
    const token = created.body.token as string;

    expect((await call(env, "POST", "/emails", { token, json: email() })).status).toBe(200);
    const restricted = await call(env, "GET", "/api-keys", { token });
    expect(restricted.status).toBe(401);
    expect(restricted.body.name).toBe("restricted_api_key");

    const list = await call(env, "GET", "/api-keys");
    expect(list.body.object).toBe("list");
    expect(list.body.data).toEqual([
      {
        id: created.body.id,
        name: "app",
        permission: "sending_access",
        created_at: expect.any(String),
        last_used_at: expect.any(String),
      },
    ]);
    expect(JSON.stringify(list.body)).not.toContain(token);

    expect((await call(env, "DELETE", `/api-keys/${created.body.id}`)).status).toBe(200);
    expect((await call(env, "POST", "/emails", { token, json: email() })).status).toBe(403);
    expect((await call(env, "DELETE", `/api-keys/${created.body.id}`)).status).toBe(404);
  });

  it("rejects a weak ADMIN_TOKEN with a configuration error that names it", async () => {
    const res = await call(testEnv({ ADMIN_TOKEN: "short" }), "GET", "/health", { token: null });
    expect(res.status).toBe(500);
    expect(res.body.message).toContain("ADMIN_TOKEN");
  });

  it("names SMTP_URL when it would send credentials in clear", async () => {
    const res = await call(
      testEnv({ SMTP_URL: "smtp+insecure://u:p@127.0.0.1:25" }),
      "GET",
      "/health",
      { token: null },
    );
    expect(res.status).toBe(500);
    expect(res.body.message).toMatch(/^The relay is misconfigured: SMTP_URL: /);
    expect(res.body.message).not.toContain(":p@");
  });
});

describe("POST /emails validation", () => {
  const cases: [string, unknown, number, string, RegExp][] = [
    [
      "a missing to",
      { from: "a@example.com", subject: "s", text: "t" },
      422,
      "missing_required_field",
      /^to: /,
    ],
    [
      "a missing from",
      { to: "a@example.com", subject: "s", text: "t" },
      422,
      "missing_required_field",
      /^from: /,
    ],
    [
      "an invalid recipient",
      email({ to: ["not an address"] }),
      422,
      "validation_error",
      /^to\[0\]: /,
    ],
    [
      "a CRLF in the subject",
      email({ subject: "Hi\r\nBcc: evil@example.com" }),
      422,
      "validation_error",
      /^subject: /,
    ],
    [
      "a CRLF in a display name",
      email({ from: "Evil\r\nBcc: x@example.com <a@example.com>" }),
      422,
      "validation_error",
      /^from: /,
    ],
    [
      "a custom Bcc header",
      email({ headers: { Bcc: "evil@example.com" } }),
      422,
      "validation_error",
      /^headers\.Bcc: /,
    ],
    [
      "a header value with LF",
      email({ headers: { "X-Id": "1\nBcc: e@example.com" } }),
      422,
      "validation_error",
      /^headers\.X-Id: /,
    ],
    [
      "no body at all",
      { from: "a@example.com", to: "b@example.com", subject: "s" },
      422,
      "validation_error",
      /^html: /,
    ],
    [
      "invalid base64",
      email({ attachments: [{ filename: "a.txt", content: "***" }] }),
      422,
      "validation_error",
      /^attachments\[0\]\.content: /,
    ],
    [
      "a remote attachment",
      email({ attachments: [{ filename: "a", path: "https://example.com/a" }] }),
      422,
      "validation_error",
      /^attachments\[0\]\.path: /,
    ],
    ["a wrong type", email({ to: 42 }), 422, "validation_error", /^to: /],
    [
      "a bad scheduled_at",
      email({ scheduled_at: "tomorrow-ish" }),
      422,
      "validation_error",
      /^scheduled_at: /,
    ],
    [
      "too many recipients",
      email({ to: Array.from({ length: 51 }, (_, i) => `r${i}@example.com`) }),
      422,
      "validation_error",
      /^to/,
    ],
  ];
  for (const [what, body, status, name, message] of cases) {
    it(`rejects ${what} with ${status} ${name}, naming the field`, async () => {
      const res = await call(env, "POST", "/emails", { json: body });
      expect(res.status).toBe(status);
      expect(res.body.name).toBe(name);
      expect(res.body.message).toMatch(message);
      expect(await sink.messages()).toEqual([]);
    });
  }

  it("rejects malformed JSON with 400", async () => {
    const res = await call(env, "POST", "/emails", {
      body: '{"from": ',
      headers: { "content-type": "application/json" },
    });
    expect(res.status).toBe(400);
    expect(res.body.name).toBe("validation_error");
  });

  it("rejects deeply nested JSON before parsing it", async () => {
    const res = await call(env, "POST", "/emails", {
      body: `${"[".repeat(5000)}${"]".repeat(5000)}`,
      headers: { "content-type": "application/json" },
    });
    expect(res.status).toBe(400);
    expect(res.body.message).toMatch(/nests deeper/);
  });

  it("rejects an unsupported content type with 415", async () => {
    const res = await call(env, "POST", "/emails", {
      body: "hello",
      headers: { "content-type": "text/plain" },
    });
    expect(res.status).toBe(415);
  });

  it("rejects a body over the size limit with 413", async () => {
    const small = testEnv({ MAX_MESSAGE_BYTES: "2048" });
    const res = await call(small, "POST", "/emails", { json: email({ text: "x".repeat(10_000) }) });
    expect(res.status).toBe(413);
    expect(res.body.message).toMatch(/limit/);
  });
});

describe("sending", () => {
  it("accepts, delivers at once, and reports delivered with the SMTP reply", async () => {
    const res = await call(env, "POST", "/emails", {
      json: email({ to: ["ann@example.com"], cc: "cat@example.com", bcc: ["bob@example.com"] }),
    });
    expect(res.status).toBe(200);
    const id = res.body.id as string;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    const [got] = await sink.waitFor(1);
    expect(got?.rcptTo).toEqual(["ann@example.com", "cat@example.com", "bob@example.com"]);
    expect(got?.raw).not.toMatch(/^bcc:/im);
    expect(got?.raw).not.toContain("bob@example.com");
    expect(got?.raw).toContain(`Message-ID: <${id}@example.com>`);

    const view = await call(env, "GET", `/emails/${id}`);
    expect(view.status).toBe(200);
    expect(view.body).toMatchObject({
      object: "email",
      id,
      from: "Acme <sender@example.com>",
      to: ["ann@example.com"],
      cc: ["cat@example.com"],
      bcc: ["bob@example.com"],
      subject: "Hello",
      text: expect.stringContaining("Hello there."),
      last_event: "delivered",
      message_id: `<${id}@example.com>`,
    });
    expect(view.body.delivery.attempts).toBe(1);
    expect(view.body.delivery.recipients.map((r: { status: string }) => r.status)).toEqual([
      "delivered",
      "delivered",
      "delivered",
    ]);
    expect(view.body.delivery.recipients[0].reply.code).toBe(250);
  });

  it("retries a temporary failure from the scheduled run and sends the same message", async () => {
    await sink.down();
    const res = await call(env, "POST", "/emails", { json: email() });
    const id = res.body.id as string;
    let view = await call(env, "GET", `/emails/${id}`);
    expect(view.body.last_event).toBe("delivery_delayed");
    expect(view.body.delivery.recipients[0].reply.code).toBeNull();
    await sink.up();
    const due = Date.parse(view.body.delivery.next_attempt_at);
    await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now() + 50)));
    await tick(env);
    const [got] = await sink.waitFor(1);
    expect(got?.raw).toContain(`Message-ID: <${id}@example.com>`);
    view = await call(env, "GET", `/emails/${id}`);
    expect(view.body.last_event).toBe("delivered");
    expect(view.body.delivery.attempts).toBe(2);
    expect(view.body.delivery.history).toHaveLength(2);
  });

  it("records a permanently rejected recipient as bounced and delivers to the others", async () => {
    await sink.rejectRecipient("bad@example.com", 550, "5.1.1 No such user");
    const res = await call(env, "POST", "/emails", {
      json: email({ to: ["ann@example.com", "bad@example.com"] }),
    });
    const view = await call(env, "GET", `/emails/${res.body.id}`);
    expect(view.body.last_event).toBe("bounced");
    expect(view.body.delivery.recipients).toEqual([
      expect.objectContaining({ email: "ann@example.com", status: "delivered" }),
      expect.objectContaining({
        email: "bad@example.com",
        status: "failed",
        reply: expect.objectContaining({ code: 550, enhanced: "5.1.1" }),
      }),
    ]);
    await tick(env);
    expect((await sink.messages()).length).toBe(1);
  });

  it("accepts a batch, all or nothing, and names the failing email", async () => {
    const bad = await call(env, "POST", "/emails/batch", {
      json: [email(), email({ to: "nope" })],
    });
    expect(bad.status).toBe(422);
    expect(bad.body.message).toMatch(/^\[1\]\.to/);
    expect(await sink.messages()).toEqual([]);

    const ok = await call(env, "POST", "/emails/batch", {
      json: [email({ to: "a1@example.com" }), email({ to: "a2@example.com" })],
    });
    expect(ok.status).toBe(200);
    expect(ok.body.data).toHaveLength(2);
    const got = await sink.waitFor(2);
    expect(got.map((m) => m.rcptTo[0]).sort()).toEqual(["a1@example.com", "a2@example.com"]);
  });

  it("refuses a batch of more than 100", async () => {
    const res = await call(env, "POST", "/emails/batch", {
      json: Array.from({ length: 101 }, () => email()),
    });
    expect(res.status).toBe(422);
    expect(res.body.message).toMatch(/at most 100/);
  });

  it("relays a raw MIME message as submitted, minus its Bcc header", async () => {
    const raw = [
      "From: Raw Sender <raw@example.com>",
      "To: ann@example.com",
      "Bcc: hidden@example.com,",
      " other-hidden@example.com",
      "Subject: raw",
      "X-Custom: kept",
      "",
      "Body line",
      ".dot line",
      "",
    ].join("\n");
    const res = await call(env, "POST", "/emails", {
      body: raw,
      headers: { "content-type": "message/rfc822" },
    });
    expect(res.status).toBe(200);
    const [got] = await sink.waitFor(1);
    expect(got?.mailFrom).toBe("raw@example.com");
    expect(got?.rcptTo).toEqual([
      "ann@example.com",
      "hidden@example.com",
      "other-hidden@example.com",
    ]);
    expect(got?.raw).not.toMatch(/hidden/);
    expect(got?.raw).toContain("X-Custom: kept\r\n");
    expect(got?.raw).toContain("\r\n\r\nBody line\r\n.dot line\r\n");
    expect(got?.raw).toMatch(/^Message-ID: <[0-9a-f-]{36}@example\.com>\r$/m);
  });

  it("takes the raw message's envelope from the query when given", async () => {
    const raw = "From: a@example.com\r\nTo: ann@example.com\r\nSubject: x\r\n\r\nhi\r\n";
    const res = await call(
      env,
      "POST",
      "/emails?from=bounce@example.com&to=zed@example.com,yan@example.com",
      {
        body: raw,
        headers: { "content-type": "message/rfc822" },
      },
    );
    expect(res.status).toBe(200);
    const [got] = await sink.waitFor(1);
    expect(got?.mailFrom).toBe("bounce@example.com");
    expect(got?.rcptTo).toEqual(["zed@example.com", "yan@example.com"]);
  });

  it("rejects a raw message without recipients, naming to", async () => {
    const res = await call(env, "POST", "/emails", {
      body: "From: a@example.com\r\nSubject: x\r\n\r\nhi\r\n",
      headers: { "content-type": "message/rfc822" },
    });
    expect(res.status).toBe(422);
    expect(res.body.message).toMatch(/^to: /);
  });
});

describe("scheduling and cancelling", () => {
  it("holds a scheduled email, reschedules it, and cancels it", async () => {
    const at = new Date(Date.now() + 3_600_000).toISOString();
    const res = await call(env, "POST", "/emails", { json: email({ scheduled_at: at }) });
    const id = res.body.id as string;
    let view = await call(env, "GET", `/emails/${id}`);
    expect(view.body).toMatchObject({ last_event: "scheduled", scheduled_at: at });
    await tick(env);
    expect(await sink.messages()).toEqual([]);

    const later = new Date(Date.now() + 7_200_000).toISOString();
    const patched = await call(env, "PATCH", `/emails/${id}`, { json: { scheduled_at: later } });
    expect(patched.body).toEqual({ object: "email", id });
    view = await call(env, "GET", `/emails/${id}`);
    expect(view.body.scheduled_at).toBe(later);

    expect((await call(env, "POST", `/emails/${id}/cancel`)).body).toEqual({ object: "email", id });
    view = await call(env, "GET", `/emails/${id}`);
    expect(view.body.last_event).toBe("canceled");
    expect(
      (await call(env, "PATCH", `/emails/${id}`, { json: { scheduled_at: later } })).status,
    ).toBe(409);
  });

  it("sends a scheduled email once it is due", async () => {
    const res = await call(env, "POST", "/emails", {
      json: email({ scheduled_at: new Date(Date.now() + 300).toISOString() }),
    });
    expect((await call(env, "GET", `/emails/${res.body.id}`)).body.last_event).toBe("scheduled");
    await new Promise((r) => setTimeout(r, 400));
    await tick(env);
    await sink.waitFor(1);
    expect((await call(env, "GET", `/emails/${res.body.id}`)).body.last_event).toBe("delivered");
  });

  it("refuses to cancel an email already delivered", async () => {
    const res = await call(env, "POST", "/emails", { json: email() });
    const cancel = await call(env, "POST", `/emails/${res.body.id}/cancel`);
    expect(cancel.status).toBe(409);
  });

  it("answers 404 for an unknown email and 422 for a malformed id", async () => {
    expect((await call(env, "GET", `/emails/${crypto.randomUUID()}`)).status).toBe(404);
    const bad = await call(env, "GET", "/emails/..%2F..%2Fetc");
    expect(bad.status).toBe(422);
    expect(bad.body.message).toMatch(/^id: /);
  });

  it("hides one sending key's emails from another", async () => {
    const a = (
      await call(env, "POST", "/api-keys", { json: { name: "a", permission: "sending_access" } })
    ).body.token;
    const b = (
      await call(env, "POST", "/api-keys", { json: { name: "b", permission: "sending_access" } })
    ).body.token;
    const sent = await call(env, "POST", "/emails", { token: a, json: email() });
    expect((await call(env, "GET", `/emails/${sent.body.id}`, { token: a })).status).toBe(200);
    expect((await call(env, "GET", `/emails/${sent.body.id}`, { token: b })).status).toBe(404);
    expect((await call(env, "POST", `/emails/${sent.body.id}/cancel`, { token: b })).status).toBe(
      404,
    );
    expect((await call(env, "GET", `/emails/${sent.body.id}`, { token: ADMIN })).status).toBe(200);
  });
});
