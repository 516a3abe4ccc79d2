/**
 * Forms in a real browser: Debian's Chromium, driven by playwright-core, loads the example page
 * (examples/contact-form.html, with only the relay URL and the form id filled in) from a static
 * server on localhost, and submits to the real Worker in workerd (wrangler's test harness), which
 * stores in real Redis through the Upstash gateway and delivers to the plain SMTP sink.
 *
 * It checks what a site owner relies on: the plain form works with JavaScript off and lands on
 * success_url; the fetch() form answers in place; both messages arrive with the fields and the
 * visitor's Reply-To; a page on another origin is blocked by the browser itself (CORS), and a
 * submission faster than min_fill_seconds is refused. And the README's own snippets (the curl's
 * JSON, the HTML form, the fetch script) work as pasted.
 *
 * Without /usr/bin/chromium this suite is skipped with the reason, except in CI (CI=true), where
 * .ci/run installs it and a missing browser fails the run.
 */
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Browser, Page } from "playwright-core";
import PostalMime from "postal-mime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { browserSkipReason, launchChromium } from "../support/chromium.ts";
import { type RelayWorker, startRelayWorker } from "../support/harness.ts";
import { sinkApi } from "../support/services.ts";

const ADMIN = `browser-admin-${crypto.randomUUID()}`;
const EXAMPLE = resolve(
  dirname(fileURLToPath(import.meta.url)),
  "../../examples/contact-form.html",
);
/** The default; generous enough that a slow machine still submits the too-fast forms in time. */
const MIN_FILL_SECONDS = 3;
const README = resolve(dirname(fileURLToPath(import.meta.url)), "../../README.md");

/**
 * The README's Forms section, as a reader copies it: the JSON of its curl command, and its HTML
 * form and fetch snippet put together as one page.
 */
function readmeSnippets(): { createUrl: string; createBody: string; page: string } {
  const text = readFileSync(README, "utf8");
  const section = text.slice(text.indexOf("\n## Forms\n"), text.indexOf("\n## Inbound hooks\n"));
  const blocks = [...section.matchAll(/```(\w+)\n([\s\S]*?)```/g)].map((m) => ({
    lang: m[1],
    code: m[2] ?? "",
  }));
  const curl = blocks.find((b) => b.lang === "sh")?.code ?? "";
  const html = blocks.filter((b) => b.lang === "html").map((b) => b.code);
  return {
    createUrl: /curl -X POST (\S+)/.exec(curl)?.[1] ?? "",
    createBody: /-d '([\s\S]*?)'/.exec(curl)?.[1] ?? "",
    page: `<!doctype html><meta charset="utf-8"><title>README form</title>\n${html.join("\n")}`,
  };
}

const skip = browserSkipReason();

