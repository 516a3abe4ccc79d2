/**
 * Forms through the real Workers entry: the management API, and submissions the ways a browser
 * sends them (a plain form post, urlencoded or multipart with files, and fetch with JSON or
 * FormData), answered with redirects or JSON, CORS by origin, and every abuse check. Messages are
 * read back from the plain SMTP sink and parsed; Turnstile goes to the siteverify stand-in
 * (dev/turnstile-stub.ts); rate limits and the command count use real Redis through the gateway.
 */
import PostalMime from "postal-mime";
import { beforeEach, describe, expect, it } from "vitest";
import { clientBucket } from "../../src/auth/abuse.ts";
import { loadConfig } from "../../src/config.ts";
import { ConfigError } from "../../src/errors.ts";
import { gatewayApi, requireRedis, services, sinkApi } from "../support/services.ts";
import {
  ADMIN,
  type CallResult,
  call,
  type TestEnv,
  testEnv,
  upstashEnv,
} from "../support/worker.ts";

const sink = sinkApi("plain");
const redis = requireRedis();
const SITE = "https://www.example.com";
const OTHER = "https://evil.example.net";
let env: TestEnv;
let rcpt: string;

beforeEach(() => {
  env = testEnv({ TURNSTILE_VERIFY_URL: services().turnstile.url });
  // Sinks are shared: each test's form sends to its own address and reads only its own mail.
  rcpt = `form.${crypto.randomUUID().slice(0, 12)}@example.com`;
});

function definition(over: Record<string, unknown> = {}) {
  return {
    name: "Contact",
    from: "Website <forms@example.com>",
    to: [rcpt],
    reply_to_field: "email",
    subject: "Contact from {{name}}",
    text: "Name: {{name}}\nEmail: {{email}}\n\n{{message}}",
    html: "<p>From <b>{{name}}</b></p><pre>{{message}}</pre>",
    fields: [
      { name: "name", required: true, max_length: 100 },
      { name: "email", type: "email", required: true },
      { name: "message", required: true, max_length: 2000 },
    ],
    allowed_origins: [SITE],
    success_url: `${SITE}/thanks`,
    error_url: `${SITE}/contact?sent=no`,
    min_fill_seconds: 0,
    ...over,
  };
}

async function createForm(over: Record<string, unknown> = {}, e: TestEnv = env) {
  const res = await call(e, "POST", "/forms", { json: definition(over) });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body as { id: string; action_url: string };
}

const VALID = { name: "Ann", email: "ann@visitor.example", message: "Hello there" };

/** A plain `<form method="post">` as a browser submits it (a navigation). */
function post(
  id: string,
  fields: Record<string, string>,
  headers: Record<string, string> = {},
  e: TestEnv = env,
): Promise<CallResult> {
  return call(e, "POST", `/f/${id}`, {
    token: null,
    body: new URLSearchParams(fields).toString(),
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      origin: SITE,
      "sec-fetch-mode": "navigate",
      accept: "text/html,application/xhtml+xml,*/*;q=0.8",
      ...headers,
    },
  });
}

/** fetch() from a page: JSON body, CORS mode. */
function fetchJson(
  id: string,
  body: unknown,
  headers: Record<string, string> = {},
  e: TestEnv = env,
): Promise<CallResult> {
  return call(e, "POST", `/f/${id}`, {
    token: null,
    body: JSON.stringify(body),
    headers: {
      "content-type": "application/json",
      origin: SITE,
      "sec-fetch-mode": "cors",
      ...headers,
    },
  });
}

function multipart(
  id: string,
  data: FormData,
  headers: Record<string, string> = {},
): Promise<CallResult> {
  return call(env, "POST", `/f/${id}`, {
    token: null,
    body: data,
    headers: { origin: SITE, "sec-fetch-mode": "cors", ...headers },
  });
}

async function received(count = 1) {
  return sink.waitFor(count, 10_000, { to: rcpt });
}

/** Lets any delivery that was (wrongly) queued reach the sink, then counts this test's mail. */
async function countReceived(): Promise<number> {
  await new Promise((r) => setTimeout(r, 300));
  return (await sink.messages({ to: rcpt })).length;
}

async function rejected(id: string): Promise<Record<string, number>> {
  return (await call(env, "GET", `/forms/${id}`)).body.rejected;
}

