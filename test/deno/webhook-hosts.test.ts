/**
 * Webhook POSTs on Deno (src/events/pinned-fetch.ts, installed by src/runtime/deno.ts): the
 * endpoint's name is resolved by the relay and every answer checked before a connection opens, so
 * a name that leads to loopback or a private address is refused unless WEBHOOK_ALLOW_LOOPBACK
 * allows loopback, and the connection goes to the checked address, not to a second lookup. A
 * receiver served here with Deno.serve counts what reaches it.
 */
import assert from "node:assert/strict";
import { pinnedFetch, type Resolver, resolvePublic } from "../../src/events/pinned-fetch.ts";

function receiver() {
  const seen: { host: string | null; body: string }[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    seen.push({ host: req.headers.get("host"), body: await req.text() });
    return new Response(null, { status: 204 });
  });
  return { seen, port: server.addr.port, close: () => server.shutdown() };
}

const post = (body = "{}") => ({
  method: "POST",
  headers: { "content-type": "application/json" },
  body,
  signal: AbortSignal.timeout(5_000),
});

Deno.test("a name that resolves to 127.0.0.1 (localhost) is refused unless loopback is allowed", async () => {
  await assert.rejects(resolvePublic("localhost", false), /localhost resolves to 127\.0\.0\.1/);
  const allowed = await resolvePublic("localhost", true);
  assert.ok(allowed.some((a) => a.address === "127.0.0.1" || a.address === "::1"));

  const r = receiver();
  try {
    await assert.rejects(
      pinnedFetch(`http://localhost:${r.port}/events`, post(), false),
      /not a public address; not sent/,
    );
    assert.equal(r.seen.length, 0);
    const res = await pinnedFetch(`http://localhost:${r.port}/events`, post('{"a":1}'), true);
    assert.equal(res.status, 204);
    assert.deepEqual(
      r.seen.map((s) => s.body),
      ['{"a":1}'],
    );
  } finally {
    await r.close();
  }
});

Deno.test("every answer must be public: one private address among public ones refuses the name", async () => {
  const answers: Record<string, string[]> = {
    "mixed.example.com": ["93.184.215.14", "10.0.0.5"],
    "nat64.example.com": ["64:ff9b::a00:5"],
    "bench.example.com": ["198.18.0.9"],
    "public.example.com": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
  };
  const resolve: Resolver = async (host) =>
    (answers[host] ?? []).map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));
  for (const host of ["mixed.example.com", "nat64.example.com", "bench.example.com"]) {
    await assert.rejects(resolvePublic(host, true, resolve), /not a public address/, host);
  }
  assert.equal((await resolvePublic("public.example.com", false, resolve)).length, 2);
  await assert.rejects(resolvePublic("nothing.example.com", false, resolve), /has no address/);
});

Deno.test("the connection goes to the checked answer, not to another lookup (no rebinding)", async () => {
  const r = receiver();
  let lookups = 0;
  // A name no DNS here knows: if anything but this resolver looked it up, the POST would fail.
  const resolve: Resolver = async () => {
    lookups++;
    return [{ address: "127.0.0.1", family: 4 }];
  };
  try {
    const url = `http://rebind.example.com:${r.port}/events`;
    await assert.rejects(
      pinnedFetch(url, post(), false, resolve),
      /rebind\.example\.com resolves to 127\.0\.0\.1/,
    );
    assert.equal(r.seen.length, 0);
    const res = await pinnedFetch(url, post(), true, resolve);
    assert.equal(res.status, 204);
    assert.deepEqual(
      r.seen.map((s) => s.host),
      [`rebind.example.com:${r.port}`],
    );
    assert.equal(lookups, 2);
  } finally {
    await r.close();
  }
});

Deno.test("address literals are checked too, before any connection", async () => {
  await assert.rejects(
    pinnedFetch("https://10.0.0.5/x", post(), true),
    /10\.0\.0\.5 .*not a public address/,
  );
  await assert.rejects(
    pinnedFetch("https://[::ffff:7f00:1]/x", post(), false),
    /not a public address/,
  );
});
