/** Key policies: senders, recipients, size and client ranges, checked on the real envelope; and
 * key rotation and last use. Through the Workers entry, on the in-memory store. */
import { beforeEach, describe, expect, it } from "vitest";
import { call, email, type TestEnv, testEnv } from "../support/worker.ts";

let env: TestEnv;
beforeEach(() => {
  env = testEnv();
});

async function key(policy: Record<string, unknown>): Promise<string> {
  const res = await call(env, "POST", "/api-keys", {
    json: { name: "restricted", permission: "sending_access", ...policy },
  });
  expect(res.status).toBe(201);
  return res.body.token;
}

describe("sender and recipient restrictions", () => {
  it("lets a key send only from its senders", async () => {
    const token = await key({ allowed_from: ["*@example.com", "alerts@example.org"] });
    expect(
      (
        await call(env, "POST", "/emails", {
          token,
          json: email({ from: "Shop <shop@example.com>" }),
        })
      ).status,
    ).toBe(200);
    expect(
      (await call(env, "POST", "/emails", { token, json: email({ from: "alerts@example.org" }) }))
        .status,
    ).toBe(200);
    const res = await call(env, "POST", "/emails", {
      token,
      json: email({ from: "ceo@example.org" }),
    });
    expect(res.status).toBe(403);
    expect(res.body.name).toBe("validation_error");
    expect(res.body.message).toMatch(/^from: ceo@example\.org is not a sender/);
  });

  it("matches subdomains only when the pattern says so", async () => {
    const token = await key({ allowed_from: ["*@*.example.com"] });
    expect(
      (await call(env, "POST", "/emails", { token, json: email({ from: "a@mail.example.com" }) }))
        .status,
    ).toBe(200);
    expect(
      (await call(env, "POST", "/emails", { token, json: email({ from: "a@example.com" }) }))
        .status,
    ).toBe(403);
    expect(
      (await call(env, "POST", "/emails", { token, json: email({ from: "a@evilexample.com" }) }))
        .status,
    ).toBe(403);
  });

  it("applies to the envelope of raw messages too", async () => {
    const token = await key({ allowed_from: ["*@example.com"] });
    const raw = "From: boss@example.net\r\nTo: ann@example.com\r\nSubject: x\r\n\r\nhi\r\n";
    const res = await call(env, "POST", "/emails", {
      token,
      body: raw,
      headers: { "content-type": "message/rfc822" },
    });
    expect(res.status).toBe(403);
    const spoofed = await call(env, "POST", "/emails?from=boss@example.net", {
      token,
      body: raw.replace("boss@example.net", "me@example.com"),
      headers: { "content-type": "message/rfc822" },
    });
    expect(spoofed.status).toBe(403);
  });

  it("checks every recipient, Bcc included", async () => {
    const token = await key({ allowed_recipients: ["*@example.com"] });
    expect(
      (
        await call(env, "POST", "/emails", {
          token,
          json: email({ to: ["a@example.com"], cc: "b@example.com" }),
        })
      ).status,
    ).toBe(200);
    const res = await call(env, "POST", "/emails", {
      token,
      json: email({ to: ["a@example.com"], bcc: ["leak@elsewhere.net"] }),
    });
    expect(res.status).toBe(403);
    expect(res.body.message).toMatch(/^to: leak@elsewhere\.net/);
  });

  it("caps the message size per key", async () => {
    const token = await key({ max_message_bytes: 2000 });
    const res = await call(env, "POST", "/emails", {
      token,
      json: email({ text: "x".repeat(5000) }),
    });
    expect(res.status).toBe(413);
    expect(res.body.message).toMatch(/this API key's limit of 2000/);
  });

  it("refuses invalid patterns and ranges at creation, naming the field", async () => {
    const bad = await call(env, "POST", "/api-keys", {
      json: { name: "x", allowed_from: ["example.com"] },
    });
    expect(bad.status).toBe(422);
    expect(bad.body.message).toMatch(/^allowed_from\[0\]: /);
    const badIp = await call(env, "POST", "/api-keys", {
      json: { name: "x", allowed_ips: ["10.0.0.0/99"] },
    });
    expect(badIp.status).toBe(422);
    expect(badIp.body.message).toMatch(/^allowed_ips\[0\]: /);
  });
});

describe("client address ranges", () => {
  it("accepts a key only from its ranges, IPv4 and IPv6", async () => {
    const token = await key({ allowed_ips: ["203.0.113.0/24", "2001:db8::/32"] });
    const from = (ip?: string) =>
      call(env, "POST", "/emails", {
        token,
        json: email(),
        headers: ip ? { "cf-connecting-ip": ip } : {},
      });
    expect((await from("203.0.113.7")).status).toBe(200);
    expect((await from("2001:db8::1")).status).toBe(200);
    const outside = await from("198.51.100.1");
    expect(outside.status).toBe(403);
    expect(outside.body.name).toBe("invalid_api_key");
    expect((await from()).status).toBe(403);
  });
});

describe("rotation and last use", () => {
  it("issues a second token with the same policy; the old one works until deleted", async () => {
    const created = await call(env, "POST", "/api-keys", {
      json: { name: "app", permission: "sending_access", allowed_from: ["*@example.com"] },
    });
    const rotated = await call(env, "POST", `/api-keys/${created.body.id}/rotate`);
    expect(rotated.status).toBe(201);
    expect(rotated.body.token).not.toBe(created.body.token);
    const send = (token: string, from = "a@example.com") =>
      call(env, "POST", "/emails", { token, json: email({ from }) });
    expect((await send(created.body.token)).status).toBe(200);
    expect((await send(rotated.body.token)).status).toBe(200);
    expect((await send(rotated.body.token, "a@other.net")).status).toBe(403);
    await call(env, "DELETE", `/api-keys/${created.body.id}`);
    expect((await send(created.body.token)).status).toBe(403);
    expect((await send(rotated.body.token)).status).toBe(200);
  });

  it("shows when a key was last used, never its token or digest", async () => {
    const created = await call(env, "POST", "/api-keys", {
      json: { name: "seen", permission: "sending_access" },
    });
    let listed = (await call(env, "GET", "/api-keys")).body.data.find(
      (k: { id: string }) => k.id === created.body.id,
    );
    expect(listed.last_used_at).toBeNull();
    await call(env, "POST", "/emails", { token: created.body.token, json: email() });
    const listing = await call(env, "GET", "/api-keys");
    listed = listing.body.data.find((k: { id: string }) => k.id === created.body.id);
    expect(Date.parse(listed.last_used_at)).toBeGreaterThan(Date.now() - 60_000);
    const text = JSON.stringify(listing.body);
    expect(text).not.toContain(created.body.token);
    expect(text).not.toMatch(/digest|[0-9a-f]{64}/);
  });
});
