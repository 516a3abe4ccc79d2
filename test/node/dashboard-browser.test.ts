/**
 * The dashboard in a real browser: Debian's Chromium, driven by playwright-core, against the real
 * Worker in workerd (wrangler's test harness) on real Redis through the Upstash gateway,
 * delivering to the plain SMTP sink, as test/node/browser.test.ts runs it. With JavaScript off
 * throughout: every page works without it.
 *
 * What an operator does: a page without a session lands on sign-in; sign in with ADMIN_TOKEN;
 * find a bounced email by filter and open it (its SMTP reply); cancel a scheduled one; create a
 * key (its token shown once, and working); sign out. And a form on another origin that posts to
 * the dashboard is refused.
 *
 * Skipped without /usr/bin/chromium or Redis (with the reason), except in CI (CI=true).
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Browser, BrowserContext } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { browserSkipReason, launchChromium } from "../support/chromium.ts";
import { sessionCookie } from "../support/dashboard.ts";
import { type RelayWorker, startRelayWorker } from "../support/harness.ts";
import { services, sinkApi } from "../support/services.ts";

const ADMIN = `dashboard-admin-${crypto.randomUUID()}`;
const PREFIX = `e2e:dash:${crypto.randomUUID()}:`;

/** Upstash commands the gateway ran on this relay's keys so far. */
async function commands(): Promise<number> {
  const res = await fetch(
    `${services().upstash.api}/api/commands?contains=${encodeURIComponent(PREFIX)}`,
  );
  return ((await res.json()) as { matching: number }).matching;
}

const skip = browserSkipReason();

/** Another site, whose page holds a form that posts to the dashboard. */
async function startEvilSite(relayUrl: string): Promise<{ origin: string; server: Server }> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(`<!doctype html><title>Win a prize</title>
<form method="post" action="${relayUrl}/dashboard/keys"><input name="name" value="evil">
<input name="permission" value="full_access"><button type="submit">Claim</button></form>`);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

