/** The store's API key contract (run for every driver by ./index.ts): by digest, newest first. */
import { expect, it } from "vitest";
import type { ApiKeyRecord } from "../../../src/store/types.ts";
import { describePort, type StoreFactory } from "./support.ts";

export function describeKeysContract(factory: StoreFactory): void {
  describePort("keys", factory, () => {
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

    it("updates a key only while it is the record read, and repeats safely", async () => {
      const store = factory.make();
      const a: ApiKeyRecord = {
        id: crypto.randomUUID(),
        name: "a",
        permission: "full_access",
        digest: "cc".repeat(32),
        createdAt: 1,
      };
      await store.putKey(a);
      const next: ApiKeyRecord = { ...a, name: "b", policy: { allowed_recipients: [] } };
      expect(await store.updateKey(a, next)).toBe("updated");
      // A retried request finds its own write in place.
      expect(await store.updateKey(a, next)).toBe("updated");
      expect(await store.keyByDigest(a.digest)).toEqual(next);
      expect((await store.listKeys())[0]).toEqual(next);
      // A stale read (the record changed since) is refused.
      expect(await store.updateKey(a, { ...a, name: "c" })).toBe("changed");
      expect((await store.keyByDigest(a.digest))?.name).toBe("b");
      expect(await store.updateKey({ ...a, id: crypto.randomUUID() }, next)).toBe("missing");
    });

    it("a touch from a stale read does not undo an update", async () => {
      const store = factory.make();
      const a: ApiKeyRecord = {
        id: crypto.randomUUID(),
        name: "a",
        permission: "sending_access",
        digest: "dd".repeat(32),
        createdAt: 1,
      };
      await store.putKey(a);
      const stale = await store.keyByDigest(a.digest);
      const narrowed: ApiKeyRecord = { ...a, policy: { allowed_recipients: ["x@example.org"] } };
      expect(await store.updateKey(a, narrowed)).toBe("updated");
      if (stale) await store.touchKey(stale, 5);
      expect((await store.keyByDigest(a.digest))?.policy).toEqual(narrowed.policy);
      expect((await store.listKeys())[0]?.policy).toEqual(narrowed.policy);
    });

    it("keeps the first secret stored under a name, and answers it to every later caller", async () => {
      const store = factory.make();
      expect(await store.secret("downloads", "first")).toBe("first");
      expect(await store.secret("downloads", "second")).toBe("first");
      expect(await store.secret("other", "third")).toBe("third");
    });
  });
}
