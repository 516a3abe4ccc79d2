/**
 * Templates through the unmodified `resend` SDK, inside workerd: the SDK's requests go to the
 * real Workers entry (its global fetch is pointed at the worker for https://relay.test), on the
 * in-memory store and on real Redis through the Upstash gateway, and mail reaches the plain SMTP
 * sink. Create, publish, send with variables and fallbacks, escaping, the refusals (unpublished,
 * unknown, a missing or mistyped variable), update, duplicate, remove, list pages, and who may do
 * what.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import PostalMime from "postal-mime";
import { Resend } from "resend";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import worker from "../../src/runtime/workers.ts";
import { gatewayApi, redisSkipReason, sinkApi } from "../support/services.ts";
import { ADMIN, type TestEnv, testEnv, upstashEnv } from "../support/worker.ts";

const BASE = "https://relay.test";
const sink = sinkApi("plain");

/** Routes the SDK's fetches for BASE to the worker with `env`; everything else goes out. */
function pointSdkAt(env: TestEnv) {
  const outside = globalThis.fetch;
  vi.stubGlobal("fetch", async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = new Request(input, init);
    if (!request.url.startsWith(BASE)) return outside(request);
    const ctx = createExecutionContext();
    const res = await worker.fetch(request, env, ctx);
    await waitOnExecutionContext(ctx);
    return res;
  });
}

const ORDER = {
  name: "order-confirmation",
  alias: "order-confirmation",
  from: "Acme Store <store@acme.test>",
  subject: "Order {{{ORDER}}} for {{{NAME}}}",
  html: "<p>Hi {{{NAME}}}, {{{COUNT}}} x {{{PRODUCT}}}</p>",
  text: "Hi {{{NAME}}}, {{{COUNT}}} x {{{PRODUCT}}}",
  variables: [
    { key: "NAME", type: "string" as const },
    { key: "ORDER", type: "string" as const },
    { key: "PRODUCT", type: "string" as const, fallbackValue: "item" },
    { key: "COUNT", type: "number" as const, fallbackValue: 1 },
  ],
};

