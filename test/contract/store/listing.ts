/**
 * The store's email index contract (run for every driver by ./index.ts): the list index kept
 * by enqueue and commit (newest first, cursors both ways, one key's own, a time range, leaving
 * with retention) and the per-hour event counters (counted once however often a write repeats).
 */
import { expect, it } from "vitest";
import type { NewEntry, RelayStore } from "../../../src/store/store.ts";
import { METRICS_BUCKET_MS } from "../../../src/store/store.ts";
import { describePort, eventDraft, newEntry, type StoreFactory } from "./support.ts";

/** `n` entries created at 1000, 2000, ... ms (so newest first is the reverse), sent by `keyId`. */
function entries(n: number, keyId = "key-1", from = 1): NewEntry[] {
  return Array.from({ length: n }, (_, i) => {
    const e = newEntry();
    e.message.keyId = keyId;
    e.message.createdAt = (from + i) * 1000;
    return e;
  });
}

const ids = (list: { message: { id: string } }[]) => list.map((e) => e.message.id);
const now = () => Date.now();

async function listAll(store: RelayStore, keyId?: string): Promise<string[]> {
  const w = await store.listEmails({ keyId, count: 200, now: now() });
  if (!w.found) throw new Error("no window");
  return ids(w.entries);
}

export function describeListingContract(factory: StoreFactory): void {
  describePort("email index", factory, () => {
    it("lists accepted emails newest first, with their metadata and state but no raw", async () => {
      const store = factory.make();
      const es = entries(3);
      await store.enqueue(es);
      const w = await store.listEmails({ count: 10, now: now() });
      expect(w).toEqual({
        found: true,
        entries: [...es].reverse().map((e) => ({ message: e.message, state: e.state })),
        more: false,
        edge: es[0]?.message.id,
      });
    });

    it("orders emails created in the same millisecond by id, and pages through them without gaps or repeats", async () => {
      const store = factory.make();
      const es = entries(7).map((e) => {
        e.message.createdAt = 5_000;
        return e;
      });
      await store.enqueue(es);
      const expected = ids(es).sort().reverse();
      const seen: string[] = [];
      let after: string | undefined;
      for (let page = 0; page < 10; page++) {
        const w = await store.listEmails({ after, count: 3, now: now() });
        if (!w.found) throw new Error("cursor lost");
        seen.push(...ids(w.entries));
        if (!w.more) break;
        after = w.edge ?? undefined;
      }
      expect(seen).toEqual(expected);
    });

    it("walks to older emails with after and to newer ones with before, telling whether more lie that way", async () => {
      const store = factory.make();
      const es = entries(6); // newest first: 5 4 3 2 1 0
      await store.enqueue(es);
      const id = (i: number) => es[i]?.message.id as string;
      const older = await store.listEmails({ after: id(4), count: 2, now: now() });
      expect(older).toMatchObject({ found: true, more: true, edge: id(2) });
      if (older.found) expect(ids(older.entries)).toEqual([id(3), id(2)]);
      const last = await store.listEmails({ after: id(2), count: 2, now: now() });
      expect(last).toMatchObject({ found: true, more: false });
      if (last.found) expect(ids(last.entries)).toEqual([id(1), id(0)]);
      const newer = await store.listEmails({ before: id(1), count: 2, now: now() });
      expect(newer).toMatchObject({ found: true, more: true, edge: id(3) });
      if (newer.found) expect(ids(newer.entries)).toEqual([id(3), id(2)]);
      const newest = await store.listEmails({ before: id(3), count: 5, now: now() });
      expect(newest).toMatchObject({ found: true, more: false, edge: id(5) });
      if (newest.found) expect(ids(newest.entries)).toEqual([id(5), id(4)]);
    });

    it("stops a window at its byte budget, keeping the emails nearest the cursor, and says more follow", async () => {
      const es = entries(6); // newest first: 5 4 3 2 1 0
      const one = JSON.stringify(es[0]?.message).length + JSON.stringify(es[0]?.state).length;
      const store = factory.make({ listBudgetBytes: Math.floor(one * 2.5) });
      await store.enqueue(es);
      const id = (i: number) => es[i]?.message.id as string;
      const seen: string[] = [];
      let after: string | undefined;
      for (let page = 0; page < 6; page++) {
        const w = await store.listEmails({ after, count: 10, now: now() });
        if (!w.found) throw new Error("cursor lost");
        expect(w.entries.length).toBeLessThanOrEqual(2);
        seen.push(...ids(w.entries));
        if (!w.more) break;
        after = w.edge ?? undefined;
      }
      expect(seen).toEqual([5, 4, 3, 2, 1, 0].map(id));
      const newer = await store.listEmails({ before: id(0), count: 10, now: now() });
      expect(newer).toMatchObject({ found: true, more: true, edge: id(2) });
      if (newer.found) expect(ids(newer.entries)).toEqual([id(2), id(1)]);
    });

    it("answers found: false for a cursor that is not in the index", async () => {
      const store = factory.make();
      await store.enqueue(entries(2));
      const cursor = crypto.randomUUID();
      expect(await store.listEmails({ after: cursor, count: 5, now: now() })).toEqual({
        found: false,
      });
      expect(await store.listEmails({ before: cursor, count: 5, now: now() })).toEqual({
        found: false,
      });
    });

    it("keeps one index per key: a key's list holds only its emails, and another key's id is no cursor there", async () => {
      const store = factory.make();
      const mine = entries(2, "key-a", 1);
      const theirs = entries(2, "key-b", 3);
      await store.enqueue(mine);
      await store.enqueue(theirs);
      expect(await listAll(store, "key-a")).toEqual(ids(mine).reverse());
      expect(await listAll(store, "key-b")).toEqual(ids(theirs).reverse());
      expect(await listAll(store)).toEqual([...ids(mine), ...ids(theirs)].reverse());
      const cursor = theirs[0]?.message.id;
      expect(
        await store.listEmails({ keyId: "key-a", after: cursor, count: 5, now: now() }),
      ).toEqual({ found: false });
    });

    it("bounds the created time with since and until (inclusive)", async () => {
      const store = factory.make();
      const es = entries(6); // created 1000 ... 6000
      await store.enqueue(es);
      const w = await store.listEmails({ since: 2_000, until: 4_000, count: 10, now: now() });
      expect(w.found && ids(w.entries)).toEqual(ids(es.slice(1, 4)).reverse());
      const page = await store.listEmails({ since: 2_000, until: 5_000, count: 2, now: now() });
      expect(page).toMatchObject({ found: true, more: true });
      const rest =
        page.found &&
        (await store.listEmails({
          after: page.edge ?? "",
          since: 2_000,
          until: 5_000,
          count: 2,
          now: now(),
        }));
      expect(rest).toMatchObject({ found: true, more: false });
      expect(rest && "entries" in rest ? ids(rest.entries) : null).toEqual(
        ids(es.slice(1, 3)).reverse(),
      );
    });

    it("drops an email from the index once its record expires with retention", async () => {
      const store = factory.make();
      const [a, b] = entries(2, "key-r");
      if (!a || !b) throw new Error("entries");
      await store.enqueue([a, b]);
      await store.commit(a.message.id, { version: 1, now: now() }, a.state, {
        kind: "done",
        retainMs: 300,
      });
      expect(await listAll(store, "key-r")).toEqual([b.message.id, a.message.id]);
      await new Promise((r) => setTimeout(r, 600));
      expect(await listAll(store)).toEqual([b.message.id]);
      expect(await listAll(store, "key-r")).toEqual([b.message.id]);
    });

    it("counts each event once in its hour, for everyone and for the sending key, however often a write repeats", async () => {
      const store = factory.make();
      const at = Date.UTC(2026, 11, 1, 10, 30);
      const hour = Math.floor(at / METRICS_BUCKET_MS);
      const [a] = entries(1, "key-m");
      const [b] = entries(1, "key-n");
      if (!a || !b) throw new Error("entries");
      a.events = [eventDraft("email.sent", a.message.id, at)];
      b.events = [eventDraft("email.sent", b.message.id, at + METRICS_BUCKET_MS)];
      await store.enqueue([a]);
      await store.enqueue([a]); // a retry after a lost reply
      await store.enqueue([b]);
      const [claimed] = (await store.claimRun(Number.MAX_SAFE_INTEGER, 1, 30_000)).entries;
      if (!claimed) throw new Error("nothing claimed");
      const events = [eventDraft("email.delivered", claimed.message.id, at)];
      const next = { kind: "done", retainMs: 60_000 } as const;
      const guard = { token: claimed.token };
      expect(await store.commit(claimed.message.id, guard, claimed.state, next, events)).toBe("ok");
      expect(await store.commit(claimed.message.id, guard, claimed.state, next, events)).toBe("ok");
      const names = ["sent", "delivered", "bounced"];
      const all = await store.emailMetrics({ fromHour: hour, toHour: hour + 1, names });
      // The delivery happened in the first hour, whichever email it was.
      expect(all).toEqual([
        { sent: 1, delivered: 1, bounced: 0 },
        { sent: 1, delivered: 0, bounced: 0 },
      ]);
      const own = await store.emailMetrics({
        fromHour: hour,
        toHour: hour + 1,
        names,
        keyId: "key-m",
      });
      expect(own.map((h) => h.sent)).toEqual([1, 0]);
      expect(await store.emailMetrics({ fromHour: hour - 5, toHour: hour - 4, names })).toEqual([
        { sent: 0, delivered: 0, bounced: 0 },
        { sent: 0, delivered: 0, bounced: 0 },
      ]);
    });
  });
}