describe("managing forms", () => {
  it("creates, lists, reads, changes and deletes a form; answers never show secrets", async () => {
    const created = await call(env, "POST", "/forms", {
      json: definition({ turnstile_secret: "1x0000000000000000000000000000000AA" }),
    });
    expect(created.status).toBe(201);
    const id = created.body.id;
    expect(created.body).toMatchObject({
      object: "form",
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      from: "Website <forms@example.com>",
      to: [rcpt],
      allowed_origins: [SITE],
      honeypot: "_gotcha",
      start_token: "optional",
      ip_rate_limit: "10/10m",
      rate_limit: "100/1h",
      max_body_bytes: 1048576,
      turnstile: true,
      action_url: `https://relay.test/f/${id}`,
      start_url: `https://relay.test/f/${id}/start`,
      fields: [
        { name: "name", type: "text", required: true, max_length: 100, multiple: false },
        { name: "email", type: "email", required: true, max_length: 254, multiple: false },
        { name: "message", type: "text", required: true, max_length: 2000, multiple: false },
      ],
    });
    const shown = await call(env, "GET", `/forms/${id}`);
    expect(shown.status).toBe(200);
    expect(shown.body.rejected).toEqual({
      origin: 0,
      rate_limited: 0,
      too_large: 0,
      invalid_body: 0,
      invalid_field: 0,
      honeypot: 0,
      too_fast: 0,
      start_token: 0,
      turnstile: 0,
    });
    const listed = await call(env, "GET", "/forms");
    expect(listed.body.data.map((f: { id: string }) => f.id)).toEqual([id]);
    for (const answer of [created, shown, listed]) {
      const text = JSON.stringify(answer.body);
      expect(text).not.toContain("1x0000000000000000000000000000000AA");
      expect(text).not.toContain("token_key");
      expect(text).not.toContain("turnstile_secret");
    }

    const changed = await call(env, "PATCH", `/forms/${id}`, {
      json: { subject: "New: {{name}}", turnstile_secret: null, success_url: null },
    });
    expect(changed.status).toBe(200);
    expect(changed.body).toMatchObject({
      subject: "New: {{name}}",
      turnstile: false,
      success_url: null,
    });

    expect((await call(env, "DELETE", `/forms/${id}`)).body).toEqual({
      object: "form",
      id,
      deleted: true,
    });
    expect((await call(env, "GET", `/forms/${id}`)).status).toBe(404);
    expect((await post(id, VALID)).status).toBe(404);
  });

  it("fills in a text body listing the fields when no template is given", async () => {
    const { id } = await createForm({ text: undefined, html: undefined, subject: undefined });
    const shown = await call(env, "GET", `/forms/${id}`);
    expect(shown.body.text).toBe("name: {{name}}\nemail: {{email}}\nmessage: {{message}}");
    expect(shown.body.subject).toBe("New form submission");
  });

  it("needs a full_access key (a sending key gets restricted_api_key)", async () => {
    const key = await call(env, "POST", "/api-keys", {
      json: { name: "sender", permission: "sending_access" },
    });
    for (const [method, path] of [
      ["POST", "/forms"],
      ["GET", "/forms"],
      ["GET", `/forms/${crypto.randomUUID()}`],
      ["DELETE", `/forms/${crypto.randomUUID()}`],
    ] as const) {
      const res = await call(env, method, path, {
        token: key.body.token,
        ...(method === "POST" ? { json: definition() } : {}),
      });
      expect(res.status).toBe(401);
      expect(res.body.name).toBe("restricted_api_key");
    }
    expect((await call(env, "GET", "/forms", { token: null })).body.name).toBe("missing_api_key");
  });

  it.each([
    [{ allowed_origins: ["https://www.example.com/"] }, "allowed_origins[0]"],
    [{ allowed_origins: ["https://www.example.com/contact"] }, "allowed_origins[0]"],
    [{ allowed_origins: ["ftp://files.example.com"] }, "allowed_origins[0]"],
    [{ allowed_origins: [] }, "allowed_origins"],
    [{ success_url: "javascript:alert(1)" }, "success_url"],
    [{ error_url: "/relative/path" }, "error_url"],
    [{ reply_to_field: "name" }, "reply_to_field"],
    [{ reply_to_field: "nope" }, "reply_to_field"],
    [{ html: "<p>{{{message}}}</p>" }, "html"],
    [{ subject: "{{#a}}unclosed" }, "subject"],
    [{ to: ["not an address"] }, "to[0]"],
    [{ to: ["a@example.com, b@example.com"] }, "to[0]"],
    [{ from: "forms@example.com\r\nBcc: x@evil.example" }, "from"],
    [{ fields: [{ name: "_start" }] }, "fields[0].name"],
    [{ fields: [{ name: "a" }, { name: "a" }] }, "fields[1].name"],
    [{ fields: [{ name: "1x" }] }, "fields[0].name"],
    [
      { fields: [{ name: "f", type: "file", content_types: ["multipart/mixed"] }] },
      "fields[0].content_types[0]",
    ],
    [{ fields: [{ name: "f", type: "file", max_bytes: 5_000_000 }] }, "fields[0].max_bytes"],
    [{ fields: [{ name: "t", max_bytes: 10 }] }, "fields[0]"],
    [{ rate_limit: "lots" }, "rate_limit"],
    [{ ip_rate_limit: "5 per minute" }, "ip_rate_limit"],
    [{ max_body_bytes: 50 * 1024 * 1024 }, "max_body_bytes"],
    [{ unknown_setting: true }, "body"],
  ])("refuses %j at creation with a 422 naming %s", async (over, field) => {
    const defaults = definition();
    const body = { ...defaults, ...over } as Record<string, unknown>;
    if ("fields" in over) {
      body.reply_to_field = undefined;
      body.text = "x";
      body.html = undefined;
      body.subject = "s";
    }
    const res = await call(env, "POST", "/forms", { json: body });
    expect(res.status, JSON.stringify(res.body)).toBe(422);
    expect(res.body.message.startsWith(`${field}:`) || res.body.message.includes(field)).toBe(true);
    expect((await call(env, "GET", "/forms")).body.data).toEqual([]);
  });

  it("holds a form to the creating key's policy: recipients and sender", async () => {
    const key = await call(env, "POST", "/api-keys", {
      json: {
        name: "site",
        permission: "full_access",
        allowed_recipients: ["*@example.com"],
        allowed_from: ["*@example.com"],
      },
    });
    const token = key.body.token;
    const outside = await call(env, "POST", "/forms", {
      token,
      json: definition({ to: ["someone@elsewhere.example"] }),
    });
    expect(outside.status).toBe(403);
    expect(outside.body.message).toMatch(/^to: someone@elsewhere\.example/);
    const sender = await call(env, "POST", "/forms", {
      token,
      json: definition({ from: "forms@other.example" }),
    });
    expect(sender.status).toBe(403);
    expect(sender.body.message).toMatch(/^from:/);
    expect((await call(env, "POST", "/forms", { token, json: definition() })).status).toBe(201);
  });
});