function suite(name: string, makeEnv: () => TestEnv) {
  describe(name, () => {
    let admin: Resend;
    let env: TestEnv;

    beforeEach(async () => {
      env = makeEnv();
      pointSdkAt(env);
      admin = new Resend(ADMIN, { baseUrl: BASE });
      await sink.reset();
    });
    afterEach(() => {
      vi.unstubAllGlobals();
    });

    async function published(overrides: Partial<typeof ORDER> = {}): Promise<string> {
      const created = await admin.templates.create({ ...ORDER, ...overrides }).publish();
      expect(created.error).toBeNull();
      return created.data?.id as string;
    }

    it("creates a draft, shows it in Resend's shape, and refuses to send it until published", async () => {
      const created = await admin.templates.create(ORDER);
      expect(created.error).toBeNull();
      const id = created.data?.id as string;
      expect(created.data).toEqual({ object: "template", id });

      const got = await admin.templates.get(id);
      expect(got.error).toBeNull();
      expect(got.data).toMatchObject({
        object: "template",
        id,
        name: "order-confirmation",
        alias: "order-confirmation",
        status: "draft",
        published_at: null,
        from: ORDER.from,
        subject: ORDER.subject,
        html: ORDER.html,
        has_unpublished_versions: true,
      });
      expect(got.data?.variables?.map((v) => [v.key, v.type, v.fallback_value])).toEqual([
        ["NAME", "string", null],
        ["ORDER", "string", null],
        ["PRODUCT", "string", "item"],
        ["COUNT", "number", 1],
      ]);

      const refused = await admin.emails.send({
        to: "ann@example.com",
        template: { id, variables: { NAME: "Ann", ORDER: "42" } },
      });
      expect(refused.error).toMatchObject({ statusCode: 422, name: "validation_error" });
      expect(refused.error?.message).toMatch(/^template\.id: is not published/);

      const unknown = await admin.emails.send({
        to: "ann@example.com",
        template: { id: "no-such-template" },
      });
      expect(unknown.error).toMatchObject({ statusCode: 404, name: "not_found" });
      expect(await sink.messages()).toEqual([]);
    });

    it("sends the published version with variables and fallbacks, from and subject from the template", async () => {
      const id = await published();
      const sent = await admin.emails.send({
        to: "ann@example.com",
        template: { id, variables: { NAME: "Ann", ORDER: "A-17" } },
      });
      expect(sent.error).toBeNull();
      const [got] = await sink.waitFor(1);
      expect(got?.mailFrom).toBe("store@acme.test");
      const mail = await PostalMime.parse(got?.raw ?? "");
      expect(mail.subject).toBe("Order A-17 for Ann");
      expect(mail.html).toContain("<p>Hi Ann, 1 x item</p>");
      expect(mail.text?.trim()).toBe("Hi Ann, 1 x item");

      // By alias, with the request's own from and subject over the template's.
      const byAlias = await admin.emails.send({
        from: "orders@acme.test",
        subject: "Your order",
        to: "bob@example.com",
        template: { id: "order-confirmation", variables: { NAME: "Bob", ORDER: "B", COUNT: 3 } },
      });
      expect(byAlias.error).toBeNull();
      const second = (await sink.waitFor(2)).find((m) => m.rcptTo.includes("bob@example.com"));
      expect(second?.mailFrom).toBe("orders@acme.test");
      const mail2 = await PostalMime.parse(second?.raw ?? "");
      expect(mail2.subject).toBe("Your order");
      expect(mail2.html).toContain("3 x item");
    });

    it("escapes values in the HTML, keeps them as text in the text body, and never lets one start a header", async () => {
      const id = await published();
      const sent = await admin.emails.send({
        to: "ann@example.com",
        template: {
          id,
          variables: {
            NAME: `<script>alert("x")</script>&`,
            ORDER: "1\r\nBcc: victim@example.net\r\nX-Evil: yes",
            PRODUCT: "<b>bold</b>",
          },
        },
      });
      expect(sent.error).toBeNull();
      const [got] = await sink.waitFor(1);
      expect(got?.rcptTo).toEqual(["ann@example.com"]);
      expect(got?.raw).not.toMatch(/^x-evil:/im);
      expect(got?.raw).not.toMatch(/^bcc:/im);
      const mail = await PostalMime.parse(got?.raw ?? "");
      expect(mail.subject).toBe(
        `Order 1 Bcc: victim@example.net X-Evil: yes for <script>alert("x")</script>&`,
      );
      expect(mail.html).toContain(
        "<p>Hi &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;, 1 x &lt;b&gt;bold&lt;/b&gt;</p>",
      );
      expect(mail.html).not.toContain("<script>");
      expect(mail.text).toContain(`Hi <script>alert("x")</script>&, 1 x <b>bold</b>`);
    });

    it("answers 422 naming a missing required variable or one of the wrong type", async () => {
      const id = await published();
      const missing = await admin.emails.send({
        to: "ann@example.com",
        template: { id, variables: { NAME: "Ann" } },
      });
      expect(missing.error).toMatchObject({ statusCode: 422, name: "validation_error" });
      expect(missing.error?.message).toMatch(/^template\.variables\.ORDER: is required/);

      const mistyped = await admin.emails.send({
        to: "ann@example.com",
        template: { id, variables: { NAME: "Ann", ORDER: "1", COUNT: "many" } },
      });
      expect(mistyped.error?.statusCode).toBe(422);
      expect(mistyped.error?.message).toBe("template.variables.COUNT: must be a number");

      const withHtml = await fetch(`${BASE}/emails`, {
        method: "POST",
        headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
        body: JSON.stringify({ to: "a@example.com", html: "<p>x</p>", template: { id } }),
      });
      expect(withHtml.status).toBe(422);
      expect(((await withHtml.json()) as { message: string }).message).toMatch(/^html: /);

      // In a batch, the failing email is named.
      const batch = await admin.batch.send([
        { to: "a@example.com", template: { id, variables: { NAME: "A", ORDER: "1" } } },
        { to: "b@example.com", template: { id, variables: { NAME: "B" } } },
      ]);
      expect(batch.error?.message).toMatch(/^\[1\]\.template\.variables\.ORDER: is required/);
      expect(await sink.messages()).toEqual([]);
    });

    it("sends a batch with templates, each from its own variables", async () => {
      const id = await published();
      const batch = await admin.batch.send([
        { to: "a@example.com", template: { id, variables: { NAME: "A", ORDER: "1" } } },
        { to: "b@example.com", template: { id, variables: { NAME: "B", ORDER: "2" } } },
      ]);
      expect(batch.error).toBeNull();
      expect(batch.data?.data).toHaveLength(2);
      const subjects = await Promise.all(
        (await sink.waitFor(2)).map(async (m) => (await PostalMime.parse(m.raw)).subject),
      );
      expect(subjects.sort()).toEqual(["Order 1 for A", "Order 2 for B"]);
    });

    it("refuses a batch whose templates would render past the message size limit (413), sending nothing", async () => {
      const created = await admin.templates
        .create({
          name: "amplifier",
          html: "{{{A}}}".repeat(100),
          variables: [{ key: "A", type: "string" }],
        })
        .publish();
      const id = created.data?.id as string;
      const A = "x".repeat(10_000); // 1 MB rendered per email from 10 kB sent
      const batch = await admin.batch.send(
        Array.from({ length: 100 }, (_, i) => ({
          to: `r${i}@example.com`,
          template: { id, variables: { A } },
        })),
      );
      expect(batch.error?.statusCode).toBe(413);
      expect(batch.error?.message).toMatch(/render more than the limit/);
      expect(await sink.messages()).toEqual([]);
    });

    it("keeps sending the published version while the draft changes, until it is published again", async () => {
      const id = await published();
      const updated = await admin.templates.update(id, { html: "<p>New {{{NAME}}}</p>" });
      expect(updated.error).toBeNull();
      expect(updated.data).toEqual({ object: "template", id });
      const got = await admin.templates.get(id);
      expect(got.data).toMatchObject({ status: "published", has_unpublished_versions: true });
      expect(got.data?.html).toBe("<p>New {{{NAME}}}</p>");

      const send = () =>
        admin.emails.send({
          to: "ann@example.com",
          template: { id, variables: { NAME: "Ann", ORDER: "1" } },
        });
      expect((await send()).error).toBeNull();
      const [old] = await sink.waitFor(1);
      expect((await PostalMime.parse(old?.raw ?? "")).html).toContain("1 x item");

      expect((await admin.templates.publish(id)).data).toEqual({ object: "template", id });
      expect((await admin.templates.get(id)).data?.has_unpublished_versions).toBe(false);
      await sink.reset();
      expect((await send()).error).toBeNull();
      const [fresh] = await sink.waitFor(1);
      expect((await PostalMime.parse(fresh?.raw ?? "")).html).toContain("<p>New Ann</p>");
    });

    it("refuses a template that uses an undeclared or reserved variable, or a taken alias", async () => {
      const undeclared = await admin.templates.create({ name: "x", html: "<p>{{{WHO}}}</p>" });
      expect(undeclared.error).toMatchObject({ statusCode: 422 });
      expect(undeclared.error?.message).toMatch(
        /^html: uses \{\{\{WHO\}\}\}, which is not declared/,
      );

      const reserved = await admin.templates.create({
        name: "x",
        html: "<p>{{{EMAIL}}}</p>",
        variables: [{ key: "EMAIL", type: "string" }],
      });
      expect(reserved.error?.message).toMatch(/^variables\[0\]\.key: EMAIL is reserved/);

      const sections = await admin.templates.create({ name: "x", html: "{{#a}}x{{/a}}" });
      expect(sections.error?.message).toMatch(/^html: may only use variables/);

      const fallback = await admin.templates.create({
        name: "x",
        html: "{{{N}}}",
        variables: [{ key: "N", type: "number", fallbackValue: "one" as unknown as number }],
      });
      expect(fallback.error?.message).toMatch(/^variables\[0\]\.fallback_value: must be a number/);

      await published();
      const taken = await admin.templates.create({ name: "y", alias: ORDER.alias, html: "x" });
      expect(taken.error).toMatchObject({ statusCode: 409 });
      expect(taken.error?.message).toMatch(/^alias: /);
    });

    it("gives an alias to exactly one of several creates racing for it", async () => {
      const racers = await Promise.all(
        [1, 2, 3, 4].map((n) =>
          admin.templates.create({ name: `racer ${n}`, alias: "contested", html: "x" }),
        ),
      );
      const won = racers.filter((r) => r.error === null);
      expect(won).toHaveLength(1);
      for (const lost of racers.filter((r) => r.error !== null))
        expect(lost.error).toMatchObject({ statusCode: 409 });
      // The alias names the winner, and only the winner carries it.
      expect((await admin.templates.get("contested")).data?.id).toBe(won[0]?.data?.id);
      const listed = await admin.templates.list({ limit: 100 });
      expect(listed.data?.data.filter((t) => t.alias === "contested")).toHaveLength(1);
    });

    it("duplicates a template as a new draft without the alias, and removes one by id or alias", async () => {
      const id = await published();
      const copy = await admin.templates.duplicate(id);
      expect(copy.error).toBeNull();
      const copyId = copy.data?.id as string;
      expect(copyId).not.toBe(id);
      const got = await admin.templates.get(copyId);
      expect(got.data).toMatchObject({
        name: "order-confirmation (Copy)",
        alias: null,
        status: "draft",
        html: ORDER.html,
      });

      const removed = await admin.templates.remove("order-confirmation");
      expect(removed.data).toEqual({ object: "template", id, deleted: true });
      expect((await admin.templates.get(id)).error).toMatchObject({ statusCode: 404 });
      expect((await admin.templates.get("order-confirmation")).error?.statusCode).toBe(404);
      const send = await admin.emails.send({
        to: "ann@example.com",
        template: { id, variables: { NAME: "Ann", ORDER: "1" } },
      });
      expect(send.error?.statusCode).toBe(404);
      // The alias is free again.
      const again = await admin.templates.create({ name: "z", alias: ORDER.alias, html: "x" });
      expect(again.error).toBeNull();
    });

    it("lists newest first in pages with limit, after and before", async () => {
      const ids: string[] = [];
      for (const n of [1, 2, 3, 4, 5]) {
        const created = await admin.templates.create({ name: `t${n}`, html: `<p>${n}</p>` });
        ids.push(created.data?.id as string);
        await new Promise((r) => setTimeout(r, 2));
      }
      const newest = [...ids].reverse();
      const first = await admin.templates.list({ limit: 2 });
      expect(first.error).toBeNull();
      expect(first.data).toMatchObject({ object: "list", has_more: true });
      expect(first.data?.data.map((t) => t.id)).toEqual(newest.slice(0, 2));
      expect(first.data?.data[0]).toMatchObject({ name: "t5", status: "draft", alias: null });

      const second = await admin.templates.list({ limit: 2, after: newest[1] as string });
      expect(second.data?.data.map((t) => t.id)).toEqual(newest.slice(2, 4));
      expect(second.data?.has_more).toBe(true);
      const last = await admin.templates.list({ limit: 2, after: newest[3] as string });
      expect(last.data?.data.map((t) => t.id)).toEqual(newest.slice(4));
      expect(last.data?.has_more).toBe(false);

      const back = await admin.templates.list({ limit: 2, before: newest[4] as string });
      expect(back.data?.data.map((t) => t.id)).toEqual(newest.slice(2, 4));
      expect(back.data?.has_more).toBe(true);

      expect((await admin.templates.list()).data?.data).toHaveLength(5);
      const bad = await admin.templates.list({ limit: 101 });
      expect(bad.error?.message).toMatch(/^limit: /);
    });

    it("lets only full_access keys manage templates; a sending key sends with one within its own policy", async () => {
      const id = await published();
      const key = await admin.apiKeys.create({ name: "sender", permission: "sending_access" });
      const sender = new Resend(key.data?.token, { baseUrl: BASE });
      const manage = await sender.templates.create({ name: "x", html: "x" });
      expect(manage.error).toMatchObject({ statusCode: 401, name: "restricted_api_key" });
      expect((await sender.templates.list()).error?.statusCode).toBe(401);
      expect((await sender.templates.get(id)).error?.statusCode).toBe(401);
      const sent = await sender.emails.send({
        to: "ann@example.com",
        template: { id, variables: { NAME: "Ann", ORDER: "1" } },
      });
      expect(sent.error).toBeNull();

      // A key limited to other senders cannot send the template's from.
      const narrow = await fetch(`${BASE}/api-keys`, {
        method: "POST",
        headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
        body: JSON.stringify({ name: "narrow", allowed_from: ["*@other.test"] }),
      });
      const token = ((await narrow.json()) as { token: string }).token;
      const limited = new Resend(token, { baseUrl: BASE });
      const refused = await limited.emails.send({
        to: "ann@example.com",
        template: { id, variables: { NAME: "Ann", ORDER: "1" } },
      });
      expect(refused.error?.statusCode).toBe(403);
      expect(refused.error?.message).toMatch(/^from: /);
    });
  });
}

