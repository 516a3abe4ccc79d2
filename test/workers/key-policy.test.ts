/** Key policies: senders, recipients, size and client ranges, checked on the real envelope; and
 * key rotation and last use. Through the Workers entry, on the in-memory store. */
import { beforeEach, describe, expect, it } from "vitest";
import { covers, rangeWithin, rateWithin } from "../../src/auth/policy.ts";
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

describe("keys made by keys stay within their maker", () => {
  const BOUNDS = {
    allowed_from: ["billing@example.com", "*@notify.example.com"],
    allowed_recipients: ["*@example.com", "*@*.example.org"],
    max_message_bytes: 100_000,
    rate_limit: "600/1m",
    allowed_ips: ["203.0.113.0/24", "2001:db8::/32"],
  };
  const INSIDE = { "cf-connecting-ip": "203.0.113.9" };

  /** A full_access key (made with ADMIN_TOKEN) with the given policy. */
  async function maker(policy: Record<string, unknown>): Promise<string> {
    const res = await call(env, "POST", "/api-keys", {
      json: { name: "maker", permission: "full_access", ...policy },
    });
    expect(res.status).toBe(201);
    return res.body.token;
  }

  it("a key limited to one sender cannot mint an unrestricted key: {name} alone inherits its bounds", async () => {
    const narrow = await maker({ allowed_from: ["billing@example.com"] });
    const minted = await call(env, "POST", "/api-keys", {
      token: narrow,
      json: { name: "escape" },
    });
    expect(minted.status).toBe(201);
    const send = (from: string) =>
      call(env, "POST", "/emails", {
        token: minted.body.token,
        json: email({ from, to: ["victim@elsewhere.example"] }),
      });
    const refused = await send("CEO <ceo@bank.example>");
    expect(refused.status).toBe(403);
    expect(refused.body.message).toMatch(/^from: ceo@bank\.example is not a sender/);
    expect((await send("billing@example.com")).status).toBe(200);
    const listed = (await call(env, "GET", "/api-keys")).body.data.find(
      (k: { id: string }) => k.id === minted.body.id,
    );
    expect(listed.allowed_from).toEqual(["billing@example.com"]);
  });

  it.each([
    ["allowed_from[1]", { allowed_from: ["billing@example.com", "*@example.com"] }],
    ["allowed_from[0]", { allowed_from: ["*@*.example.com"] }],
    ["allowed_from[0]", { allowed_from: ["Billing@Example.com.evil.org"] }],
    ["allowed_from", { allowed_from: [] }],
    ["allowed_recipients[0]", { allowed_recipients: ["*@*.example.com"] }],
    ["allowed_recipients[0]", { allowed_recipients: ["*@example.org"] }],
    ["max_message_bytes", { max_message_bytes: 100_001 }],
    ["rate_limit", { rate_limit: "601/1m" }],
    ["rate_limit", { rate_limit: "11/1s" }],
    ["rate_limit", { rate_limit: "601/1h" }],
    ["allowed_ips[0]", { allowed_ips: ["203.0.112.0/23"] }],
    ["allowed_ips[1]", { allowed_ips: ["203.0.113.0/25", "198.51.100.7"] }],
    ["allowed_ips[0]", { allowed_ips: ["2001:db9::/48"] }],
    ["allowed_ips[0]", { allowed_ips: ["::ffff:203.0.113.0/120"] }],
    ["allowed_ips", { allowed_ips: [] }],
  ])("refuses a new key wider in %s with 403 naming it (%j)", async (field, wider) => {
    const token = await maker(BOUNDS);
    const res = await call(env, "POST", "/api-keys", {
      token,
      headers: INSIDE,
      json: { name: "wider", permission: "sending_access", ...wider },
    });
    expect(res.status).toBe(403);
    expect(res.body.name).toBe("validation_error");
    expect(res.body.message.startsWith(`${field}: `)).toBe(true);
  });

  it("creates a key narrower or equal in every field, and that key is bounded by it", async () => {
    const token = await maker(BOUNDS);
    const res = await call(env, "POST", "/api-keys", {
      token,
      headers: INSIDE,
      json: {
        name: "narrower",
        permission: "sending_access",
        allowed_from: ["billing@example.com", "alerts@NOTIFY.example.com"],
        allowed_recipients: ["ann@example.com", "*@eu.example.org", "*@*.eu.example.org"],
        max_message_bytes: 100_000,
        // 10 per second is 600 in any minute: within 600/1m.
        rate_limit: "10/1s",
        allowed_ips: ["203.0.113.128/25", "2001:db8:1::/48"],
      },
    });
    expect(res.status).toBe(201);
    const send = (json: Record<string, unknown>, ip = "203.0.113.200") =>
      call(env, "POST", "/emails", {
        token: res.body.token,
        headers: { "cf-connecting-ip": ip },
        json: email(json),
      });
    expect((await send({ from: "billing@example.com", to: ["ann@example.com"] })).status).toBe(200);
    expect(
      (await send({ from: "alerts@notify.example.com", to: ["b@x.eu.example.org"] })).status,
    ).toBe(200);
    const outside = await send({ from: "billing@example.com", to: ["bob@example.com"] });
    expect(outside.status).toBe(403);
    expect(outside.body.message).toMatch(/^to: bob@example\.com/);
    expect((await send({ from: "x@notify.example.com" })).status).toBe(403);
    expect((await send({}, "203.0.113.9")).status).toBe(403);
  });

  it("fills what the request leaves out with the maker's bounds", async () => {
    const token = await maker(BOUNDS);
    const res = await call(env, "POST", "/api-keys", {
      token,
      headers: INSIDE,
      json: { name: "partial", allowed_from: ["billing@example.com"] },
    });
    expect(res.status).toBe(201);
    const listed = (await call(env, "GET", "/api-keys")).body.data.find(
      (k: { id: string }) => k.id === res.body.id,
    );
    expect(listed).toMatchObject({ ...BOUNDS, allowed_from: ["billing@example.com"] });
  });

  it("bounds a key without a rate_limit of its own by the relay's RATE_LIMIT", async () => {
    const token = await maker({});
    const over = await call(env, "POST", "/api-keys", {
      token,
      json: { name: "fast", rate_limit: "10001/1s" },
    });
    expect(over.status).toBe(403);
    expect(over.body.message).toMatch(/^rate_limit: /);
    const within = await call(env, "POST", "/api-keys", {
      token,
      json: { name: "ok", rate_limit: "10000/1s" },
    });
    expect(within.status).toBe(201);
  });

  it("lets ADMIN_TOKEN create keys wider than RATE_LIMIT and without bounds", async () => {
    const res = await call(env, "POST", "/api-keys", {
      json: { name: "wide", rate_limit: "9999999/1s" },
    });
    expect(res.status).toBe(201);
  });

  it("refuses to rotate a key wider than the caller; rotates one within it", async () => {
    const narrow = await maker({ allowed_from: ["billing@example.com"] });
    const wide = await call(env, "POST", "/api-keys", { json: { name: "wide" } });
    const rotate = (id: string, token?: string) =>
      call(env, "POST", `/api-keys/${id}/rotate`, token ? { token } : {});
    const refused = await rotate(wide.body.id, narrow);
    expect(refused.status).toBe(403);
    expect(refused.body.message).toMatch(/^allowed_from: /);
    const within = await call(env, "POST", "/api-keys", {
      json: { name: "within", allowed_from: ["billing@example.com"] },
    });
    expect((await rotate(within.body.id, narrow)).status).toBe(201);
    expect((await rotate(wide.body.id)).status).toBe(201);
    // Nothing was minted by the refused rotation: the admin's rotation made the only new key.
    const names = (await call(env, "GET", "/api-keys")).body.data.map(
      (k: { name: string }) => k.name,
    );
    expect(names.filter((n: string) => n === "wide")).toHaveLength(2);
  });

  it("refuses to delete a key wider than the caller; deletes one within it", async () => {
    const narrow = await maker({ allowed_from: ["billing@example.com"] });
    const wide = await call(env, "POST", "/api-keys", { json: { name: "wide-del" } });
    const within = await call(env, "POST", "/api-keys", {
      json: { name: "within-del", allowed_from: ["billing@example.com"] },
    });
    const del = (id: string) => call(env, "DELETE", `/api-keys/${id}`, { token: narrow });
    const refused = await del(wide.body.id);
    expect(refused.status).toBe(403);
    expect(refused.body.message).toMatch(/^allowed_from: the key to change allows more/);
    // The wider key still works: a refused delete revokes nothing.
    const wideToken = wide.body.token as string;
    expect((await call(env, "GET", "/api-keys", { token: wideToken })).status).toBe(200);
    expect((await del(within.body.id)).status).toBe(200);
    const ids = (await call(env, "GET", "/api-keys")).body.data.map((k: { id: string }) => k.id);
    expect(ids).toContain(wide.body.id);
    expect(ids).not.toContain(within.body.id);
  });
});

