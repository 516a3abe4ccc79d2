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
  });
}
