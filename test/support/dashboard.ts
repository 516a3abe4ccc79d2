/**
 * What the dashboard suites share: signing in through the page in Chromium (JavaScript off), a
 * session cookie for plain fetches, and the Upstash commands the gateway ran under a relay's key
 * prefix (for a page's cost).
 */
import type { Browser, BrowserContext } from "playwright-core";
import { expect } from "vitest";
import { services } from "./services.ts";

/** Upstash commands the gateway ran on keys under `prefix` so far. */
export async function upstashCommands(prefix: string): Promise<number> {
  const res = await fetch(
    `${services().upstash.api}/api/commands?contains=${encodeURIComponent(prefix)}`,
  );
  return ((await res.json()) as { matching: number }).matching;
}

/** A browser context signed in with `token` through the sign-in page, JavaScript off. */
export async function signedInContext(
  browser: Browser,
  relayUrl: string,
  token: string,
  options: { viewport?: { width: number; height: number } } = {},
): Promise<BrowserContext> {
  const context = await browser.newContext({ javaScriptEnabled: false, ...options });
  context.setDefaultTimeout(10_000);
  const page = await context.newPage();
  await page.goto(`${relayUrl}/dashboard`);
  expect(new URL(page.url()).pathname).toBe("/dashboard/sign-in");
  await page.getByLabel("ADMIN_TOKEN or a full_access API key").fill(token);
  await Promise.all([page.waitForURL(`${relayUrl}/dashboard`), page.keyboard.press("Enter")]);
  expect(await page.textContent("h1")).toBe("Overview");
  await page.close();
  return context;
}

/** The session cookie ("name=value") from signing in with a plain POST. */
export async function sessionCookie(relayUrl: string, token: string): Promise<string> {
  const res = await fetch(`${relayUrl}/dashboard/sign-in`, {
    method: "POST",
    redirect: "manual",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      "sec-fetch-site": "same-origin",
    },
    body: new URLSearchParams({ token }),
  });
  expect(res.status).toBe(303);
  return (res.headers.get("set-cookie") ?? "").split(";")[0] ?? "";
}

/** A page's Upstash commands once warm (session secret and caches filled), after one request. */
export async function pageCost(
  relayUrl: string,
  prefix: string,
  cookie: string,
  path: string,
): Promise<number> {
  await (await fetch(`${relayUrl}${path}`, { headers: { cookie } })).text();
  await new Promise((r) => setTimeout(r, 300));
  const before = await upstashCommands(prefix);
  const res = await fetch(`${relayUrl}${path}`, { headers: { cookie } });
  expect(res.status, path).toBe(200);
  await res.text();
  // The request log is written after the answer (waitUntil): let it land.
  await new Promise((r) => setTimeout(r, 300));
  return (await upstashCommands(prefix)) - before;
}
