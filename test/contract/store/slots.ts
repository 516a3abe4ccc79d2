/**
 * The connection-slot contract (run for every driver by ./index.ts): the claim takes a smart
 * host's slots atomically with the messages, never past the cap, never while nothing is due, and
 * a release or a lapse gives them back. Fan-out (src/delivery/fanout.ts) bounds the connections of
 * all invocations together by it.
 */
import { expect, it } from "vitest";
import { describePort, newEntry, type StoreFactory } from "./support.ts";

const HOST = "smtp.example.com:587";
const LEASE = 30_000;

export function describeSlotsContract(factory: StoreFactory): void {
  describePort("connection slots", factory, () => {
    const take = (holder: string, want: number, until = 100_000) => ({
      host: HOST,
      cap: 8,
      take: { holder, want, until },
    });

    it("takes what is asked within the cap, then only what is left, then none and claims nothing", async () => {
      const store = factory.make();
      await store.enqueue(Array.from({ length: 6 }, () => newEntry({ dueAt: 1_000 })));
      const a = await store.claimRun(2_000, 2, LEASE, take("run-a", 6));
      expect(a.slots).toEqual({ taken: 6, free: 2 });
      expect(a.entries).toHaveLength(2);
      const b = await store.claimRun(2_000, 2, LEASE, take("run-b", 6));
      expect(b.slots).toEqual({ taken: 2, free: 0 });
      expect(b.entries).toHaveLength(2);
      const c = await store.claimRun(2_000, 2, LEASE, take("run-c", 6));
      expect(c.slots).toEqual({ taken: 0, free: 0 });
      // At the cap the claim leases nothing: the messages stay due for a holder of slots.
      expect(c.entries).toEqual([]);
      expect(c.dueLeft).toBe(2);
      const more = await store.claimRun(2_000, 10, LEASE, { host: HOST, cap: 8 });
      expect(more.entries).toHaveLength(2);
      expect(more.slots).toEqual({ free: 0 });
      expect(more.dueLeft).toBe(0);
    });

    it("takes no slot when nothing is due, so an idle run holds none", async () => {
      const store = factory.make();
      await store.enqueue([newEntry({ dueAt: 50_000 })]);
      const idle = await store.claimRun(2_000, 10, LEASE, take("run-a", 3));
      expect(idle.slots).toEqual({ taken: 0, free: 8 });
      expect(idle.entries).toEqual([]);
    });

    it("gives slots back on release and when they lapse, and a second release changes nothing", async () => {
      const store = factory.make();
      await store.enqueue(Array.from({ length: 4 }, () => newEntry({ dueAt: 1_000 })));
      await store.claimRun(2_000, 1, LEASE, take("run-a", 5, 60_000));
      await store.claimRun(2_000, 1, LEASE, take("run-b", 3, 90_000));
      await store.releaseSlots(HOST, "run-a", 5);
      await store.releaseSlots(HOST, "run-a", 5);
      const after = await store.claimRun(2_000, 1, LEASE, { host: HOST, cap: 8 });
      expect(after.slots).toEqual({ free: 5 });
      // run-b died without releasing: at its lapse time its slots are free again.
      const lapsed = await store.claimRun(90_000, 1, LEASE, { host: HOST, cap: 8 });
      expect(lapsed.slots).toEqual({ free: 8 });
    });

    it("keeps renewed slots past their first lapse, and lets unrenewed ones lapse", async () => {
      const store = factory.make();
      await store.enqueue(Array.from({ length: 4 }, () => newEntry({ dueAt: 1_000 })));
      await store.claimRun(2_000, 1, LEASE, take("run-a", 3, 60_000));
      await store.claimRun(2_000, 1, LEASE, take("run-b", 2, 60_000));
      await store.renewSlots(HOST, "run-a", 3, 120_000);
      const later = await store.claimRun(60_000, 1, LEASE, { host: HOST, cap: 8 });
      // run-b's lapsed at 60,000; run-a's, renewed, are held until 120,000.
      expect(later.slots).toEqual({ free: 5 });
      const after = await store.claimRun(120_000, 1, LEASE, { host: HOST, cap: 8 });
      expect(after.slots).toEqual({ free: 8 });
      // A renewal does not create slots its holder never took (or lost to a lapse).
      await store.renewSlots(HOST, "run-c", 4, 500_000);
      expect((await store.claimRun(130_000, 1, LEASE, { host: HOST, cap: 8 })).slots).toEqual({
        free: 8,
      });
    });

    it("keeps one cap per smart host", async () => {
      const store = factory.make();
      await store.enqueue(Array.from({ length: 2 }, () => newEntry({ dueAt: 1_000 })));
      await store.claimRun(2_000, 1, LEASE, take("run-a", 8));
      const other = await store.claimRun(2_000, 1, LEASE, {
        host: "other.example.com:25",
        cap: 4,
        take: { holder: "run-b", want: 3, until: 100_000 },
      });
      expect(other.slots).toEqual({ taken: 3, free: 1 });
    });

    it("splits a contended cap exactly: concurrent claims never take more than it", async () => {
      const store = factory.make();
      await store.enqueue(Array.from({ length: 20 }, () => newEntry({ dueAt: 1_000 })));
      const claims = await Promise.all(
        Array.from({ length: 5 }, (_, i) => store.claimRun(2_000, 1, LEASE, take(`run-${i}`, 3))),
      );
      const taken = claims.map((c) => c.slots?.taken ?? 0);
      expect(taken.reduce((a, b) => a + b, 0)).toBe(8);
      // Only claims that got a slot leased a message.
      expect(claims.filter((c) => c.entries.length > 0)).toHaveLength(
        taken.filter((t) => t > 0).length,
      );
    });

    it("counts the messages still due after the claim", async () => {
      const store = factory.make();
      await store.enqueue([
        ...Array.from({ length: 5 }, () => newEntry({ dueAt: 1_000 })),
        newEntry({ dueAt: 80_000 }),
      ]);
      const claimed = await store.claimRun(2_000, 2, LEASE);
      expect(claimed.dueLeft).toBe(3);
      expect(claimed.slots).toBeUndefined();
    });
  });
}
