/**
 * The VERP return path and bounce intake inside workerd, on the in-memory store and on real Redis
 * through the gateway: a message sent with BOUNCE_DOMAIN reaches the SMTP sink with a return
 * path that verifies as MAIL FROM (From header unchanged, no Return-Path header added); reports
 * sent to that address through the Worker's email() handler (the real entry) and POST /bounces
 * move the recipient to bounced, record a delay, mark a complaint, emit the events (counted in
 * /emails/metrics), show in the list's last_event filter, and change nothing the second time.
 * Forged, foreign, malformed, oversized and non-report mail is dropped and counted, never thrown,
 * and leaves the message as it was.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { applyReport, nextAfterReport } from "../../src/bounces/apply.ts";
import { returnPath, verifyReturnPath } from "../../src/mail/verp.ts";
import worker from "../../src/runtime/workers.ts";
import type { QueuedMessage } from "../../src/store/types.ts";
import { redisSkipReason, sinkApi } from "../support/services.ts";
import { call, email, type TestEnv, testEnv, upstashEnv } from "../support/worker.ts";

const sink = sinkApi("plain");
const DOMAIN = "bounces.relay.test";
const SECRET = "0123456789abcdef0123456789abcdef";
const ID = "3f2b8c1e-9d4a-4b7e-8f00-123456789abc";

describe("VERP return path", () => {
  it("round-trips, fits 64 octets of lowercase letters, digits and hyphens", async () => {
    const address = await returnPath(ID, DOMAIN, SECRET);
    const local = address.slice(0, address.indexOf("@"));
    expect(local.length).toBeLessThanOrEqual(64);
    expect(local).toMatch(/^[a-z0-9-]+$/);
    expect(address.endsWith(`@${DOMAIN}`)).toBe(true);
    expect(await verifyReturnPath(address, DOMAIN, SECRET)).toEqual({ ok: true, emailId: ID });
    // MTAs that upper-case the address, or wrap it in angle brackets, still give it back.
    expect(await verifyReturnPath(`<${address.toUpperCase()}>`, DOMAIN, SECRET)).toEqual({
      ok: true,
      emailId: ID,
    });
  });

  it("refuses a changed tag, another email's tag, another secret or domain", async () => {
    const address = await returnPath(ID, DOMAIN, SECRET);
    const at = address.indexOf("@");
    const last = address[at - 1] === "a" ? "b" : "a";
    const tampered = `${address.slice(0, at - 1)}${last}${address.slice(at)}`;
    expect(await verifyReturnPath(tampered, DOMAIN, SECRET)).toEqual({
      ok: false,
      reason: "bad_tag",
    });
    const other = await returnPath("00000000-0000-4000-8000-000000000000", DOMAIN, SECRET);
    const otherTag = other.slice(other.lastIndexOf("-"), other.indexOf("@"));
    const swapped = `${address.slice(0, address.lastIndexOf("-"))}${otherTag}@${DOMAIN}`;
    expect((await verifyReturnPath(swapped, DOMAIN, SECRET)).ok).toBe(false);
    expect((await verifyReturnPath(address, DOMAIN, `${SECRET}x`)).ok).toBe(false);
    expect(await verifyReturnPath(address.replace(DOMAIN, "evil.test"), DOMAIN, SECRET)).toEqual({
      ok: false,
      reason: "not_return_path",
    });
    expect((await verifyReturnPath(`x${address}`, DOMAIN, SECRET)).ok).toBe(false);
  });

  it("keeps a finished message's retention when a report changes it", () => {
    const state = {
      attempts: 1,
      nextAttemptAt: null,
      scheduledAt: null,
      canceledAt: null,
      recipients: [{ address: "a@x.test", status: "delivered" as const, at: 1_000 }],
      history: [{ at: 1_000, tried: 1, delivered: 1, failed: 0, deferred: 0 }],
    };
    expect(nextAfterReport(state, 61_000, 100_000)).toEqual({ kind: "done", retainMs: 40_000 });
    const message = { envelope: { to: ["a@x.test", "b@x.test"] } } as QueuedMessage;
    const complaint = { kind: "complaint" as const, feedbackType: "abuse", userAgent: null };
    expect(applyReport(message, state, { ...complaint, recipients: [] }, 2_000)).toEqual({
      ok: false,
      reason: "no_recipient",
    });
  });
});

/** A DSN as an MTA writes it (RFC 3464), for one recipient. */
function dsn(o: { to: string; rcpt: string; action: string; status: string; diag: string }) {
  return [
    "From: MAILER-DAEMON@mx.remote.test (Mail Delivery System)",
    `To: ${o.to}`,
    "Subject: Undelivered Mail Returned to Sender",
    "MIME-Version: 1.0",
    'Content-Type: multipart/report; report-type=delivery-status; boundary="B1"',
    "",
    "--B1",
    "Content-Type: text/plain",
    "",
    "Your message could not be delivered.",
    "--B1",
    "Content-Type: message/delivery-status",
    "",
    "Reporting-MTA: dns; mx.remote.test",
    "",
    `Final-Recipient: rfc822; ${o.rcpt}`,
    `Action: ${o.action}`,
    `Status: ${o.status}`,
    `Diagnostic-Code: smtp; ${o.diag}`,
    "",
    "--B1",
    "Content-Type: text/rfc822-headers",
    "",
    "Subject: Hello",
    "--B1--",
    "",
  ].join("\r\n");
}