describe("a plain HTML form post", () => {
  it("queues the message and answers 303 to success_url; the visitor's address is only the Reply-To", async () => {
    const { id } = await createForm();
    const res = await post(id, {
      ...VALID,
      // Fields the form does not list never reach the message.
      to: "victim@elsewhere.example",
      bcc: "victim2@elsewhere.example",
      submit: "Send",
    });
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe(`${SITE}/thanks`);

    const [got] = await received();
    expect(got?.mailFrom).toBe("forms@example.com");
    expect(got?.rcptTo).toEqual([rcpt]);
    expect(got?.raw).not.toContain("victim");
    const parsed = await PostalMime.parse(got?.raw ?? "");
    expect(parsed.subject).toBe("Contact from Ann");
    expect(parsed.replyTo?.map((a) => a.address)).toEqual(["ann@visitor.example"]);
    expect(parsed.from?.address).toBe("forms@example.com");
    expect(parsed.text?.trimEnd()).toBe("Name: Ann\nEmail: ann@visitor.example\n\nHello there");
  });

  it("escapes values for where they land: no HTML, no header line, no recipient from a field", async () => {
    const { id } = await createForm();
    const res = await post(id, {
      name: 'Eve <script>alert("x")</script>\r\nBcc: spy@evil.example',
      email: "eve@visitor.example",
      message: "<img src=x onerror=alert(1)>",
    });
    expect(res.status).toBe(303);
    const [got] = await received();
    expect(got?.rcptTo).toEqual([rcpt]);
    const header = got?.raw.slice(0, got.raw.indexOf("\r\n\r\n")) ?? "";
    expect(header).not.toMatch(/^bcc:/im);
    const parsed = await PostalMime.parse(got?.raw ?? "");
    expect(parsed.subject).toBe(
      'Contact from Eve <script>alert("x")</script> Bcc: spy@evil.example',
    );
    expect(parsed.html).toContain("&lt;script&gt;");
    expect(parsed.html).toContain("&lt;img src&#61;x onerror&#61;alert(1)&gt;");
    expect(parsed.html).not.toContain("<script");
  });

  it.each([
    [{ ...VALID, email: "ann@visitor.example\r\nBcc: spy@evil.example" }, "invalid_field", "email"],
    [{ ...VALID, email: "Ann <ann@visitor.example>, spy@evil.example" }, "invalid_field", "email"],
    [{ ...VALID, message: "" }, "missing_field", "message"],
    [{ ...VALID, name: "x".repeat(101) }, "invalid_field", "name"],
    [{ ...VALID, name: "nul\u0000byte" }, "invalid_field", "name"],
  ])(
    "sends the visitor to error_url?error=<code>&field=<name> for %j",
    async (fields, code, field) => {
      const { id } = await createForm();
      const res = await post(id, fields);
      expect(res.status).toBe(303);
      const location = new URL(res.headers.get("location") ?? "");
      expect(location.origin + location.pathname).toBe(`${SITE}/contact`);
      expect(location.searchParams.get("sent")).toBe("no");
      expect(location.searchParams.get("error")).toBe(code);
      expect(location.searchParams.get("field")).toBe(field);
      expect(await countReceived()).toBe(0);
      expect((await rejected(id)).invalid_field).toBe(1);
    },
  );

  it("names the field whose value would hide a line break in the subject (an encoded word)", async () => {
    const { id } = await createForm();
    const res = await fetchJson(id, {
      ...VALID,
      name: "=?utf-8?q?Ann=0D=0ABcc:_spy@evil.example?=",
    });
    expect(res.status).toBe(422);
    expect(res.body.message).toMatch(/^name: must not contain line breaks/);
    expect(await countReceived()).toBe(0);
    expect((await rejected(id)).invalid_field).toBe(1);
  });

  it("without redirect URLs, answers a small HTML page (thank-you, or the error with its status)", async () => {
    const { id } = await createForm({ success_url: undefined, error_url: undefined });
    const ok = await post(id, VALID, { referer: `${SITE}/contact` });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("content-type")).toMatch(/^text\/html/);
    expect(ok.body).toContain("Thank you");
    expect(ok.body).toContain(`href="${SITE}/contact"`);
    const bad = await post(id, { ...VALID, email: "<b>nope</b>" });
    expect(bad.status).toBe(422);
    expect(bad.body).toContain(
      "email: &quot;&lt;b&gt;nope&lt;/b&gt;&quot; is not an email address",
    );
    expect(bad.body).not.toContain("<b>nope");
    expect(bad.headers.get("content-security-policy")).toContain("default-src 'none'");
    await received(1);
  });

  it("takes multipart posts with files as attachments, within each field's type and size", async () => {
    const { id } = await createForm({
      fields: [
        { name: "name", required: true },
        { name: "email", type: "email" },
        { name: "message" },
        {
          name: "cv",
          type: "file",
          max_bytes: 2000,
          content_types: ["application/pdf", "image/*"],
        },
      ],
    });
    const pdf = new Uint8Array(1500).map((_, i) => (i * 13) % 256);
    const form = new FormData();
    for (const [k, v] of Object.entries(VALID)) form.set(k, v);
    // A path and a right-to-left override in the name: neither survives into the header.
    form.set("cv", new File([pdf], "../my\u202ecv.pdf", { type: "application/pdf" }));
    const ok = await multipart(id, form, { "sec-fetch-mode": "navigate" });
    expect(ok.status).toBe(303);
    expect(ok.headers.get("location")).toBe(`${SITE}/thanks`);
    const [got] = await received();
    const parsed = await PostalMime.parse(got?.raw ?? "");
    expect(parsed.attachments).toHaveLength(1);
    expect(parsed.attachments[0]?.filename).toBe(".._my_cv.pdf");
    expect(parsed.attachments[0]?.mimeType).toBe("application/pdf");
    expect(new Uint8Array(parsed.attachments[0]?.content as ArrayBuffer)).toEqual(pdf);

    const big = new FormData();
    for (const [k, v] of Object.entries(VALID)) big.set(k, v);
    big.set("cv", new File([new Uint8Array(2001)], "big.pdf", { type: "application/pdf" }));
    const tooBig = await multipart(id, big);
    expect(tooBig.status).toBe(413);
    expect(tooBig.body.message).toMatch(/^cv: the file is 2001 bytes/);

    const exe = new FormData();
    for (const [k, v] of Object.entries(VALID)) exe.set(k, v);
    exe.set("cv", new File([new Uint8Array(10)], "x.exe", { type: "application/x-msdownload" }));
    const wrongType = await multipart(id, exe);
    expect(wrongType.status).toBe(422);
    expect(wrongType.body.message).toMatch(/^cv: files of type application\/x-msdownload/);

    // An empty file input is no file.
    const none = new FormData();
    for (const [k, v] of Object.entries(VALID)) none.set(k, v);
    none.set("cv", new File([], "", { type: "application/octet-stream" }));
    expect((await multipart(id, none)).status).toBe(200);
    await received(2);
    expect(await rejected(id)).toMatchObject({ too_large: 1, invalid_field: 1 });
  });

  it("refuses a body over max_body_bytes (413) and an unknown content type (415), counted", async () => {
    const { id } = await createForm({ max_body_bytes: 2048 });
    const big = await post(id, { ...VALID, message: "x".repeat(3000) });
    expect(big.status).toBe(303);
    expect(new URL(big.headers.get("location") ?? "").searchParams.get("error")).toBe("too_large");
    const xml = await call(env, "POST", `/f/${id}`, {
      token: null,
      body: "<a/>",
      headers: { "content-type": "text/xml", origin: SITE, "sec-fetch-mode": "cors" },
    });
    expect(xml.status).toBe(415);
    expect(await countReceived()).toBe(0);
    expect(await rejected(id)).toMatchObject({ too_large: 1, invalid_body: 1 });
  });
});

