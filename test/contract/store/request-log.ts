/**
 * The store's request log contract (run for every driver by ./index.ts): newest first, cursors
 * both ways, a key's own entries, the count cap and the age bound, idempotent appends.
 */
import { expect, it } from "vitest";
import { timeIdPrefix, uuidV7 } from "../../../src/store/shared.ts";
import type { RequestLogEntry } from "../../../src/store/store.ts";
import { describePort, type StoreFactory } from "./support.ts";

const T0 = Date.UTC(2026, 11, 2, 12);
const retention = { max: 1000, since: timeIdPrefix(0), ttlMs: 60_000 };

function entry(at: number, keyId: string | null = "key-a"): RequestLogEntry {
  return {
    id: uuidV7(at),
    at,
    method: "POST",
    endpoint: "/emails",
    status: 200,
    keyId,
    userAgent: "resend-node:6.38.0",
    emailIds: [crypto.randomUUID()],
    ms: 5,
  };
}

export function describeRequestLogContract(factory: StoreFactory): void {
  describePort("request log", factory, () => {
    it("lists newest first and pages with after and before", async () => {
      const store = factory.make();
      const all = Array.from({ length: 5 }, (_, i) => entry(T0 + i * 1000));
      await store.appendRequestLogs(all.slice(0, 2), retention);
      await store.appendRequestLogs(all.slice(2), retention);
      const ids = all.map((e) => e.id).reverse();
      const since = retention.since;
      const first = await store.listRequestLogs({ limit: 2, since });
      expect(first.entries.map((e) => e.id)).toEqual(ids.slice(0, 2));
      expect(first.hasMore).toBe(true);
      expect(first.entries[0]).toEqual(all[4]);
      const next = await store.listRequestLogs({ limit: 2, after: ids[1], since });
      expect(next.entries.map((e) => e.id)).toEqual(ids.slice(2, 4));
      expect(next.hasMore).toBe(true);
      const last = await store.listRequestLogs({ limit: 2, after: ids[3], since });
      expect(last.entries.map((e) => e.id)).toEqual(ids.slice(4));
      expect(last.hasMore).toBe(false);
      const back = await store.listRequestLogs({ limit: 2, before: ids[4], since });
      expect(back.entries.map((e) => e.id)).toEqual(ids.slice(2, 4));
      expect(back.hasMore).toBe(true);
      const top = await store.listRequestLogs({ limit: 2, before: ids[2], since });
      expect(top.entries.map((e) => e.id)).toEqual(ids.slice(0, 2));
      expect(top.hasMore).toBe(false);
      expect(await store.getRequestLog(all[2]?.id ?? "")).toEqual(all[2]);
      expect(await store.getRequestLog(uuidV7(T0))).toBeNull();
    });

    it("filters by key, skipping other keys' entries across chunks", async () => {
      const store = factory.make();
      const mine = [entry(T0, "key-a"), entry(T0 + 500_000, "key-a")];
      // More than a chunk (100) of others between them.
      const others = Array.from({ length: 150 }, (_, i) => entry(T0 + 1000 + i, "key-b"));
      const hook = entry(T0 + 2000, null);
      await store.appendRequestLogs([...mine, ...others, hook], retention);
      const since = retention.since;
      const page = await store.listRequestLogs({ limit: 1, keyId: "key-a", since });
      expect(page.entries.map((e) => e.id)).toEqual([mine[1]?.id]);
      expect(page.hasMore).toBe(true);
      const rest = await store.listRequestLogs({
        limit: 10,
        keyId: "key-a",
        after: mine[1]?.id,
        since,
      });
      expect(rest.entries.map((e) => e.id)).toEqual([mine[0]?.id]);
      expect(rest.hasMore).toBe(false);
      const all = await store.listRequestLogs({ limit: 100, since });
      expect(all.entries).toHaveLength(100);
      expect(all.hasMore).toBe(true);
    });

    it("keeps only the newest `max` entries and none older than `since`", async () => {
      const store = factory.make();
      const all = Array.from({ length: 8 }, (_, i) => entry(T0 + i * 1000));
      const capped = { ...retention, max: 5 };
      for (const e of all) await store.appendRequestLogs([e], capped);
      const listed = await store.listRequestLogs({ limit: 100, since: retention.since });
      expect(listed.entries.map((e) => e.id)).toEqual(
        all
          .slice(3)
          .map((e) => e.id)
          .reverse(),
      );
      expect(await store.getRequestLog(all[2]?.id ?? "")).toBeNull();
      // The age bound: everything before T0 + 6 s goes at the next write.
      await store.appendRequestLogs([], { ...capped, since: timeIdPrefix(T0 + 6000) });
      const later = entry(T0 + 9000);
      await store.appendRequestLogs([later], { ...capped, since: timeIdPrefix(T0 + 6000) });
      const young = await store.listRequestLogs({ limit: 100, since: retention.since });
      expect(young.entries.map((e) => e.id)).toEqual([later.id, all[7]?.id, all[6]?.id]);
      expect(await store.getRequestLog(all[5]?.id ?? "")).toBeNull();
      // A read never answers what is older than its own bound, even before a write trims it.
      const bounded = await store.listRequestLogs({ limit: 100, since: timeIdPrefix(T0 + 7000) });
      expect(bounded.entries.map((e) => e.id)).toEqual([later.id, all[7]?.id]);
    });

    it("appends idempotently: the same entries again add nothing", async () => {
      const store = factory.make();
      const batch = [entry(T0), entry(T0 + 1)];
      await store.appendRequestLogs(batch, retention);
      await store.appendRequestLogs(batch, retention);
      const listed = await store.listRequestLogs({ limit: 100, since: retention.since });
      expect(listed.entries).toHaveLength(2);
    });
  });
}