/** An ARF feedback report (RFC 5965). */
function arf(to: string, rcpt: string | null) {
  return [
    "From: fbl@isp.test",
    `To: ${to}`,
    "Subject: Abuse report",
    "MIME-Version: 1.0",
    'Content-Type: multipart/report; report-type=feedback-report; boundary="F1"',
    "",
    "--F1",
    "Content-Type: text/plain",
    "",
    "A recipient marked this as spam.",
    "--F1",
    "Content-Type: message/feedback-report",
    "",
    "Feedback-Type: abuse",
    "User-Agent: isp-fbl/1.0",
    "Version: 1",
    ...(rcpt ? [`Original-Rcpt-To: ${rcpt}`] : []),
    "",
    "--F1",
    "Content-Type: text/rfc822-headers",
    "",
    "Subject: Hello",
    "--F1--",
    "",
  ].join("\r\n");
}

/** Hands a message to the Worker's email() handler, as Email Routing does; it must not throw. */
async function viaEmail(env: TestEnv, to: string, raw: string | Uint8Array) {
  const bytes = typeof raw === "string" ? new TextEncoder().encode(raw) : raw;
  const rejected: string[] = [];
  const message = {
    from: "MAILER-DAEMON@mx.remote.test",
    to,
    raw: new Response(bytes).body,
    rawSize: bytes.byteLength,
    headers: new Headers(),
    canBeForwarded: false,
    setReject: (reason: string) => rejected.push(reason),
  } as unknown as ForwardableEmailMessage;
  const ctx = createExecutionContext();
  await (worker.email as NonNullable<typeof worker.email>)(message, env, ctx);
  await waitOnExecutionContext(ctx);
  expect(rejected).toEqual([]);
}

async function counters(env: TestEnv): Promise<Record<string, number>> {
  const res = await call(env, "GET", "/bounces");
  expect(res.status).toBe(200);
  return res.body.counters;
}

async function metrics(env: TestEnv) {
  const res = await call(env, "GET", "/emails/metrics?metrics=bounced,delivery_delayed,complained");
  return res.body.totals as Record<string, number>;
}

/** Sends one message to `to` and answers its id and the return path the sink saw. */
async function sent(env: TestEnv, to: string[]) {
  const res = await call(env, "POST", "/emails", { json: email({ to }) });
  expect(res.status).toBe(200);
  const [got] = await sink.waitFor(1, 10_000, { to: to[0] as string });
  const view = await call(env, "GET", `/emails/${res.body.id}`);
  expect(view.body.last_event).toBe("delivered");
  return { id: res.body.id as string, returnPath: got?.mailFrom ?? "", raw: got?.raw ?? "" };
}

