/**
 * The operator dashboard in workerd, through app.request: sign-in (ADMIN_TOKEN or a full_access
 * key, never a sending key; wrong tokens counted by the failure limiter), the session cookie's
 * flags and what makes it invalid (tampering, expiry, a deleted or narrowed key), CSRF and
 * cross-site posts refused, the security headers on every page, escaping, and the pages' actions.
 */
import { beforeEach, describe, expect, it, vi } from "vitest";
import { FAILURE_LIMIT } from "../../src/auth/abuse.ts";
import { loadConfig } from "../../src/config.ts";
import { createApp } from "../../src/http/app.ts";
import { replyLine } from "../../src/http/dashboard/layout.ts";
import { SESSION_TTL_SECONDS } from "../../src/http/dashboard/session.ts";
import { silentLogger } from "../../src/log.ts";
import { createRelay } from "../../src/runtime/compose.ts";
import { MemoryStore } from "../../src/store/memory/store.ts";
import { dohApi, services } from "../support/services.ts";
import { ADMIN, email } from "../support/worker.ts";

const ORIGIN = "https://relay.test";

let clock: number;
let app: ReturnType<typeof createApp>;
let ip: string;
let store: MemoryStore;

beforeEach(() => {
  clock = Date.now();
  const now = () => clock;
  store = new MemoryStore({ now });
  const relay = createRelay(
    loadConfig({
      ADMIN_TOKEN: ADMIN,
      RATE_LIMIT: "10000/1s",
      KEY_CACHE_SECONDS: "30",
      DOH_URL: services().doh.url,
    }),
    { store, log: silentLogger, now },
  );
  app = createApp({ relay: () => relay, background: () => {}, clientIp: () => ip });
  ip = `192.0.2.${Math.floor(Math.random() * 200) + 1}`;
});

function request(path: string, init: RequestInit & { cookie?: string } = {}) {
  const { cookie, headers, ...rest } = init;
  return app.request(`${ORIGIN}${path}`, {
    ...rest,
    headers: { ...(cookie ? { cookie: `relay_dashboard=${cookie}` } : {}), ...headers },
  });
}

/** A form post as a same-origin browser sends it. */
function post(
  path: string,
  fields: Record<string, string>,
  cookie?: string,
  headers: Record<string, string | undefined> = {},
) {
  const all = {
    "content-type": "application/x-www-form-urlencoded",
    origin: ORIGIN,
    "sec-fetch-site": "same-origin",
    ...headers,
  };
  return request(path, {
    method: "POST",
    body: new URLSearchParams(fields).toString(),
    headers: Object.fromEntries(
      Object.entries(all).filter((e): e is [string, string] => e[1] !== undefined),
    ),
    ...(cookie ? { cookie } : {}),
  });
}

function api(method: string, path: string, body?: unknown, token = ADMIN) {
  return request(path, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

function cookieOf(res: Response): string {
  const set = res.headers.get("set-cookie") ?? "";
  return /^relay_dashboard=([^;]*)/.exec(set)?.[1] ?? "";
}

async function signIn(token = ADMIN): Promise<string> {
  const res = await post("/dashboard/sign-in", { token });
  expect(res.status).toBe(303);
  return cookieOf(res);
}

async function csrfOf(cookie: string, path = "/dashboard"): Promise<string> {
  const text = await (await request(path, { cookie })).text();
  return /name="_csrf" value="([^"]+)"/.exec(text)?.[1] ?? "";
}

async function key(permission: "full_access" | "sending_access", name = "k") {
  const res = await api("POST", "/api-keys", { name, permission });
  return (await res.json()) as { id: string; token: string };
}

