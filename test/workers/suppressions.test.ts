/**
 * The suppression list end to end inside workerd: the API through the unmodified `resend` SDK,
 * and delivery to the plain SMTP sink on both store drivers (a 550 5.1.1 suppresses the address,
 * the next send to it is held back without an RCPT, a suppression added while a message is
 * scheduled holds it back at claim), plus who may change the list, and expiry.
 */
import { Resend } from "resend";
import { beforeEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";
import { initialState, lastEvent } from "../../src/delivery/state.ts";
import { holdSuppressed } from "../../src/delivery/suppress.ts";
import { deliveryEvents } from "../../src/events/events.ts";
import { MemoryStore } from "../../src/store/memory/store.ts";
import { Suppressions } from "../../src/suppressions.ts";
import { RELAY_ORIGIN, sdk } from "../support/sdk.ts";
import { redisSkipReason, sinkApi } from "../support/services.ts";
import { call, email, type TestEnv, testEnv, tick, upstashEnv } from "../support/worker.ts";

const sink = sinkApi("plain");
const DAY = 86_400_000;

async function key(env: TestEnv, body: Record<string, unknown>): Promise<string> {
  const res = await call(env, "POST", "/api-keys", { json: { name: "k", ...body } });
  expect(res.status).toBe(201);
  return res.body.token;
}

describe("/suppressions through the resend SDK", () => {
  let env: TestEnv;
  beforeEach(() => {
    env = testEnv();
  });

  it("adds, lists, gets, removes, and batches in Resend's shapes", async () => {
    const resend = sdk(env);
    const added = await resend.suppressions.add({ email: "  Steve@Example.com " });
    expect(added.error).toBeNull();
    expect(added.data).toEqual({ object: "suppression", id: expect.any(String) });
    const id = added.data?.id as string;
    // Adding it again answers the existing entry.
    const again = await resend.suppressions.add({ email: "steve@example.com" });
    expect(again.data?.id).toBe(id);

    const got = await resend.suppressions.get("STEVE@example.com");
    expect(got.data).toEqual({
      object: "suppression",
      id,
      email: "steve@example.com",
      origin: "manual",
      source_id: null,
      created_at: expect.stringMatching(/Z$/),
      expires_at: null,
    });
    expect((await resend.suppressions.get(id)).data?.email).toBe("steve@example.com");

    const batch = await resend.suppressions.batch.add({
      emails: ["a@example.com", "b@example.com", "c@example.com"],
    });
    expect(batch.data?.data).toHaveLength(3);
    const page = await resend.suppressions.list({ limit: 2 });
    expect(page.data?.object).toBe("list");
    expect(page.data?.has_more).toBe(true);
    expect(page.data?.data.map((s) => s.email)).toEqual(["c@example.com", "b@example.com"]);
    const next = await resend.suppressions.list({ limit: 2, after: page.data?.data[1]?.id });
    expect(next.data?.data.map((s) => s.email)).toEqual(["a@example.com", "steve@example.com"]);
    expect(next.data?.has_more).toBe(false);
    const bounces = await resend.suppressions.list({ origin: "bounce" });
    expect(bounces.data?.data).toEqual([]);

    const removed = await resend.suppressions.remove("steve@example.com");
    expect(removed.data).toEqual({ object: "suppression", id, deleted: true });
    const gone = await resend.suppressions.get(id);
    expect(gone.error?.name).toBe("not_found");
    const byIds = await resend.suppressions.batch.remove({
      ids: [batch.data?.data[0]?.id as string],
    });
    expect(byIds.data?.data).toEqual([
      { object: "suppression", id: batch.data?.data[0]?.id, deleted: true },
    ]);
    const byEmails = await resend.suppressions.batch.remove({
      emails: ["b@example.com", "nobody@example.com"],
    });
    expect(byEmails.data?.data.map((d) => d.id)).toEqual([batch.data?.data[1]?.id]);
    expect((await resend.suppressions.list()).data?.data.map((s) => s.email)).toEqual([
      "c@example.com",
    ]);
  });

  it("answers 422 naming the field for bad input", async () => {
    const checks: [string, string, unknown, RegExp][] = [
      ["POST", "/suppressions", { email: "not an address" }, /^email: /],
      ["POST", "/suppressions", {}, /email/],
      ["POST", "/suppressions/batch/add", { emails: [] }, /^emails: /],
      ["POST", "/suppressions/batch/add", { emails: ["ok@example.com", "x"] }, /^emails\[1\]: /],
      ["POST", "/suppressions/batch/add", { emails: Array(101).fill("a@example.com") }, /^emails/],
      ["POST", "/suppressions/batch/remove", { emails: ["a@example.com"], ids: [] }, /ids/],
      ["POST", "/suppressions/batch/remove", {}, /^emails: /],
      ["POST", "/suppressions/batch/remove", { ids: ["nope"] }, /^ids\[0\]: /],
      ["GET", "/suppressions?limit=0", undefined, /^limit: /],
      ["GET", "/suppressions?origin=spam", undefined, /^origin: /],
      ["GET", "/suppressions?after=x", undefined, /^after: /],
    ];
    for (const [method, path, json, message] of checks) {
      const res = await call(env, method, path, json === undefined ? {} : { json });
      expect([res.status, path, res.body.message]).toEqual([
        422,
        path,
        expect.stringMatching(message),
      ]);
    }
    expect((await call(env, "GET", "/suppressions/nobody@example.com")).status).toBe(404);
    expect((await call(env, "DELETE", "/suppressions/nobody@example.com")).status).toBe(404);
  });

  it("lets a sending key see only its own view and change nothing", async () => {
    const sending = await key(env, { permission: "sending_access" });
    const admin = sdk(env);
    await admin.suppressions.add({ email: "someone@example.com" });
    const own = new Resend(sending, { baseUrl: RELAY_ORIGIN });
    expect((await own.suppressions.list()).data?.data).toEqual([]);
    expect((await own.suppressions.get("someone@example.com")).error?.name).toBe("not_found");
    const add = await call(env, "POST", "/suppressions", {
      token: sending,
      json: { email: "x@example.com" },
    });
    expect(add.status).toBe(401);
    expect(add.body.name).toBe("restricted_api_key");
    const del = await call(env, "DELETE", "/suppressions/someone@example.com", { token: sending });
    expect(del.status).toBe(401);
  });

  it("does not let a key with allowed_recipients remove or add an address outside them", async () => {
    const narrow = await key(env, {
      permission: "full_access",
      allowed_recipients: ["*@team.example.com"],
    });
    const admin = sdk(env);
    const outside = await admin.suppressions.add({ email: "ceo@example.com" });
    const inside = await admin.suppressions.add({ email: "dev@team.example.com" });
    const byEmail = await call(env, "DELETE", "/suppressions/ceo@example.com", { token: narrow });
    expect(byEmail.status).toBe(403);
    expect(byEmail.body.message).toMatch(/^email: ceo@example.com/);
    const byId = await call(env, "POST", "/suppressions/batch/remove", {
      token: narrow,
      json: { ids: [outside.data?.id, inside.data?.id] },
    });
    expect(byId.status).toBe(403);
    const add = await call(env, "POST", "/suppressions", {
      token: narrow,
      json: { email: "other@example.com" },
    });
    expect(add.status).toBe(403);
    // Nothing was removed; inside its patterns it may.
    expect((await admin.suppressions.list()).data?.data).toHaveLength(2);
    const ok = await call(env, "DELETE", `/suppressions/${inside.data?.id}`, { token: narrow });
    expect(ok.status).toBe(200);
    expect((await admin.suppressions.get("ceo@example.com")).data?.id).toBe(outside.data?.id);
  });
});

describe("email.suppressed and last_event", () => {
  it("names the To/Cc recipients held back, never a Bcc, and shows suppressed only when none went out", () => {
    const message = {
      id: "e1",
      keyId: "k1",
      createdAt: 1,
      messageId: "<e1@example.com>",
      envelope: { from: "s@example.com", to: ["to@example.com", "hidden@example.com"] },
      view: {
        from: "s@example.com",
        to: ["to@example.com"],
        cc: [],
        bcc: ["hidden@example.com"],
        reply_to: [],
        subject: "Hi",
        tags: [],
      },
    };
    const before = initialState(message.envelope.to, null);
    const held = holdSuppressed(
      before,
      [
        { email: "hidden@example.com", origin: "complaint" },
        { email: "to@example.com", origin: "complaint" },
      ],
      5,
    );
    const after = { ...held.state, attempts: 1 };
    const [event] = deliveryEvents(message, before, after, 5);
    expect(event?.type).toBe("email.suppressed");
    const payload = JSON.parse(event?.payload ?? "{}");
    expect(payload.data.suppressed).toMatchObject({
      type: "complaint",
      recipients: ["to@example.com"],
    });
    expect(event?.payload).not.toContain("hidden");
    expect(lastEvent(after, 10)).toBe("suppressed");
    const oneDelivered = {
      ...after,
      recipients: [after.recipients[0], { address: "x@example.com", status: "delivered" as const }],
    };
    expect(lastEvent(oneDelivered as typeof after, 10)).toBe("delivered");
  });
});

describe("suppression expiry", () => {
  it("reads SUPPRESSION_EXPIRY_DAYS per origin and names the variable when it is wrong", () => {
    const base = { ADMIN_TOKEN: "x".repeat(32) };
    expect(loadConfig(base).suppressionExpiryMs).toEqual({
      bounce: 30 * DAY,
      complaint: null,
      manual: null,
    });
    expect(
      loadConfig({ ...base, SUPPRESSION_EXPIRY_DAYS: "bounce=0, manual=7" }).suppressionExpiryMs,
    ).toEqual({ bounce: null, complaint: null, manual: 7 * DAY });
    for (const bad of ["bounce", "spam=1", "bounce=1,bounce=2", "bounce=-1", "bounce=99999"]) {
      expect(() => loadConfig({ ...base, SUPPRESSION_EXPIRY_DAYS: bad })).toThrow(
        /^SUPPRESSION_EXPIRY_DAYS: /,
      );
    }
  });

  it("lets an entry lapse after its origin's time, after which the address is absent", async () => {
    const clock = { t: Date.now() };
    const store = new MemoryStore({ now: () => clock.t });
    const list = new Suppressions(
      store,
      { bounce: DAY, complaint: null, manual: 2 * DAY },
      () => clock.t,
    );
    const admin = { keyId: "admin", permission: "full_access" as const };
    // As bounce intake writes a report's entry (inside its commit; here on its own).
    const fromReport = async (report: Parameters<Suppressions["reportEntry"]>[0]) => {
      const entry = list.reportEntry(report, clock.t);
      const [added] = await store.addSuppressions([entry], clock.t);
      return added ?? { entry, created: true };
    };
    const [manual] = await list.add(admin, ["m@example.com"]);
    // Ids order by time: entries made in the same millisecond have no order among them.
    clock.t += 1;
    const bounce = await fromReport({
      email: "B@example.com",
      origin: "bounce",
      sourceId: "e1",
      keyId: "k1",
    });
    clock.t += 1;
    const complaint = await fromReport({
      email: "c@example.com",
      origin: "complaint",
      sourceId: "e2",
      keyId: "k1",
    });
    expect(manual?.entry.expires_at).toBe(clock.t - 2 + 2 * DAY);
    expect(bounce.entry).toMatchObject({ email: "b@example.com", expires_at: clock.t - 1 + DAY });
    expect(complaint.entry.expires_at).toBeNull();
    clock.t += DAY;
    await expect(list.get(admin, "b@example.com")).rejects.toThrow(/not found/i);
    expect((await list.list(admin, { limit: 10 })).data.map((s) => s.email)).toEqual([
      "c@example.com",
      "m@example.com",
    ]);
    clock.t += DAY;
    expect((await list.list(admin, { limit: 10 })).data.map((s) => s.email)).toEqual([
      "c@example.com",
    ]);
  });
});

for (const driver of ["memory", "upstash"] as const) {
  const skip = driver === "upstash" ? redisSkipReason() : false;
  describe.skipIf(Boolean(skip))(
    `delivery and the suppression list: ${driver}${skip ? ` (skipped: ${skip})` : ""}`,
    () => {
      let env: TestEnv;
      beforeEach(async () => {
        env = driver === "upstash" ? upstashEnv() : testEnv();
        await sink.reset();
      });

      it("suppresses an address refused with 550 5.1.1, then holds it back without an RCPT", async () => {
        const dead = `dead-${crypto.randomUUID().slice(0, 8)}@example.com`;
        await sink.rejectRecipient(dead, 550, "5.1.1 No such user");
        const first = await call(env, "POST", "/emails", {
          json: email({ to: ["ann@example.com", dead] }),
        });
        expect((await call(env, "GET", `/emails/${first.body.id}`)).body.last_event).toBe(
          "bounced",
        );
        const resend = sdk(env);
        const entry = await resend.suppressions.get(dead);
        expect(entry.data).toMatchObject({
          email: dead,
          origin: "bounce",
          source_id: first.body.id,
        });
        expect(
          Date.parse((entry.data as unknown as { expires_at: string }).expires_at) -
            Date.parse(entry.data?.created_at ?? ""),
        ).toBe(30 * DAY);

        // The sink now accepts the address: an RCPT for it would show in what it received.
        await sink.reset();
        const second = await call(env, "POST", "/emails", { json: email({ to: [dead] }) });
        const view = await call(env, "GET", `/emails/${second.body.id}`);
        expect(view.body.last_event).toBe("suppressed");
        expect(view.body.delivery.recipients).toEqual([
          expect.objectContaining({
            email: dead,
            status: "suppressed",
            reply: expect.objectContaining({ code: null, text: expect.stringMatching(/bounce/) }),
          }),
        ]);
        const mixed = await call(env, "POST", "/emails", {
          json: email({ to: [dead, "bob@example.com"] }),
        });
        const [got] = await sink.waitFor(1);
        expect(got?.rcptTo).toEqual(["bob@example.com"]);
        const mixedView = await call(env, "GET", `/emails/${mixed.body.id}`);
        expect(mixedView.body.last_event).toBe("delivered");
        expect(mixedView.body.delivery.recipients.map((r: { status: string }) => r.status)).toEqual(
          ["suppressed", "delivered"],
        );
        await tick(env);
        expect((await sink.messages()).map((m) => m.rcptTo)).toEqual([["bob@example.com"]]);
        // email.suppressed went out with both commits (counted as every event is).
        const metrics = await resend.emails.metrics({ metrics: ["suppressed"] as never });
        expect(metrics.data?.totals).toEqual({ suppressed: 2 });
      });

      it("holds back at claim a recipient suppressed while its message was scheduled", async () => {
        const later = `later-${crypto.randomUUID().slice(0, 8)}@example.com`;
        const at = new Date(Date.now() + 1_500).toISOString();
        const res = await call(env, "POST", "/emails", {
          json: email({ to: [later, "carol@example.com"], scheduled_at: at }),
        });
        expect(res.status).toBe(200);
        const resend = sdk(env);
        await resend.suppressions.add({ email: later });
        await new Promise((r) => setTimeout(r, Date.parse(at) - Date.now() + 100));
        await tick(env);
        const view = await call(env, "GET", `/emails/${res.body.id}`);
        expect(view.body.delivery.recipients.map((r: { status: string }) => r.status)).toEqual([
          "suppressed",
          "delivered",
        ]);
        expect((await sink.messages()).map((m) => m.rcptTo)).toEqual([["carol@example.com"]]);
        // Removed again, the address is sent to.
        await resend.suppressions.remove(later);
        await call(env, "POST", "/emails", { json: email({ to: [later] }) });
        const got = await sink.waitFor(2);
        expect(got.at(-1)?.rcptTo).toEqual([later]);
      });
    },
  );
}