describe.skipIf(Boolean(skip))(
  `the dashboard in Chromium against the relay in workerd${skip ? ` (skipped: ${skip})` : ""}`,
  () => {
    let relay: RelayWorker;
    let browser: Browser;
    let evil: { origin: string; server: Server };
    const sink = sinkApi("plain");

    beforeAll(async () => {
      relay = await startRelayWorker({
        adminToken: ADMIN,
        sink: "plain",
        vars: { REDIS_KEY_PREFIX: PREFIX },
      });
      evil = await startEvilSite(relay.url);
      browser = await launchChromium();
    }, 90_000);

    afterAll(async () => {
      await browser?.close();
      evil?.server.close();
      await relay?.close();
    });

    async function send(body: Record<string, unknown>): Promise<string> {
      const res = await fetch(`${relay.url}/emails`, {
        method: "POST",
        headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
        body: JSON.stringify({ from: "Acme <ops@example.com>", text: "Hi.", ...body }),
      });
      const json = (await res.json()) as { id: string };
      expect(res.status, JSON.stringify(json)).toBe(200);
      return json.id;
    }

    async function lastEvent(id: string): Promise<string> {
      const res = await fetch(`${relay.url}/emails/${id}`, {
        headers: { authorization: `Bearer ${ADMIN}` },
      });
      return ((await res.json()) as { last_event: string }).last_event;
    }

    async function signedIn(): Promise<BrowserContext> {
      const context = await browser.newContext({ javaScriptEnabled: false });
      context.setDefaultTimeout(10_000);
      const page = await context.newPage();
      await page.goto(`${relay.url}/dashboard`);
      expect(new URL(page.url()).pathname).toBe("/dashboard/sign-in");
      await page.getByLabel("ADMIN_TOKEN or a full_access API key").fill(ADMIN);
      await Promise.all([page.waitForURL(`${relay.url}/dashboard`), page.keyboard.press("Enter")]);
      expect(await page.textContent("h1")).toBe("Overview");
      await page.close();
      return context;
    }

    it("signs in, finds a bounced email by filter, opens it, cancels a scheduled one, creates a key, signs out", {
      timeout: 90_000,
    }, async () => {
      const tag = crypto.randomUUID().slice(0, 8);
      const bounced = `bounce-${tag}@example.com`;
      await sink.rejectRecipient(bounced, 550, "5.1.1 No such user");
      const bouncedId = await send({ to: [bounced], subject: `Bounces ${tag}` });
      await expect.poll(() => lastEvent(bouncedId), { timeout: 15_000 }).toBe("bounced");
      const scheduledId = await send({
        to: [`later-${tag}@example.com`],
        subject: `Later ${tag}`,
        scheduled_at: new Date(Date.now() + 3600_000).toISOString(),
      });

      const context = await signedIn();
      const cookies = await context.cookies();
      expect(cookies.map((c) => [c.name, c.httpOnly, c.secure, c.sameSite, c.path])).toEqual([
        ["relay_dashboard", true, true, "Strict", "/dashboard"],
      ]);
      const page = await context.newPage();

      // Find the bounced email by its filters.
      await page.goto(`${relay.url}/dashboard/emails`);
      await page.getByLabel("Last event").selectOption("bounced");
      await page.getByLabel("Recipient").fill(bounced);
      await Promise.all([
        page.waitForURL(/last_event=bounced/),
        page.getByRole("button", { name: "Filter" }).click(),
      ]);
      const rows = page.locator("table.list tbody tr");
      await expect.poll(() => rows.count()).toBe(1);
      await Promise.all([
        page.waitForURL(`${relay.url}/dashboard/emails/${bouncedId}`),
        page.getByRole("link", { name: `Bounces ${tag}` }).click(),
      ]);
      expect(await page.textContent("#last-event")).toBe("bounced");
      expect(await page.textContent("main")).toContain("550 5.1.1 No such user");
      // The attempt names the smart host that gave the reply (host:port, never credentials).
      const sinkPort = services().sinks.plain.port;
      expect(await page.textContent("main")).toContain(`127.0.0.1:${sinkPort}`);
      expect(await page.locator('button:has-text("Cancel this email")').count()).toBe(0);

      // Cancel the scheduled one.
      await page.goto(`${relay.url}/dashboard/emails?to=later-${tag}%40example.com`);
      await Promise.all([
        page.waitForURL(`${relay.url}/dashboard/emails/${scheduledId}`),
        page.getByRole("link", { name: `Later ${tag}` }).click(),
      ]);
      expect(await page.textContent("#last-event")).toBe("scheduled");
      await Promise.all([
        page.waitForURL(`${relay.url}/dashboard/emails/${scheduledId}?done=canceled`),
        page.getByRole("button", { name: "Cancel this email" }).click(),
      ]);
      expect(await page.textContent("#last-event")).toBe("canceled");
      expect(await lastEvent(scheduledId)).toBe("canceled");

      // Create a key: its token is shown once, and works.
      await page.goto(`${relay.url}/dashboard/keys`);
      await page.getByLabel("Name", { exact: true }).fill(`browser ${tag}`);
      await page.getByRole("button", { name: "Create key" }).click();
      const token = (await page.textContent("#new-token")) ?? "";
      expect(token).toMatch(/^re_/);
      const withKey = await fetch(`${relay.url}/emails/${bouncedId}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      // A sending key sees only its own emails: the admin's is not found, but the key is valid.
      expect(withKey.status).toBe(404);
      await page.reload();
      expect(await page.textContent("main")).not.toContain(token);
      expect(await page.textContent("main")).toContain(`browser ${tag}`);

      // Sign out: the cookie is gone and pages lead to sign-in again.
      await Promise.all([
        page.waitForURL(`${relay.url}/dashboard/sign-in`),
        page.getByRole("button", { name: "Sign out" }).click(),
      ]);
      expect(await context.cookies()).toEqual([]);
      await page.goto(`${relay.url}/dashboard/keys`);
      expect(new URL(page.url()).pathname).toBe("/dashboard/sign-in");
      await context.close();
    });

    it("refuses a form on another site that posts to the dashboard (403), and creates nothing", {
      timeout: 60_000,
    }, async () => {
      const context = await signedIn();
      const page = await context.newPage();
      await page.goto(evil.origin);
      const [response] = await Promise.all([
        page.waitForResponse((r) => r.url() === `${relay.url}/dashboard/keys`),
        page.getByRole("button", { name: "Claim" }).click(),
      ]);
      expect(response.status()).toBe(403);
      expect(await page.textContent("main")).toContain("cross-site");
      const keys = await fetch(`${relay.url}/api-keys`, {
        headers: { authorization: `Bearer ${ADMIN}` },
      });
      const names = ((await keys.json()) as { data: { name: string }[] }).data.map((k) => k.name);
      expect(names).not.toContain("evil");
      await context.close();
    });

    it("costs a few Upstash commands per page (request log on), printed for the README", async () => {
      const id = await send({ to: [`cost-${crypto.randomUUID()}@example.com`], subject: "Cost" });
      const cookie = await sessionCookie(relay.url, ADMIN);
      const pages = {
        overview: "/dashboard",
        emails: "/dashboard/emails",
        "emails?last_event=bounced": "/dashboard/emails?last_event=bounced",
        email: `/dashboard/emails/${id}`,
        keys: "/dashboard/keys",
        webhooks: "/dashboard/webhooks",
      };
      const costs: Record<string, number> = {};
      for (const [name, path] of Object.entries(pages)) {
        // Warm: the session secret and any cache the page fills, then the page as it costs after.
        await (await fetch(`${relay.url}${path}`, { headers: { cookie } })).text();
        await new Promise((r) => setTimeout(r, 300));
        const before = await commands();
        const res = await fetch(`${relay.url}${path}`, { headers: { cookie } });
        expect(res.status, path).toBe(200);
        await res.text();
        await new Promise((r) => setTimeout(r, 300));
        costs[name] = (await commands()) - before;
      }
      console.log(
        `dashboard page costs (Upstash commands, request log on): ${JSON.stringify(costs)}`,
      );
      for (const [name, n] of Object.entries(costs)) expect(n, name).toBeLessThanOrEqual(7);
      // The overview: 24 h and 7 day counters 2, queue depth 1, smart host 1, webhook endpoints 1
      // (plus one event-log read per enabled endpoint: none here), the session's rate limit 1,
      // the request log's write 1.
      expect(costs.overview).toBe(7);
    });
  },
);
