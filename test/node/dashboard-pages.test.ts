/**
 * The dashboard's forms, hooks and templates pages in Debian's Chromium (JavaScript off), against
 * the Worker in workerd on real Redis through the Upstash gateway, as dashboard-browser.test.ts
 * runs it. Records are made through the API, as an app would; the pages list them, open one,
 * and act on them (delete a form, delete a hook, publish, duplicate and delete a template).
 *
 * Also what an attacker would try: a hook's secret (stored raw for HMAC hooks) never reaches a
 * page; a template's HTML is shown as source, never rendered into the dashboard; a form on another
 * site that posts to an action is refused, and so is a same-site post without the form token;
 * every page without a session leads to sign-in. And what each page costs in Upstash commands.
 *
 * Skipped without /usr/bin/chromium or Redis (with the reason), except in CI (CI=true).
 */
import { createHmac } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { browserSkipReason, launchChromium } from "../support/chromium.ts";
import { pageCost, sessionCookie, signedInContext } from "../support/dashboard.ts";
import { type RelayWorker, startRelayWorker } from "../support/harness.ts";

const ADMIN = `dashboard-pages-${crypto.randomUUID()}`;
const PREFIX = `e2e:dashpages:${crypto.randomUUID()}:`;
const skip = browserSkipReason();

/** HTML a template author could write that would run or fetch if it reached the page as markup. */
const HOSTILE_HTML =
  '<h1>Hi {{{NAME}}}</h1><img src="https://tracker.example/p.gif" onerror="alert(1)"><script>alert(2)</script>';

