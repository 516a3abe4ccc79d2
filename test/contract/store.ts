/**
 * The store contract: every RelayStore driver runs these cases (test/workers/store.test.ts).
 * They pin what delivery relies on: atomic claims with leases, guarded commits, retention, and
 * byte-exact storage of raw messages.
 */
import { describe, expect, it } from "vitest";
import { initialState } from "../../src/delivery/state.ts";
import {
  type ClaimedEvent,
  IdempotencyClaimLapsedError,
  type NewEntry,
  type RelayStore,
} from "../../src/store/store.ts";
import type { ApiKeyRecord } from "../../src/store/types.ts";
import type { EventDraft, EventType } from "../../src/webhooks/events.ts";

export interface StoreFactory {
  name: string;
  /** A fresh, empty store (e.g. a new key prefix), with a small claim budget when asked. */
  make: (options?: { claimBudgetBytes?: number }) => RelayStore;
  skip?: string | false;
}

let seq = 0;
export function newEntry(
  overrides: Partial<NewEntry> = {},
  recipients = ["a@example.com"],
): NewEntry {
  const id = crypto.randomUUID();
  seq++;
  return {
    message: {
      id,
      keyId: "key-1",
      createdAt: 1_000 + seq,
      messageId: `<${id}@example.com>`,
      envelope: { from: "sender@example.com", to: recipients },
      view: {
        from: "Sender <sender@example.com>",
        to: recipients,
        cc: [],
        bcc: [],
        reply_to: [],
        subject: "Hello",
        tags: [{ name: "kind", value: "test" }],
      },
    },
    raw: `Subject: Hello\r\nMessage-ID: <${id}@example.com>\r\n\r\nbody ${seq}\r\n`,
    state: initialState(recipients, null),
    dueAt: 10_000,
    ...overrides,
  };
}

/** An event about `emailId`, as src/webhooks/events.ts drafts them. */
export function eventDraft(type: EventType, emailId: string, createdAt = Date.now()): EventDraft {
  const id = crypto.randomUUID();
  return {
    id,
    type,
    emailId,
    createdAt,
    payload: JSON.stringify({
      type,
      created_at: new Date(createdAt).toISOString(),
      data: { email_id: emailId },
    }),
  };
}

/** The endpoint record the contract stores (the store keeps it as opaque JSON). */
const endpoint = (id: string) => ({ id, endpoint: `https://${id}.example/hook` });

async function claimOne(store: RelayStore, at = Date.now() + 1): Promise<ClaimedEvent[]> {
  return store.claimEvents(at, 10, 30_000);
}

