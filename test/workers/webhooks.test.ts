/**
 * Webhook events inside workerd: which events each delivery state change emits (pure functions,
 * fed by the real applyOutcomes), what an endpoint may be, the WEBHOOK_* settings, and the API on
 * the in-memory store, with a real HTTP server that refuses the events (the SMTP sink's control
 * API answers 404 to an unknown path), so attempts and retries are recorded.
 * The signed, recovering receiver runs in test/node/webhooks-e2e.test.ts.
 */

import { Webhook } from "standardwebhooks";
import { beforeEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";
import { applyOutcomes, cancelState, initialState } from "../../src/delivery/state.ts";
import { signedHeaders } from "../../src/events/dispatch.ts";
import { checkEndpointUrl, checkEvents } from "../../src/events/endpoints.ts";
import {
  acceptedEvents,
  canceledEvents,
  deliveryEvents,
  type EventDraft,
} from "../../src/events/events.ts";
import type { RecipientOutcome } from "../../src/smtp/transport.ts";
import type { QueuedMessage } from "../../src/store/types.ts";
import { services, sinkApi } from "../support/services.ts";
import { call, email, type TestEnv, testEnv, tick } from "../support/worker.ts";

const NOW = Date.parse("2026-01-01T00:00:00Z");
const policy = {
  maxQueueAgeMs: 3_600_000,
  retentionMs: 60_000,
  retry: { firstMs: 1000, maxMs: 60_000 },
};

function message(to: string[], bcc: string[] = []): QueuedMessage {
  return {
    id: "3f0a3c57-3b1f-4b2c-9d8e-1e2f3a4b5c6d",
    keyId: "k",
    createdAt: NOW,
    messageId: "<m@acme.test>",
    envelope: { from: "ops@acme.test", to: [...to, ...bcc] },
    view: {
      from: "Ops <ops@acme.test>",
      to,
      cc: [],
      bcc,
      reply_to: [],
      subject: "Hi",
      tags: [{ name: "kind", value: "x" }],
    },
  };
}

const ok = (address: string): RecipientOutcome => ({
  address,
  status: "accepted",
  reply: { code: 250, enhanced: "2.0.0", text: "250 2.0.0 Ok" },
});
const temp = (address: string): RecipientOutcome => ({
  address,
  status: "temporary",
  reply: { code: 451, enhanced: "4.3.0", text: "451 4.3.0 Later" },
});
const perm = (address: string, text = "550 5.1.1 No such user"): RecipientOutcome => ({
  address,
  status: "permanent",
  reply: { code: 550, enhanced: "5.1.1", text },
});

const types = (events: EventDraft[]) => events.map((e) => e.type);
// biome-ignore lint/suspicious/noExplicitAny: payloads are read as JSON
const payloadOf = (e: EventDraft | undefined): any => JSON.parse(e?.payload ?? "null");

describe("which events a state change emits", () => {
  it("emits email.sent on accept, or email.scheduled for a later send", () => {
    const m = message(["ann@example.com"]);
    expect(types(acceptedEvents(m, initialState(m.envelope.to, null), NOW))).toEqual([
      "email.sent",
    ]);
    const later = initialState(m.envelope.to, NOW + 60_000);
    expect(types(acceptedEvents(m, later, NOW))).toEqual(["email.scheduled"]);
    expect(types(canceledEvents(m, NOW))).toEqual(["email.canceled"]);
  });

  it("emits email.delivered once every recipient is final and one was delivered", () => {
    const m = message(["ann@example.com", "bob@example.com"]);
    const before = initialState(m.envelope.to, null);
    const { state } = applyOutcomes(
      m,
      before,
      [ok("ann@example.com"), ok("bob@example.com")],
      NOW,
      policy,
    );
    const events = deliveryEvents(m, before, state, NOW);
    expect(types(events)).toEqual(["email.delivered"]);
    expect(payloadOf(events[0])).toEqual({
      type: "email.delivered",
      created_at: new Date(NOW).toISOString(),
      data: {
        created_at: new Date(NOW).toISOString(),
        email_id: m.id,
        message_id: "<m@acme.test>",
        from: "Ops <ops@acme.test>",
        to: ["ann@example.com", "bob@example.com"],
        subject: "Hi",
        tags: { kind: "x" },
      },
    });
  });

  it("emits email.bounced then email.delivered for a partial 5xx, naming only To/Cc recipients", () => {
    const m = message(["ann@example.com"], ["bcc@example.net"]);
    const before = initialState(m.envelope.to, null);
    const { state } = applyOutcomes(
      m,
      before,
      [ok("ann@example.com"), perm("bcc@example.net", "550 5.1.1 <bcc@example.net>: unknown")],
      NOW,
      policy,
    );
    const events = deliveryEvents(m, before, state, NOW);
    expect(types(events)).toEqual(["email.bounced", "email.delivered"]);
    expect(payloadOf(events[0]).data.bounce).toEqual({
      type: "Permanent",
      subType: "NoEmail",
      message: "550 5.1.1 <[bcc recipient]>: unknown",
      recipients: [],
    });
    for (const e of events) expect(e.payload).not.toContain("bcc@example.net");
  });

  it("emits email.delivery_delayed at the first deferral only, then email.delivered", () => {
    const m = message(["ann@example.com"]);
    const s0 = initialState(m.envelope.to, null);
    const s1 = applyOutcomes(m, s0, [temp("ann@example.com")], NOW, policy).state;
    expect(types(deliveryEvents(m, s0, s1, NOW))).toEqual(["email.delivery_delayed"]);
    const s2 = applyOutcomes(m, s1, [temp("ann@example.com")], NOW + 1000, policy).state;
    expect(deliveryEvents(m, s1, s2, NOW + 1000)).toEqual([]);
    const s3 = applyOutcomes(m, s2, [ok("ann@example.com")], NOW + 3000, policy).state;
    expect(types(deliveryEvents(m, s2, s3, NOW + 3000))).toEqual(["email.delivered"]);
  });

  it("emits email.failed (not bounced) when the queue age runs out on a temporary failure", () => {
    const m = message(["ann@example.com"]);
    const s0 = initialState(m.envelope.to, null);
    const late = NOW + policy.maxQueueAgeMs;
    const { state } = applyOutcomes(m, s0, [temp("ann@example.com")], late, policy);
    const events = deliveryEvents(m, s0, state, late);
    expect(types(events)).toEqual(["email.failed"]);
    expect(payloadOf(events[0]).data.failed.reason).toMatch(/^451 4\.3\.0 Later \(gave up/);
  });

  it("emits email.sent at a scheduled message's first attempt", () => {
    const m = message(["ann@example.com"]);
    const s0 = initialState(m.envelope.to, NOW + 60_000);
    const { state } = applyOutcomes(m, s0, [ok("ann@example.com")], NOW + 60_000, policy);
    expect(types(deliveryEvents(m, s0, state, NOW + 60_000))).toEqual([
      "email.sent",
      "email.delivered",
    ]);
  });

  it("emits nothing for a canceled message's delivery write-back", () => {
    const m = message(["ann@example.com"]);
    const s0 = cancelState(initialState(m.envelope.to, null), NOW);
    const { state } = applyOutcomes(m, s0, [], NOW, policy);
    expect(deliveryEvents(m, s0, state, NOW)).toEqual([]);
  });
});

describe("event ids", () => {
  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

  it("gives the same transition the same id, so a retried write cannot add a second event", () => {
    const m = message(["ann@example.com"]);
    const s0 = initialState(m.envelope.to, null);
    const accepted = acceptedEvents(m, s0, NOW);
    // Computed again later (a retried enqueue): same id, whatever the clock says.
    expect(acceptedEvents(m, s0, NOW + 5_000).map((e) => e.id)).toEqual(accepted.map((e) => e.id));
    expect(accepted[0]?.id).toMatch(UUID);
    const { state } = applyOutcomes(m, s0, [ok("ann@example.com")], NOW, policy);
    const once = deliveryEvents(m, s0, state, NOW);
    const again = deliveryEvents(m, s0, state, NOW + 1_000);
    expect(again.map((e) => e.id)).toEqual(once.map((e) => e.id));
    expect(canceledEvents(m, NOW)[0]?.id).toBe(canceledEvents(m, NOW + 9)[0]?.id);
  });

  it("gives distinct transitions distinct ids: sent, delivered, bounces at different attempts, other emails", () => {
    const m = message(["ann@example.com", "bob@example.com", "cy@example.com"]);
    const s0 = initialState(m.envelope.to, null);
    const s1 = applyOutcomes(
      m,
      s0,
      [perm("ann@example.com"), temp("bob@example.com"), temp("cy@example.com")],
      NOW,
      policy,
    ).state;
    const s2 = applyOutcomes(
      m,
      s1,
      [perm("bob@example.com"), ok("cy@example.com")],
      NOW + 1000,
      policy,
    ).state;
    const first = deliveryEvents(m, s0, s1, NOW);
    const second = deliveryEvents(m, s1, s2, NOW + 1000);
    expect(types(first)).toEqual(["email.bounced", "email.delivery_delayed"]);
    expect(types(second)).toEqual(["email.bounced", "email.delivered"]);
    const other = { ...m, id: "9b1e4f0a-2c3d-4e5f-8a9b-0c1d2e3f4a5b" };
    const ids = [
      ...acceptedEvents(m, s0, NOW),
      ...acceptedEvents(other, s0, NOW),
      ...first,
      ...second,
      ...canceledEvents(m, NOW),
    ].map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) expect(id).toMatch(UUID);
  });
});

describe("Bcc addresses in replies", () => {
  const bounceOf = (m: QueuedMessage, rcpt: string, text: string) => {
    const before = initialState(m.envelope.to, null);
    const outcomes = m.envelope.to.map((a) => (a === rcpt ? perm(a, text) : ok(a)));
    const { state } = applyOutcomes(m, before, outcomes, NOW, policy);
    const bounced = deliveryEvents(m, before, state, NOW).find((e) => e.type === "email.bounced");
    return payloadOf(bounced).data.bounce.message as string;
  };

  it("hides a Bcc address in any case, and its bare local part", () => {
    const m = message(["ann@example.com"], ["audit@acme.test"]);
    const text = bounceOf(
      m,
      "audit@acme.test",
      "550 5.1.1 <Audit@Acme.test>: unknown user AUDIT; audit. (see AUDIT@ACME.TEST)",
    );
    expect(text).toBe(
      "550 5.1.1 <[bcc recipient]>: unknown user [bcc recipient]; [bcc recipient]. (see [bcc recipient])",
    );
    expect(text.toLowerCase()).not.toContain("audit");
  });

  it("leaves To and Cc addresses, and words that only contain the local part", () => {
    const m = message(["ann@audit.test"], ["audit@acme.test"]);
    expect(
      bounceOf(m, "ann@audit.test", "550 5.1.1 <Ann@Audit.test>: auditing says unknown user ann"),
    ).toBe("550 5.1.1 <Ann@Audit.test>: auditing says unknown user ann");
  });
});

describe("event headers", () => {
  it("sends svix-* equal to webhook-*, and both verify as Standard Webhooks (Svix) signatures", () => {
    const secret = `whsec_${btoa("0123456789abcdef0123456789abcdef")}`;
    const body = JSON.stringify({ type: "email.sent", data: { email_id: "x" } });
    const h = signedHeaders(secret, "evt-1", body, new Date());
    expect(h["svix-id"]).toBe(h["webhook-id"]);
    expect(h["svix-timestamp"]).toBe(h["webhook-timestamp"]);
    expect(h["svix-signature"]).toBe(h["webhook-signature"]);
    // Svix's verifier reads svix-*; it checks the same HMAC over "id.timestamp.body".
    const asSvix = {
      "webhook-id": h["svix-id"] as string,
      "webhook-timestamp": h["svix-timestamp"] as string,
      "webhook-signature": h["svix-signature"] as string,
    };
    expect(new Webhook(secret).verify(body, asSvix)).toEqual(JSON.parse(body));
  });
});

describe("what an endpoint may be", () => {
  it("takes https on a public host, and http only on loopback when allowed", () => {
    expect(checkEndpointUrl("https://app.example.com/hook", false)).toBe(
      "https://app.example.com/hook",
    );
    expect(() => checkEndpointUrl("http://app.example.com/hook", false)).toThrow(
      "endpoint: must be an https URL",
    );
    expect(() => checkEndpointUrl("http://127.0.0.1:8080/x", false)).toThrow(
      "endpoint: must be an https URL",
    );
    expect(checkEndpointUrl("http://127.0.0.1:8080/x", true)).toBe("http://127.0.0.1:8080/x");
    expect(checkEndpointUrl("http://localhost:8080/x", true)).toBe("http://localhost:8080/x");
    // Loopback is still only loopback: http elsewhere stays refused.
    expect(() => checkEndpointUrl("http://10.1.2.3/x", true)).toThrow(
      "endpoint: must be an https URL",
    );
  });

  it("refuses private, link-local and internal targets, and credentials in the URL", () => {
    for (const url of [
      "https://localhost/x",
      "https://127.0.0.1/x",
      "https://192.168.1.10/x",
      "https://172.20.0.1/x",
      "https://169.254.169.254/latest/meta-data",
      "https://100.64.0.1/x",
      "https://[::1]/x",
      "https://[fd00::1]/x",
      "https://[fe80::1]/x",
      "https://[::ffff:10.0.0.1]/x",
      "https://printer.local/x",
      "https://db.internal/x",
      "https://intranet/x",
    ]) {
      expect(() => checkEndpointUrl(url, false), url).toThrow(/^endpoint: must be a public host/);
    }
    expect(() => checkEndpointUrl("https://u:p@app.example.com/x", false)).toThrow(
      "endpoint: must not carry credentials",
    );
  });

  it("refuses special-use names however they are spelt: trailing dot, case, IDN, nested", () => {
    for (const url of [
      "https://metadata.google.internal./computeMetadata/v1",
      "https://printer.local./x",
      "https://localhost./x",
      "https://LOCALHOST/x",
      "https://api.localhost/x",
      "https://router.home.arpa/x",
      "https://1.0.0.127.in-addr.arpa/x",
      "https://abcdefghijklmnop.onion/x",
      "https://app.test/x",
      "https://app.invalid/x",
      "https://app.example/x",
      "https://box.alt/x",
      "https://nas.lan/x",
      "https://mail.corp/x",
      "https://files.home/x",
      "https://wiki.intranet/x",
      "https://db.private/x",
      "https://me.localdomain/x",
      "https://xn--caf-dma.internal/x",
      "https://café.internal/x",
      "https://%6c%6fcalhost/x",
      "https://intranet./x",
    ]) {
      expect(() => checkEndpointUrl(url, false), url).toThrow(/^endpoint: must be a public host/);
    }
  });

  it("refuses every special-purpose address, including numeric spellings the URL parser rewrites", () => {
    for (const url of [
      "https://2130706433/x", // 127.0.0.1
      "https://0x7f.1/x", // 127.0.0.1
      "https://0177.0.0.1/x", // 127.0.0.1 (octal)
      "https://127.1/x",
      "https://127.0.0.1./x",
      "https://0.0.0.0/x",
      "https://10.0.0.1/x",
      "https://198.18.0.1/x", // benchmarking
      "https://198.19.255.254/x",
      "https://192.0.0.8/x", // IETF protocol assignments
      "https://192.0.2.1/x", // documentation
      "https://198.51.100.7/x",
      "https://203.0.113.9/x",
      "https://192.88.99.1/x", // 6to4 relay anycast
      "https://100.127.255.254/x", // CGNAT
      "https://240.0.0.1/x", // reserved
      "https://255.255.255.255/x",
      "https://224.0.0.1/x", // multicast
      "https://[::ffff:127.0.0.1]/x",
      "https://[::ffff:8.8.8.8]/x", // IPv4-mapped, public or not
      "https://[::127.0.0.1]/x", // IPv4-compatible (deprecated)
      "https://[::]/x",
      "https://[64:ff9b::10.0.0.1]/x", // NAT64 with a private IPv4
      "https://[64:ff9b:1::a00:1]/x",
      "https://[2002:a00:1::1]/x", // 6to4 embedding 10.0.0.1
      "https://[2001:db8::1]/x", // documentation
      "https://[3fff::1]/x",
      "https://[2001::1]/x", // Teredo
      "https://[2001:2::1]/x", // benchmarking
      "https://[fc00::1]/x",
      "https://[fec0::1]/x", // site-local
      "https://[ff02::1]/x",
      "https://[100::1]/x", // discard
      "https://[5f00::1]/x", // SRv6
    ]) {
      expect(() => checkEndpointUrl(url, false), url).toThrow(/^endpoint: must be a public host/);
    }
    for (const url of [
      "https://8.8.8.8/x",
      "https://[2606:4700:4700::1111]/x",
      "https://hooks.example.com./x",
      "https://Hooks.Example.COM/x",
      "https://bücher.example/x".replace(".example", ".example.org"),
    ]) {
      expect(() => checkEndpointUrl(url, false), url).not.toThrow();
    }
  });

  it("keeps allowing loopback, and only loopback, with WEBHOOK_ALLOW_LOOPBACK", () => {
    for (const url of [
      "http://localhost./x",
      "http://api.localhost:8080/x",
      "http://2130706433:8080/x",
      "http://[::1]:8080/x",
      "https://127.0.0.2/x",
    ]) {
      expect(checkEndpointUrl(url, true), url).toMatch(/^https?:/);
    }
    for (const url of ["https://10.0.0.1/x", "https://198.18.0.1/x", "https://printer.local/x"]) {
      expect(() => checkEndpointUrl(url, true), url).toThrow(/^endpoint: must be a public host/);
    }
  });

  it("takes only the events the relay emits, naming the bad element", () => {
    expect(checkEvents(["email.sent", "email.sent", "email.canceled"])).toEqual([
      "email.sent",
      "email.canceled",
    ]);
    expect(() => checkEvents(["email.sent", "email.clicked"])).toThrow(
      /^events\[1\]: must be one of/,
    );
    expect(() => checkEvents([])).toThrow(/^events: must be a non-empty list/);
    expect(() => checkEvents("email.sent")).toThrow(/^events: /);
  });
});

describe("WEBHOOK_* settings", () => {
  it("defaults to 5s, 5m, 30m, 2h, 5h, 10h, 10h, a 10 s timeout and no loopback", () => {
    const { webhooks } = loadConfig({});
    expect(webhooks.retryScheduleMs).toEqual([
      5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000,
    ]);
    expect(webhooks.timeoutMs).toBe(10_000);
    expect(webhooks.allowLoopback).toBe(false);
  });

  it("names the variable when a setting is wrong", () => {
    expect(() => loadConfig({ WEBHOOK_RETRY_SCHEDULE: "5s,soon" })).toThrow(
      /^WEBHOOK_RETRY_SCHEDULE: .*"soon"/,
    );
    expect(() => loadConfig({ WEBHOOK_RETRY_SCHEDULE: "25h" })).toThrow(
      /^WEBHOOK_RETRY_SCHEDULE: /,
    );
    expect(() => loadConfig({ WEBHOOK_TIMEOUT_SECONDS: "60" })).toThrow(
      /^WEBHOOK_TIMEOUT_SECONDS: /,
    );
    expect(() => loadConfig({ WEBHOOK_ALLOW_LOOPBACK: "maybe" })).toThrow(
      /^WEBHOOK_ALLOW_LOOPBACK: /,
    );
    expect(loadConfig({ WEBHOOK_RETRY_SCHEDULE: "100ms, 2s" }).webhooks.retryScheduleMs).toEqual([
      100, 2000,
    ]);
  });
});

describe("the API on the in-memory store", () => {
  const sink = sinkApi("plain");
  let env: TestEnv;
  beforeEach(async () => {
    env = testEnv({ WEBHOOK_ALLOW_LOOPBACK: "true", WEBHOOK_RETRY_SCHEDULE: "60s" });
    await sink.reset();
  });

  it("records each refused attempt and schedules the retry, without slowing mail", async () => {
    // A real HTTP server that answers 404 to this path.
    const endpoint = `${services().sinks.plain.api}/api/no-webhooks-here`;
    const created = await call(env, "POST", "/webhooks", {
      json: { endpoint, events: ["email.sent", "email.delivered"] },
    });
    expect(created.status).toBe(201);
    const id = created.body.id as string;

    const sent = await call(env, "POST", "/emails", { json: email() });
    expect(sent.status).toBe(200);
    await sink.waitFor(1);
    await tick(env);

    const log = await call(env, "GET", `/webhooks/${id}/events`);
    expect(log.status).toBe(200);
    // Only the head of the email's chain was tried; email.delivered waits behind it.
    const [delivered, first] = log.body.data;
    expect(delivered).toMatchObject({ type: "email.delivered", status: "pending" });
    expect(first).toMatchObject({ type: "email.sent", status: "pending" });
    const attempts = await call(env, "GET", `/webhooks/${id}/events/${first.id}/attempts`);
    expect(attempts.body.data).toHaveLength(1);
    expect(attempts.body.data[0]).toMatchObject({ http_status_code: 404 });
    expect(
      (await call(env, "GET", `/webhooks/${id}/events/${delivered.id}/attempts`)).body.data,
    ).toEqual([]);
    const event = await call(env, "GET", `/webhooks/${id}/events/${first.id}`);
    expect(event.body).toMatchObject({
      object: "webhook_event",
      type: "email.sent",
      status: "pending",
    });
    expect(Date.parse(event.body.next_attempt_at)).toBeGreaterThan(Date.now() + 50_000);
    expect(event.body.payload.data.email_id).toBe(sent.body.id);
    // Mail went out regardless.
    expect((await call(env, "GET", `/emails/${sent.body.id}`)).body.last_event).toBe("delivered");
  });

  it("replays an event through the API: a new id, the same payload, queued; 404 unknown, 409 disabled", async () => {
    const endpoint = `${services().sinks.plain.api}/api/no-webhooks-here`;
    const created = await call(env, "POST", "/webhooks", {
      json: { endpoint, events: ["email.sent"] },
    });
    const id = created.body.id as string;
    const sent = await call(env, "POST", "/emails", { json: email() });
    await sink.waitFor(1);
    await tick(env);
    const [first] = (await call(env, "GET", `/webhooks/${id}/events`)).body.data;
    const replayed = await call(env, "POST", `/webhooks/${id}/events/${first.id}/replay`);
    expect(replayed.status).toBe(200);
    expect(replayed.body.object).toBe("webhook_event");
    expect(replayed.body.id).not.toBe(first.id);
    const copy = await call(env, "GET", `/webhooks/${id}/events/${replayed.body.id}`);
    expect(copy.body).toMatchObject({ type: "email.sent", status: "pending" });
    expect(copy.body.payload.data.email_id).toBe(sent.body.id);
    const log = (await call(env, "GET", `/webhooks/${id}/events`)).body.data;
    expect(log.map((e: { id: string }) => e.id)).toEqual([replayed.body.id, first.id]);
    // The original keeps its attempt; the copy has none yet.
    expect(
      (await call(env, "GET", `/webhooks/${id}/events/${first.id}/attempts`)).body.data,
    ).toHaveLength(1);
    const unknown = await call(env, "POST", `/webhooks/${id}/events/${crypto.randomUUID()}/replay`);
    expect(unknown.status).toBe(404);
    await call(env, "PATCH", `/webhooks/${id}`, { json: { status: "disabled" } });
    const refused = await call(env, "POST", `/webhooks/${id}/events/${first.id}/replay`);
    expect(refused.status).toBe(409);
    expect(refused.body.message).toContain("disabled");
  });

  it("answers 404 for unknown webhooks and events, and lists none when there are none", async () => {
    expect((await call(env, "GET", "/webhooks")).body).toEqual({
      object: "list",
      has_more: false,
      data: [],
    });
    const missing = crypto.randomUUID();
    for (const path of [`/webhooks/${missing}`, `/webhooks/nope`, `/webhooks/${missing}/events`]) {
      const res = await call(env, "GET", path);
      expect(res.status, path).toBe(404);
      expect(res.body.name).toBe("not_found");
    }
    const res = await call(env, "DELETE", `/webhooks/${missing}`);
    expect(res.status).toBe(404);
  });

  it("answers 422 naming endpoint for a trailing-dot internal name or a numeric loopback", async () => {
    const strict = testEnv({});
    for (const endpoint of [
      "https://metadata.google.internal./computeMetadata/v1",
      "https://2130706433/x",
      "https://[::ffff:127.0.0.1]/x",
      "https://198.18.0.1/x",
    ]) {
      const res = await call(strict, "POST", "/webhooks", {
        json: { endpoint, events: ["email.sent"] },
      });
      expect(res.status, endpoint).toBe(422);
      expect(res.body.message, endpoint).toMatch(/^endpoint: must be a public host/);
    }
  });

  it("refuses a PATCH with a bad status or events, naming the field", async () => {
    const created = await call(env, "POST", "/webhooks", {
      json: { endpoint: "https://app.example.com/h", events: ["email.sent"] },
    });
    const id = created.body.id;
    const bad = await call(env, "PATCH", `/webhooks/${id}`, { json: { status: "paused" } });
    expect(bad.status).toBe(422);
    expect(bad.body.message).toMatch(/^status: /);
    const badEvents = await call(env, "PATCH", `/webhooks/${id}`, { json: { events: ["nope"] } });
    expect(badEvents.body.message).toMatch(/^events\[0\]: /);
    const notJson = await call(env, "POST", "/webhooks", { json: ["x"] });
    expect(notJson.status).toBe(422);
    expect(notJson.body.message).toMatch(/^body: /);
  });
});