describe("pattern and range containment", () => {
  it.each([
    ["a@d.example", "A@D.example", true],
    ["a@d.example", "b@d.example", false],
    ["a@d.example", "*@d.example", false],
    ["*@d.example", "a@d.example", true],
    ["*@d.example", "*@d.example", true],
    ["*@d.example", "a@x.d.example", false],
    ["*@d.example", "*@*.d.example", false],
    ["*@*.d.example", "a@x.d.example", true],
    ["*@*.d.example", "*@x.y.d.example", true],
    ["*@*.d.example", "*@*.x.d.example", true],
    ["*@*.d.example", "*@*.d.example", true],
    ["*@*.d.example", "*@d.example", false],
    ["*@*.d.example", "a@xd.example", false],
    ["*@*.d.example", "*@*.xd.example", false],
    ["a@*.d.example", "a@x.d.example", true],
    ["a@*.d.example", "*@x.d.example", false],
  ])("covers(%s, %s) is %s", (outer, inner, expected) => {
    expect(covers(outer, inner)).toBe(expected);
  });

  it("compares rate limits over every stretch of time", () => {
    const r = (requests: number, windowSeconds: number) => ({ requests, windowSeconds });
    expect(rateWithin(r(600, 60), r(10, 1))).toBe(true);
    expect(rateWithin(r(600, 60), r(11, 1))).toBe(false);
    expect(rateWithin(r(10, 3), r(6, 2))).toBe(false);
    expect(rateWithin(r(10, 3), r(5, 2))).toBe(true);
    expect(rateWithin(r(10, 1), r(10, 3600))).toBe(true);
    expect(rateWithin(r(10, 1), r(11, 3600))).toBe(false);
  });

  it("contains ranges of the same kind only", () => {
    expect(rangeWithin("203.0.113.0/24", "203.0.113.7")).toBe(true);
    expect(rangeWithin("203.0.113.0/24", "203.0.113.0/24")).toBe(true);
    expect(rangeWithin("203.0.113.0/24", "203.0.0.0/16")).toBe(false);
    expect(rangeWithin("2001:db8::/32", "2001:db8:ff::/48")).toBe(true);
    expect(rangeWithin("::/0", "203.0.113.0/24")).toBe(false);
    expect(rangeWithin("203.0.113.5", "203.0.113.5/32")).toBe(true);
  });
});
