/**
 * The list use case (src/listing/emails.ts) over the in-memory store, for what needs many emails:
 * a filtered scan stops at its bound (SCAN_WINDOWS × SCAN_WINDOW index entries) and says where,
 * so a client can go on; filtered pages walk both ways without gaps.
 */
import { describe, expect, it } from "vitest";
import type { Principal } from "../../src/auth/keys.ts";
import { EmailListing, SCAN_WINDOW, SCAN_WINDOWS } from "../../src/listing/emails.ts";
import { MemoryStore } from "../../src/store/memory/store.ts";
import type { NewEntry } from "../../src/store/store.ts";
import { newEntry } from "../contract/store/support.ts";

const admin: Principal = { keyId: "admin", permission: "full_access" };

function entries(n: number, tagged: (i: number) => boolean): NewEntry[] {
  return Array.from({ length: n }, (_, i) => {
    const e = newEntry();
    e.message.createdAt = 1_000_000 + i * 10;
    e.message.view.tags = tagged(i) ? [{ name: "kind", value: "rare" }] : [];
    return e;
  });
}

const rare = { tag: { name: "kind", value: "rare" } };

describe("filtered listing", () => {
  it("stops a filtered scan at its bound with a cursor to go on from, and finds what lies past it", async () => {
    const store = new MemoryStore();
    const bound = SCAN_WINDOWS * SCAN_WINDOW;
    // Only the oldest email matches; bound + 50 newer ones do not.
    const es = entries(bound + 51, (i) => i === 0);
    await store.enqueue(es);
    const listing = new EmailListing(store, Date.now);
    const first = await listing.list(admin, { limit: 20, filters: rare });
    expect(first.entries).toEqual([]);
    expect(first.hasMore).toBe(true);
    expect(first.cursor).toBe(es[es.length - bound]?.message.id);
    const next = await listing.list(admin, { limit: 20, after: first.cursor, filters: rare });
    expect(next.entries.map((e) => e.message.id)).toEqual([es[0]?.message.id]);
    expect(next.hasMore).toBe(false);
    expect(next.cursor).toBeUndefined();
  });

  it("pages filtered results with after and back with before, newest first, without gaps", async () => {
    const store = new MemoryStore();
    const es = entries(500, (i) => i % 7 === 0);
    await store.enqueue(es);
    const listing = new EmailListing(store, Date.now);
    const expected = es
      .filter((_, i) => i % 7 === 0)
      .map((e) => e.message.id)
      .reverse();
    const seen: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await listing.list(admin, { limit: 9, after, filters: rare });
      seen.push(...page.entries.map((e) => e.message.id));
      if (!page.hasMore) break;
      after = page.entries.at(-1)?.message.id;
    }
    expect(seen).toEqual(expected);
    const back = await listing.list(admin, { limit: 3, before: expected[10], filters: rare });
    expect(back.entries.map((e) => e.message.id)).toEqual(expected.slice(7, 10));
    expect(back.hasMore).toBe(true);
  });

  it("gives a sending key only its own emails, and refuses it another key_id (403)", async () => {
    const store = new MemoryStore();
    const es = entries(10, () => true);
    for (const [i, e] of es.entries()) e.message.keyId = i % 2 ? "key-a" : "key-b";
    await store.enqueue(es);
    const listing = new EmailListing(store, Date.now);
    const page = await listing.list(
      { keyId: "key-a", permission: "sending_access" },
      { limit: 100, filters: rare },
    );
    expect(page.entries.map((e) => e.message.keyId)).toEqual(Array(5).fill("key-a"));
    await expect(
      listing.list(
        { keyId: "key-a", permission: "sending_access" },
        { limit: 100, filters: { keyId: "key-b" } },
      ),
    ).rejects.toMatchObject({ status: 403 });
  });
});