suite("templates with the resend SDK (memory store)", () => testEnv());

const skip = redisSkipReason();
describe.skipIf(Boolean(skip))(`on Upstash${skip ? ` (skipped: ${skip})` : ""}`, () => {
  suite("templates with the resend SDK (Upstash gateway)", () => upstashEnv());

  it("costs no Upstash command per send once the template is in the isolate's cache (2 by alias, cold)", async () => {
    // The request log (one command per request, written in the background) is off: these counts
    // are the send path's own.
    const env = upstashEnv({ IMMEDIATE_DELIVERY: "false", REQUEST_LOG: "off" });
    pointSdkAt(env);
    try {
      const admin = new Resend(ADMIN, { baseUrl: BASE });
      const gateway = gatewayApi();
      expect((await admin.templates.create(ORDER).publish()).error).toBeNull();
      const send = async (id: string) => {
        const before = await gateway.commands();
        const sent = await admin.emails.send({
          to: "ann@example.com",
          template: { id, variables: { NAME: "Ann", ORDER: "1" } },
        });
        expect(sent.error).toBeNull();
        return (await gateway.commands()) - before;
      };
      const plain = async () => {
        const before = await gateway.commands();
        const sent = await admin.emails.send({
          from: "a@acme.test",
          to: "ann@example.com",
          subject: "s",
          text: "t",
        });
        expect(sent.error).toBeNull();
        return (await gateway.commands()) - before;
      };
      // The first send in the isolate also reads the domain list (src/domains.ts), once per
      // KEY_CACHE_SECONDS: it is the template's cost that is measured below.
      expect(await plain()).toBe(3);
      const base = await plain(); // rate limit 1, enqueue 1
      expect(base).toBe(2);
      // The publish left this isolate's cache empty for the template: the first send by alias
      // reads the alias and the template (one command each), the next ones read nothing.
      expect(await send("order-confirmation")).toBe(base + 2);
      expect(await send("order-confirmation")).toBe(base);
    } finally {
      vi.unstubAllGlobals();
    }
  });
});
