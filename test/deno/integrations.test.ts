/**
 * Forms, inbound hooks and webhook events on Deno: the same relay process as `deno task serve`, on
 * real Redis through the gateway, delivering to the plain SMTP sink, and posting its events to a
 * receiver served here with Deno.serve that checks each signature with `standardwebhooks`.
 */
import assert from "node:assert/strict";
import { Webhook } from "standardwebhooks";
import { api, relayEnv, services, sink, startRelay } from "./support.ts";

const SITE = "https://site.deno.test";

async function hmacHex(secret: string, body: string): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(body)));
  return Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("a form, a GitHub-signed hook and signed webhook events work on Deno", async () => {
  // The app's webhook receiver: verifies every event, records the verified ones.
  const events: { type: string; email_id: string; id: string }[] = [];
  let secret = "";
  const receiver = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      const body = await req.text();
      const payload = new Webhook(secret).verify(body, Object.fromEntries(req.headers)) as {
        type: string;
        data: { email_id: string };
      };
      events.push({
        type: payload.type,
        email_id: payload.data.email_id,
        id: req.headers.get("webhook-id") ?? "",
      });
      return new Response(null, { status: 204 });
    },
  );
  const env = relayEnv(services().sinks.plain.url, {
    WEBHOOK_ALLOW_LOOPBACK: "true",
    WEBHOOK_RETRY_SCHEDULE: "200ms,200ms,200ms,200ms,200ms,200ms,200ms",
  });
  const relay = await startRelay(env);
  try {
    const endpoint = `http://127.0.0.1:${receiver.addr.port}/events`;
    const created = await api(relay, "POST", "/webhooks", {
      endpoint,
      events: ["email.sent", "email.delivered"],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    secret = created.body.signing_secret;

    // A hook signed the way GitHub signs.
    const to = `deno-hook-${crypto.randomUUID()}@example.com`;
    const hookSecret = `gh-${crypto.randomUUID()}-secret`;
    const hook = await api(relay, "POST", "/hooks", {
      from: "CI <ci@acme.test>",
      to: [to],
      subject: "[{{repository.full_name}}] {{action}}",
      text: "{{sender.login}} did it",
      verify: { type: "hmac_sha256", secret: hookSecret },
    });
    assert.equal(hook.status, 201, JSON.stringify(hook.body));
    const payload = JSON.stringify({
      action: "completed",
      repository: { full_name: "acme/site" },
      sender: { login: "octocat" },
    });
    const signed = await fetch(`${relay.url}/hooks/${hook.body.id}`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-hub-signature-256": `sha256=${await hmacHex(hookSecret, payload)}`,
      },
      body: payload,
    });
    const accepted = await signed.json();
    assert.equal(signed.status, 202, JSON.stringify(accepted));
    const [viaHook] = await sink("plain").waitFor(1, to);
    assert.ok(viaHook?.raw.includes("Subject: [acme/site] completed"), viaHook?.raw);

    // A form posted from its site with fetch().
    const formTo = `deno-form-${crypto.randomUUID()}@example.com`;
    const form = await api(relay, "POST", "/forms", {
      from: "Website <forms@acme.test>",
      to: [formTo],
      subject: "Contact from {{name}}",
      reply_to_field: "email",
      fields: [
        { name: "name", required: true },
        { name: "email", type: "email", required: true },
      ],
      allowed_origins: [SITE],
    });
    assert.equal(form.status, 201, JSON.stringify(form.body));
    const submitted = await fetch(`${relay.url}/f/${form.body.id}`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json", origin: SITE },
      body: JSON.stringify({ name: "Ann", email: "ann@example.com" }),
    });
    const formAnswer = await submitted.json();
    assert.equal(submitted.status, 200, JSON.stringify(formAnswer));
    assert.equal(submitted.headers.get("access-control-allow-origin"), SITE);
    const [viaForm] = await sink("plain").waitFor(1, formTo);
    assert.ok(viaForm?.raw.includes("Subject: Contact from Ann"), viaForm?.raw);
    assert.ok(viaForm?.raw.includes("Reply-To: ann@example.com"), viaForm?.raw);

    // Each email's events arrive signed and in order: sent, then delivered.
    const deadline = Date.now() + 20_000;
    const wanted = [accepted.id as string, formAnswer.id as string];
    while (Date.now() < deadline) {
      const done = wanted.every(
        (id) => events.filter((e) => e.email_id === id).map((e) => e.type).length >= 2,
      );
      if (done) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    for (const id of wanted) {
      assert.deepEqual(
        events.filter((e) => e.email_id === id).map((e) => e.type),
        ["email.sent", "email.delivered"],
        JSON.stringify(events),
      );
    }
    assert.equal(new Set(events.map((e) => e.id)).size, events.length, "one delivery per event id");
  } finally {
    await relay.stop();
    await receiver.shutdown();
  }
});