function suite(name: string, makeEnv: (vars: TestEnv) => TestEnv) {
  describe(name, () => {
    it("sends with the return path, and a DSN through email() makes the recipient bounced", async () => {
      const env = makeEnv({ BOUNCE_DOMAIN: DOMAIN });
      const rcpt = `b-${crypto.randomUUID()}@example.com`;
      const m = await sent(env, [rcpt]);
      expect(m.returnPath).toMatch(/^b-[0-9a-f]{32}-[a-z2-7]{16}@bounces\.relay\.test$/);
      expect(m.returnPath).toContain(m.id.replaceAll("-", ""));
      expect(m.raw).toMatch(/^From: Acme <sender@example\.com>\r$/m);
      expect(m.raw).not.toMatch(/^Return-Path:/im);

      const report = dsn({
        to: m.returnPath,
        rcpt,
        action: "failed",
        status: "5.1.1",
        diag: "550 5.1.1 <x>: Recipient address rejected: User unknown",
      });
      await viaEmail(env, m.returnPath, report);
      const view = await call(env, "GET", `/emails/${m.id}`);
      expect(view.body.last_event).toBe("bounced");
      expect(view.body.delivery.recipients[0]).toMatchObject({
        email: rcpt,
        status: "bounced",
        reply: {
          code: 550,
          enhanced: "5.1.1",
          text: "550 5.1.1 <x>: Recipient address rejected: User unknown",
        },
      });
      expect((await metrics(env)).bounced).toBe(1);
      const listed = await call(env, "GET", "/emails?last_event=bounced");
      expect(listed.body.data.map((e: { id: string }) => e.id)).toContain(m.id);

      // The same report again (an MTA that retried): nothing changes, no second event.
      await viaEmail(env, m.returnPath, report);
      expect((await metrics(env)).bounced).toBe(1);
      expect(await counters(env)).toMatchObject({ applied: 1, unchanged: 1 });

      // The bounced address is on the suppression list, from this email...
      const entry = await call(env, "GET", `/suppressions/${encodeURIComponent(rcpt)}`);
      expect(entry.status).toBe(200);
      expect(entry.body).toMatchObject({ email: rcpt, origin: "bounce", source_id: m.id });
      // ...so the next send to it is not attempted.
      const again = await call(env, "POST", "/emails", { json: email({ to: [rcpt] }) });
      expect(again.status).toBe(200);
      const view2 = () => call(env, "GET", `/emails/${again.body.id}`);
      await expect.poll(async () => (await view2()).body.last_event).toBe("suppressed");
      expect((await view2()).body.delivery.recipients[0].status).toBe("suppressed");
      expect(await sink.messages({ to: rcpt })).toHaveLength(1);
    });

    it("records a delay, then a complaint, each once, through POST /bounces", async () => {
      const env = makeEnv({ BOUNCE_DOMAIN: DOMAIN });
      const rcpt = `d-${crypto.randomUUID()}@example.com`;
      const m = await sent(env, [rcpt]);
      const post = (raw: string) =>
        call(env, "POST", `/bounces?to=${encodeURIComponent(m.returnPath)}`, {
          body: raw,
          headers: { "content-type": "message/rfc822" },
        });
      const delayed = dsn({
        to: m.returnPath,
        rcpt,
        action: "delayed",
        status: "4.4.1",
        diag: "421 4.4.1 connect timed out",
      });
      const first = await post(delayed);
      expect(first.status).toBe(200);
      expect(first.body).toMatchObject({
        outcome: "applied",
        email_id: m.id,
        events: ["email.delivery_delayed"],
      });
      expect((await post(delayed)).body.outcome).toBe("unchanged");
      let view = await call(env, "GET", `/emails/${m.id}`);
      expect(view.body.last_event).toBe("delivered");
      expect(view.body.delivery.recipients[0].delay.reply.enhanced).toBe("4.4.1");

      const complaint = await post(arf(m.returnPath, rcpt));
      expect(complaint.body).toMatchObject({ outcome: "applied", events: ["email.complained"] });
      expect((await post(arf(m.returnPath, null))).body.outcome).toBe("unchanged");
      view = await call(env, "GET", `/emails/${m.id}`);
      expect(view.body.last_event).toBe("complained");
      expect(view.body.delivery.recipients[0].complaint.feedback_type).toBe("abuse");
      // A complaint suppresses the address too (a delay does not).
      const entry = await call(env, "GET", `/suppressions/${encodeURIComponent(rcpt)}`);
      expect(entry.body).toMatchObject({ email: rcpt, origin: "complaint", source_id: m.id });
      expect(await metrics(env)).toMatchObject({ delivery_delayed: 1, complained: 1 });
      const listed = await call(env, "GET", "/emails?last_event=complained");
      expect(listed.body.data.map((e: { id: string }) => e.id)).toEqual([m.id]);
    });

    it("drops and counts forged, foreign, broken and oversized reports, changing nothing", async () => {
      const env = makeEnv({ BOUNCE_DOMAIN: DOMAIN });
      const rcpt = `f-${crypto.randomUUID()}@example.com`;
      const a = await sent(env, [rcpt]);
      const b = await sent(env, [`g-${crypto.randomUUID()}@example.com`]);
      const failed = (to: string, who = rcpt) =>
        dsn({ to, rcpt: who, action: "failed", status: "5.1.1", diag: "550 5.1.1 unknown" });
      const at = a.returnPath.indexOf("@");
      const forged = `${a.returnPath.slice(0, at - 4)}aaaa${a.returnPath.slice(at)}`;
      // b's tag on a's id: a tag is only good for the email it was made for.
      const bTag = b.returnPath.slice(b.returnPath.lastIndexOf("-"), b.returnPath.indexOf("@"));
      const swapped = `${a.returnPath.slice(0, a.returnPath.lastIndexOf("-"))}${bTag}@${DOMAIN}`;
      await viaEmail(env, forged, failed(forged));
      await viaEmail(env, swapped, failed(swapped));
      await viaEmail(env, `someone@${DOMAIN}`, failed(`someone@${DOMAIN}`));
      // a's address, but b's recipient: not a recipient a had.
      await viaEmail(env, a.returnPath, failed(a.returnPath, "stranger@example.com"));
      await viaEmail(
        env,
        a.returnPath,
        "From: a@b.test\r\nSubject: Out of office\r\n\r\nAway.\r\n",
      );
      await viaEmail(
        env,
        a.returnPath,
        'Content-Type: multipart/report; report-type=delivery-status; boundary="Z"\r\n\r\n--Z\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\nthis is not a field\r\n--Z--\r\n',
      );
      await viaEmail(env, a.returnPath, new Uint8Array(1024 * 1024 + 1).fill(65));
      const b2 = await returnPath("00000000-0000-4000-8000-000000000000", DOMAIN, "x");
      await viaEmail(env, b2, failed(b2));
      expect(await counters(env)).toEqual({
        "dropped:bad_tag": 3,
        "dropped:not_return_path": 1,
        "dropped:unknown_recipient": 1,
        "dropped:not_report": 1,
        "dropped:malformed": 1,
        "dropped:too_large": 1,
      });
      for (const id of [a.id, b.id]) {
        const view = await call(env, "GET", `/emails/${id}`);
        expect(view.body.last_event).toBe("delivered");
        expect(view.body.delivery.recipients[0].status).toBe("delivered");
      }
      expect((await metrics(env)).bounced).toBe(0);
    });

    it("POST /bounces: full access only, and bad input names its field", async () => {
      const env = makeEnv({ BOUNCE_DOMAIN: DOMAIN });
      const raw = { body: "Subject: x\r\n\r\ny", headers: { "content-type": "message/rfc822" } };
      const to = `/bounces?to=${encodeURIComponent(`b-x@${DOMAIN}`)}`;
      expect((await call(env, "POST", to, { ...raw, token: null })).status).toBe(401);
      expect((await call(env, "POST", to, { ...raw, token: "re_wrong" })).status).toBe(403);
      const key = await call(env, "POST", "/api-keys", {
        json: { name: "s", permission: "sending_access" },
      });
      expect((await call(env, "POST", to, { ...raw, token: key.body.token })).status).toBe(401);
      const missing = await call(env, "POST", "/bounces", raw);
      expect(missing.status).toBe(422);
      expect(missing.body.message).toMatch(/^to:/);
      const bad = await call(env, "POST", "/bounces?to=nobody", raw);
      expect(bad.status).toBe(422);
      expect(bad.body.message).toMatch(/^to:/);
      const json = await call(env, "POST", to, { json: {} });
      expect(json.status).toBe(415);
      expect(json.body.message).toMatch(/Content-Type/);
      const dropped = await call(env, "POST", to, raw);
      expect(dropped.status).toBe(200);
      expect(dropped.body).toMatchObject({ outcome: "dropped", reason: "not_return_path" });
      const unset = makeEnv({});
      const off = await call(unset, "POST", to, raw);
      expect(off.body).toMatchObject({ outcome: "dropped", reason: "not_configured" });
    });

    it("without BOUNCE_DOMAIN, the envelope sender is the message's own", async () => {
      const env = makeEnv({});
      const m = await sent(env, [`n-${crypto.randomUUID()}@example.com`]);
      expect(m.returnPath).toBe("sender@example.com");
    });
  });
}

suite("bounces (memory store)", (vars) => testEnv(vars));

const skip = redisSkipReason();
describe.skipIf(Boolean(skip))(`bounces on Upstash${skip ? ` (skipped: ${skip})` : ""}`, () => {
  suite("bounces (Upstash)", (vars) => upstashEnv(vars));
});
