/**
 * The store's queue contract (run for every driver by ./index.ts): atomic claims with leases,
 * guarded commits, retention, the claim's byte budget, idempotent enqueues and commits, and
 * byte-exact storage of raw messages: what delivery relies on.
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

export function describeQueueContract(factory: StoreFactory): void {
  describePort("queue", factory, () => {
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
      const first = (await store.claimRun(10_000, 2, 30_000)).entries;
      expect(first.map((c) => c.message.id)).toEqual([early.message.id, middle.message.id]);
      const second = (await store.claimRun(10_000, 10, 30_000)).entries;
      expect(second.map((c) => c.message.id)).toEqual([late.message.id]);
      expect(second[0]?.raw).toBe(late.raw);
      expect(second[0]?.leasedUntil).toBe(40_000);
    });

    it("does not hand a leased message to another claim until the lease ends", async () => {
      const store = factory.make();
      const e = newEntry({ dueAt: 1_000 });
      await store.enqueue([e]);
      const [claimed] = (await store.claimRun(2_000, 10, 30_000)).entries;
      expect(claimed?.message.id).toBe(e.message.id);
      expect((await store.claimRun(31_999, 10, 30_000)).entries).toEqual([]);
      const again = (await store.claimRun(32_000, 10, 30_000)).entries;
      expect(again.map((c) => c.message.id)).toEqual([e.message.id]);
      expect(again[0]?.token).not.toBe(claimed?.token);
    });

    it("never gives one message to two concurrent claims", async () => {
      const store = factory.make();
      const entries = Array.from({ length: 12 }, (_, i) => newEntry({ dueAt: 1_000 + i }));
      await store.enqueue(entries);
      const results = await Promise.all(
        [1, 2, 3, 4].map(async () => (await store.claimRun(5_000, 5, 30_000)).entries),
      );
      const ids = results.flat().map((c) => c.message.id);
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids.length).toBe(12);
    });

    it("commits only for the current lease holder, then reschedules", async () => {
      const store = factory.make();
      const e = newEntry({ dueAt: 1_000 });
      await store.enqueue([e]);
      const [claimed] = (await store.claimRun(2_000, 1, 30_000)).entries;
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
      expect((await store.claimRun(89_999, 10, 30_000)).entries).toEqual([]);
      expect((await store.claimRun(90_000, 10, 30_000)).entries.map((c) => c.message.id)).toEqual([
        e.message.id,
      ]);
    });

    it("takes a finished message out of the queue but keeps it readable", async () => {
      const store = factory.make();
      const e = newEntry({ dueAt: 1_000 });
      await store.enqueue([e]);
      const [claimed] = (await store.claimRun(2_000, 1, 30_000)).entries;
      if (!claimed) throw new Error("nothing claimed");
      const done = { ...claimed.state, attempts: 1 };
      expect(
        await store.commit(e.message.id, { token: claimed.token }, done, {
          kind: "done",
          retainMs: 3_600_000,
        }),
      ).toBe("ok");
      expect((await store.claimRun(Number.MAX_SAFE_INTEGER, 10, 30_000)).entries).toEqual([]);
      expect((await store.get(e.message.id))?.state.attempts).toBe(1);
    });

    it("forgets a finished message after its retention", async () => {
      const store = factory.make();
      const e = newEntry({ dueAt: 1_000 });
      await store.enqueue([e]);
      const [claimed] = (await store.claimRun(2_000, 1, 30_000)).entries;
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
      expect((await store.claimRun(49_999, 10, 30_000)).entries).toEqual([]);
      expect(
        await store.commit(e.message.id, { token: "immediate-token" }, e.state, {
          kind: "due",
          at: 70_000,
        }),
      ).toBe("ok");
      expect((await store.claimRun(70_000, 10, 30_000)).entries.map((c) => c.message.id)).toEqual([
        e.message.id,
      ]);
    });

    it("lets a version-guarded write through only when nobody holds a lease and nothing changed", async () => {
      const store = factory.make();
      const e = newEntry({ dueAt: 1_000 });
      await store.enqueue([e]);
      const canceled = { ...e.state, canceledAt: 5 };
      // Leased by a delivery run: the write must wait.
      const [claimed] = (await store.claimRun(2_000, 1, 30_000)).entries;
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
      expect((await store.claimRun(Number.MAX_SAFE_INTEGER, 10, 30_000)).entries).toEqual([]);
    });

    it("allows a version-guarded write once an abandoned lease has run out", async () => {
      const store = factory.make();
      const e = newEntry({ dueAt: 1_000 });
      await store.enqueue([e]);
      await store.claimRun(2_000, 1, 30_000);
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
      const [claimed] = (await store.claimRun(2_000, 1, 30_000)).entries;
      if (!claimed) throw new Error("nothing claimed");
      expect(await store.renew(e.message.id, "not-the-token", 90_000)).toBe(false);
      expect(await store.renew(e.message.id, claimed.token, 90_000)).toBe(true);
      expect((await store.claimRun(89_999, 10, 30_000)).entries).toEqual([]);
      expect((await store.get(e.message.id))?.leasedUntil).toBe(90_000);
      await store.commit(e.message.id, { token: claimed.token }, claimed.state, {
        kind: "due",
        at: 95_000,
      });
      // Once committed the token is spent: a late renewal cannot take the message back.
      expect(await store.renew(e.message.id, claimed.token, 200_000)).toBe(false);
      expect((await store.claimRun(95_000, 10, 30_000)).entries.map((c) => c.message.id)).toEqual([
        e.message.id,
      ]);
    });

    it("claims within its byte budget, leaving the rest due and unleased, and says it stopped", async () => {
      // About 9.3 kB of answer each (8 kB of base64 raw): two fit in 20 kB, three do not.
      const store = factory.make({ claimBudgetBytes: 20_000 });
      const body = (n: number) => `Subject: big\r\n\r\n${"a".repeat(n)}\r\n`;
      const [a, b, c] = [1_000, 2_000, 3_000].map((dueAt) => newEntry({ dueAt, raw: body(6_000) }));
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
      const [claimed] = (await store.claimRun(2_000, 10, 30_000)).entries;
      expect(claimed?.message.id).toBe(e.message.id);
      await store.enqueue(entries);
      expect((await store.claimRun(3_000, 10, 30_000)).entries).toEqual([]);
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
      const [claimed] = (await store.claimRun(2_000, 1, 30_000)).entries;
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

    it("commits a group in one call, each on its own guard: ok, conflict and missing side by side", async () => {
      const store = factory.make();
      const ep = crypto.randomUUID();
      await store.putWebhook(ep, endpoint(ep), ["email.delivered"]);
      const [a, b, c] = [
        newEntry({ dueAt: 1_000 }),
        newEntry({ dueAt: 1_000 }),
        newEntry({ dueAt: 1_000 }),
      ];
      if (!a || !b || !c) throw new Error("no entries");
      await store.enqueue([a, b, c]);
      const claimed = (await store.claimRun(2_000, 3, 30_000)).entries;
      const token = (id: string) => claimed.find((x) => x.message.id === id)?.token ?? "";
      const unknown = newEntry();
      const done = (e: typeof a) => ({ ...e.state, attempts: 1, nextAttemptAt: null });
      const delivered = eventDraft("email.delivered", a.message.id);
      const group = () =>
        store.commitMany([
          {
            id: a.message.id,
            guard: { token: token(a.message.id) },
            state: done(a),
            next: { kind: "done", retainMs: 60_000 },
            events: [delivered],
          },
          {
            id: b.message.id,
            guard: { token: "not-the-token" },
            state: done(b),
            next: { kind: "done", retainMs: 60_000 },
          },
          {
            id: unknown.message.id,
            guard: { token: "x" },
            state: unknown.state,
            next: { kind: "due", at: 1 },
          },
          {
            id: c.message.id,
            guard: { token: token(c.message.id) },
            state: { ...c.state, attempts: 1, nextAttemptAt: 90_000 },
            next: { kind: "due", at: 90_000 },
          },
        ]);
      expect(await group()).toEqual(["ok", "conflict", "missing", "ok"]);
      const queued = store.eventsQueued;
      // The same group again (a retry after a lost reply): the applied ones answer ok, unchanged.
      expect(await group()).toEqual(["ok", "conflict", "missing", "ok"]);
      expect(store.eventsQueued).toBe(queued);
      expect((await store.get(a.message.id))?.version).toBe(2);
      expect((await store.get(b.message.id))?.leasedUntil).not.toBeNull();
      expect((await store.get(c.message.id))?.state.nextAttemptAt).toBe(90_000);
      const [event, ...more] = await claimOne(store);
      expect(more).toEqual([]);
      expect(event?.id).toBe(delivered.id);
      // c is due again at 90 s; b's lease (never released by the refused commit) has run out by
      // then; a is finished.
      const due = (await store.claimRun(90_000, 10, 30_000)).entries.map((x) => x.message.id);
      expect(due.sort()).toEqual([b.message.id, c.message.id].sort());
      expect(await store.commitMany([])).toEqual([]);
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
      const claimed = (await store.claimRun(2_000, 100, 30_000)).entries;
      expect(claimed.map((c) => c.message.id)).toEqual(entries.map((e) => e.message.id));
    });
  });
}