describe("fetch() from a page", () => {
  it("answers JSON { id } with CORS headers for the form's origin", async () => {
    const { id } = await createForm();
    const res = await fetchJson(id, VALID);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ id: expect.any(String) });
    expect(res.headers.get("access-control-allow-origin")).toBe(SITE);
    expect(res.headers.get("vary")).toContain("Origin");
    const [got] = await received();
    expect((await PostalMime.parse(got?.raw ?? "")).replyTo?.[0]?.address).toBe(
      "ann@visitor.example",
    );
    // An ordinary email, owned by the form (its key id).
    const email = await call(env, "GET", `/emails/${res.body.id}`);
    expect(email.body.subject).toBe("Contact from Ann");
  });

  it("takes FormData with Accept: application/json (no preflight) and answers JSON", async () => {
    const { id } = await createForm();
    const data = new FormData();
    for (const [k, v] of Object.entries(VALID)) data.set(k, v);
    const res = await call(env, "POST", `/f/${id}`, {
      token: null,
      body: data,
      headers: { origin: SITE, accept: "application/json" },
    });
    expect(res.status).toBe(200);
    expect(res.body.id).toEqual(expect.any(String));
    await received();
  });

  it("answers errors in Resend's shape, naming the field, readable by the page (CORS)", async () => {
    const { id } = await createForm();
    const res = await fetchJson(id, { name: "Ann", email: "ann@visitor.example" });
    expect(res.status).toBe(422);
    expect(res.body).toEqual({
      statusCode: 422,
      name: "missing_required_field",
      message: "message: is required",
    });
    expect(res.headers.get("access-control-allow-origin")).toBe(SITE);
    const nested = await fetchJson(id, { ...VALID, name: { first: "Ann" } });
    expect(nested.status).toBe(422);
    expect(nested.body.message).toMatch(/^name:/);
    const broken = await call(env, "POST", `/f/${id}`, {
      token: null,
      body: "{not json",
      headers: { "content-type": "application/json", origin: SITE },
    });
    expect(broken.status).toBe(400);
    expect(broken.body.name).toBe("validation_error");
  });
});

