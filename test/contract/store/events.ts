/**
 * The store's event queue contract (run for every driver by ./index.ts): webhook endpoints, the
 * fan-out with message writes, per-email order, leases, dropping and disabling.
 */
import { expect, it } from "vitest";
import type { ClaimedEvent } from "../../../src/store/store.ts";
import {
  claimOne,
  describePort,
  endpoint,
  eventDraft,
  newEntry,
  type StoreFactory,
} from "./support.ts";

export function describeEventsContract(factory: StoreFactory): void {
  describePort("events", factory, () => {
    it("queues no event while no endpoint subscribes, and reports none due", async () => {
      const store = factory.make();
      const e = newEntry();
      await store.enqueue([{ ...e, events: [eventDraft("email.sent", e.message.id)] }]);
      expect(store.eventsQueued).toBe(0);
      expect(await claimOne(store)).toEqual([]);
      const run = await store.claimRun(Date.now(), 10, 30_000);
      expect(run.eventsDue).toBe(0);
    });

    it("fans an event out to each enabled endpoint subscribed to its type, with the enqueue", async () => {
      const store = factory.make();
      const [a, b, c] = [crypto.randomUUID(), crypto.randomUUID(), crypto.randomUUID()];
      await store.putWebhook(a, endpoint(a), ["email.sent", "email.delivered"]);
      await store.putWebhook(b, endpoint(b), ["email.delivered"]);
      await store.putWebhook(c, endpoint(c), null);
      const e = newEntry();
      const sent = eventDraft("email.sent", e.message.id);
      await store.enqueue([{ ...e, events: [sent] }]);
      expect(store.eventsQueued).toBe(1);
      expect((await store.claimRun(Date.now() + 1, 10, 30_000)).eventsDue).toBe(1);
      const [got, ...rest] = await claimOne(store);
      expect(rest).toEqual([]);
      expect(got).toMatchObject({
        id: sent.id,
        type: "email.sent",
        emailId: e.message.id,
        endpointId: a,
        payload: sent.payload,
        attempts: [],
        enabled: true,
      });
      expect(JSON.parse(got?.endpoint ?? "null")).toEqual(endpoint(a));
      expect(await store.getWebhook(a)).toEqual({ record: endpoint(a), enabled: true });
      expect(await store.getWebhook(c)).toEqual({ record: endpoint(c), enabled: false });
      expect((await store.listWebhooks()).length).toBe(3);
    });

    it("queues a commit's events only when the commit succeeds", async () => {
      const store = factory.make();
      const ep = crypto.randomUUID();
      await store.putWebhook(ep, endpoint(ep), ["email.delivered"]);
      const e = newEntry();
      await store.enqueue([e]);
      const done = { kind: "done", retainMs: 60_000 } as const;
      expect(
        await store.commit(e.message.id, { token: "not-the-lease" }, e.state, done, [
          eventDraft("email.delivered", e.message.id),
        ]),
      ).toBe("conflict");
      expect(store.eventsQueued).toBe(0);
      const delivered = eventDraft("email.delivered", e.message.id);
      expect(
        await store.commit(e.message.id, { version: 1, now: 0 }, e.state, done, [delivered]),
      ).toBe("ok");
      expect(store.eventsQueued).toBe(1);
      expect((await claimOne(store)).map((x) => x.id)).toEqual([delivered.id]);
    });

    it("sends an email's events in order: a later one waits while the head retries", async () => {
      const store = factory.make();
      const ep = crypto.randomUUID();
      await store.putWebhook(ep, endpoint(ep), ["email.sent", "email.delivered"]);
      const e = newEntry();
      const sent = eventDraft("email.sent", e.message.id);
      const delivered = eventDraft("email.delivered", e.message.id);
      await store.enqueue([{ ...e, events: [sent] }]);
      await store.commit(
        e.message.id,
        { version: 1, now: 0 },
        e.state,
        {
          kind: "done",
          retainMs: 60_000,
        },
        [delivered],
      );
      const [head] = await claimOne(store);
      expect(head?.id).toBe(sent.id);
      // Leased: nobody else gets it, and the later event is not handed out either.
      expect(await claimOne(store)).toEqual([]);
      const now = Date.now();
      const attempt = { at: now, status: 500, ms: 3, response: "oops" };
      expect(
        await store.commitEvent(head as ClaimedEvent, {
          kind: "retry",
          attempts: [attempt],
          now,
          at: now + 5_000,
        }),
      ).toEqual({ ok: true, disabled: false });
      expect(await claimOne(store, now + 1_000)).toEqual([]);
      const log = await store.eventDelivery(ep, sent.id);
      expect(log).toMatchObject({
        status: "pending",
        attempts: [attempt],
        nextAttemptAt: now + 5_000,
      });
      const [again] = await claimOne(store, now + 5_000);
      expect(again?.id).toBe(sent.id);
      expect(again?.attempts).toEqual([attempt]);
      const ok = { at: now + 5_000, status: 204, ms: 2, response: "" };
      await store.commitEvent(again as ClaimedEvent, {
        kind: "success",
        attempts: [attempt, ok],
        now: now + 5_000,
        retainMs: 60_000,
      });
      const [next] = await claimOne(store, now + 5_001);
      expect(next?.id).toBe(delivered.id);
      expect((await store.eventDelivery(ep, sent.id))?.status).toBe("success");
      expect((await store.eventLog(ep, 10)).map((x) => [x.id, x.status])).toEqual(
        expect.arrayContaining([
          [sent.id, "success"],
          [delivered.id, "attempting"],
        ]),
      );
    });

    it("writes an event's outcome only under its lease", async () => {
      const store = factory.make();
      const ep = crypto.randomUUID();
      await store.putWebhook(ep, endpoint(ep), ["email.sent"]);
      const e = newEntry();
      await store.enqueue([{ ...e, events: [eventDraft("email.sent", e.message.id)] }]);
      const [head] = await claimOne(store);
      const stale = { ...(head as ClaimedEvent), token: "someone-else" };
      expect(
        await store.commitEvent(stale, { kind: "success", attempts: [], now: 1, retainMs: 1000 }),
      ).toEqual({ ok: false });
    });

    it("drops an event and the rest of its chain for a deleted endpoint", async () => {
      const store = factory.make();
      const ep = crypto.randomUUID();
      await store.putWebhook(ep, endpoint(ep), ["email.sent", "email.canceled"]);
      const e = newEntry();
      const sent = eventDraft("email.sent", e.message.id);
      const canceled = eventDraft("email.canceled", e.message.id);
      await store.enqueue([{ ...e, events: [sent, canceled] }]);
      expect(await store.deleteWebhook(ep)).toBe(true);
      expect(await store.deleteWebhook(ep)).toBe(false);
      const [head] = await claimOne(store);
      expect(head).toMatchObject({ id: sent.id, endpoint: null, enabled: false });
      await store.commitEvent(head as ClaimedEvent, {
        kind: "dropped",
        now: 1,
        retainMs: 60_000,
      });
      expect(await claimOne(store)).toEqual([]);
      expect((await store.eventDelivery(ep, canceled.id))?.status).toBe("dropped");
    });

    it("disables an endpoint whose event exhausted its retries with no success since its failures began", async () => {
      const store = factory.make();
      const ep = crypto.randomUUID();
      await store.putWebhook(ep, endpoint(ep), ["email.sent"]);
      const [e1, e2] = [newEntry(), newEntry()];
      await store.enqueue([
        { ...e1, events: [eventDraft("email.sent", e1.message.id)] },
        { ...e2, events: [eventDraft("email.sent", e2.message.id)] },
      ]);
      const [first, second] = await claimOne(store);
      const now = Date.now();
      const failed = { at: now, status: 500, ms: 1 };
      await store.commitEvent(first as ClaimedEvent, {
        kind: "retry",
        attempts: [failed],
        now,
        at: now + 60_000,
      });
      // A success elsewhere ends the failure run: the endpoint stays enabled.
      await store.commitEvent(second as ClaimedEvent, {
        kind: "success",
        attempts: [],
        now,
        retainMs: 60_000,
      });
      const [again] = await claimOne(store, now + 60_000);
      expect(
        await store.commitEvent(again as ClaimedEvent, {
          kind: "failed",
          attempts: [failed, failed],
          now,
          retainMs: 60_000,
        }),
      ).toEqual({ ok: true, disabled: false });
      expect((await store.getWebhook(ep))?.enabled).toBe(true);
      // The next exhausted event, with no success in between, disables it.
      const e3 = newEntry();
      await store.enqueue([{ ...e3, events: [eventDraft("email.sent", e3.message.id)] }]);
      const [third] = await claimOne(store, now + 60_000);
      expect(
        await store.commitEvent(third as ClaimedEvent, {
          kind: "failed",
          attempts: [failed],
          now,
          retainMs: 60_000,
        }),
      ).toEqual({ ok: true, disabled: true });
      expect((await store.getWebhook(ep))?.enabled).toBe(false);
      const before = store.eventsQueued;
      const e4 = newEntry();
      await store.enqueue([{ ...e4, events: [eventDraft("email.sent", e4.message.id)] }]);
      expect(store.eventsQueued).toBe(before);
      // Enabling it again (putWebhook with events) subscribes it once more.
      await store.putWebhook(ep, endpoint(ep), ["email.sent"]);
      expect((await store.getWebhook(ep))?.enabled).toBe(true);
    });

    it("disables an endpoint at once when told to (410 Gone)", async () => {
      const store = factory.make();
      const ep = crypto.randomUUID();
      await store.putWebhook(ep, endpoint(ep), ["email.sent"]);
      const e = newEntry();
      await store.enqueue([{ ...e, events: [eventDraft("email.sent", e.message.id)] }]);
      const [head] = await claimOne(store);
      expect(
        await store.commitEvent(head as ClaimedEvent, {
          kind: "failed",
          attempts: [{ at: 1, status: 410, ms: 1 }],
          now: Date.now(),
          retainMs: 60_000,
          disable: true,
        }),
      ).toEqual({ ok: true, disabled: true });
      expect((await store.getWebhook(ep))?.enabled).toBe(false);
    });

    it("replays an event: a copy with the same payload, a fresh attempt list, listed with the original", async () => {
      const store = factory.make();
      const ep = crypto.randomUUID();
      await store.putWebhook(ep, endpoint(ep), ["email.sent"]);
      const e = newEntry();
      const sent = eventDraft("email.sent", e.message.id);
      await store.enqueue([{ ...e, events: [sent] }]);
      const [head] = await claimOne(store);
      const attempt = { at: 1, status: 200, ms: 5, response: "ok" };
      await store.commitEvent(head as ClaimedEvent, {
        kind: "success",
        attempts: [attempt],
        now: Date.now(),
        retainMs: 60_000,
      });
      const copyId = crypto.randomUUID();
      const before = store.eventsQueued;
      const now = Date.now();
      expect(await store.replayEvent(ep, sent.id, copyId, now)).toBe("queued");
      expect(store.eventsQueued).toBe(before + 1);
      // The same replay again (a retried command) queues nothing more.
      expect(await store.replayEvent(ep, sent.id, copyId, now)).toBe("queued");
      expect(store.eventsQueued).toBe(before + 1);
      const [copy, ...rest] = await claimOne(store);
      expect(rest).toEqual([]);
      expect(copy).toMatchObject({
        id: copyId,
        type: "email.sent",
        emailId: e.message.id,
        payload: sent.payload,
        attempts: [],
        endpointId: ep,
      });
      expect((await store.eventLog(ep, 10)).map((x) => [x.id, x.replayOf ?? null])).toEqual([
        [copyId, sent.id],
        [sent.id, null],
      ]);
      expect(
        (await store.endpointEvents(ep, 10)).map((x) => [x.id, x.endpointId, x.attempts]),
      ).toEqual([
        [copyId, ep, []],
        [sent.id, ep, [attempt]],
      ]);
      const original = await store.eventDelivery(ep, sent.id);
      expect(original).toMatchObject({ status: "success", attempts: [attempt] });
      expect((await store.eventDelivery(ep, copyId))?.replayOf).toBe(sent.id);
      // The email's events, found from the original's id: the original and its replay.
      const listed = await store.emailEvents([sent.id, crypto.randomUUID()]);
      expect(listed.map((x) => [x.endpointId, x.id, x.status, x.attempts.length])).toEqual([
        [ep, sent.id, "success", 1],
        [ep, copyId, "attempting", 0],
      ]);
      expect(listed[1]?.replayOf).toBe(sent.id);
    });

    it("queues no second replay while the last one is unfinished; one more once it is done", async () => {
      const store = factory.make();
      const ep = crypto.randomUUID();
      await store.putWebhook(ep, endpoint(ep), ["email.sent"]);
      const e = newEntry();
      const sent = eventDraft("email.sent", e.message.id);
      await store.enqueue([{ ...e, events: [sent] }]);
      const [head] = await claimOne(store);
      const done = { kind: "success" as const, attempts: [], now: Date.now(), retainMs: 60_000 };
      await store.commitEvent(head as ClaimedEvent, done);
      const first = crypto.randomUUID();
      expect(await store.replayEvent(ep, sent.id, first, Date.now())).toBe("queued");
      const before = store.eventsQueued;
      // A double click: the first copy is still waiting, and then still being attempted.
      expect(await store.replayEvent(ep, sent.id, crypto.randomUUID(), Date.now())).toEqual({
        pending: first,
      });
      const [copy] = await claimOne(store);
      expect(await store.replayEvent(ep, sent.id, crypto.randomUUID(), Date.now())).toEqual({
        pending: first,
      });
      expect(store.eventsQueued).toBe(before);
      await store.commitEvent(copy as ClaimedEvent, { ...done, now: Date.now() });
      const second = crypto.randomUUID();
      expect(await store.replayEvent(ep, sent.id, second, Date.now())).toBe("queued");
      expect(store.eventsQueued).toBe(before + 1);
      expect((await store.eventLog(ep, 10)).map((x) => x.id)).toEqual([second, first, sent.id]);
    });

    it("replays nothing for an unknown event or a disabled endpoint", async () => {
      const store = factory.make();
      const ep = crypto.randomUUID();
      await store.putWebhook(ep, endpoint(ep), ["email.sent"]);
      const e = newEntry();
      const sent = eventDraft("email.sent", e.message.id);
      await store.enqueue([{ ...e, events: [sent] }]);
      const [head] = await claimOne(store);
      await store.commitEvent(head as ClaimedEvent, {
        kind: "success",
        attempts: [],
        now: Date.now(),
        retainMs: 60_000,
      });
      const now = Date.now();
      expect(await store.replayEvent(ep, crypto.randomUUID(), crypto.randomUUID(), now)).toBe(
        "missing",
      );
      await store.putWebhook(ep, endpoint(ep), null);
      const before = store.eventsQueued;
      expect(await store.replayEvent(ep, sent.id, crypto.randomUUID(), now)).toBe("disabled");
      expect(store.eventsQueued).toBe(before);
      expect(await claimOne(store)).toEqual([]);
      expect((await store.eventLog(ep, 10)).map((x) => x.id)).toEqual([sent.id]);
    });

    it("queues a replay behind its email's pending events", async () => {
      const store = factory.make();
      const ep = crypto.randomUUID();
      await store.putWebhook(ep, endpoint(ep), ["email.sent", "email.delivered"]);
      const e = newEntry();
      const sent = eventDraft("email.sent", e.message.id);
      await store.enqueue([{ ...e, events: [sent] }]);
      const [head] = await claimOne(store);
      const copyId = crypto.randomUUID();
      // The head is still leased: its replay waits in the chain behind it.
      expect(await store.replayEvent(ep, sent.id, copyId, Date.now())).toBe("queued");
      expect(await claimOne(store)).toEqual([]);
      await store.commitEvent(head as ClaimedEvent, {
        kind: "success",
        attempts: [],
        now: Date.now(),
        retainMs: 60_000,
      });
      expect((await claimOne(store)).map((x) => x.id)).toEqual([copyId]);
    });

    it("lists no event of an email no endpoint has", async () => {
      const store = factory.make();
      expect(await store.emailEvents([crypto.randomUUID()])).toEqual([]);
      expect(await store.emailEvents([])).toEqual([]);
    });
  });
}