describe.skipIf(Boolean(skip))(
  `the forms, hooks and templates pages in Chromium${skip ? ` (skipped: ${skip})` : ""}`,
  () => {
    let relay: RelayWorker;
    let browser: Browser;
    let evil: { origin: string; server: Server; action: string };

    beforeAll(async () => {
      relay = await startRelayWorker({
        adminToken: ADMIN,
        sink: "plain",
        vars: { REDIS_KEY_PREFIX: PREFIX },
      });
      evil = await startEvilSite();
      browser = await launchChromium();
    }, 90_000);

    afterAll(async () => {
      await browser?.close();
      evil?.server.close();
      await relay?.close();
    });

    /** Another site whose page posts to whichever dashboard action `evil.action` names. */
    async function startEvilSite() {
      const site = { origin: "", server: createServer(), action: "" };
      site.server.on("request", (_req, res) => {
        res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
        res.end(`<!doctype html><title>Win</title><form method="post" action="${site.action}">
<input name="_csrf" value="guess"><button type="submit">Claim</button></form>`);
      });
      await new Promise<void>((r) => site.server.listen(0, "127.0.0.1", r));
      site.origin = `http://127.0.0.1:${(site.server.address() as AddressInfo).port}`;
      return site;
    }

    async function api(method: string, path: string, body?: unknown) {
      const res = await fetch(`${relay.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    }

    async function created(path: string, body: unknown) {
      const res = await api("POST", path, body);
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      return res.body as { id: string; secret?: string };
    }

    const tag = crypto.randomUUID().slice(0, 8);
    const newForm = () =>
      created("/forms", {
        name: `Contact ${tag}`,
        from: "Website <forms@example.com>",
        to: [`sales-${tag}@example.com`],
        subject: "Contact from {{name}}",
        text: "{{message}}",
        fields: [{ name: "name", required: true }, { name: "message" }],
        allowed_origins: ["https://www.example.com"],
      });
    const newHook = () =>
      created("/hooks", {
        name: `Deploys ${tag}`,
        from: "hooks@example.com",
        to: [`ops-${tag}@example.com`],
        subject: "Deploy {{repository.name}}",
        text: "By {{sender.login}}",
        verify: { type: "hmac_sha256", header: "X-Hub-Signature-256", prefix: "sha256=" },
      });
    let templates = 0;
    const newTemplate = () =>
      created("/templates", {
        name: `Welcome ${tag}`,
        alias: `welcome-${tag}-${++templates}`,
        subject: "Welcome, {{{NAME}}}",
        from: "Acme <hello@example.com>",
        html: HOSTILE_HTML,
        variables: [{ key: "NAME", type: "string", fallback_value: "friend" }],
      });

    async function open(p: Page, path: string): Promise<void> {
      const res = await p.goto(`${relay.url}${path}`);
      expect(res?.status(), path).toBe(200);
    }

    /** Clicks a button that posts and waits for the page the action leads to. */
    async function act(p: Page, button: string, url: string | RegExp): Promise<void> {
      await Promise.all([p.waitForURL(url), p.getByRole("button", { name: button }).click()]);
    }

    it("lists a form, opens it with its origins and counters, deletes it", {
      timeout: 60_000,
    }, async () => {
      const form = await newForm();
      const context = await signedInContext(browser, relay.url, ADMIN);
      const p = await context.newPage();
      await open(p, "/dashboard");
      await Promise.all([
        p.waitForURL(`${relay.url}/dashboard/forms`),
        p
          .getByRole("navigation", { name: "Dashboard" })
          .getByRole("link", { name: "Forms" })
          .click(),
      ]);
      const row = p.locator("table.list tbody tr", { hasText: `Contact ${tag}` });
      expect(await row.textContent()).toContain("https://www.example.com");
      expect(await row.textContent()).toContain(`sales-${tag}@example.com`);
      await Promise.all([
        p.waitForURL(`${relay.url}/dashboard/forms/${form.id}`),
        p.getByRole("link", { name: `Contact ${tag}` }).click(),
      ]);
      expect(await p.textContent("h1")).toBe(`Contact ${tag}`);
      const main = (await p.textContent("main")) ?? "";
      expect(main).toContain(`${relay.url}/f/${form.id}`);
      expect(main).toContain("Contact from {{name}}");
      const origin = p.locator("table.counters tbody tr", { hasText: "origin" });
      expect(await origin.locator("td.n").textContent()).toBe("0");

      // A submission from a page on another origin is counted, and the form's page shows it.
      const refused = await fetch(`${relay.url}/f/${form.id}`, {
        method: "POST",
        headers: { "content-type": "application/json", origin: "https://evil.example" },
        body: JSON.stringify({ name: "x" }),
      });
      expect(refused.status).toBe(403);
      await expect
        .poll(
          async () => {
            await p.reload();
            return origin.locator("td.n").textContent();
          },
          { timeout: 10_000 },
        )
        .toBe("1");

      await act(p, "Delete this form", `${relay.url}/dashboard/forms?done=deleted`);
      expect(await p.textContent("main")).toContain("Form deleted.");
      expect(await p.textContent("main")).not.toContain(`Contact ${tag}`);
      expect((await api("GET", `/forms/${form.id}`)).status).toBe(404);
      // Its page is gone too: a 404 page, not a 500.
      expect((await p.goto(`${relay.url}/dashboard/forms/${form.id}`))?.status()).toBe(404);
      await context.close();
    });

    it("lists a hook and opens it, never showing its secret; deletes it", {
      timeout: 60_000,
    }, async () => {
      const hook = await newHook();
      const secret = hook.secret ?? "";
      expect(secret.length).toBeGreaterThan(20);
      // A request with a wrong signature is counted as unauthorized.
      const body = JSON.stringify({ repository: { name: "w" } });
      const wrong = createHmac("sha256", "not-the-secret").update(body).digest("hex");
      const denied = await fetch(`${relay.url}/hooks/${hook.id}`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-hub-signature-256": `sha256=${wrong}` },
        body,
      });
      expect(denied.status).toBe(401);

      const context = await signedInContext(browser, relay.url, ADMIN);
      const p = await context.newPage();
      await open(p, "/dashboard/hooks");
      expect(await p.content()).not.toContain(secret);
      const row = p.locator("table.list tbody tr", { hasText: `Deploys ${tag}` });
      expect(await row.textContent()).toContain("hmac_sha256 (secret set)");
      await Promise.all([
        p.waitForURL(`${relay.url}/dashboard/hooks/${hook.id}`),
        p.getByRole("link", { name: `Deploys ${tag}` }).click(),
      ]);
      const html = await p.content();
      expect(html).not.toContain(secret);
      const main = (await p.textContent("main")) ?? "";
      expect(main).toContain("HMAC-SHA256 of the body (hex) in the X-Hub-Signature-256 header");
      expect(main).toContain("set; shown once when made");
      expect(main).toContain("Deploy {{repository.name}}");
      const unauthorized = p.locator("table.counters tbody tr", { hasText: "unauthorized" });
      await expect
        .poll(
          async () => {
            await p.reload();
            return unauthorized.locator("td.n").textContent();
          },
          { timeout: 10_000 },
        )
        .toBe("1");

      await act(p, "Delete this hook", `${relay.url}/dashboard/hooks?done=deleted`);
      expect(await p.textContent("main")).toContain("Hook deleted.");
      expect((await api("GET", `/hooks/${hook.id}`)).status).toBe(404);
      await context.close();
    });

    it("shows a template's HTML as source, publishes, duplicates and deletes it by keyboard and button", {
      timeout: 60_000,
    }, async () => {
      const template = await newTemplate();
      // A phone's width: the pages must not need sideways scrolling.
      const context = await signedInContext(browser, relay.url, ADMIN, {
        viewport: { width: 375, height: 800 },
      });
      const p = await context.newPage();
      const trackers: string[] = [];
      p.on("request", (r) => {
        if (!r.url().startsWith(relay.url)) trackers.push(r.url());
      });
      await open(p, "/dashboard/templates");
      const row = p.locator("table.list tbody tr", { hasText: `Welcome ${tag}` });
      expect(await row.textContent()).toContain(`welcome-${tag}`);
      expect(await row.textContent()).toContain("draft");
      await Promise.all([
        p.waitForURL(`${relay.url}/dashboard/templates/${template.id}`),
        p.getByRole("link", { name: `Welcome ${tag}` }).click(),
      ]);
      expect(await p.textContent("#template-status")).toContain("draft");
      // The HTML is text in a <pre>: no image, no script, no heading from it in the page.
      expect(await p.locator("pre.source", { hasText: "<script>alert(2)</script>" }).count()).toBe(
        1,
      );
      expect(await p.locator("main img, main script").count()).toBe(0);
      expect(await p.locator("main h1").count()).toBe(1);
      const vars = p.locator("table.list tbody tr", { hasText: "{{{NAME}}}" });
      expect(await vars.textContent()).toContain("string");
      expect(await vars.textContent()).toContain("friend");
      expect(await p.evaluate("document.documentElement.scrollWidth")).toBeLessThanOrEqual(375);

      // Publish by keyboard: the button takes focus and Enter submits its form.
      await p.getByRole("button", { name: "Publish the draft" }).focus();
      await Promise.all([
        p.waitForURL(`${relay.url}/dashboard/templates/${template.id}?done=published`),
        p.keyboard.press("Enter"),
      ]);
      expect(await p.textContent("#template-status")).toContain("the draft below is what sends");
      expect(await p.getByRole("button", { name: "Publish the draft" }).count()).toBe(0);
      expect((await api("GET", `/templates/${template.id}`)).body.status).toBe("published");

      await act(p, "Duplicate", /\/dashboard\/templates\/[0-9a-f-]{36}\?done=duplicated$/);
      const copyId = new URL(p.url()).pathname.split("/").pop() ?? "";
      expect(copyId).not.toBe(template.id);
      expect(await p.textContent("h1")).toBe(`Welcome ${tag} (Copy)`);
      expect(await p.textContent("#template-status")).toContain("draft");
      await act(p, "Delete this template", `${relay.url}/dashboard/templates?done=deleted`);
      expect(await p.textContent("main")).toContain("Template deleted.");
      expect((await api("GET", `/templates/${copyId}`)).status).toBe(404);
      expect((await api("GET", `/templates/${template.id}`)).status).toBe(200);
      expect(trackers).toEqual([]);
      await context.close();
    });

    it("refuses a cross-site post and a post without the form token; nothing is deleted", {
      timeout: 60_000,
    }, async () => {
      const template = await newTemplate();
      const context = await signedInContext(browser, relay.url, ADMIN);
      const p = await context.newPage();
      evil.action = `${relay.url}/dashboard/templates/${template.id}/delete`;
      await p.goto(evil.origin);
      const [response] = await Promise.all([
        p.waitForResponse((r) => r.url() === evil.action),
        p.getByRole("button", { name: "Claim" }).click(),
      ]);
      expect(response.status()).toBe(403);
      expect(await p.textContent("main")).toContain("cross-site");

      // Same site, signed in, but without the page's form token (a script that guessed the path).
      const cookie = await sessionCookie(relay.url, ADMIN);
      for (const path of [
        `/dashboard/templates/${template.id}/delete`,
        `/dashboard/templates/${template.id}/publish`,
      ]) {
        const res = await fetch(`${relay.url}${path}`, {
          method: "POST",
          redirect: "manual",
          headers: {
            cookie,
            "sec-fetch-site": "same-origin",
            "content-type": "application/x-www-form-urlencoded",
          },
          body: "_csrf=guess",
        });
        expect(res.status, path).toBe(403);
      }
      const still = await api("GET", `/templates/${template.id}`);
      expect(still.status).toBe(200);
      expect(still.body.status).toBe("draft");
      await context.close();
    });

    it("sends every page without a session to sign-in, and answers a bad id with 404", async () => {
      const form = await newForm();
      const hook = await newHook();
      const template = await newTemplate();
      for (const path of [
        "/dashboard/forms",
        `/dashboard/forms/${form.id}`,
        "/dashboard/hooks",
        `/dashboard/hooks/${hook.id}`,
        "/dashboard/templates",
        `/dashboard/templates/${template.id}`,
      ]) {
        const res = await fetch(`${relay.url}${path}`, { redirect: "manual" });
        expect(res.status, path).toBe(303);
        expect(res.headers.get("location"), path).toBe("/dashboard/sign-in");
      }
      // Declared once: each page and action is in /openapi.json as a dashboard route.
      const doc = (await (await fetch(`${relay.url}/openapi.json`)).json()) as {
        paths: Record<string, Record<string, { tags?: string[] }>>;
      };
      for (const [path, method] of [
        ["/dashboard/forms", "get"],
        ["/dashboard/forms/{id}/delete", "post"],
        ["/dashboard/hooks/{id}", "get"],
        ["/dashboard/templates/{id}/publish", "post"],
        ["/dashboard/templates/{id}/duplicate", "post"],
      ] as const)
        expect(doc.paths[path]?.[method]?.tags, `${method} ${path}`).toEqual(["dashboard"]);

      const cookie = await sessionCookie(relay.url, ADMIN);
      for (const path of [
        "/dashboard/forms/not-an-id",
        `/dashboard/hooks/${crypto.randomUUID()}`,
        `/dashboard/templates/${crypto.randomUUID()}`,
        "/dashboard/templates/%3Cscript%3E",
      ]) {
        const res = await fetch(`${relay.url}${path}`, { headers: { cookie } });
        expect(res.status, path).toBe(404);
        expect(await res.text(), path).not.toContain("<script>");
      }
    });

    it("adds an address on the Suppressions page, lists it, filters by origin, removes it", {
      timeout: 60_000,
    }, async () => {
      const address = `gone-${tag}@example.com`;
      const context = await signedInContext(browser, relay.url, ADMIN);
      const p = await context.newPage();
      await open(p, "/dashboard");
      await Promise.all([
        p.waitForURL(`${relay.url}/dashboard/suppressions`),
        p
          .getByRole("navigation", { name: "Dashboard" })
          .getByRole("link", { name: "Suppressions" })
          .click(),
      ]);
      await p.getByLabel("Address").fill(` ${address.toUpperCase()} `.trim());
      await Promise.all([
        p.waitForURL(`${relay.url}/dashboard/suppressions`),
        p.getByRole("button", { name: "Suppress" }).click(),
      ]);
      expect(await p.textContent("main")).toContain(`Suppressed ${address}.`);
      const row = p.locator("table.list tbody tr", { hasText: address });
      expect(await row.textContent()).toContain("manual");
      const entry = await api("GET", `/suppressions/${address}`);
      expect(entry.body).toMatchObject({ email: address, origin: "manual" });
      // The origin filter leaves it out of the bounces.
      await open(p, "/dashboard/suppressions?origin=bounce");
      expect(await p.textContent("main")).not.toContain(address);
      await open(p, "/dashboard/suppressions?origin=manual");
      await act(p, `Remove ${address}`, `${relay.url}/dashboard/suppressions?done=removed`);
      expect(await p.textContent("main")).toContain("Removed.");
      expect(await p.textContent("main")).not.toContain(address);
      expect((await api("GET", `/suppressions/${address}`)).status).toBe(404);
      // A remove without the form token is refused, and removes nothing.
      await api("POST", "/suppressions", { email: address });
      const id = (await api("GET", `/suppressions/${address}`)).body.id as string;
      const cookie = await sessionCookie(relay.url, ADMIN);
      const forged = await fetch(`${relay.url}/dashboard/suppressions/${id}/remove`, {
        method: "POST",
        headers: { cookie, "content-type": "application/x-www-form-urlencoded", origin: relay.url },
        body: "_csrf=guess",
        redirect: "manual",
      });
      expect(forged.status).toBe(403);
      expect((await api("GET", `/suppressions/${address}`)).status).toBe(200);
      await context.close();
    });

    it("costs two or three Upstash commands per page (rate limit and request log on), printed for the README", async () => {
      const form = await newForm();
      const hook = await newHook();
      const template = await newTemplate();
      const cookie = await sessionCookie(relay.url, ADMIN);
      const pages = {
        forms: "/dashboard/forms",
        form: `/dashboard/forms/${form.id}`,
        hooks: "/dashboard/hooks",
        hook: `/dashboard/hooks/${hook.id}`,
        templates: "/dashboard/templates",
        template: `/dashboard/templates/${template.id}`,
        suppressions: "/dashboard/suppressions",
      };
      const costs: Record<string, number> = {};
      for (const [name, path] of Object.entries(pages))
        costs[name] = await pageCost(relay.url, PREFIX, cookie, path);
      console.log(
        `dashboard page costs (Upstash commands, request log on): ${JSON.stringify(costs)}`,
      );
      // A list: every record of the kind in one read, plus the rate limit and the request log.
      expect(costs.forms).toBe(3);
      expect(costs.hooks).toBe(3);
      expect(costs.templates).toBe(3);
      // The suppression list: one page of it in one script.
      expect(costs.suppressions).toBe(3);
      // One record: the record and its counters (forms, hooks), or the template, plus those two.
      expect(costs.form).toBe(4);
      expect(costs.hook).toBe(4);
      expect(costs.template).toBe(3);
    });
  },
);