describe("CORS and origins", () => {
  it("answers preflights for the form's origins only", async () => {
    const { id } = await createForm({ allowed_origins: [SITE, "http://localhost:8080"] });
    const preflight = (origin: string) =>
      call(env, "OPTIONS", `/f/${id}`, {
        token: null,
        headers: {
          origin,
          "access-control-request-method": "POST",
          "access-control-request-headers": "content-type",
        },
      });
    const ok = await preflight("http://localhost:8080");
    expect(ok.status).toBe(204);
    expect(ok.headers.get("access-control-allow-origin")).toBe("http://localhost:8080");
    expect(ok.headers.get("access-control-allow-methods")).toBe("POST");
    expect(ok.headers.get("access-control-allow-headers")?.toLowerCase()).toContain("content-type");
    expect(ok.headers.get("vary")).toContain("Origin");
    for (const origin of [OTHER, "http://localhost:8081", "null", `${SITE}.evil.example`]) {
      const refused = await preflight(origin);
      expect(refused.status).toBe(403);
      expect(refused.headers.get("access-control-allow-origin")).toBeNull();
    }
  });

  it("refuses a submission from another origin, or with none, with 403 and no CORS headers", async () => {
    const { id } = await createForm();
    const json = await fetchJson(id, VALID, { origin: OTHER });
    expect(json.status).toBe(403);
    expect(json.body.name).toBe("invalid_access");
    expect(json.headers.get("access-control-allow-origin")).toBeNull();
    // A plain form on someone else's page gets a 403 page, not this site's error page.
    const page = await post(id, VALID, { origin: OTHER });
    expect(page.status).toBe(403);
    expect(page.headers.get("location")).toBeNull();
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    const none = await call(env, "POST", `/f/${id}`, {
      token: null,
      body: JSON.stringify(VALID),
      headers: { "content-type": "application/json" },
    });
    expect(none.status).toBe(403);
    expect(await countReceived()).toBe(0);
    expect((await rejected(id)).origin).toBe(3);
  });

  it("answers an unknown form with 404 and a malformed id likewise", async () => {
    expect((await post(crypto.randomUUID(), VALID)).status).toBe(404);
    expect((await fetchJson("not-a-uuid", VALID)).status).toBe(404);
  });
});

