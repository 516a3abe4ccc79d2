/**
 * Issue 13's "done when": every Resend call the relay gained (emails.list, emails.metrics,
 * emails.attachments.*, apiKeys.update, logs.*, templates.*, batch with permissive validation)
 * works with the unmodified `resend` SDK against `npm start`, as a newcomer runs it (wrangler dev,
 * the in-memory queue, the development inbox, the printed key). The tests run in order and share
 * one relay: what the first one sends, the others list, count and read.
 */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import PostalMime from "postal-mime";
import { type CreateApiKeyOptions, Resend } from "resend";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ReceivedMessage } from "../../dev/smtp-sink/index.ts";
import { type Banner, banner, npmStart, root, type Started, stop } from "../support/npm-start.ts";

const pdf = Buffer.from(Array.from({ length: 2000 }, (_, i) => (i * 7) % 256));
const note = Buffer.from("Total: 42 EUR\n");

interface Sent {
  attached: string;
  scheduled: string;
  templated: string;
  batch: string[];
  templateId: string;
}

/** The inbox's messages, once `n` arrived. */
async function inbox(url: string, n: number): Promise<ReceivedMessage[]> {
  const res = await fetch(`${url}/api/messages?wait=${n}&timeout=20000`);
  expect(res.status).toBe(200);
  return (await res.json()) as ReceivedMessage[];
}

/** A key for the tests' own calls: the relay's default RATE_LIMIT (10/1s) would pace them. */
async function key(admin: Resend, name: string, permission: "full_access" | "sending_access") {
  // `rate_limit` is the relay's policy field; the SDK sends the payload as it is given.
  const options = { name, permission, rate_limit: "1000/1s" } as CreateApiKeyOptions;
  const { data, error } = await admin.apiKeys.create(options);
  expect(error).toBeNull();
  return { id: data?.id as string, token: data?.token as string };
}

