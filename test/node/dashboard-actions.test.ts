/**
 * The dashboard's actions in a real browser, set up as test/node/dashboard-browser.test.ts is:
 * Debian's Chromium (playwright-core, JavaScript off) against the Worker in workerd on real Redis
 * through the Upstash gateway, delivering to the plain SMTP sink, and POSTing webhook events to a
 * real HTTP receiver here.
 *
 * Rotate a key (the new token works; the old one until it is deleted, then not); replay a webhook
 * event and see the receiver get it a second time, with its attempt on the endpoint's page and
 * the email's; refuse a replay once the endpoint is disabled; retry a deferred email now (the
 * smart host answered 451 first) and see it delivered; and a sign-in over DASHBOARD_RATE_LIMIT
 * answered 429 with Retry-After.
 *
 * Skipped without /usr/bin/chromium or Redis (with the reason), except in CI (CI=true).
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Browser, BrowserContext } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { browserSkipReason, launchChromium } from "../support/chromium.ts";
import { sessionCookie, upstashCommands } from "../support/dashboard.ts";
import { type RelayWorker, startRelayWorker } from "../support/harness.ts";
import { sinkApi } from "../support/services.ts";

const ADMIN = `dashboard-actions-${crypto.randomUUID()}`;
const PREFIX = `e2e:dash-act:${crypto.randomUUID()}:`;
const skip = browserSkipReason();

interface Hit {
  id: string;
  body: string;
}

/** A webhook receiver: keeps what it gets and answers 204. */
async function startReceiver(): Promise<{ url: string; hits: Hit[]; server: Server }> {
  const hits: Hit[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      hits.push({
        id: String(req.headers["webhook-id"]),
        body: Buffer.concat(chunks).toString("utf8"),
      });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/in`, hits, server };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(Boolean(skip))(
  `dashboard actions in Chromium against the relay in workerd${skip ? ` (skipped: ${skip})` : ""}`,
  () => {
    let relay: RelayWorker;
    let browser: Browser;
    let receiver: Awaited<ReturnType<typeof startReceiver>>;
    const sink = sinkApi("plain");

    beforeAll(async () => {
      receiver = await startReceiver();
      relay = await startRelayWorker({
        adminToken: ADMIN,
        sink: "plain",
        vars: { REDIS_KEY_PREFIX: PREFIX, WEBHOOK_ALLOW_LOOPBACK: "true" },
      });
      browser = await launchChromium();
    }, 90_000);

    afterAll(async () => {
      await browser?.close();
      receiver?.server.close();
      await relay?.close();
    });

    async function api(
      method: string,
      path: string,
      body?: unknown,
      token = ADMIN,
      base = relay.url,
    ): Promise<{ status: number; body: Record<string, unknown> }> {
      const res = await fetch(`${base}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    }

    async function send(body: Record<string, unknown>): Promise<string> {
      const res = await api("POST", "/emails", { from: "ops@example.com", text: "Hi.", ...body });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      return res.body.id as string;
    }

    const lastEvent = async (id: string) =>
      (await api("GET", `/emails/${id}`)).body.last_event as string;

    const tick = () =>
      relay.harness.getWorker().scheduled({ cron: "* * * * *", scheduledTime: new Date() });

    async function signedIn(base = relay.url, token = ADMIN): Promise<BrowserContext> {
      const context = await browser.newContext({ javaScriptEnabled: false });
      context.setDefaultTimeout(10_000);
      const page = await context.newPage();
      await page.goto(`${base}/dashboard/sign-in`);
      await page.getByLabel("ADMIN_TOKEN or a full_access API key").fill(token);
      await Promise.all([page.waitForURL(`${base}/dashboard`), page.keyboard.press("Enter")]);
      expect(await page.textContent("h1")).toBe("Overview");
      await page.close();
      return context;
    }

    it("rotates a key: the new token is shown once and works; the old one works until deleted", {
      timeout: 60_000,
    }, async () => {
      const tag = crypto.randomUUID().slice(0, 8);
      const made = await api("POST", "/api-keys", {
        name: `rotate ${tag}`,
        permission: "full_access",
      });
      expect(made.status).toBe(201);
      const oldToken = made.body.token as string;
      const oldId = made.body.id as string;
      const context = await signedIn();
      const page = await context.newPage();
      await page.goto(`${relay.url}/dashboard/keys`);
      const [answer] = await Promise.all([
        page.waitForResponse((r) => r.url().endsWith(`/dashboard/keys/${oldId}/rotate`)),
        page.getByRole("button", { name: `Rotate rotate ${tag}` }).click(),
      ]);
      expect(answer.status()).toBe(201);
      expect(answer.headers()["cache-control"]).toBe("no-store");
      // No redirect: the token is in this answer's body only, never in a URL.
      expect(new URL(page.url()).pathname).toBe(`/dashboard/keys/${oldId}/rotate`);
      const newToken = (await page.textContent("#new-token")) ?? "";
      expect(newToken).toMatch(/^re_/);
      expect(newToken).not.toBe(oldToken);
      expect(await page.textContent("main")).toContain("rotated");
      expect((await api("GET", "/api-keys", undefined, newToken)).status).toBe(200);
      expect((await api("GET", "/api-keys", undefined, oldToken)).status).toBe(200);
      // Delete the old key on the page: its token stops working, the new one goes on.
      await page.goto(`${relay.url}/dashboard/keys`);
      expect(await page.textContent("main")).not.toContain(newToken);
      const rows = page.locator("tbody tr", { hasText: oldId });
      await Promise.all([
        page.waitForURL(`${relay.url}/dashboard/keys`),
        rows.getByRole("button", { name: `Delete rotate ${tag}` }).click(),
      ]);
      expect((await api("GET", "/api-keys", undefined, oldToken)).status).toBe(403);
      expect((await api("GET", "/api-keys", undefined, newToken)).status).toBe(200);
      await context.close();
    });

    it("a narrower key signed in may not rename, rotate or delete a wider key: 403, the key unchanged", {
      timeout: 60_000,
    }, async () => {
      const tag = crypto.randomUUID().slice(0, 8);
      const narrow = await api("POST", "/api-keys", {
        name: `narrow ${tag}`,
        permission: "full_access",
        allowed_from: ["billing@example.com"],
      });
      const wide = await api("POST", "/api-keys", {
        name: `wide ${tag}`,
        permission: "full_access",
      });
      expect(wide.status).toBe(201);
      const context = await signedIn(relay.url, narrow.body.token as string);
      const page = await context.newPage();
      await page.goto(`${relay.url}/dashboard/keys`);
      const row = () => page.locator("tbody tr", { hasText: wide.body.id as string });
      const refusal = (action: string) =>
        page.waitForResponse((r) => r.url().endsWith(`/dashboard/keys/${wide.body.id}/${action}`));
      await row().getByLabel("New name").fill(`taken ${tag}`);
      const [renamed] = await Promise.all([
        refusal("rename"),
        row().getByRole("button", { name: "Rename" }).click(),
      ]);
      expect(renamed.status()).toBe(403);
      expect(await page.textContent("main")).toContain("allowed_from");
      for (const [action, label] of [
        ["rotate", `Rotate wide ${tag}`],
        ["delete", `Delete wide ${tag}`],
      ] as const) {
        await page.goto(`${relay.url}/dashboard/keys`);
        const [answer] = await Promise.all([
          refusal(action),
          row().getByRole("button", { name: label }).click(),
        ]);
        expect(answer.status(), action).toBe(403);
      }
      const keys = (await api("GET", "/api-keys")).body.data as { id: string; name: string }[];
      expect(keys.filter((k) => k.name === `wide ${tag}`).map((k) => k.id)).toEqual([wide.body.id]);
      expect((await api("GET", "/api-keys", undefined, wide.body.token as string)).status).toBe(
        200,
      );
      await context.close();
    });

    it("replays a webhook event: the receiver gets it again, a second attempt shows; refused once the endpoint is disabled", {
      timeout: 90_000,
    }, async () => {
      const hook = await api("POST", "/webhooks", {
        endpoint: receiver.url,
        events: ["email.delivered"],
      });
      expect(hook.status, JSON.stringify(hook.body)).toBe(201);
      const hookId = hook.body.id as string;
      const to = `replay-${crypto.randomUUID()}@example.com`;
      const emailId = await send({ to: [to], subject: "Replay me" });
      await expect.poll(() => lastEvent(emailId), { timeout: 15_000 }).toBe("delivered");
      await expect
        .poll(
          async () => {
            await tick();
            return receiver.hits.length;
          },
          { timeout: 20_000 },
        )
        .toBe(1);
      const first = receiver.hits[0] as Hit;
      expect(JSON.parse(first.body).data.email_id).toBe(emailId);

      const context = await signedIn();
      const page = await context.newPage();
      await page.goto(`${relay.url}/dashboard/webhooks`);
      await Promise.all([
        page.waitForURL(`${relay.url}/dashboard/webhooks/${hookId}`),
        page.getByRole("link", { name: receiver.url }).click(),
      ]);
      const main = (await page.textContent("main")) ?? "";
      expect(main).toContain("enabled");
      expect(main).not.toContain("whsec_");
      const rows = page.locator("#events tbody tr");
      await expect.poll(() => rows.count()).toBe(1);
      expect(await rows.first().locator("td.status").textContent()).toBe("success");
      expect(await rows.first().textContent()).toContain("HTTP 204");

      await Promise.all([
        page.waitForURL(`${relay.url}/dashboard/webhooks/${hookId}?done=replayed`),
        page.getByRole("button", { name: "Replay email.delivered" }).click(),
      ]);
      expect(await page.textContent('[role="status"]')).toBe("Replay queued.");
      // Sent in the request's background work: the same payload, under a new webhook-id.
      await expect.poll(() => receiver.hits.length, { timeout: 20_000 }).toBe(2);
      const second = receiver.hits[1] as Hit;
      expect(second.body).toBe(first.body);
      expect(second.id).not.toBe(first.id);
      await expect
        .poll(
          async () => {
            await page.reload();
            return page.locator("#events td.status").allTextContents();
          },
          { timeout: 15_000 },
        )
        .toEqual(["success", "success"]);
      expect(await rows.first().textContent()).toContain(`replay of ${first.id}`);
      expect(await rows.first().textContent()).toContain("HTTP 204");

      // The email's page lists both deliveries to the endpoint, each with its attempt.
      await page.goto(`${relay.url}/dashboard/emails/${emailId}`);
      const events = page.locator("#email-events tbody tr");
      expect(await events.count()).toBe(2);
      expect(await page.textContent("#email-events")).toContain("(replay)");
      expect((await page.textContent("#email-events"))?.match(/HTTP 204/g)?.length).toBe(2);

      // A page loaded while the endpoint was enabled, posted after it was disabled: refused.
      await page.goto(`${relay.url}/dashboard/webhooks/${hookId}`);
      expect((await api("PATCH", `/webhooks/${hookId}`, { status: "disabled" })).status).toBe(200);
      const [refused] = await Promise.all([
        page.waitForResponse((r) => r.url().includes("/replay")),
        page.getByRole("button", { name: "Replay email.delivered" }).first().click(),
      ]);
      expect(refused.status()).toBe(409);
      expect(await page.textContent("main")).toContain("This webhook endpoint is disabled");
      await page.goto(`${relay.url}/dashboard/webhooks/${hookId}`);
      expect(await page.locator('button:has-text("Replay")').count()).toBe(0);
      expect(await page.textContent("main")).toContain("Replaying is off");
      // The API door, the same use case: refused too, nothing more sent.
      const viaApi = await api("POST", `/webhooks/${hookId}/events/${first.id}/replay`);
      expect(viaApi.status).toBe(409);
      await sleep(500);
      expect(receiver.hits.length).toBe(2);
      await context.close();
    });

    it("retries a deferred email now (451 first, then accepted) and it is delivered", {
      timeout: 90_000,
    }, async () => {
      const to = `deferred-${crypto.randomUUID()}@example.com`;
      await sink.failData(451, "4.3.0 Try again later", 1);
      const id = await send({ to: [to], subject: "Deferred once" });
      await expect.poll(() => lastEvent(id), { timeout: 15_000 }).toBe("delivery_delayed");
      const scheduled = await send({
        to: [`later-${crypto.randomUUID()}@example.com`],
        subject: "Later",
        scheduled_at: new Date(Date.now() + 3600_000).toISOString(),
      });

      const context = await signedIn();
      const page = await context.newPage();
      // Not offered for a scheduled email (that is reschedule).
      await page.goto(`${relay.url}/dashboard/emails/${scheduled}`);
      expect(await page.locator('button:has-text("Retry now")').count()).toBe(0);

      await page.goto(`${relay.url}/dashboard/emails/${id}`);
      expect(await page.textContent("#last-event")).toBe("delivery_delayed");
      expect(await page.textContent("main")).toContain("451 4.3.0 Try again later");
      // The next attempt is a minute away (RETRY_FIRST_SECONDS): a run now would not take it.
      await tick();
      expect(await lastEvent(id)).toBe("delivery_delayed");
      await Promise.all([
        page.waitForURL(`${relay.url}/dashboard/emails/${id}?done=retried`),
        page.getByRole("button", { name: "Retry now" }).click(),
      ]);
      expect(await page.textContent('[role="status"]')).toContain("Due now");
      await tick();
      await sink.waitFor(1, 15_000, { to });
      await expect.poll(() => lastEvent(id), { timeout: 15_000 }).toBe("delivered");
      await page.reload();
      expect(await page.textContent("#last-event")).toBe("delivered");
      expect(await page.locator('button:has-text("Retry now")').count()).toBe(0);
      // Finished: a retry posted anyway (from a stale page) is refused and changes nothing.
      const csrf = await page.locator('input[name="_csrf"]').first().getAttribute("value");
      const cookie = (await context.cookies()).map((c) => `${c.name}=${c.value}`).join("; ");
      const stale = await fetch(`${relay.url}/dashboard/emails/${id}/retry`, {
        method: "POST",
        redirect: "manual",
        headers: {
          cookie,
          "content-type": "application/x-www-form-urlencoded",
          "sec-fetch-site": "same-origin",
        },
        body: new URLSearchParams({ _csrf: csrf ?? "" }),
      });
      expect(stale.status).toBe(409);
      expect(await stale.text()).toContain("Only an email waiting for its next attempt");
      expect(await lastEvent(id)).toBe("delivered");
      await context.close();
    });

    it("costs few Upstash commands for the endpoint page and the email page with its events", {
      timeout: 30_000,
    }, async () => {
      const hooks = (await api("GET", "/webhooks")).body.data as { id: string }[];
      const emails = (await api("GET", "/emails?limit=1")).body.data as { id: string }[];
      const cookie = await sessionCookie(relay.url, ADMIN);
      const pages = {
        webhook: `/dashboard/webhooks/${hooks[0]?.id}`,
        email: `/dashboard/emails/${emails[0]?.id}`,
      };
      const costs: Record<string, number> = {};
      for (const [name, path] of Object.entries(pages)) {
        await (await fetch(`${relay.url}${path}`, { headers: { cookie } })).text();
        await sleep(300);
        const before = await upstashCommands(PREFIX);
        const res = await fetch(`${relay.url}${path}`, { headers: { cookie } });
        expect(res.status, path).toBe(200);
        await res.text();
        await sleep(300);
        costs[name] = (await upstashCommands(PREFIX)) - before;
      }
      console.log(
        `dashboard action page costs (Upstash commands, request log on): ${JSON.stringify(costs)}`,
      );
      // The rate limit 1, the request log's write 1; the endpoint page: the endpoint 1, its
      // events with their attempts 1; the email page: the email 1, its events on every endpoint 1.
      expect(costs).toEqual({ webhook: 4, email: 4 });
    });

    it("answers a signed-in key over DASHBOARD_RATE_LIMIT with a 429 page and Retry-After", {
      timeout: 90_000,
    }, async () => {
      const limited = await startRelayWorker({
        adminToken: ADMIN,
        sink: "plain",
        vars: { REDIS_KEY_PREFIX: `${PREFIX}rl:`, DASHBOARD_RATE_LIMIT: "3/1m" },
      });
      try {
        // Signing in lands on the overview: the first of the three.
        const context = await signedIn(limited.url);
        const page = await context.newPage();
        const statuses: number[] = [];
        let last: Awaited<ReturnType<typeof page.goto>> = null;
        for (const path of ["/dashboard/emails", "/dashboard/keys", "/dashboard/webhooks"]) {
          last = await page.goto(`${limited.url}${path}`);
          statuses.push(last?.status() ?? 0);
        }
        expect(statuses).toEqual([200, 200, 429]);
        const retryAfter = Number(last?.headers()["retry-after"]);
        expect(retryAfter).toBeGreaterThanOrEqual(1);
        expect(retryAfter).toBeLessThanOrEqual(60);
        expect(last?.headers()["content-type"]).toContain("text/html");
        expect(await page.textContent("h1")).toBe("Too many requests");
        expect(await page.textContent("main")).toContain("at most 3 per 60 s");
        // Actions count too: a post is refused before its form token is even looked at.
        const cookie = (await context.cookies()).map((c) => `${c.name}=${c.value}`).join("; ");
        const post = await fetch(`${limited.url}/dashboard/keys`, {
          method: "POST",
          redirect: "manual",
          headers: {
            cookie,
            "content-type": "application/x-www-form-urlencoded",
            "sec-fetch-site": "same-origin",
          },
          body: new URLSearchParams({ name: "over the limit" }),
        });
        expect(post.status).toBe(429);
        expect(post.headers.get("retry-after")).not.toBeNull();
        // The API is not the dashboard: the same key's API budget is untouched.
        expect((await api("GET", "/webhooks", undefined, ADMIN, limited.url)).status).toBe(200);
        await context.close();
      } finally {
        await limited.close();
      }
    });
  },
);