describe("abuse protection", () => {
  it("answers a filled honeypot as a success, queues nothing and counts it", async () => {
    const { id } = await createForm();
    const page = await post(id, { ...VALID, _gotcha: "http://spam.example" });
    expect(page.status).toBe(303);
    expect(page.headers.get("location")).toBe(`${SITE}/thanks`);
    const json = await fetchJson(id, { ...VALID, _gotcha: "x" });
    expect(json.status).toBe(200);
    expect(json.body.id).toEqual(expect.any(String));
    expect((await call(env, "GET", `/emails/${json.body.id}`)).status).toBe(404);
    expect(await countReceived()).toBe(0);
    expect((await rejected(id)).honeypot).toBe(2);
  });

  it("issues signed start tokens and refuses a submission sooner than min_fill_seconds", async () => {
    const { id } = await createForm({ min_fill_seconds: 1 });
    const start = await call(env, "GET", `/f/${id}/start`, {
      token: null,
      headers: { origin: SITE },
    });
    expect(start.status).toBe(200);
    expect(start.headers.get("access-control-allow-origin")).toBe(SITE);
    expect(start.headers.get("cache-control")).toBe("no-store");
    expect(start.body).toEqual({
      token: expect.stringMatching(/^\d+\.[A-Za-z0-9_-]{43}$/),
      field: "_start",
      min_fill_seconds: 1,
    });
    const token = start.body.token as string;

    const fast = await fetchJson(id, { ...VALID, _start: token });
    expect(fast.status).toBe(422);
    expect(fast.body.message).toMatch(/^_start: the form was sent 0\.\d s after the page loaded/);
    const fastPage = await post(id, { ...VALID, _start: token });
    expect(new URL(fastPage.headers.get("location") ?? "").searchParams.get("error")).toBe(
      "too_fast",
    );

    // A token claiming an older start, or another form's token, is not this form's.
    const [issued, signature] = token.split(".");
    const forged = `${Number(issued) - 60_000}.${signature}`;
    expect((await fetchJson(id, { ...VALID, _start: forged })).body.message).toBe(
      "_start: is not a start token this form issued",
    );
    const other = await createForm({ min_fill_seconds: 1 });
    const otherToken = (
      await call(env, "GET", `/f/${other.id}/start`, { token: null, headers: { origin: SITE } })
    ).body.token;
    expect((await fetchJson(id, { ...VALID, _start: otherToken })).status).toBe(422);

    await new Promise((r) => setTimeout(r, 1100));
    expect((await fetchJson(id, { ...VALID, _start: token })).status).toBe(200);
    await received(1);
    expect(await rejected(id)).toMatchObject({ too_fast: 2, start_token: 2 });
    // Tokens go only to the form's origins.
    const refused = await call(env, "GET", `/f/${id}/start`, {
      token: null,
      headers: { origin: OTHER },
    });
    expect(refused.status).toBe(403);
  });

  it("lets a submission without a start token through unless start_token is required", async () => {
    const { id } = await createForm({ min_fill_seconds: 5 });
    expect((await fetchJson(id, VALID)).status).toBe(200);
    await call(env, "PATCH", `/forms/${id}`, { json: { start_token: "required" } });
    const res = await fetchJson(id, VALID);
    expect(res.status).toBe(422);
    expect(res.body.message).toMatch(/^_start: is missing/);
    expect(await countReceived()).toBe(1);
  });

  it("verifies Turnstile tokens with the form's secret at siteverify, and refuses failed ones", async () => {
    const stub = services().turnstile.api;
    await fetch(`${stub}/api/requests`, { method: "DELETE" });
    const { id } = await createForm({ turnstile_secret: "1x0000000000000000000000000000000AA" });
    const ok = await fetchJson(
      id,
      { ...VALID, "cf-turnstile-response": "XXXX.DUMMY.TOKEN.XXXX" },
      { "cf-connecting-ip": "203.0.113.9" },
    );
    expect(ok.status).toBe(200);
    const asked = (await (await fetch(`${stub}/api/requests`)).json()) as Record<string, string>[];
    expect(asked).toEqual([
      {
        secret: "1x0000000000000000000000000000000AA",
        response: "XXXX.DUMMY.TOKEN.XXXX",
        remoteip: "203.0.113.9",
        contentType: "application/x-www-form-urlencoded",
      },
    ]);

    const missing = await fetchJson(id, VALID);
    expect(missing.status).toBe(422);
    expect(missing.body.message).toMatch(/^cf-turnstile-response: is missing/);

    await call(env, "PATCH", `/forms/${id}`, {
      json: { turnstile_secret: "2x0000000000000000000000000000000AA" },
    });
    const failed = await post(id, { ...VALID, "cf-turnstile-response": "XXXX.DUMMY.TOKEN.XXXX" });
    expect(new URL(failed.headers.get("location") ?? "").searchParams.get("error")).toBe(
      "turnstile",
    );
    await call(env, "PATCH", `/forms/${id}`, {
      json: { turnstile_secret: "3x0000000000000000000000000000000AA" },
    });
    const spent = await fetchJson(id, {
      ...VALID,
      "cf-turnstile-response": "XXXX.DUMMY.TOKEN.XXXX",
    });
    expect(spent.body.message).toBe(
      "cf-turnstile-response: was not accepted by Turnstile (timeout-or-duplicate)",
    );
    expect(await countReceived()).toBe(1);
    expect((await rejected(id)).turnstile).toBe(3);
  });

  it("answers 503 (nothing sent, not counted) when siteverify cannot be reached", async () => {
    env = testEnv({ TURNSTILE_VERIFY_URL: "http://127.0.0.1:9/siteverify" });
    const { id } = await createForm({ turnstile_secret: "1x0000000000000000000000000000000AA" });
    const res = await fetchJson(id, { ...VALID, "cf-turnstile-response": "XXXX.DUMMY.TOKEN.XXXX" });
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("5");
    const page = await post(id, { ...VALID, "cf-turnstile-response": "XXXX.DUMMY.TOKEN.XXXX" });
    expect(new URL(page.headers.get("location") ?? "").searchParams.get("error")).toBe(
      "unavailable",
    );
    expect(await countReceived()).toBe(0);
    expect((await rejected(id)).turnstile).toBe(0);
  });
});