// A developer's own settings would change what it does (its SMTP_URL, say).
describe.skipIf(existsSync(resolve(root, ".dev.vars")))("the resend SDK against npm start", () => {
  let started: Started;
  let relay: Banner;
  let app: Resend; // a full_access key, as an app's back office has
  let sender: Resend; // a sending_access key, as a service that only sends has
  let senderId: string;
  const sent = {} as Sent;

  beforeAll(async () => {
    started = npmStart(["--port", "0", "--inbox-port", "0", "--inbox-smtp-port", "0"]);
    relay = await banner(started);
    const admin = new Resend(relay.token, { baseUrl: relay.relay });
    app = new Resend((await key(admin, "back-office", "full_access")).token, {
      baseUrl: relay.relay,
    });
    const s = await key(admin, "mailer", "sending_access");
    senderId = s.id;
    sender = new Resend(s.token, { baseUrl: relay.relay });
  }, 90_000);

  afterAll(async () => {
    if (started) await stop(started);
  });

  it("sends with an attachment, scheduled, with a published template, and a permissive batch", async () => {
    const attached = await sender.emails.send({
      from: "Acme Billing <billing@acme.test>",
      to: ["ann@example.com"],
      subject: "Your invoice",
      text: "Attached.",
      attachments: [
        { filename: "invoice.pdf", content: pdf, contentType: "application/pdf" },
        { filename: "note.txt", content: note },
      ],
      tags: [{ name: "category", value: "invoice" }],
    });
    expect(attached.error).toBeNull();
    sent.attached = attached.data?.id as string;

    const scheduled = await app.emails.send({
      from: "news@acme.test",
      to: "bob@example.com",
      subject: "Later",
      text: "Later.",
      scheduledAt: "in 1 hour",
    });
    expect(scheduled.error).toBeNull();
    sent.scheduled = scheduled.data?.id as string;

    const template = await app.templates
      .create({
        name: "order-confirmation",
        alias: "order-confirmation",
        from: "Acme Store <store@acme.test>",
        subject: "Order {{{ORDER}}} confirmed",
        html: "<p>Hi {{{NAME}}}, {{{COUNT}}} x {{{PRODUCT}}}.</p>",
        variables: [
          { key: "NAME", type: "string" },
          { key: "ORDER", type: "string" },
          { key: "PRODUCT", type: "string", fallbackValue: "item" },
          { key: "COUNT", type: "number", fallbackValue: 1 },
        ],
      })
      .publish();
    expect(template.error).toBeNull();
    expect(template.data).toEqual({ object: "template", id: expect.any(String) });
    sent.templateId = template.data?.id as string;
    const templated = await app.emails.send({
      to: "cat@example.com",
      template: {
        id: sent.templateId,
        variables: { NAME: "<Cat>", ORDER: "A-17", COUNT: 2 },
      },
    });
    expect(templated.error).toBeNull();
    sent.templated = templated.data?.id as string;

    const batch = await app.batch.send(
      [
        { from: "news@acme.test", to: ["dan@example.com"], subject: "B1", text: "1" },
        { from: "news@acme.test", to: ["not an address"], subject: "B2", text: "2" },
        { from: "news@acme.test", to: ["eve@example.com"], subject: "B3", text: "3" },
        { to: ["gus@example.com"], template: { id: "order-confirmation" } },
      ],
      { batchValidation: "permissive" },
    );
    expect(batch.error).toBeNull();
    expect(batch.data?.data).toEqual([{ id: expect.any(String) }, { id: expect.any(String) }]);
    expect(batch.data?.errors).toEqual([
      { index: 1, message: expect.stringMatching(/^\[1\]\.to\[0\]: /) },
      {
        index: 3,
        message: expect.stringMatching(/^\[3\]\.template\.variables\.NAME: is required/),
      },
    ]);
    sent.batch = (batch.data?.data ?? []).map((e) => e.id);

    // Four delivered to the development inbox (not the scheduled one, not the invalid one).
    const messages = await inbox(relay.inbox, 4);
    expect(messages.map((m) => m.rcptTo.join()).sort()).toEqual([
      "ann@example.com",
      "cat@example.com",
      "dan@example.com",
      "eve@example.com",
    ]);
    const rendered = await PostalMime.parse(
      messages.find((m) => m.rcptTo[0] === "cat@example.com")?.raw ?? "",
    );
    expect(rendered.subject).toBe("Order A-17 confirmed");
    expect(rendered.from?.address).toBe("store@acme.test");
    expect(rendered.html).toContain("Hi &lt;Cat&gt;, 2 x item.");
    expect((await app.emails.get(sent.scheduled)).data?.last_event).toBe("scheduled");
  }, 60_000);

  it("emails.list pages newest first with after and before; a sending key lists only its own", async () => {
    const all = [sent.attached, sent.scheduled, sent.templated, ...sent.batch];
    const pages: string[][] = [];
    let page = await app.emails.list({ limit: 2 });
    for (;;) {
      expect(page.error).toBeNull();
      expect(page.data?.object).toBe("list");
      pages.push((page.data?.data ?? []).map((e) => e.id));
      if (!page.data?.has_more) break;
      page = await app.emails.list({ limit: 2, after: page.data.data.at(-1)?.id as string });
    }
    expect(pages.map((p) => p.length)).toEqual([2, 2, 1]);
    expect(pages.flat().sort()).toEqual([...all].sort());
    // The first email sent is the oldest, so the last one listed.
    expect(pages.flat().at(-1)).toBe(sent.attached);

    const back = await app.emails.list({ limit: 2, before: pages[1]?.[0] as string });
    expect(back.data?.data.map((e) => e.id)).toEqual(pages[0]);

    const scheduled = (await app.emails.list({ limit: 100 })).data?.data.find(
      (e) => e.id === sent.scheduled,
    );
    // Resend's list item: the email without object, html, text and tags.
    expect(scheduled).toMatchObject({
      from: "news@acme.test",
      to: ["bob@example.com"],
      subject: "Later",
      last_event: "scheduled",
      scheduled_at: expect.any(String),
    });
    for (const absent of ["object", "html", "text", "tags"])
      expect(scheduled).not.toHaveProperty(absent);

    const own = await sender.emails.list();
    expect(own.error).toBeNull();
    expect(own.data).toMatchObject({ object: "list", has_more: false });
    expect(own.data?.data.map((e) => [e.id, e.last_event, e.subject])).toEqual([
      [sent.attached, "delivered", "Your invoice"],
    ]);
    // Another key's email is no cursor for it.
    const foreign = await sender.emails.list({ after: sent.scheduled });
    expect(foreign.error).toMatchObject({
      statusCode: 422,
      message: expect.stringMatching(/^after/),
    });
  });

  it("emails.metrics counts what was sent, in total and per hour; a sending key counts its own", async () => {
    const totals = await app.emails.metrics();
    expect(totals.error).toBeNull();
    expect(totals.data).toMatchObject({
      object: "metrics",
      dimensions: [],
      granularity: "daily",
      totals: { sent: 4, delivered: 4, scheduled: 1, bounced: 0, canceled: 0 },
    });
    const hourly = await app.emails.metrics({
      granularity: "hourly",
      dimensions: ["period"],
      metrics: ["delivered"],
    });
    expect(hourly.error).toBeNull();
    expect(hourly.data?.metrics).toEqual(["delivered"]);
    const rows = hourly.data?.data ?? [];
    expect(rows.reduce((n, r) => n + (r.delivered ?? 0), 0)).toBe(4);
    expect(rows.every((r) => typeof r.period === "string")).toBe(true);

    const own = await sender.emails.metrics({ metrics: ["delivered", "sent"] });
    expect(own.data?.totals).toEqual({ delivered: 1, sent: 1 });
    const unknown = await app.emails.metrics({ dimensions: ["domain"] });
    expect(unknown.error).toMatchObject({ statusCode: 422 });
  });

  it("emails.attachments.list/get describe the files, and download_url serves their bytes", async () => {
    const list = await sender.emails.attachments.list({ emailId: sent.attached });
    expect(list.error).toBeNull();
    expect(list.data).toMatchObject({ object: "list", has_more: false });
    const [file, text] = list.data?.data ?? [];
    expect(file).toMatchObject({
      filename: "invoice.pdf",
      content_type: "application/pdf",
      content_disposition: "attachment",
      size: pdf.length,
    });
    expect(text).toMatchObject({ filename: "note.txt", size: note.length });
    expect(file?.download_url.startsWith(`${relay.relay}/`)).toBe(true);
    expect(Date.parse(file?.expires_at ?? "") - Date.now()).toBeGreaterThan(10 * 60_000);

    const one = await sender.emails.attachments.get({
      emailId: sent.attached,
      id: text?.id as string,
    });
    expect(one.error).toBeNull();
    expect(one.data).toMatchObject({ object: "attachment", id: text?.id, filename: "note.txt" });

    const page = await app.emails.attachments.list({ emailId: sent.attached, limit: 1 });
    expect(page.data?.has_more).toBe(true);
    expect(page.data?.data.map((a) => a.id)).toEqual([file?.id]);

    // No API key: the signed link is the credential.
    const download = await fetch(file?.download_url as string);
    expect(download.status).toBe(200);
    expect(download.headers.get("content-type")).toMatch(/^application\/pdf/);
    expect(download.headers.get("content-disposition")).toMatch(/^attachment/);
    expect(Buffer.from(await download.arrayBuffer())).toEqual(pdf);
    const tampered = new URL(file?.download_url as string);
    tampered.searchParams.set("email", sent.templated);
    const refused = await fetch(tampered);
    expect(refused.status).toBe(403);
    expect(await refused.json()).toMatchObject({ name: "invalid_signature" });

    // Another key's email: not found, as the email itself is.
    const foreign = await sender.emails.attachments.list({ emailId: sent.templated });
    expect(foreign.error).toMatchObject({ statusCode: 404, name: "not_found" });
  });

  it("apiKeys.create and apiKeys.update rename a key; a sending key may not", async () => {
    const created = await app.apiKeys.create({ name: "ci", permission: "sending_access" });
    expect(created.error).toBeNull();
    const id = created.data?.id as string;
    const updated = await app.apiKeys.update(id, { name: "ci-deploys" });
    expect(updated.error).toBeNull();
    expect(updated.data).toEqual({ object: "api_key", id });
    const listed = (await app.apiKeys.list()).data?.data.find((k) => k.id === id);
    expect(listed).toMatchObject({ name: "ci-deploys", permission: "sending_access" });
    // The token still works after the rename.
    const ci = new Resend(created.data?.token, { baseUrl: relay.relay });
    expect((await ci.emails.list()).data?.data).toEqual([]);

    const refused = await sender.apiKeys.update(id, { name: "mine now" });
    expect(refused.error).toMatchObject({ statusCode: 401, name: "restricted_api_key" });
    expect((await app.apiKeys.list()).data?.data.find((k) => k.id === id)?.name).toBe("ci-deploys");
  });

  it("logs.list/get show the requests made, with the emails they created; a sending key its own", async () => {
    const list = await app.logs.list({ limit: 100 });
    expect(list.error).toBeNull();
    expect(list.data?.object).toBe("list");
    const entries = list.data?.data ?? [];
    const batch = entries.find((l) => l.endpoint === "/emails/batch");
    expect(batch).toMatchObject({
      method: "POST",
      response_status: 200,
      user_agent: expect.stringMatching(/^resend-node:/),
    });
    const got = await app.logs.get(batch?.id as string);
    expect(got.error).toBeNull();
    expect(got.data).toMatchObject({
      object: "log",
      id: batch?.id,
      endpoint: "/emails/batch",
      request_body: null,
      response_body: null,
      email_ids: sent.batch,
    });
    // Newest first.
    const times = entries.map((l) => Date.parse(l.created_at));
    expect([...times].sort((a, b) => b - a)).toEqual(times);

    const own = await sender.logs.list();
    expect(own.error).toBeNull();
    const mine = own.data?.data ?? [];
    expect(mine.length).toBeGreaterThan(0);
    expect(mine.every((l) => (l as { api_key_id?: string }).api_key_id === senderId)).toBe(true);
    const foreign = await sender.logs.get(batch?.id as string);
    expect(foreign.error).toMatchObject({ statusCode: 404 });
    // Secrets never: no key token in anything listed.
    expect(JSON.stringify(entries)).not.toContain(relay.token);
  });

  it("templates.get/list/update/duplicate/remove manage the draft; only the published version sends", async () => {
    const got = await app.templates.get("order-confirmation");
    expect(got.error).toBeNull();
    expect(got.data).toMatchObject({
      object: "template",
      id: sent.templateId,
      name: "order-confirmation",
      alias: "order-confirmation",
      status: "published",
      from: "Acme Store <store@acme.test>",
      has_unpublished_versions: false,
    });
    expect(got.data?.variables?.map((v) => [v.key, v.type, v.fallback_value])).toEqual([
      ["NAME", "string", null],
      ["ORDER", "string", null],
      ["PRODUCT", "string", "item"],
      ["COUNT", "number", 1],
    ]);

    const updated = await app.templates.update(sent.templateId, {
      subject: "Order {{{ORDER}}} shipped",
    });
    expect(updated.error).toBeNull();
    expect((await app.templates.get(sent.templateId)).data).toMatchObject({
      subject: "Order {{{ORDER}}} shipped",
      status: "published",
      has_unpublished_versions: true,
    });

    const copy = await app.templates.duplicate(sent.templateId);
    expect(copy.error).toBeNull();
    const copyId = copy.data?.id as string;
    expect((await app.templates.get(copyId)).data).toMatchObject({
      name: "order-confirmation (Copy)",
      alias: null,
      status: "draft",
      subject: "Order {{{ORDER}}} shipped",
    });

    const list = await app.templates.list({ limit: 10 });
    expect(list.error).toBeNull();
    expect(list.data).toMatchObject({ object: "list", has_more: false });
    expect(list.data?.data.map((t) => [t.id, t.status])).toEqual([
      [copyId, "draft"],
      [sent.templateId, "published"],
    ]);

    // The update is a draft: a send still renders the published subject. The copy never sends.
    const again = await sender.emails.send({
      to: "fay@example.com",
      template: { id: "order-confirmation", variables: { NAME: "Fay", ORDER: "A-18" } },
    });
    expect(again.error).toBeNull();
    const draft = await sender.emails.send({
      to: "fay@example.com",
      template: { id: copyId, variables: { NAME: "Fay", ORDER: "A-19" } },
    });
    expect(draft.error).toMatchObject({
      statusCode: 422,
      message: expect.stringMatching(/^template\.id: is not published/),
    });
    const messages = await inbox(relay.inbox, 5);
    const fay = messages.find((m) => m.rcptTo[0] === "fay@example.com");
    expect((await PostalMime.parse(fay?.raw ?? "")).subject).toBe("Order A-18 confirmed");

    const removed = await app.templates.remove(copyId);
    expect(removed.data).toEqual({ object: "template", id: copyId, deleted: true });
    expect((await app.templates.get(copyId)).error).toMatchObject({
      statusCode: 404,
      name: "not_found",
    });
    const refused = await sender.templates.list();
    expect(refused.error).toMatchObject({ statusCode: 401, name: "restricted_api_key" });
  }, 30_000);
});
