/**
 * End to end with the official `resend` SDK, changed only by its base URL: the relay runs in
 * workerd from wrangler.toml (wrangler's test harness), stores in real Redis through the
 * Upstash-compatible gateway, and delivers over STARTTLS with AUTH to a real SMTP server.
 */
import PostalMime from "postal-mime";
import { Resend } from "resend";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { TestHarness } from "wrangler";
import { type RelayWorker, startRelayWorker } from "../support/harness.ts";
import { redisSkipReason, sinkApi } from "../support/services.ts";

const ADMIN = `e2e-admin-${crypto.randomUUID()}`;
const skip = redisSkipReason();

describe.skipIf(Boolean(skip))(
  `resend SDK against the relay in workerd${skip ? ` (skipped: ${skip})` : ""}`,
  () => {
    let relay: RelayWorker;
    let harness: TestHarness;
    let admin: Resend;
    let baseUrl: string;
    const sink = sinkApi("starttls");

    beforeAll(async () => {
      relay = await startRelayWorker({
        adminToken: ADMIN,
        sink: "starttls",
        vars: { RETRY_FIRST_SECONDS: "1", SMTP_EHLO_NAME: "relay.test", LOG_LEVEL: "warn" },
      });
      harness = relay.harness;
      baseUrl = relay.url;
      admin = new Resend(ADMIN, { baseUrl });
    }, 60_000);

    afterAll(async () => {
      await relay?.close();
    });

    beforeEach(async () => {
      await sink.reset();
    });

    it("delivers to, cc and bcc with the exact envelope, an intact attachment, and no visible Bcc", async () => {
      const key = await admin.apiKeys.create({ name: "e2e", permission: "sending_access" });
      expect(key.error).toBeNull();
      const resend = new Resend(key.data?.token, { baseUrl });
      const pdf = new Uint8Array(3000).map((_, i) => (i * 7) % 256);

      const sent = await resend.emails.send({
        from: "Acme Billing <billing@acme.test>",
        to: ["ann@example.com"],
        cc: ["cat@example.org"],
        bcc: ["secret-auditor@example.net"],
        replyTo: "support@acme.test",
        subject: "Your invoice ✓",
        html: "<p>Invoice attached.</p>",
        text: "Invoice attached.",
        attachments: [
          { filename: "invoice.pdf", content: Buffer.from(pdf), contentType: "application/pdf" },
        ],
        tags: [{ name: "category", value: "invoice" }],
        headers: { "X-Entity-Ref-ID": "inv-42" },
      });
      expect(sent.error).toBeNull();
      const id = sent.data?.id as string;

      const [got] = await sink.waitFor(1);
      expect(got?.mailFrom).toBe("billing@acme.test");
      expect(got?.rcptTo).toEqual([
        "ann@example.com",
        "cat@example.org",
        "secret-auditor@example.net",
      ]);
      expect(got?.secure).toBe(true);
      // Nothing any recipient receives names the Bcc recipient.
      expect(got?.raw).not.toContain("secret-auditor");
      expect(got?.raw).not.toMatch(/^bcc:/im);

      const parsed = await PostalMime.parse(got?.raw ?? "");
      expect(parsed.subject).toBe("Your invoice ✓");
      expect(parsed.to?.map((a) => a.address)).toEqual(["ann@example.com"]);
      expect(parsed.cc?.map((a) => a.address)).toEqual(["cat@example.org"]);
      expect(parsed.replyTo?.map((a) => a.address)).toEqual(["support@acme.test"]);
      expect(parsed.headers.find((h) => h.key === "x-entity-ref-id")?.value).toBe("inv-42");
      expect(parsed.attachments).toHaveLength(1);
      expect(parsed.attachments[0]?.filename).toBe("invoice.pdf");
      expect(parsed.attachments[0]?.mimeType).toBe("application/pdf");
      expect(new Uint8Array(parsed.attachments[0]?.content as ArrayBuffer)).toEqual(pdf);

      const view = await resend.emails.get(id);
      expect(view.error).toBeNull();
      expect(view.data).toMatchObject({
        id,
        last_event: "delivered",
        subject: "Your invoice ✓",
        bcc: ["secret-auditor@example.net"],
      });
      expect(got?.raw).toContain(`Message-ID: ${view.data?.message_id}`);
    });

    it("retries from the scheduled handler after the smart host was down, with the same Message-ID", async () => {
      await sink.down();
      const sent = await admin.emails.send({
        from: "ops@acme.test",
        to: "ann@example.com",
        subject: "Retry me",
        text: "Hi",
      });
      expect(sent.error).toBeNull();
      const id = sent.data?.id as string;
      const first = await admin.emails.get(id);
      expect(first.data?.last_event).toBe("delivery_delayed");
      expect(await sink.messages()).toEqual([]);

      await sink.up();
      const due = Date.parse(
        (first.data as unknown as { delivery: { next_attempt_at: string } }).delivery
          .next_attempt_at,
      );
      await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now() + 100)));
      await harness.getWorker().scheduled({ cron: "* * * * *", scheduledTime: new Date() });
      const [got] = await sink.waitFor(1);
      const after = await admin.emails.get(id);
      expect(after.data?.last_event).toBe("delivered");
      expect(got?.raw).toContain(`Message-ID: ${first.data?.message_id}`);
    });

    it("sends a batch and reports errors in Resend's shape", async () => {
      const batch = await admin.batch.send([
        { from: "a@acme.test", to: "b1@example.com", subject: "1", text: "1" },
        { from: "a@acme.test", to: "b2@example.com", subject: "2", text: "2" },
      ]);
      expect(batch.error).toBeNull();
      expect(batch.data?.data).toHaveLength(2);
      expect((await sink.waitFor(2)).map((m) => m.rcptTo[0]).sort()).toEqual([
        "b1@example.com",
        "b2@example.com",
      ]);

      const bad = await admin.emails.send({
        from: "a@acme.test",
        to: "not-an-address",
        subject: "x",
        text: "x",
      });
      expect(bad.data).toBeNull();
      expect(bad.error).toMatchObject({ statusCode: 422, name: "validation_error" });
      expect(bad.error?.message).toMatch(/^to: /);

      const unauth = await new Resend("re_wrong", { baseUrl }).emails.send({
        from: "a@acme.test",
        to: "b@example.com",
        subject: "x",
        text: "x",
      });
      expect(unauth.error).toMatchObject({ statusCode: 403, name: "invalid_api_key" });
    });

    it("cancels a scheduled email through the SDK", async () => {
      const sent = await admin.emails.send({
        from: "a@acme.test",
        to: "later@example.com",
        subject: "later",
        text: "later",
        scheduledAt: new Date(Date.now() + 3_600_000).toISOString(),
      });
      const id = sent.data?.id as string;
      expect((await admin.emails.get(id)).data?.last_event).toBe("scheduled");
      const canceled = await admin.emails.cancel(id);
      expect(canceled.error).toBeNull();
      expect((await admin.emails.get(id)).data?.last_event).toBe("canceled");
    });

    it("lists an email's attachments and downloads one over HTTP from its signed link", async () => {
      const key = await admin.apiKeys.create({ name: "e2e-files", permission: "sending_access" });
      const resend = new Resend(key.data?.token, { baseUrl });
      const pdf = new Uint8Array(2000).map((_, i) => (i * 13) % 256);
      const sent = await resend.emails.send({
        from: "billing@acme.test",
        to: ["ann@example.com"],
        subject: "files",
        text: "attached",
        attachments: [
          { filename: "a.pdf", content: Buffer.from(pdf), contentType: "application/pdf" },
        ],
      });
      const emailId = sent.data?.id ?? "";
      const list = await resend.emails.attachments.list({ emailId });
      expect(list.error).toBeNull();
      const [item] = list.data?.data ?? [];
      expect(item).toMatchObject({ filename: "a.pdf", size: pdf.byteLength });
      const url = new URL(item?.download_url ?? "");
      // The relay's own origin, as the client reached it.
      expect(url.origin).toBe(new URL(baseUrl).origin);
      const res = await fetch(url);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-disposition")).toMatch(/^attachment; /);
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      expect(new Uint8Array(await res.arrayBuffer())).toEqual(pdf);
      url.searchParams.set("expires", String(Number(url.searchParams.get("expires")) + 60));
      expect((await fetch(url)).status).toBe(403);
      // resend.apiKeys.update against the relay in workerd and real Redis.
      const renamed = await admin.apiKeys.update(key.data?.id ?? "", { name: "e2e-renamed" });
      expect(renamed.data).toEqual({ object: "api_key", id: key.data?.id });
    });
  },
);
