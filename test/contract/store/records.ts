/** The store's records contract (run for every driver by ./index.ts): by kind and id, counters. */
import { expect, it } from "vitest";
import { describePort, type StoreFactory } from "./support.ts";

export function describeRecordsContract(factory: StoreFactory): void {
  describePort("records", factory, () => {
    it("keeps records by kind and id, lists a kind, and deletes one with its counters", async () => {
      const store = factory.make();
      const form = { id: "f1", recipients: ["a@example.com"], note: "ünïcode" };
      await store.putRecord("form", "f1", form);
      await store.putRecord("form", "f2", { id: "f2" });
      await store.putRecord("hook", "f1", { id: "f1", other: true });
      expect(await store.getRecord("form", "f1")).toEqual(form);
      expect(await store.getRecord("form", "nope")).toBeNull();
      const ids = (await store.listRecords<{ id: string }>("form")).map((r) => r.id).sort();
      expect(ids).toEqual(["f1", "f2"]);
      await store.count("form", "f1", "honeypot");
      await store.count("form", "f1", "honeypot", 2);
      await store.count("form", "f1", "too_fast");
      expect(await store.counters("form", "f1")).toEqual({ honeypot: 3, too_fast: 1 });
      expect(await store.counters("form", "f2")).toEqual({});
      expect(await store.deleteRecord("form", "f1")).toBe(true);
      expect(await store.deleteRecord("form", "f1")).toBe(false);
      expect(await store.getRecord("form", "f1")).toBeNull();
      expect(await store.counters("form", "f1")).toEqual({});
      // The other kind's record with the same id is untouched.
      expect(await store.getRecord("hook", "f1")).toEqual({ id: "f1", other: true });
    });

    it("keeps templates and their aliases as kinds of their own", async () => {
      const store = factory.make();
      const template = { id: "t1", name: "welcome", draft: { html: "<p>{{{NAME}}}</p>" } };
      await store.putRecord("template", "t1", template);
      await store.putRecord("template_alias", "welcome", { id: "welcome", template_id: "t1" });
      expect(await store.getRecord("template", "t1")).toEqual(template);
      expect(await store.getRecord("template_alias", "welcome")).toEqual({
        id: "welcome",
        template_id: "t1",
      });
      expect(await store.listRecords("template")).toEqual([template]);
      expect(await store.getRecord("form", "t1")).toBeNull();
      expect(await store.deleteRecord("template_alias", "welcome")).toBe(true);
      expect(await store.getRecord("template", "t1")).toEqual(template);
    });

    it("swaps a record only while it is still what the writer read", async () => {
      const store = factory.make();
      const a = { id: "welcome", template_id: "t1" };
      const b = { id: "welcome", template_id: "t2" };
      // Absent -> set once; the second claimant of the same absent field loses.
      expect(await store.swapRecord("template_alias", "welcome", null, a)).toBe(true);
      expect(await store.swapRecord("template_alias", "welcome", null, b)).toBe(false);
      expect(await store.getRecord("template_alias", "welcome")).toEqual(a);
      // Present -> replaced only by a writer holding the current value.
      const read = await store.getRecord<typeof a>("template_alias", "welcome");
      expect(await store.swapRecord("template_alias", "welcome", b, b)).toBe(false);
      expect(await store.swapRecord("template_alias", "welcome", read, b)).toBe(true);
      expect(await store.getRecord("template_alias", "welcome")).toEqual(b);
      // Two racing writers from the same read: exactly one wins.
      const results = await Promise.all([
        store.swapRecord("template_alias", "welcome", b, a),
        store.swapRecord("template_alias", "welcome", b, { ...a, template_id: "t3" }),
      ]);
      expect(results.filter(Boolean)).toHaveLength(1);
    });
  });
}