/** Serves the example page with the relay's URL and a form id (?form=<id>) filled in. */
async function startSite(relayUrl: string): Promise<{ origin: string; server: Server }> {
  const page = readFileSync(EXAMPLE, "utf8");
  const readme = readmeSnippets().page;
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://site");
    if (url.pathname === "/thanks.html") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end("<!doctype html><title>Thanks</title><h1>Thanks!</h1>");
      return;
    }
    const form = url.searchParams.get("form") ?? "";
    if (url.pathname !== "/" || !/^[0-9a-f-]{36}$/.test(form)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(
      url.searchParams.has("readme")
        ? readme.replaceAll("http://127.0.0.1:8787/f/<form id>", `${relayUrl}/f/${form}`)
        : page.replaceAll("https://relay.example.com", relayUrl).replaceAll("YOUR_FORM_ID", form),
    );
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

describe.skipIf(Boolean(skip))(
  `forms in Chromium against the relay in workerd${skip ? ` (skipped: ${skip})` : ""}`,
  () => {
    let relay: RelayWorker;
    let relayUrl: string;
    let browser: Browser;
    let site: { origin: string; server: Server };
    let other: { origin: string; server: Server };
    const sink = sinkApi("plain");

    beforeAll(async () => {
      relay = await startRelayWorker({ adminToken: ADMIN, sink: "plain" });
      relayUrl = relay.url;
      site = await startSite(relayUrl);
      // The same page from another origin (another port), which the forms do not allow.
      other = await startSite(relayUrl);
      browser = await launchChromium();
    }, 90_000);

    afterAll(async () => {
      await browser?.close();
      site?.server.close();
      other?.server.close();
      await relay?.close();
    });

    /** A form of its own per test, sending to its own address on the shared sink. */
    async function createForm(): Promise<{ id: string; rcpt: string }> {
      const rcpt = `browser.${crypto.randomUUID().slice(0, 12)}@example.com`;
      const res = await fetch(`${relayUrl}/forms`, {
        method: "POST",
        headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
        body: JSON.stringify({
          name: "Browser test",
          from: "Website <forms@example.com>",
          to: [rcpt],
          reply_to_field: "email",
          subject: "Contact from {{name}}",
          text: "Name: {{name}}\nEmail: {{email}}\nFile: {{attachment}}\n\n{{message}}",
          fields: [
            { name: "name", required: true, max_length: 100 },
            { name: "email", type: "email", required: true },
            { name: "message", required: true, max_length: 5000 },
            { name: "attachment", type: "file", max_bytes: 100_000 },
          ],
          allowed_origins: [site.origin],
          success_url: `${site.origin}/thanks.html`,
          min_fill_seconds: MIN_FILL_SECONDS,
          ip_rate_limit: "100/1m",
        }),
      });
      const body = (await res.json()) as { id: string };
      expect(res.status, JSON.stringify(body)).toBe(201);
      // Back to the page the visitor came from, which needs the form's id in its query.
      const patched = await fetch(`${relayUrl}/forms/${body.id}`, {
        method: "PATCH",
        headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
        body: JSON.stringify({ error_url: `${site.origin}/?form=${body.id}` }),
      });
      expect(patched.status).toBe(200);
      return { id: body.id, rcpt };
    }

    async function rejected(id: string): Promise<Record<string, number>> {
      const res = await fetch(`${relayUrl}/forms/${id}`, {
        headers: { authorization: `Bearer ${ADMIN}` },
      });
      return ((await res.json()) as { rejected: Record<string, number> }).rejected;
    }

    async function fill(page: Page, form: string, name: string, email: string, message: string) {
      await page.fill(`${form} input[name="name"]`, name);
      await page.fill(`${form} input[name="email"]`, email);
      await page.fill(`${form} textarea[name="message"]`, message);
    }

    /** Waits for the page's script to put the start token in the hidden fields. */
    async function tokenLoaded(page: Page) {
      await expect
        .poll(() => page.inputValue('#contact input[name="_start"]'), { timeout: 10_000 })
        .not.toBe("");
    }

    it("sends the plain form with JavaScript off: the file, the fields and the Reply-To arrive, the visitor lands on success_url", async () => {
      const { id, rcpt } = await createForm();
      const context = await browser.newContext({ javaScriptEnabled: false });
      const page = await context.newPage();
      await page.goto(`${site.origin}/?form=${id}`);
      await fill(page, "#contact", "Ann Example", "ann@visitor.example", "Hello from a plain form");
      await page.setInputFiles('#contact input[name="attachment"]', {
        name: "notes.txt",
        mimeType: "text/plain",
        buffer: Buffer.from("attached notes\n"),
      });
      await Promise.all([
        page.waitForURL(`${site.origin}/thanks.html`),
        page.click('#contact button[type="submit"]'),
      ]);
      expect(await page.textContent("h1")).toBe("Thanks!");
      await context.close();

      const [got] = await sink.waitFor(1, 15_000, { to: rcpt });
      expect(got?.rcptTo).toEqual([rcpt]);
      expect(got?.mailFrom).toBe("forms@example.com");
      const parsed = await PostalMime.parse(got?.raw ?? "");
      expect(parsed.subject).toBe("Contact from Ann Example");
      expect(parsed.replyTo?.map((a) => a.address)).toEqual(["ann@visitor.example"]);
      expect(parsed.text?.trimEnd()).toBe(
        "Name: Ann Example\nEmail: ann@visitor.example\nFile: notes.txt\n\nHello from a plain form",
      );
      expect(parsed.attachments.map((a) => [a.filename, a.mimeType])).toEqual([
        ["notes.txt", "text/plain"],
      ]);
      expect(new TextDecoder().decode(parsed.attachments[0]?.content as ArrayBuffer)).toBe(
        "attached notes\n",
      );
    });

    it("sends the fetch() form (FormData) and a JSON fetch (with its CORS preflight) from the allowed origin", async () => {
      const { id, rcpt } = await createForm();
      const page = await browser.newPage();
      await page.goto(`${site.origin}/?form=${id}`);
      await tokenLoaded(page);
      // A person takes a moment to type.
      await page.waitForTimeout(MIN_FILL_SECONDS * 1000 + 300);
      await fill(page, "#contact-fetch", "Bob Example", "bob@visitor.example", "Hello from fetch");
      await page.click('#contact-fetch button[type="submit"]');
      await expect
        .poll(() => page.textContent("#status"), { timeout: 15_000 })
        .toBe("Thank you, your message was sent.");
      // The page stayed where it was.
      expect(page.url()).toBe(`${site.origin}/?form=${id}`);

      const token = await page.inputValue('#contact-fetch input[name="_start"]');
      const json = await page.evaluate(
        async ([url, token]) => {
          const res = await fetch(url, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({
              name: "Cat Example",
              email: "cat@visitor.example",
              message: "Hello as JSON",
              _start: token,
            }),
          });
          return { status: res.status, body: await res.json() };
        },
        [`${relayUrl}/f/${id}`, token] as const,
      );
      expect(json.status).toBe(200);
      expect(json.body).toEqual({ id: expect.any(String) });
      await page.close();

      const got = await sink.waitFor(2, 15_000, { to: rcpt });
      const parsed = await Promise.all(got.map((m) => PostalMime.parse(m.raw)));
      expect(parsed.map((p) => [p.subject, p.replyTo?.[0]?.address]).sort()).toEqual([
        ["Contact from Bob Example", "bob@visitor.example"],
        ["Contact from Cat Example", "cat@visitor.example"],
      ]);
      expect(parsed.find((p) => p.subject === "Contact from Bob Example")?.text).toContain(
        "Hello from fetch",
      );
    });

    it("is blocked by the browser on a page from another origin: fetch rejects, nothing is sent", async () => {
      const { id, rcpt } = await createForm();
      const page = await browser.newPage();
      await page.goto(`${other.origin}/?form=${id}`);
      await page.waitForTimeout(MIN_FILL_SECONDS * 1000 + 300);
      await fill(page, "#contact-fetch", "Eve", "eve@visitor.example", "From elsewhere");
      await page.click('#contact-fetch button[type="submit"]');
      await expect
        .poll(() => page.textContent("#status"), { timeout: 15_000 })
        .toBe("The form service could not be reached (TypeError: Failed to fetch).");

      // A JSON fetch needs a preflight, which the relay refuses: the POST is never sent.
      const error = await page.evaluate(async (url) => {
        try {
          await fetch(url, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: "{}",
          });
          return "sent";
        } catch (err) {
          return String(err);
        }
      }, `${relayUrl}/f/${id}`);
      expect(error).toBe("TypeError: Failed to fetch");
      await page.close();

      await new Promise((r) => setTimeout(r, 500));
      expect(await sink.messages({ to: rcpt })).toEqual([]);
      // Only the FormData post reached the relay (a simple request needs no preflight); refused.
      expect((await rejected(id)).origin).toBe(1);
    });

    it("refuses a form sent faster than min_fill_seconds, with the fetch form and the plain form", async () => {
      const { id, rcpt } = await createForm();
      const page = await browser.newPage();
      await page.goto(`${site.origin}/?form=${id}`);
      await tokenLoaded(page);
      await fill(page, "#contact-fetch", "Speedy", "bot@visitor.example", "Too fast");
      await page.click('#contact-fetch button[type="submit"]');
      await expect
        .poll(() => page.textContent("#status"), { timeout: 15_000 })
        .toMatch(
          new RegExp(
            `^_start: the form was sent \\d+\\.\\d s after the page loaded; this form takes at least ${MIN_FILL_SECONDS} s$`,
          ),
        );

      await page.goto(`${site.origin}/?form=${id}`);
      await tokenLoaded(page);
      await fill(page, "#contact", "Speedy", "bot@visitor.example", "Too fast again");
      await Promise.all([
        page.waitForURL((url) => url.searchParams.get("error") === "too_fast"),
        page.click('#contact button[type="submit"]'),
      ]);
      expect(new URL(page.url()).searchParams.get("field")).toBe("_start");
      expect(await page.textContent("#notice")).toBe(
        "The message was not sent (too_fast: _start). Please check and try again.",
      );
      await page.close();

      await new Promise((r) => setTimeout(r, 500));
      expect(await sink.messages({ to: rcpt })).toEqual([]);
      expect((await rejected(id)).too_fast).toBe(2);
    });

    it("works with the README's snippets as pasted: the curl's form, the HTML form and the fetch script", async () => {
      const { createUrl, createBody, page: readmePage } = readmeSnippets();
      expect(createUrl).toBe("http://127.0.0.1:8787/forms");
      expect(readmePage).toContain('action="http://127.0.0.1:8787/f/<form id>"');
      const created = await fetch(`${relayUrl}/forms`, {
        method: "POST",
        headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
        body: createBody,
      });
      const form = (await created.json()) as { id: string; to: string[] };
      expect(created.status, JSON.stringify(form)).toBe(201);
      // What a reader changes: their own origin and pages (here, the test's static server).
      const patched = await fetch(`${relayUrl}/forms/${form.id}`, {
        method: "PATCH",
        headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
        body: JSON.stringify({
          allowed_origins: [site.origin],
          success_url: `${site.origin}/thanks.html`,
          error_url: null,
        }),
      });
      expect(patched.status).toBe(200);
      const to = form.to[0] ?? "";
      const before = (await sink.messages({ to })).length;

      const plain = await browser.newContext({ javaScriptEnabled: false });
      const page = await plain.newPage();
      await page.goto(`${site.origin}/?readme&form=${form.id}`);
      await fill(page, "form", "Dana Reader", "dana@visitor.example", "Pasted from the README");
      await page.setInputFiles('input[name="attachment"]', {
        name: "cv.pdf",
        mimeType: "application/pdf",
        buffer: Buffer.from("%PDF-1.4 test"),
      });
      await Promise.all([page.waitForURL(`${site.origin}/thanks.html`), page.click("button")]);
      await plain.close();

      const scripted = await browser.newPage();
      const dialogs: string[] = [];
      scripted.on("dialog", (dialog) => {
        dialogs.push(dialog.message());
        void dialog.accept();
      });
      await scripted.goto(`${site.origin}/?readme&form=${form.id}`);
      await fill(scripted, "form", "Eli Reader", "eli@visitor.example", "Sent with fetch");
      await scripted.click("button");
      await expect
        .poll(() => dialogs, { timeout: 15_000 })
        .toEqual(["Thank you, your message was sent."]);
      expect(scripted.url()).toBe(`${site.origin}/?readme&form=${form.id}`);
      await scripted.close();

      const got = (await sink.waitFor(before + 2, 15_000, { to })).slice(before);
      const parsed = await Promise.all(got.map((m) => PostalMime.parse(m.raw)));
      expect(parsed.map((p) => [p.subject, p.replyTo?.[0]?.address]).sort()).toEqual([
        ["Contact from Dana Reader", "dana@visitor.example"],
        ["Contact from Eli Reader", "eli@visitor.example"],
      ]);
      const dana = parsed.find((p) => p.subject === "Contact from Dana Reader");
      expect(dana?.text).toContain(
        "Dana Reader (dana@visitor.example) wrote:\n\nPasted from the README",
      );
      expect(dana?.attachments.map((a) => a.filename)).toEqual(["cv.pdf"]);
    });
  },
);