export function describeStoreContract(factory: StoreFactory): void {
  describe.skipIf(Boolean(factory.skip))(
    `store contract: ${factory.name}${factory.skip ? ` (skipped: ${factory.skip})` : ""}`,
    () => {
      it("stores a message and reads it back unchanged, at version 1 and not leased", async () => {
        const store = factory.make();
        const e = newEntry();
        await store.enqueue([e]);
        const got = await store.get(e.message.id);
        expect(got).toEqual({
          message: e.message,
          raw: e.raw,
          state: e.state,
          version: 1,
          leasedUntil: null,
        });
      });

      it("keeps every byte of a raw message, 8-bit and UTF-8 alike", async () => {
        const store = factory.make();
        let allBytes = "";
        for (let i = 0; i < 256; i++) allBytes += String.fromCharCode(i);
        const raw = `Subject: bytes\r\n\r\n${allBytes}\r\n${"\u00e9\u00ff"}\r\n.\r\n`;
        const e = newEntry({ raw });
        await store.enqueue([e]);
        expect((await store.get(e.message.id))?.raw).toBe(raw);
      });

      it("returns null for an unknown id", async () => {
        expect(await factory.make().get(crypto.randomUUID())).toBeNull();
      });

      it("claims due messages oldest first, up to the limit, and leaves later ones", async () => {
        const store = factory.make();
        const late = newEntry({ dueAt: 5_000 });
        const early = newEntry({ dueAt: 1_000 });
        const middle = newEntry({ dueAt: 3_000 });
        const future = newEntry({ dueAt: 60_000 });
        await store.enqueue([late, early, middle, future]);
        const first = await store.claim(10_000, 2, 30_000);
        expect(first.map((c) => c.message.id)).toEqual([early.message.id, middle.message.id]);
        const second = await store.claim(10_000, 10, 30_000);
        expect(second.map((c) => c.message.id)).toEqual([late.message.id]);
        expect(second[0]?.raw).toBe(late.raw);
        expect(second[0]?.leasedUntil).toBe(40_000);
      });

      it("does not hand a leased message to another claim until the lease ends", async () => {
        const store = factory.make();
        const e = newEntry({ dueAt: 1_000 });
        await store.enqueue([e]);
        const [claimed] = await store.claim(2_000, 10, 30_000);
        expect(claimed?.message.id).toBe(e.message.id);
        expect(await store.claim(31_999, 10, 30_000)).toEqual([]);
        const again = await store.claim(32_000, 10, 30_000);
        expect(again.map((c) => c.message.id)).toEqual([e.message.id]);
        expect(again[0]?.token).not.toBe(claimed?.token);
      });

      it("never gives one message to two concurrent claims", async () => {
        const store = factory.make();
        const entries = Array.from({ length: 12 }, (_, i) => newEntry({ dueAt: 1_000 + i }));
        await store.enqueue(entries);
        const results = await Promise.all([1, 2, 3, 4].map(() => store.claim(5_000, 5, 30_000)));
        const ids = results.flat().map((c) => c.message.id);
        expect(new Set(ids).size).toBe(ids.length);
        expect(ids.length).toBe(12);
      });

      it("commits only for the current lease holder, then reschedules", async () => {
        const store = factory.make();
        const e = newEntry({ dueAt: 1_000 });
        await store.enqueue([e]);
        const [claimed] = await store.claim(2_000, 1, 30_000);
        if (!claimed) throw new Error("nothing claimed");
        const state = { ...claimed.state, attempts: 1, nextAttemptAt: 90_000 };
        expect(
          await store.commit(e.message.id, { token: "not-the-token" }, state, {
            kind: "due",
            at: 90_000,
          }),
        ).toBe("conflict");
        expect(
          await store.commit(e.message.id, { token: claimed.token }, state, {
            kind: "due",
            at: 90_000,
          }),
        ).toBe("ok");
        // The lease is released; the same commit again (a retry after a lost reply) is known as
        // done and changes nothing.
        expect(
          await store.commit(e.message.id, { token: claimed.token }, state, {
            kind: "due",
            at: 10,
          }),
        ).toBe("ok");
        const got = await store.get(e.message.id);
        expect(got?.state.attempts).toBe(1);
        expect(got?.version).toBe(2);
        expect(got?.leasedUntil).toBeNull();
        expect(await store.claim(89_999, 10, 30_000)).toEqual([]);
        expect((await store.claim(90_000, 10, 30_000)).map((c) => c.message.id)).toEqual([
          e.message.id,
        ]);
      });

      it("takes a finished message out of the queue but keeps it readable", async () => {
        const store = factory.make();
        const e = newEntry({ dueAt: 1_000 });
        await store.enqueue([e]);
        const [claimed] = await store.claim(2_000, 1, 30_000);
        if (!claimed) throw new Error("nothing claimed");
        const done = { ...claimed.state, attempts: 1 };
        expect(
          await store.commit(e.message.id, { token: claimed.token }, done, {
            kind: "done",
            retainMs: 3_600_000,
          }),
        ).toBe("ok");
        expect(await store.claim(Number.MAX_SAFE_INTEGER, 10, 30_000)).toEqual([]);
        expect((await store.get(e.message.id))?.state.attempts).toBe(1);
      });

      it("forgets a finished message after its retention", async () => {
        const store = factory.make();
        const e = newEntry({ dueAt: 1_000 });
        await store.enqueue([e]);
        const [claimed] = await store.claim(2_000, 1, 30_000);
        if (!claimed) throw new Error("nothing claimed");
        await store.commit(e.message.id, { token: claimed.token }, claimed.state, {
          kind: "done",
          retainMs: 300,
        });
        await new Promise((r) => setTimeout(r, 600));
        expect(await store.get(e.message.id)).toBeNull();
      });

      it("reserves a message enqueued with a lease for its holder", async () => {
        const store = factory.make();
        const e = newEntry({ dueAt: 1_000, lease: { token: "immediate-token", until: 50_000 } });
        await store.enqueue([e]);
        expect((await store.get(e.message.id))?.leasedUntil).toBe(50_000);
        expect(await store.claim(49_999, 10, 30_000)).toEqual([]);
        expect(
          await store.commit(e.message.id, { token: "immediate-token" }, e.state, {
            kind: "due",
            at: 70_000,
          }),
        ).toBe("ok");
        expect((await store.claim(70_000, 10, 30_000)).map((c) => c.message.id)).toEqual([
          e.message.id,
        ]);
      });

      it("lets a version-guarded write through only when nobody holds a lease and nothing changed", async () => {
        const store = factory.make();
        const e = newEntry({ dueAt: 1_000 });
        await store.enqueue([e]);
        const canceled = { ...e.state, canceledAt: 5 };
        // Leased by a delivery run: the write must wait.
        const [claimed] = await store.claim(2_000, 1, 30_000);
        if (!claimed) throw new Error("nothing claimed");
        expect(
          await store.commit(e.message.id, { version: 1, now: 3_000 }, canceled, {
            kind: "done",
            retainMs: 60_000,
          }),
        ).toBe("conflict");
        // The run finishes (version 2); a writer that read version 1 is stale.
        await store.commit(e.message.id, { token: claimed.token }, claimed.state, {
          kind: "due",
          at: 100_000,
        });
        expect(
          await store.commit(e.message.id, { version: 1, now: 3_000 }, canceled, {
            kind: "done",
            retainMs: 60_000,
          }),
        ).toBe("conflict");
        expect(
          await store.commit(e.message.id, { version: 2, now: 3_000 }, canceled, {
            kind: "done",
            retainMs: 60_000,
          }),
        ).toBe("ok");
        expect((await store.get(e.message.id))?.state.canceledAt).toBe(5);
        expect(await store.claim(Number.MAX_SAFE_INTEGER, 10, 30_000)).toEqual([]);
      });

      it("allows a version-guarded write once an abandoned lease has run out", async () => {
        const store = factory.make();
        const e = newEntry({ dueAt: 1_000 });
        await store.enqueue([e]);
        await store.claim(2_000, 1, 30_000);
        expect(
          await store.commit(e.message.id, { version: 1, now: 32_001 }, e.state, {
            kind: "due",
            at: 40_000,
          }),
        ).toBe("ok");
      });

      it("renews a lease only for its holder, keeping other claims away", async () => {
        const store = factory.make();
        const e = newEntry({ dueAt: 1_000 });
        await store.enqueue([e]);
        const [claimed] = await store.claim(2_000, 1, 30_000);
        if (!claimed) throw new Error("nothing claimed");
        expect(await store.renew(e.message.id, "not-the-token", 90_000)).toBe(false);
        expect(await store.renew(e.message.id, claimed.token, 90_000)).toBe(true);
        expect(await store.claim(89_999, 10, 30_000)).toEqual([]);
        expect((await store.get(e.message.id))?.leasedUntil).toBe(90_000);
        await store.commit(e.message.id, { token: claimed.token }, claimed.state, {
          kind: "due",
          at: 95_000,
        });
        // Once committed the token is spent: a late renewal cannot take the message back.
        expect(await store.renew(e.message.id, claimed.token, 200_000)).toBe(false);
        expect((await store.claim(95_000, 10, 30_000)).map((c) => c.message.id)).toEqual([
          e.message.id,
        ]);
      });

      it("claims within its byte budget, leaving the rest due and unleased, and says it stopped", async () => {
        // About 9.3 kB of answer each (8 kB of base64 raw): two fit in 20 kB, three do not.
        const store = factory.make({ claimBudgetBytes: 20_000 });
        const body = (n: number) => `Subject: big\r\n\r\n${"a".repeat(n)}\r\n`;
        const [a, b, c] = [1_000, 2_000, 3_000].map((dueAt) =>
          newEntry({ dueAt, raw: body(6_000) }),
        );
        if (!a || !b || !c) throw new Error("no entries");
        for (const e of [c, a, b]) await store.enqueue([e]);
        const first = await store.claimRun(10_000, 10, 30_000);
        expect(first.entries.map((x) => x.message.id)).toEqual([a.message.id, b.message.id]);
        expect(first.stoppedAtBudget).toBe(true);
        expect(first.entries[1]?.raw).toBe(b.raw);
        expect((await store.get(c.message.id))?.leasedUntil).toBeNull();
        const second = await store.claimRun(10_000, 10, 30_000);
        expect(second.entries.map((x) => x.message.id)).toEqual([c.message.id]);
        expect(second.stoppedAtBudget).toBe(false);
        // The limit still ends a claim before the budget does, and then it did not stop at it.
        const small = [newEntry({ dueAt: 4_000 }), newEntry({ dueAt: 5_000 })];
        await store.enqueue(small);
        const limited = await store.claimRun(10_000, 1, 30_000);
        expect(limited.entries.map((x) => x.message.id)).toEqual([small[0]?.message.id]);
        expect(limited.stoppedAtBudget).toBe(false);
      });

      it("claims a message over the byte budget alone rather than passing it over", async () => {
        const store = factory.make({ claimBudgetBytes: 20_000 });
        const huge = newEntry({ dueAt: 1_000, raw: `Subject: huge\r\n\r\n${"h".repeat(40_000)}` });
        const next = newEntry({ dueAt: 2_000 });
        await store.enqueue([huge]);
        await store.enqueue([next]);
        const first = await store.claimRun(10_000, 10, 30_000);
        expect(first.entries.map((x) => x.message.id)).toEqual([huge.message.id]);
        expect(first.entries[0]?.raw).toBe(huge.raw);
        expect(first.stoppedAtBudget).toBe(true);
        const second = await store.claimRun(10_000, 10, 30_000);
        expect(second.entries.map((x) => x.message.id)).toEqual([next.message.id]);
      });

      it("counts a raw byte over 0x7f as the two bytes it is stored as", async () => {
        // 4,000 bytes of é: 8,000 stored bytes, 10.7 kB of base64 each, so one per 20 kB claim;
        // as many ASCII bytes would fit two.
        const store = factory.make({ claimBudgetBytes: 20_000 });
        const eight = [1_000, 2_000].map((dueAt) =>
          newEntry({ dueAt, raw: `Subject: 8bit\r\n\r\n${"\u00e9".repeat(4_000)}` }),
        );
        await store.enqueue(eight);
        const first = await store.claimRun(10_000, 10, 30_000);
        expect(first.entries.map((x) => x.message.id)).toEqual([eight[0]?.message.id]);
        expect(first.stoppedAtBudget).toBe(true);
        const ascii = [3_000, 4_000].map((dueAt) =>
          newEntry({ dueAt, raw: `Subject: 7bit\r\n\r\n${"e".repeat(4_000)}` }),
        );
        await store.enqueue(ascii);
        const rest = await store.claimRun(10_000, 10, 30_000);
        expect(rest.entries.map((x) => x.message.id)).toEqual([
          eight[1]?.message.id,
          ascii[0]?.message.id,
        ]);
      });

      it("stores and queues nothing more when the same enqueue runs again (a retried request)", async () => {
        const store = factory.make();
        const [ep1, ep2] = [crypto.randomUUID(), crypto.randomUUID()];
        await store.putWebhook(ep1, endpoint(ep1), ["email.sent"]);
        await store.putWebhook(ep2, endpoint(ep2), ["email.sent"]);
        const e = newEntry({ dueAt: 1_000 });
        const entries = [{ ...e, events: [eventDraft("email.sent", e.message.id)] }];
        await store.enqueue(entries);
        // Claimed between the two runs: the repeat must not release the lease either.
        const [claimed] = await store.claim(2_000, 10, 30_000);
        expect(claimed?.message.id).toBe(e.message.id);
        await store.enqueue(entries);
        expect(await store.claim(3_000, 10, 30_000)).toEqual([]);
        expect((await store.get(e.message.id))?.version).toBe(1);
        // One event per endpoint; once each is sent, nothing is left to send.
        const events = await claimOne(store);
        expect(events.map((x) => x.endpointId).sort()).toEqual([ep1, ep2].sort());
        for (const ev of events) {
          await store.commitEvent(ev, { kind: "success", attempts: [], now: 1, retainMs: 60_000 });
        }
        expect(await claimOne(store, Date.now() + 60_000)).toEqual([]);
      });

      it("answers ok to a repeat of the commit last applied, without writing or queueing its events again", async () => {
        const store = factory.make();
        const ep = crypto.randomUUID();
        await store.putWebhook(ep, endpoint(ep), ["email.delivered"]);
        const e = newEntry({ dueAt: 1_000 });
        await store.enqueue([e]);
        const [claimed] = await store.claim(2_000, 1, 30_000);
        if (!claimed) throw new Error("nothing claimed");
        const done = { ...claimed.state, attempts: 1 };
        const delivered = eventDraft("email.delivered", e.message.id);
        const commit = () =>
          store.commit(
            e.message.id,
            { token: claimed.token },
            done,
            { kind: "done", retainMs: 60_000 },
            [delivered],
          );
        expect(await commit()).toBe("ok");
        const queued = store.eventsQueued;
        expect(await commit()).toBe("ok");
        expect(store.eventsQueued).toBe(queued);
        const got = await store.get(e.message.id);
        expect(got?.version).toBe(2);
        expect(got?.state.attempts).toBe(1);
        const [event, ...more] = await claimOne(store);
        expect(more).toEqual([]);
        expect(event?.id).toBe(delivered.id);
        await store.commitEvent(event as ClaimedEvent, {
          kind: "success",
          attempts: [],
          now: 1,
          retainMs: 60_000,
        });
        expect(await claimOne(store, Date.now() + 60_000)).toEqual([]);
        // Another token is still refused.
        expect(
          await store.commit(e.message.id, { token: "not-the-token" }, done, {
            kind: "due",
            at: 1,
          }),
        ).toBe("conflict");
      });

      it("reports a commit for an unknown message as missing", async () => {
        const store = factory.make();
        const e = newEntry();
        expect(
          await store.commit(e.message.id, { token: "x" }, e.state, { kind: "due", at: 1 }),
        ).toBe("missing");
      });

      it("stores a batch of messages in one call", async () => {
        const store = factory.make();
        const entries = Array.from({ length: 30 }, (_, i) => newEntry({ dueAt: 1_000 + i }));
        await store.enqueue(entries);
        const claimed = await store.claim(2_000, 100, 30_000);
        expect(claimed.map((c) => c.message.id)).toEqual(entries.map((e) => e.message.id));
      });

      it("claims an idempotency key once and reports it in flight, with when it lapses, to the next caller", async () => {
        const store = factory.make();
        const key = `k:${crypto.randomUUID()}`;
        const before = Date.now();
        expect(await store.beginIdempotent(key, "h1", "t1", 60_000)).toEqual({ kind: "new" });
        const held = await store.beginIdempotent(key, "h2", "t2", 60_000);
        expect(held).toMatchObject({ kind: "in_flight", hash: "h1" });
        expect(held.kind === "in_flight" && held.until).toBeGreaterThanOrEqual(before + 60_000);
        expect(held.kind === "in_flight" && held.until).toBeLessThanOrEqual(Date.now() + 60_000);
        expect(await store.peekIdempotent(key)).toEqual(held);
        await store.abandonIdempotent(key, "t1");
        expect(await store.beginIdempotent(key, "h2", "t2", 60_000)).toEqual({ kind: "new" });
      });

      it("lets a claim retried with the same token find its own marker as new", async () => {
        const store = factory.make();
        const key = `k:${crypto.randomUUID()}`;
        expect(await store.beginIdempotent(key, "h", "t", 60_000)).toEqual({ kind: "new" });
        expect(await store.beginIdempotent(key, "h", "t", 60_000)).toEqual({ kind: "new" });
        expect((await store.beginIdempotent(key, "h", "other", 60_000)).kind).toBe("in_flight");
      });

      it("releases an idempotency key only for the request whose in-flight marker it holds", async () => {
        const store = factory.make();
        const key = `k:${crypto.randomUUID()}`;
        await store.beginIdempotent(key, "h", "mine", 60_000);
        expect(await store.abandonIdempotent(key, "other")).toBe(false);
        expect((await store.peekIdempotent(key)).kind).toBe("in_flight");
        // A done record is never released: its messages are stored.
        const e = newEntry();
        const response = { status: 200, body: { id: e.message.id } };
        await store.enqueue([e], { key, hash: "h", response, ttlMs: 60_000, token: "mine" });
        expect(await store.abandonIdempotent(key, "mine")).toBe(false);
        expect(await store.peekIdempotent(key)).toEqual({ kind: "done", hash: "h", response });
        expect(await store.abandonIdempotent(`k:${crypto.randomUUID()}`, "mine")).toBe(false);
      });

      it("stores the idempotent response with the messages, atomically", async () => {
        const store = factory.make();
        const key = `k:${crypto.randomUUID()}`;
        await store.beginIdempotent(key, "h", "t", 60_000);
        const e = newEntry();
        const response = { status: 200, body: { id: e.message.id } };
        await store.enqueue([e], { key, hash: "h", response, ttlMs: 60_000, token: "t" });
        expect(await store.beginIdempotent(key, "h", "t2", 60_000)).toEqual({
          kind: "done",
          hash: "h",
          response,
        });
        expect(await store.get(e.message.id)).not.toBeNull();
      });

      it("stores nothing when the idempotency key no longer holds the request's marker (a late write)", async () => {
        const store = factory.make();
        const response = (e: NewEntry) => ({ status: 200, body: { id: e.message.id } });
        // The marker lapsed and another request took the key: the late write must not land.
        const taken = `k:${crypto.randomUUID()}`;
        await store.beginIdempotent(taken, "h", "other", 60_000);
        const late = newEntry();
        const record = { key: taken, hash: "h", response: response(late), ttlMs: 60_000 };
        await expect(store.enqueue([late], { ...record, token: "mine" })).rejects.toThrow(
          IdempotencyClaimLapsedError,
        );
        expect(await store.get(late.message.id)).toBeNull();
        expect((await store.peekIdempotent(taken)).kind).toBe("in_flight");
        // The marker lapsed and nobody holds the key: still nothing, so a free key means that.
        const lapsed = `k:${crypto.randomUUID()}`;
        const alone = newEntry();
        await expect(
          store.enqueue([alone], {
            key: lapsed,
            hash: "h",
            response: response(alone),
            ttlMs: 60_000,
            token: "mine",
          }),
        ).rejects.toThrow(IdempotencyClaimLapsedError);
        expect(await store.get(alone.message.id)).toBeNull();
        expect(await store.peekIdempotent(lapsed)).toEqual({ kind: "new" });
      });

      it("forgets an idempotency key after its time to live", async () => {
        const store = factory.make();
        const key = `k:${crypto.randomUUID()}`;
        await store.beginIdempotent(key, "h", "t", 300);
        await new Promise((r) => setTimeout(r, 500));
        expect(await store.peekIdempotent(key)).toEqual({ kind: "new" });
        expect(await store.beginIdempotent(key, "other", "t2", 300)).toEqual({ kind: "new" });
      });

      it("stores API keys by digest, lists them newest first, and deletes them", async () => {
        const store = factory.make();
        const a: ApiKeyRecord = {
          id: crypto.randomUUID(),
          name: "a",
          permission: "full_access",
          digest: "aa".repeat(32),
          createdAt: 1,
        };
        const b: ApiKeyRecord = {
          id: crypto.randomUUID(),
          name: "b",
          permission: "sending_access",
          digest: "bb".repeat(32),
          createdAt: 2,
        };
        await store.putKey(a);
        await store.putKey(b);
        expect(await store.keyByDigest(b.digest)).toEqual(b);
        expect((await store.listKeys()).map((k) => k.id)).toEqual([b.id, a.id]);
        expect(await store.deleteKey(b.id)).toBe(true);
        expect(await store.deleteKey(b.id)).toBe(false);
        expect(await store.keyByDigest(b.digest)).toBeNull();
        expect((await store.listKeys()).map((k) => k.id)).toEqual([a.id]);
      });

      it("keeps records by kind and id, lists a kind, and deletes one with its counters", async () => {
        const store = factory.make();
        const form = { id: "f1", recipients: ["a@example.com"], note: "ünïcode" };
        await store.putRecord("form", "f1", form);
        await store.putRecord("form", "f2", { id: "f2" });
        await store.putRecord("hook", "f1", { id: "f1", other: true });
        expect(await store.getRecord("form", "f1")).toEqual(form);
        expect(await store.getRecord("form", "nope")).toBeNull();
        const ids = (await store.listRecords<{ id: string }>("form")).map((r) => r.id).sort();
        expect(ids).toEqual(["f1", "f2"]);
        await store.count("form", "f1", "honeypot");
        await store.count("form", "f1", "honeypot", 2);
        await store.count("form", "f1", "too_fast");
        expect(await store.counters("form", "f1")).toEqual({ honeypot: 3, too_fast: 1 });
        expect(await store.counters("form", "f2")).toEqual({});
        expect(await store.deleteRecord("form", "f1")).toBe(true);
        expect(await store.deleteRecord("form", "f1")).toBe(false);
        expect(await store.getRecord("form", "f1")).toBeNull();
        expect(await store.counters("form", "f1")).toEqual({});
        // The other kind's record with the same id is untouched.
        expect(await store.getRecord("hook", "f1")).toEqual({ id: "f1", other: true });
      });

      it("reports a key as new once, then as seen until it expires", async () => {
        const store = factory.make();
        const key = `seen:${crypto.randomUUID()}`;
        expect(await store.markSeen(key, 300)).toBe(true);
        expect(await store.markSeen(key, 300)).toBe(false);
        await new Promise((r) => setTimeout(r, 500));
        expect(await store.markSeen(key, 300)).toBe(true);
      });
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
    },
  );
}
