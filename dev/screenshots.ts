/**
 * `npm run screenshots`: remakes the README's pictures of the dashboard (docs/screenshots/*.png).
 * It starts the relay as `npm start` does (memory store, development inbox, any free ports), sends
 * the emails of dev/screenshots-plan.ts through the API (the inbox refuses one, one is scheduled),
 * waits until each has settled, signs in to /dashboard in Debian's Chromium (playwright-core) and
 * photographs the pages at 1200x800 and one at phone width (390x844). Then it stops the relay and
 * prints what it wrote. Needs /usr/bin/chromium (apt-get install chromium).
 */
import { existsSync } from "node:fs";
import { mkdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { CHROMIUM, launchChromium } from "../test/support/chromium.ts";
import { type Banner, banner, npmStart, root, stop } from "../test/support/npm-start.ts";
import {
  type DemoEmail,
  demoEmails,
  notIsolated,
  REFUSED,
  REFUSED_REPLY,
  SHOTS,
  settled,
  shotPath,
} from "./screenshots-plan.ts";

const OUT = join(root, "docs", "screenshots");

async function api(b: Banner, method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${b.relay}${path}`, {
    method,
    headers: { authorization: `Bearer ${b.token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = (await res.json()) as unknown;
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

/** Sends the emails and waits (at most 60 s, running the cron meanwhile) until each has settled. */
async function sendAll(b: Banner): Promise<Map<DemoEmail, string>> {
  const refuse = await fetch(`${b.inbox}/api/reject-recipient`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ address: REFUSED, ...REFUSED_REPLY }),
  });
  if (!refuse.ok) throw new Error(`the inbox did not take the refusal: ${refuse.status}`);
  const ids = new Map<DemoEmail, string>();
  for (const email of demoEmails(new Date())) {
    ids.set(email, ((await api(b, "POST", "/emails", email)) as { id: string }).id);
  }
  const deadline = Date.now() + 60_000;
  for (const [email, id] of ids) {
    for (;;) {
      const { last_event } = (await api(b, "GET", `/emails/${id}`)) as { last_event: string };
      if (settled(email, last_event)) break;
      if (Date.now() > deadline)
        throw new Error(`"${email.subject}" is still ${last_event} after 60 s`);
      await fetch(`${b.relay}/cdn-cgi/handler/scheduled?cron=*+*+*+*+*`).catch(() => {});
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  return ids;
}

async function photograph(b: Banner, bounced: string): Promise<string[]> {
  const browser = await launchChromium();
  const written: string[] = [];
  try {
    const context = await browser.newContext({ javaScriptEnabled: false, deviceScaleFactor: 1 });
    context.setDefaultTimeout(15_000);
    const page = await context.newPage();
    await page.goto(`${b.relay}/dashboard/sign-in`);
    await page.getByLabel("ADMIN_TOKEN or a full_access API key").fill(b.token);
    await Promise.all([page.waitForURL(`${b.relay}/dashboard`), page.keyboard.press("Enter")]);
    await mkdir(OUT, { recursive: true });
    for (const shot of SHOTS) {
      await page.setViewportSize(shot.viewport);
      const res = await page.goto(`${b.relay}${shotPath(shot, { bounced })}`);
      if (res?.status() !== 200) throw new Error(`${shot.path}: ${res?.status()}`);
      const file = join(OUT, shot.file);
      await page.screenshot({ path: file, animations: "disabled" });
      written.push(file);
    }
  } finally {
    await browser.close();
  }
  return written;
}

async function main(): Promise<number> {
  if (!existsSync(CHROMIUM)) {
    console.error(`npm run screenshots needs Chromium at ${CHROMIUM} (apt-get install chromium)`);
    return 1;
  }
  const started = npmStart(["--port", "0", "--inbox-port", "0", "--inbox-smtp-port", "0"]);
  try {
    const b = await banner(started);
    const refusal = notIsolated(started.output());
    if (refusal) throw new Error(refusal);
    const ids = await sendAll(b);
    const bounced = [...ids].find(([email]) => email.to.includes(REFUSED))?.[1] as string;
    for (const file of await photograph(b, bounced)) {
      const { size } = await stat(file);
      console.log(`wrote ${file.slice(root.length + 1)} (${Math.round(size / 1024)} KiB)`);
    }
    return 0;
  } catch (err) {
    console.error(err instanceof Error ? err.message : err);
    console.error(`npm start said:\n${started.output()}`);
    return 1;
  } finally {
    await stop(started);
  }
}

process.exitCode = await main();