describe.skipIf(redis.skip)(`rate limits and cost with Upstash${redis.label}`, () => {
  it("limits submissions per client address and per form, with Retry-After", async () => {
    const e = upstashEnv({ TURNSTILE_VERIFY_URL: services().turnstile.url });
    const { id } = await createForm({ ip_rate_limit: "2/1h", rate_limit: "3/1h" }, e);
    const from = (ip: string) => fetchJson(id, VALID, { "cf-connecting-ip": ip }, e);
    expect((await from("198.51.100.1")).status).toBe(200);
    expect((await from("198.51.100.1")).status).toBe(200);
    const third = await from("198.51.100.1");
    expect(third.status).toBe(429);
    expect(third.body.name).toBe("rate_limit_exceeded");
    expect(Number(third.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(third.headers.get("access-control-allow-origin")).toBe(SITE);
    // Another address has its own allowance, until the form's own limit is reached.
    expect((await from("198.51.100.2")).status).toBe(200);
    expect((await from("198.51.100.3")).status).toBe(429);
    const page = await post(id, VALID, { "cf-connecting-ip": "198.51.100.4" }, e);
    expect(new URL(page.headers.get("location") ?? "").searchParams.get("error")).toBe(
      "rate_limited",
    );
    await received(3);
    const shown = await call(e, "GET", `/forms/${id}`);
    expect(shown.body.rejected.rate_limited).toBe(3);
  });

  it("gives an IPv6 /64 one allowance, and an IPv4 client the same one over IPv4 or IPv6", async () => {
    expect(clientBucket("2001:db8:1:2:aaaa::1")).toBe("2001:db8:1:2::/64");
    expect(clientBucket("::ffff:198.51.100.7")).toBe("198.51.100.7");
    expect(clientBucket(undefined)).toBe("unknown");
    const e = upstashEnv({ TURNSTILE_VERIFY_URL: services().turnstile.url });
    const { id } = await createForm({ ip_rate_limit: "1/1h" }, e);
    const from = (ip: string) => fetchJson(id, VALID, { "cf-connecting-ip": ip }, e);
    expect((await from("2001:db8:1:2::1")).status).toBe(200);
    expect((await from("2001:db8:1:2:ffff::9")).status).toBe(429);
    expect((await from("2001:db8:1:3::1")).status).toBe(200);
    await received(2);
  });

  it("costs four Upstash commands per accepted submission with the form cached, three for a field error, one for a refused origin", async () => {
    const e = upstashEnv({ TURNSTILE_VERIFY_URL: services().turnstile.url });
    const prefix = e.REDIS_KEY_PREFIX as string;
    const { id } = await createForm({}, e);
    // Warm the isolate's form cache.
    await fetchJson(id, VALID, { "cf-connecting-ip": "192.0.2.1" }, e);
    await received(1);
    const gateway = gatewayApi();
    const before = await gateway.commands(prefix);
    await fetchJson(id, VALID, { "cf-connecting-ip": "192.0.2.1" }, e);
    await received(2);
    // Two rate-limit checks, the enqueue, the delivery commit; the rate limiter's own keys and
    // the delivery's claim are counted where they name this test's prefix.
    const used = (await gateway.commands(prefix)) - before;
    expect(used).toBe(4);

    // A field error: the two rate-limit checks and its counter. A refused origin: the counter.
    const beforeInvalid = await gateway.commands(prefix);
    const { message: _m, ...noMessage } = VALID;
    expect((await fetchJson(id, noMessage, { "cf-connecting-ip": "192.0.2.1" }, e)).status).toBe(
      422,
    );
    expect((await gateway.commands(prefix)) - beforeInvalid).toBe(3);
    const beforeOrigin = await gateway.commands(prefix);
    expect((await fetchJson(id, VALID, { origin: OTHER }, e)).status).toBe(403);
    expect((await gateway.commands(prefix)) - beforeOrigin).toBe(1);
  });
});

describe("documentation and configuration", () => {
  it("documents the form routes in /openapi.json", async () => {
    const res = await call(env, "GET", "/openapi.json", { token: null });
    expect(Object.keys(res.body.paths)).toEqual(
      expect.arrayContaining(["/forms", "/forms/{id}", "/f/{id}", "/f/{id}/start"]),
    );
    expect(res.body.components.schemas.CreateFormRequest.required).toEqual(
      expect.arrayContaining(["from", "to", "fields", "allowed_origins"]),
    );
  });

  it("verifies Turnstile at Cloudflare's siteverify unless TURNSTILE_VERIFY_URL says otherwise", () => {
    expect(loadConfig({}).forms.turnstileVerifyUrl).toBe(
      "https://challenges.cloudflare.com/turnstile/v0/siteverify",
    );
    expect(
      loadConfig({ TURNSTILE_VERIFY_URL: "http://127.0.0.1:1/v" }).forms.turnstileVerifyUrl,
    ).toBe("http://127.0.0.1:1/v");
    expect(() => loadConfig({ TURNSTILE_VERIFY_URL: "ftp://x" })).toThrow(ConfigError);
    expect(() => loadConfig({ TURNSTILE_VERIFY_URL: "ftp://x" })).toThrow(/^TURNSTILE_VERIFY_URL:/);
  });

  it("shows which key created a form and which saved it last, so a revoked key's forms can be found", async () => {
    const { id } = await createForm({});
    const editor = (
      await call(env, "POST", "/api-keys", { json: { name: "editor", permission: "full_access" } })
    ).body;
    const patched = await call(env, "PATCH", `/forms/${id}`, {
      token: editor.token,
      json: { subject: "Edited" },
    });
    expect(patched.status).toBe(200);
    const shown = (await call(env, "GET", `/forms/${id}`)).body;
    expect(shown).toMatchObject({ created_by: "admin", updated_by: editor.id });
  });

  it("checks a change like a new form: a PATCH leaving no body template, or a bad origin, is a 422", async () => {
    const { id } = await createForm();
    const none = await call(env, "PATCH", `/forms/${id}`, { json: { text: null, html: null } });
    expect(none.status).toBe(422);
    expect(none.body.message).toMatch(/^text:/);
    const origin = await call(env, "PATCH", `/forms/${id}`, {
      json: { allowed_origins: ["https://ok.example", "*"] },
    });
    expect(origin.status).toBe(422);
    expect(origin.body.message).toMatch(/^allowed_origins\[1\]:/);
    expect((await call(env, "GET", `/forms/${id}`)).body.allowed_origins).toEqual([SITE]);
    expect((await call(env, "GET", "/forms", { token: ADMIN })).status).toBe(200);
  });
});
