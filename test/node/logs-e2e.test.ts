/**
 * `resend.logs.list` and `resend.logs.get`, unchanged SDK calls, against the relay in workerd on
 * real Redis (through the Upstash-compatible gateway): what an app sees, with cursors, and a
 * sending key's narrower view.
 */
import { Resend } from "resend";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RelayWorker, startRelayWorker } from "../support/harness.ts";
import { redisSkipReason } from "../support/services.ts";

const ADMIN = `logs-admin-${crypto.randomUUID()}`;
const skip = redisSkipReason();

/** The entry is written after the answer, with the request's background work. */
async function eventually<T>(read: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
  const until = Date.now() + 5_000;
  for (;;) {
    const value = await read();
    if (ok(value) || Date.now() > until) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.skipIf(Boolean(skip))(
  `resend.logs against the relay in workerd${skip ? ` (skipped: ${skip})` : ""}`,
  () => {
    let relay: RelayWorker;
    let admin: Resend;

    beforeAll(async () => {
      relay = await startRelayWorker({ adminToken: ADMIN, sink: "plain" });
      admin = new Resend(ADMIN, { baseUrl: relay.url });
    }, 60_000);

    afterAll(async () => {
      await relay?.close();
    });

    it("lists and gets the requests an app made, newest first, with cursors", async () => {
      const key = await admin.apiKeys.create({ name: "app", permission: "sending_access" });
      expect(key.error).toBeNull();
      const app = new Resend(key.data?.token, { baseUrl: relay.url });
      const sent = await app.emails.send({
        from: "Acme <hello@acme.test>",
        to: ["ann@example.com"],
        subject: "Logged",
        text: "Hi",
      });
      expect(sent.error).toBeNull();
      const missing = await app.emails.get(crypto.randomUUID());
      expect(missing.error?.statusCode).toBe(404);

      const mine = await eventually(
        () => app.logs.list(),
        (r) => (r.data?.data.length ?? 0) >= 2,
      );
      expect(mine.error).toBeNull();
      expect(mine.data?.object).toBe("list");
      const [get, send] = mine.data?.data ?? [];
      expect(get).toMatchObject({ method: "GET", response_status: 404 });
      expect(send).toMatchObject({ endpoint: "/emails", method: "POST", response_status: 200 });
      expect(send?.user_agent).toMatch(/^resend-node:/);
      // Only this key's requests (the admin's key creation is not among them).
      expect(mine.data?.data.map((d) => d.endpoint)).not.toContain("/api-keys");

      const one = await app.logs.get(send?.id ?? "");
      expect(one.error).toBeNull();
      expect(one.data).toMatchObject({
        object: "log",
        id: send?.id,
        endpoint: "/emails",
        email_ids: [sent.data?.id],
        api_key_id: key.data?.id,
        request_body: null,
        response_body: null,
      });

      const page = await app.logs.list({ limit: 1 });
      expect(page.data?.has_more).toBe(true);
      const next = await app.logs.list({ limit: 1, after: page.data?.data[0]?.id ?? "" });
      expect(next.data?.data).toHaveLength(1);
      expect(next.data?.data[0]?.id).not.toBe(page.data?.data[0]?.id);

      const all = await admin.logs.list({ limit: 100 });
      expect(all.data?.data.map((d) => d.endpoint)).toContain("/api-keys");
      const unknown = await admin.logs.get(crypto.randomUUID());
      expect(unknown.error?.statusCode).toBe(404);
    });
  },
);
