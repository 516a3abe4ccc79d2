/**
 * The store's idempotency contract (run for every driver by ./index.ts): in-flight markers, their
 * release, and the done record written atomically with the messages, never after a lapse.
 */
import { expect, it } from "vitest";
import { IdempotencyClaimLapsedError, type NewEntry } from "../../../src/store/store.ts";
import { describePort, newEntry, type StoreFactory } from "./support.ts";

export function describeIdempotencyContract(factory: StoreFactory): void {
  describePort("idempotency", factory, () => {
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
  });
}
