/**
 * The store's suppression list contract (run for every driver by ./index.ts): add many keeping an
 * existing entry, get by id or address, list newest first with cursors and filters, remove in a
 * batch, expiry that makes an entry absent everywhere, and the checks the queue makes inside its
 * own enqueue, claim and commit (no command of their own on the send path).
 */
import { expect, it } from "vitest";
import { type Suppression, type SuppressionOrigin, uuidV7 } from "../../../src/store/store.ts";
import { describePort, newEntry, type StoreFactory } from "./support.ts";

let seq = 0;
/** An entry made `ago` ms before now (so ids sort by when they were made, as UUIDv7 do). */
function entry(email: string, options: Partial<Suppression> & { at?: number } = {}): Suppression {
  const at = options.at ?? Date.now();
  return {
    id: uuidV7(at, seq++),
    email,
    origin: "manual" as SuppressionOrigin,
    source_id: null,
    key_id: "key-1",
    created_at: at,
    expires_at: null,
    ...options,
  };
}

export function describeSuppressionsContract(factory: StoreFactory): void {
  describePort("suppressions", factory, () => {
    it("adds many at once and keeps an address's existing entry, answering it", async () => {
      const store = factory.make();
      const now = Date.now();
      const a = entry("a@example.com", { origin: "bounce", source_id: "e1" });
      const b = entry("b@example.com");
      const first = await store.addSuppressions([a, b], now);
      expect(first).toEqual([
        { entry: a, created: true },
        { entry: b, created: true },
      ]);
      const again = entry("a@example.com", { origin: "manual", key_id: "key-2" });
      const second = await store.addSuppressions([again], now);
      expect(second).toEqual([{ entry: a, created: false }]);
      expect(await store.getSuppression("a@example.com", now)).toEqual(a);
    });

    it("gets an entry by id or by address, and null for what it does not hold", async () => {
      const store = factory.make();
      const now = Date.now();
      const a = entry("a@example.com", { origin: "complaint", source_id: "e9", key_id: "k9" });
      await store.addSuppressions([a], now);
      expect(await store.getSuppression(a.id, now)).toEqual(a);
      expect(await store.getSuppression("a@example.com", now)).toEqual(a);
      expect(await store.getSuppression("nobody@example.com", now)).toBeNull();
      expect(await store.getSuppression(crypto.randomUUID(), now)).toBeNull();
    });

    it("lists newest first, pages with after and before, and filters by origin and key", async () => {
      const store = factory.make();
      const t = Date.now() - 10_000;
      const made = Array.from({ length: 5 }, (_, i) =>
        entry(`u${i}@example.com`, {
          at: t + i,
          origin: i % 2 === 0 ? "bounce" : "manual",
          key_id: i < 3 ? "key-a" : "key-b",
        }),
      );
      await store.addSuppressions(made, t + 10);
      const ids = (xs: Suppression[]) => xs.map((s) => s.email);
      const now = t + 20;
      const p1 = await store.listSuppressions({ limit: 2, now });
      expect(ids(p1.data)).toEqual(["u4@example.com", "u3@example.com"]);
      expect(p1.hasMore).toBe(true);
      const p2 = await store.listSuppressions({ limit: 2, after: p1.data[1]?.id, now });
      expect(ids(p2.data)).toEqual(["u2@example.com", "u1@example.com"]);
      expect(p2.hasMore).toBe(true);
      const p3 = await store.listSuppressions({ limit: 2, after: p2.data[1]?.id, now });
      expect(ids(p3.data)).toEqual(["u0@example.com"]);
      expect(p3.hasMore).toBe(false);
      // Back from the last page: the page just before its first entry.
      const back = await store.listSuppressions({ limit: 2, before: p3.data[0]?.id, now });
      expect(ids(back.data)).toEqual(["u2@example.com", "u1@example.com"]);
      expect(back.hasMore).toBe(true);
      const bounces = await store.listSuppressions({ limit: 10, origin: "bounce", now });
      expect(ids(bounces.data)).toEqual(["u4@example.com", "u2@example.com", "u0@example.com"]);
      const keyB = await store.listSuppressions({ limit: 10, keyId: "key-b", now });
      expect(ids(keyB.data)).toEqual(["u4@example.com", "u3@example.com"]);
      const both = await store.listSuppressions({
        limit: 1,
        keyId: "key-a",
        origin: "bounce",
        now,
      });
      expect(ids(both.data)).toEqual(["u2@example.com"]);
      expect(both.hasMore).toBe(true);
    });

    it("removes a batch by ids or by addresses, answering only what it removed", async () => {
      const store = factory.make();
      const now = Date.now();
      const [a, b, c] = ["a", "b", "c"].map((x) => entry(`${x}@example.com`)) as [
        Suppression,
        Suppression,
        Suppression,
      ];
      await store.addSuppressions([a, b, c], now);
      const byId = await store.removeSuppressions({ ids: [a.id, crypto.randomUUID()] }, now);
      expect(byId).toEqual([a]);
      const byEmail = await store.removeSuppressions(
        { emails: ["b@example.com", "b@example.com", "x@example.com"] },
        now,
      );
      expect(byEmail).toEqual([b]);
      expect(await store.getSuppression(a.id, now)).toBeNull();
      expect(await store.getSuppression("b@example.com", now)).toBeNull();
      expect((await store.listSuppressions({ limit: 10, now })).data).toEqual([c]);
      // Removed, it can be added again, as a new entry.
      const again = entry("a@example.com");
      expect(await store.addSuppressions([again], now)).toEqual([{ entry: again, created: true }]);
    });

    it("treats an expired entry as absent everywhere, and replaces it on add", async () => {
      const store = factory.make();
      const now = Date.now();
      const gone = entry("old@example.com", { origin: "bounce", expires_at: now - 1 });
      const kept = entry("kept@example.com", { origin: "bounce", expires_at: now + 60_000 });
      await store.addSuppressions([gone, kept], now - 10);
      expect(await store.getSuppression("old@example.com", now)).toBeNull();
      expect(await store.getSuppression(gone.id, now)).toBeNull();
      expect(await store.getSuppression("kept@example.com", now)).toEqual(kept);
      expect((await store.listSuppressions({ limit: 10, now })).data).toEqual([kept]);
      expect(await store.suppressedAmong(["old@example.com", "kept@example.com"], now)).toEqual([
        { email: "kept@example.com", origin: "bounce" },
      ]);
      expect(await store.removeSuppressions({ emails: ["old@example.com"] }, now)).toEqual([]);
      const fresh = entry("old@example.com");
      expect(await store.addSuppressions([fresh], now)).toEqual([{ entry: fresh, created: true }]);
      // Past the kept one's expiry, it is gone too.
      expect(await store.getSuppression("kept@example.com", now + 60_000)).toBeNull();
    });

    it("hands a leased entry's suppressed recipients back from enqueue, a repeat included", async () => {
      const store = factory.make();
      const now = Date.now();
      await store.addSuppressions([entry("dead@example.com", { origin: "bounce" })], now);
      const lease = { token: "t1", until: now + 30_000 };
      const leased = newEntry({ lease, dueAt: now }, ["Dead@Example.com", "ok@example.com"]);
      const later = newEntry({ dueAt: now + 60_000 }, ["dead@example.com"]);
      const got = await store.enqueue([leased, later]);
      expect(got.suppressed).toEqual({
        [leased.message.id]: [{ email: "dead@example.com", origin: "bounce" }],
      });
      // A retry after a lost reply stores nothing more but still tells the caller.
      expect((await store.enqueue([leased, later])).suppressed).toEqual(got.suppressed);
    });

    it("checks recipients at claim, so a suppression added after accepting is honoured", async () => {
      const store = factory.make();
      const now = Date.now();
      const e = newEntry({ dueAt: now - 1 }, ["a@example.com", "b@example.com"]);
      await store.enqueue([e]);
      await store.addSuppressions(
        [
          entry("b@example.com", { origin: "complaint" }),
          entry("a@example.com", { expires_at: now - 1 }),
        ],
        now - 5,
      );
      const [claimed] = (await store.claimRun(now, 10, 30_000)).entries;
      expect(claimed?.message.id).toBe(e.message.id);
      expect(claimed?.suppressed).toEqual([{ email: "b@example.com", origin: "complaint" }]);
      const clean = newEntry({ dueAt: now - 1 }, ["c@example.com"]);
      await store.enqueue([clean]);
      const [other] = (await store.claimRun(now + 40_000, 10, 30_000)).entries.filter(
        (c) => c.message.id === clean.message.id,
      );
      expect(other?.suppressed).toBeUndefined();
    });

    it("adds the addresses a commit names, in the same step, keeping existing entries", async () => {
      const store = factory.make();
      const now = Date.now();
      const held = entry("held@example.com");
      await store.addSuppressions([held], now);
      const e = newEntry({ dueAt: now - 1 });
      await store.enqueue([e]);
      const [claimed] = (await store.claimRun(now, 10, 30_000)).entries;
      const dead = entry("dead@example.com", { origin: "bounce", source_id: e.message.id });
      const dup = entry("held@example.com", { origin: "bounce" });
      const result = await store.commit(
        e.message.id,
        { token: claimed?.token ?? "" },
        e.state,
        { kind: "done", retainMs: 60_000 },
        [],
        [dead, dup],
      );
      expect(result).toBe("ok");
      expect(await store.getSuppression("dead@example.com", Date.now())).toEqual(dead);
      expect(await store.getSuppression("held@example.com", Date.now())).toEqual(held);
      // A commit that loses its guard adds nothing.
      const late = entry("late@example.com", { origin: "bounce" });
      const lost = await store.commit(
        e.message.id,
        { token: "not-the-lease" },
        e.state,
        { kind: "done", retainMs: 60_000 },
        [],
        [late],
      );
      expect(lost).toBe("conflict");
      expect(await store.getSuppression("late@example.com", Date.now())).toBeNull();
    });
  });
}
