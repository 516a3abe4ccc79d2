/**
 * The QueueInsight contract (run for every driver by ./index.ts): queue depth split into due,
 * scheduled and leased with the oldest due message, and the smart host's latest success and
 * refusal, kept from commits so that a repeated or older commit never replaces a newer outcome.
 */
import { expect, it } from "vitest";
import type { DeliveryState } from "../../../src/store/types.ts";
import { describePort, newEntry, type StoreFactory } from "./support.ts";

const LEASE = 30_000;

/** A state after one attempt at `at` that delivered and/or deferred. */
function attempted(
  base: DeliveryState,
  at: number,
  outcome: "delivered" | "deferred" | "failed",
): DeliveryState {
  const reply =
    outcome === "delivered"
      ? { code: 250, enhanced: "2.0.0", text: "OK queued" }
      : outcome === "deferred"
        ? { code: 451, enhanced: "4.7.1", text: "Try again later" }
        : { code: 550, enhanced: "5.1.1", text: "No such user" };
  return {
    ...base,
    attempts: base.attempts + 1,
    recipients: base.recipients.map((r) => ({
      ...r,
      status: outcome === "deferred" ? "pending" : outcome,
      reply,
      at,
    })),
    history: [
      ...base.history,
      {
        at,
        tried: 1,
        delivered: outcome === "delivered" ? 1 : 0,
        failed: outcome === "failed" ? 1 : 0,
        deferred: outcome === "deferred" ? 1 : 0,
        reply,
      },
    ],
  };
}

export function describeInsightContract(factory: StoreFactory): void {
  describePort("insight", factory, () => {
    it("counts due, scheduled and leased messages, and names the one due longest", async () => {
      const store = factory.make();
      expect(await store.queueDepth(10_000, LEASE)).toEqual({
        due: 0,
        scheduled: 0,
        leased: 0,
        leasedCapped: false,
        oldestDue: null,
      });
      const oldest = newEntry({ dueAt: 1_000 });
      const due = newEntry({ dueAt: 2_000 });
      const toLease = newEntry({ dueAt: 500 });
      const later = newEntry({ dueAt: 20_000 });
      const muchLater = newEntry({ dueAt: 900_000 });
      await store.enqueue([toLease]);
      await store.claimRun(5_000, 1, LEASE); // leased until 35,000
      await store.enqueue([oldest, due, later, muchLater]);
      expect(await store.queueDepth(10_000, LEASE)).toEqual({
        due: 2,
        scheduled: 2,
        leased: 1,
        leasedCapped: false,
        oldestDue: { id: oldest.message.id, dueAt: 1_000 },
      });
      // The lease ran out: the message is due again, and due longest (its lease end).
      const after = await store.queueDepth(36_000, LEASE);
      expect(after).toMatchObject({ due: 4, scheduled: 1, leased: 0 });
      expect(after.oldestDue?.id).toBe(oldest.message.id);
    });

    it("keeps the smart host's latest success and refusal, with reply, time and email", async () => {
      const store = factory.make();
      expect(await store.smartHost()).toEqual({ lastSuccess: null, lastRefusal: null });
      const a = newEntry({ dueAt: 1_000 });
      const b = newEntry({ dueAt: 1_000 });
      await store.enqueue([a, b]);
      const claimed = (await store.claimRun(2_000, 2, LEASE)).entries;
      const [ca, cb] = [a, b].map((e) => claimed.find((c) => c.message.id === e.message.id));
      if (!ca || !cb) throw new Error("nothing claimed");
      const deferred = attempted(ca.state, 3_000, "deferred");
      const next = { kind: "due", at: 60_000 } as const;
      expect(await store.commit(a.message.id, { token: ca.token }, deferred, next)).toBe("ok");
      const delivered = attempted(cb.state, 4_000, "delivered");
      const done = { kind: "done", retainMs: 600_000 } as const;
      expect(await store.commit(b.message.id, { token: cb.token }, delivered, done)).toBe("ok");
      const expected = {
        lastSuccess: {
          code: 250,
          enhanced: "2.0.0",
          text: "OK queued",
          at: 4_000,
          emailId: b.message.id,
        },
        lastRefusal: {
          code: 451,
          enhanced: "4.7.1",
          text: "Try again later",
          at: 3_000,
          emailId: a.message.id,
        },
      };
      expect(await store.smartHost()).toEqual(expected);
      // Repeats (a lost reply re-sent) and a later commit carrying an older attempt change nothing.
      await store.commit(a.message.id, { token: ca.token }, deferred, next);
      await store.commit(b.message.id, { token: cb.token }, delivered, done);
      const got = await store.get(a.message.id);
      if (!got) throw new Error("gone");
      const canceled = { ...got.state, canceledAt: 5_000 };
      const guard = { version: got.version, now: 5_000 };
      expect(await store.commit(a.message.id, guard, canceled, done)).toBe("ok");
      expect(await store.smartHost()).toEqual(expected);
    });

    it("replaces an outcome with a newer one only", async () => {
      const store = factory.make();
      const a = newEntry({ dueAt: 1_000 });
      await store.enqueue([a]);
      const [c1] = (await store.claimRun(2_000, 1, LEASE)).entries;
      if (!c1) throw new Error("nothing claimed");
      const first = attempted(c1.state, 3_000, "failed");
      await store.commit(a.message.id, { token: c1.token }, first, { kind: "due", at: 4_000 });
      const [c2] = (await store.claimRun(5_000, 1, LEASE)).entries;
      if (!c2) throw new Error("nothing claimed");
      const second = attempted(first, 6_000, "deferred");
      await store.commit(a.message.id, { token: c2.token }, second, { kind: "due", at: 90_000 });
      expect((await store.smartHost()).lastRefusal).toMatchObject({ code: 451, at: 6_000 });
    });
  });
}