describe("dashboard sign-in and session", () => {
  it("redirects a page fetched without a session to sign-in", async () => {
    for (const path of [
      "/dashboard",
      "/dashboard/emails",
      "/dashboard/keys",
      "/dashboard/webhooks",
    ]) {
      const res = await request(path);
      expect(res.status, path).toBe(303);
      expect(res.headers.get("location")).toBe("/dashboard/sign-in");
    }
    const page = await request("/dashboard/sign-in");
    expect(page.status).toBe(200);
    expect(await page.text()).toContain(
      '<form class="stack" method="post" action="/dashboard/sign-in">',
    );
  });

  it("signs in with ADMIN_TOKEN into an HttpOnly, Secure, SameSite=Strict cookie on /dashboard with a 12 h expiry", async () => {
    const res = await post("/dashboard/sign-in", { token: ADMIN });
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/dashboard");
    const set = res.headers.get("set-cookie") ?? "";
    expect(set).toMatch(/^relay_dashboard=[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+; /);
    expect(set.split("; ").slice(1).sort()).toEqual(
      [
        "HttpOnly",
        `Max-Age=${SESSION_TTL_SECONDS}`,
        "Path=/dashboard",
        "SameSite=Strict",
        "Secure",
      ].sort(),
    );
    expect(SESSION_TTL_SECONDS).toBe(12 * 3600);
    // The token is nowhere in the cookie.
    expect(set).not.toContain(ADMIN);
    const page = await request("/dashboard", { cookie: cookieOf(res) });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("Signed in as ADMIN_TOKEN");
  });

  it("signs in with a full_access key, refuses a sending key", async () => {
    const full = await key("full_access");
    const cookie = await signIn(full.token);
    expect(await (await request("/dashboard", { cookie })).text()).toContain(`key ${full.id}`);
    const sending = await key("sending_access");
    const res = await post("/dashboard/sign-in", { token: sending.token });
    expect(res.status).toBe(403);
    expect(res.headers.get("set-cookie")).toBeNull();
    expect(await res.text()).toContain("A sending_access key cannot sign in");
  });

  it("refuses a wrong token and counts it: past the failure limit even the right one is 429", async () => {
    const wrong = await post("/dashboard/sign-in", { token: "re_wrong-token-0" });
    expect(wrong.status).toBe(403);
    expect(wrong.headers.get("set-cookie")).toBeNull();
    for (let i = 1; i < FAILURE_LIMIT; i++)
      expect((await post("/dashboard/sign-in", { token: `re_wrong-token-${i}` })).status).toBe(403);
    const limited = await post("/dashboard/sign-in", { token: "re_wrong-token-x" });
    expect(limited.status).toBe(429);
    expect(limited.headers.get("retry-after")).toMatch(/^\d+$/);
    // A key (not ADMIN_TOKEN, compared without a lookup) needs a lookup, which is refused.
    const full = await key("full_access");
    expect((await post("/dashboard/sign-in", { token: full.token })).status).toBe(429);
  });

  it("takes the token only from a POST body: GET with a token in the query does not sign in", async () => {
    const res = await request(`/dashboard/sign-in?token=${ADMIN}`);
    expect(res.headers.get("set-cookie")).toBeNull();
  });

  it("refuses a tampered, a re-signed, a truncated and an expired cookie", async () => {
    const cookie = await signIn();
    const [payload, sig] = cookie.split(".") as [string, string];
    const forged = btoa(
      JSON.stringify({
        ...JSON.parse(atob(payload.replace(/-/g, "+").replace(/_/g, "/"))),
        exp: 9e9,
      }),
    )
      .replace(/\+/g, "-")
      .replace(/\//g, "_")
      .replace(/=+$/, "");
    const flipped = `${sig.slice(0, -1)}${sig.endsWith("A") ? "B" : "A"}`;
    for (const bad of [
      `${forged}.${sig}`,
      `${payload}.${flipped}`,
      payload,
      `${cookie}.x`,
      "garbage",
    ]) {
      const res = await request("/dashboard", { cookie: bad });
      expect(res.status, bad).toBe(303);
      expect(res.headers.get("location")).toBe("/dashboard/sign-in");
      expect(res.headers.get("set-cookie")).toMatch(/^relay_dashboard=; .*Max-Age=0/);
    }
    expect((await request("/dashboard", { cookie })).status).toBe(200);
    clock += SESSION_TTL_SECONDS * 1000 - 1000;
    expect((await request("/dashboard", { cookie })).status).toBe(200);
    clock += 1000;
    expect((await request("/dashboard", { cookie })).status).toBe(303);
  });

  it("looks nothing up for a forged cookie: the signature is checked before the key", async () => {
    const full = await key("full_access");
    const cookie = await signIn(full.token);
    const [payload, sig] = cookie.split(".") as [string, string];
    const lookups = vi.spyOn(store, "listKeys");
    const flipped = `${sig.slice(0, -1)}${sig.endsWith("A") ? "B" : "A"}`;
    for (let i = 0; i < 5; i++) {
      const res = await request("/dashboard", { cookie: `${payload}.${flipped}` });
      expect(res.status).toBe(303);
    }
    expect(lookups).not.toHaveBeenCalled();
  });

  it("ends a key's session when the key is deleted or narrowed to sending_access", async () => {
    const a = await key("full_access", "a");
    const b = await key("full_access", "b");
    const sa = await signIn(a.token);
    const sb = await signIn(b.token);
    expect((await request("/dashboard", { cookie: sa })).status).toBe(200);
    expect((await request("/dashboard", { cookie: sb })).status).toBe(200);
    expect((await api("DELETE", `/api-keys/${a.id}`)).status).toBe(200);
    expect((await api("PATCH", `/api-keys/${b.id}`, { permission: "sending_access" })).status).toBe(
      200,
    );
    expect((await request("/dashboard", { cookie: sa })).status).toBe(303);
    expect((await request("/dashboard", { cookie: sb })).status).toBe(303);
  });

  it("signs out: the cookie is cleared", async () => {
    const cookie = await signIn();
    const res = await post("/dashboard/sign-out", { _csrf: await csrfOf(cookie) }, cookie);
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/dashboard/sign-in");
    expect(res.headers.get("set-cookie")).toMatch(/^relay_dashboard=; Path=\/dashboard; Max-Age=0/);
  });
});

describe("dashboard CSRF and headers", () => {
  it("refuses a POST with a missing or wrong form token, or another session's", async () => {
    const cookie = await signIn();
    const other = await signIn();
    const otherCsrf = await csrfOf(other);
    const forms: Record<string, string>[] = [{}, { _csrf: "wrong" }, { _csrf: otherCsrf }];
    for (const fields of forms) {
      const res = await post("/dashboard/keys", { name: "x", ...fields }, cookie);
      expect(res.status, JSON.stringify(fields)).toBe(403);
    }
    const keys = (await (await api("GET", "/api-keys")).json()) as { data: unknown[] };
    expect(keys.data).toEqual([]);
  });

  it("refuses a cross-site POST even with the right token", async () => {
    const cookie = await signIn();
    const csrf = await csrfOf(cookie);
    const cases = [
      { "sec-fetch-site": "cross-site", origin: "https://evil.example" },
      { "sec-fetch-site": "same-site", origin: "https://evil.relay.test" },
      // Without Sec-Fetch-Site (older browsers), the Origin decides.
      { "sec-fetch-site": undefined, origin: "https://evil.example" },
      { "sec-fetch-site": undefined, origin: "null" },
    ];
    for (const headers of cases) {
      const res = await post("/dashboard/keys", { name: "x", _csrf: csrf }, cookie, headers);
      expect(res.status, JSON.stringify(headers)).toBe(403);
    }
    // Refused before the session is even read: without a cookie too.
    const noCookie = await post("/dashboard/keys", { name: "x" }, undefined, cases[0]);
    expect(noCookie.status).toBe(403);
    // Neither header: not a browser; the form token still decides.
    const curl = await post("/dashboard/keys", { name: "y", _csrf: csrf }, cookie, {
      "sec-fetch-site": undefined,
      origin: undefined,
    });
    expect(curl.status).toBe(201);
    const signIn403 = await post("/dashboard/sign-in", { token: ADMIN }, undefined, {
      "sec-fetch-site": "cross-site",
      origin: "https://evil.example",
    });
    expect(signIn403.status).toBe(403);
    expect(signIn403.headers.get("set-cookie")).toBeNull();
  });

  it("sends a strict CSP, X-Frame-Options, Referrer-Policy and no-store on every page", async () => {
    const cookie = await signIn();
    for (const path of [
      "/dashboard/sign-in",
      "/dashboard",
      "/dashboard/emails",
      "/dashboard/keys",
    ]) {
      const res = await request(path, { cookie });
      expect(res.status, path).toBe(200);
      expect(res.headers.get("content-security-policy")).toBe(
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
      );
      expect(res.headers.get("x-frame-options")).toBe("DENY");
      expect(res.headers.get("referrer-policy")).toBe("no-referrer");
      expect(res.headers.get("cache-control")).toBe("no-store");
    }
    const redirect = await request("/dashboard");
    expect(redirect.headers.get("x-frame-options")).toBe("DENY");
    const css = await request("/dashboard/style.css");
    expect(css.headers.get("content-type")).toContain("text/css");
  });
});

describe("dashboard pages", () => {
  it("lists and filters emails, escaping what senders wrote, and opens one", async () => {
    const evil = '<script>alert("x")</script>';
    const a = await api("POST", "/emails", email({ to: ["ann@example.com"], subject: evil }));
    await api("POST", "/emails", email({ to: ["bob@example.com"], subject: "For Bob" }));
    const { id } = (await a.json()) as { id: string };
    const cookie = await signIn();
    const list = await (await request("/dashboard/emails?to=ann%40example.com", { cookie })).text();
    expect(list).not.toContain(evil);
    expect(list).toContain("&lt;script&gt;");
    expect(list).toContain(`/dashboard/emails/${id}`);
    expect(list).not.toContain("For Bob");
    const bad = await request("/dashboard/emails?last_event=nope", { cookie });
    expect(bad.status).toBe(422);
    expect(await bad.text()).toContain("last_event");
    const one = await (await request(`/dashboard/emails/${id}`, { cookie })).text();
    expect(one).toContain("ann@example.com");
    expect(one).not.toContain(evil);
  });

  it("cancels and reschedules a scheduled email with CSRF-checked forms", async () => {
    const at = new Date(clock + 3600_000).toISOString();
    const sent = await api("POST", "/emails", email({ scheduled_at: at }));
    const { id } = (await sent.json()) as { id: string };
    const cookie = await signIn();
    const page = await (await request(`/dashboard/emails/${id}`, { cookie })).text();
    expect(page).toContain(`action="/dashboard/emails/${id}/cancel"`);
    expect(page).toContain(`action="/dashboard/emails/${id}/reschedule"`);
    const csrf = await csrfOf(cookie, `/dashboard/emails/${id}`);
    const moved = await post(
      `/dashboard/emails/${id}/reschedule`,
      { _csrf: csrf, scheduled_at: "in 2 hours" },
      cookie,
    );
    expect(moved.status).toBe(303);
    const res = await post(`/dashboard/emails/${id}/cancel`, { _csrf: csrf }, cookie);
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe(`/dashboard/emails/${id}?done=canceled`);
    const after = (await (await api("GET", `/emails/${id}`)).json()) as { last_event: string };
    expect(after.last_event).toBe("canceled");
    const again = await (await request(`/dashboard/emails/${id}`, { cookie })).text();
    expect(again).not.toContain(`/cancel"`);
  });

  it("creates a key (token shown once), renames and deletes it", async () => {
    const cookie = await signIn();
    const csrf = await csrfOf(cookie);
    const res = await post(
      "/dashboard/keys",
      { _csrf: csrf, name: "ci", permission: "sending_access" },
      cookie,
    );
    expect(res.status).toBe(201);
    const text = await res.text();
    const token = /id="new-token">([^<]+)</.exec(text)?.[1] ?? "";
    expect(token).toMatch(/^re_/);
    expect((await api("POST", "/emails", email(), token)).status).toBe(200);
    const list = await (await request("/dashboard/keys", { cookie })).text();
    expect(list).not.toContain(token);
    const keys = (await (await api("GET", "/api-keys")).json()) as {
      data: { id: string; name: string }[];
    };
    const id = keys.data[0]?.id ?? "";
    expect(
      (await post(`/dashboard/keys/${id}/rename`, { _csrf: csrf, name: "ci-2" }, cookie)).status,
    ).toBe(303);
    const renamed = (await (await api("GET", "/api-keys")).json()) as { data: { name: string }[] };
    expect(renamed.data[0]?.name).toBe("ci-2");
    expect((await post(`/dashboard/keys/${id}/delete`, { _csrf: csrf }, cookie)).status).toBe(303);
    expect((await api("POST", "/emails", email(), token)).status).toBe(403);
  });

  it("shows the overview's counts and the webhooks list", async () => {
    await api("POST", "/emails", email());
    const cookie = await signIn();
    const overview = await (await request("/dashboard", { cookie })).text();
    expect(overview).toMatch(/Sent<\/th><td class="n">1<\/td><td class="n">1<\/td>/);
    expect(overview).toContain('<svg class="bars"');
    const hooks = await request("/dashboard/webhooks", { cookie });
    expect(hooks.status).toBe(200);
    expect(await hooks.text()).toContain("No webhook endpoints");
  });
});

describe("dashboard overview: queue, smart host, failing webhooks", () => {
  it("says what is queued, the smart host's last replies (escaped) and failing endpoints", async () => {
    const cookie = await signIn();
    const empty = await (await request("/dashboard", { cookie })).text();
    expect(empty).toContain("Queue: 0 due now, 0 scheduled later, 0 being delivered.");
    expect(empty).toContain("The smart host has not refused mail.");
    expect(empty).toContain("No webhook endpoint is failing.");

    const sent = (await (await api("POST", "/emails", email())).json()) as { id: string };
    const later = new Date(clock + 3_600_000).toISOString();
    expect((await api("POST", "/emails", { ...email(), scheduled_at: later })).status).toBe(200);
    clock += 90_000;
    const queued = await (await request("/dashboard", { cookie })).text();
    expect(queued).toContain("Queue: 1 due now, 1 scheduled later, 0 being delivered.");
    expect(queued).toContain(`<a href="/dashboard/emails/${sent.id}">${sent.id}</a>, has been due`);

    // A delivery run is refused by the smart host (the reply carries markup: it must be escaped).
    const [claimed] = (await store.claimRun(clock, 1, 300_000)).entries;
    if (!claimed) throw new Error("nothing claimed");
    const reply = { code: 451, enhanced: "4.7.1", text: "Try again <b>later</b>" };
    const state = {
      ...claimed.state,
      attempts: 1,
      recipients: claimed.state.recipients.map((r) => ({ ...r, reply, at: clock })),
      history: [{ at: clock, tried: 1, delivered: 0, failed: 0, deferred: 1, reply }],
    };
    const next = { kind: "due", at: clock + 600_000 } as const;
    expect(await store.commit(claimed.message.id, { token: claimed.token }, state, next)).toBe(
      "ok",
    );
    const made = await api("POST", "/webhooks", {
      endpoint: "https://hooks.relay-test.dev/in",
      events: ["email.sent"],
    });
    expect(made.status, await made.clone().text()).toBe(201);
    const created = (await made.json()) as { id: string };
    expect((await api("PATCH", `/webhooks/${created.id}`, { status: "disabled" })).status).toBe(
      200,
    );
    clock += 240_000;
    const page = await (await request("/dashboard", { cookie })).text();
    expect(page).toContain("Smart host last refused <time datetime=");
    expect(page).toMatch(/>4 min ago<\/time>: 451 4\.7\.1 Try again &lt;b&gt;later&lt;\/b&gt; \(/);
    expect(page).not.toContain("<b>later</b>");
    expect(page).toContain("1 webhook endpoint is failing");
    expect(page).toContain("https://hooks.relay-test.dev/in: disabled");
    expect(page).toContain("Queue: 0 due now, 2 scheduled later, 0 being delivered.");
  });
});

describe("dashboard reply lines", () => {
  it("shows a server's reply line once, and names a missing answer", () => {
    // The transport stores the whole reply line as text (src/smtp/transport.ts parseReply).
    expect(replyLine({ code: 550, enhanced: "5.1.1", text: "550 5.1.1 No such user here" })).toBe(
      "550 5.1.1 No such user here",
    );
    expect(replyLine({ code: 451, enhanced: "4.7.1", text: "Try again later" })).toBe(
      "451 4.7.1 Try again later",
    );
    expect(replyLine({ code: null, text: "connection reset" })).toBe("no answer connection reset");
    expect(replyLine(null)).toBe("—");
  });
});

describe("dashboard domains", () => {
  it("adds a domain, shows the records to publish (never the private key) and verifies it", async () => {
    const cookie = await signIn();
    const empty = await (await request("/dashboard/domains", { cookie })).text();
    expect(empty).toContain('<a href="/dashboard/domains">Domains</a>');
    expect(empty).toContain("No domains yet");
    const csrf = await csrfOf(cookie, "/dashboard/domains");
    const name = `${crypto.randomUUID().slice(0, 8)}.dash.test`;
    const added = await post(
      "/dashboard/domains",
      { _csrf: csrf, name, dkim_algorithm: "ed25519-sha256" },
      cookie,
    );
    expect(added.status).toBe(201);
    const text = await added.text();
    expect(text).toContain(`Added ${name}`);
    const value = /<code class="wrap">(v=DKIM1; k=ed25519; p=[^<]+)<\/code>/.exec(text)?.[1];
    const record = /<code>(relay1-[0-9a-f]{6}\._domainkey\.[^<]+)<\/code>/.exec(text)?.[1];
    expect(value && record).toBeTruthy();
    expect(text).not.toMatch(/sealed|PRIVATE/i);

    await dohApi().publish(record as string, [value as string]);
    const id = /action="\/dashboard\/domains\/([0-9a-f-]{36})\/verify"/.exec(text)?.[1];
    const verified = await post(`/dashboard/domains/${id}/verify`, { _csrf: csrf }, cookie);
    expect(verified.status).toBe(303);
    const after = await (await request("/dashboard/domains?done=verified", { cookie })).text();
    expect(after).toContain("verified, signing");

    // A cross-site post is refused, as for every dashboard form.
    const forged = await post("/dashboard/domains", { _csrf: csrf, name: "x.test" }, cookie, {
      origin: "https://evil.test",
      "sec-fetch-site": "cross-site",
    });
    expect(forged.status).toBe(403);
  });
});
