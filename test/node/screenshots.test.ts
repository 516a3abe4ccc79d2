/**
 * The plan of `npm run screenshots` (dev/screenshots-plan.ts), without a relay or a browser: the
 * emails it sends are ones the relay accepts and cover the states the pages show, and each page
 * goes to its own file at the README's viewports. The script itself is run by hand (it needs
 * Chromium and takes about 20 s), not by `npm test`.
 */
import { describe, expect, it } from "vitest";
import {
  DESKTOP,
  demoEmails,
  notIsolated,
  PHONE,
  REFUSED,
  SHOTS,
  settled,
  shotPath,
} from "../../dev/screenshots-plan.ts";
import { SendEmailSchema } from "../../src/mail/request.ts";

const NOW = new Date("2026-12-02T12:00:00Z");

describe("npm run screenshots: the plan", () => {
  it("sends valid emails: delivered ones, one to the refused address, one scheduled in the future", () => {
    const emails = demoEmails(NOW);
    for (const email of emails) expect(SendEmailSchema.safeParse(email).error).toBeUndefined();
    const scheduled = emails.filter((e) => e.scheduled_at);
    expect(scheduled).toHaveLength(1);
    expect(Date.parse(scheduled[0]?.scheduled_at as string)).toBeGreaterThan(NOW.getTime());
    expect(emails.filter((e) => e.to.includes(REFUSED))).toHaveLength(1);
    expect(emails.filter((e) => !e.scheduled_at && !e.to.includes(REFUSED)).length).toBeGreaterThan(
      1,
    );
    expect(new Set(emails.map((e) => e.subject)).size).toBe(emails.length);
  });

  it("waits for each email's own final state, not any later one", () => {
    const emails = demoEmails(NOW);
    const states = (lastEvent: string) => emails.map((e) => settled(e, lastEvent));
    expect(states("queued")).toEqual([false, false, false, false, false]);
    expect(states("delivered")).toEqual([true, true, true, false, false]);
    expect(states("bounced")).toEqual([false, false, false, true, false]);
    expect(states("scheduled")).toEqual([false, false, false, false, true]);
  });

  it("writes one file per page, at 1200x800 and one at 390x844, and fills in the email's id", () => {
    expect(new Set(SHOTS.map((s) => s.file)).size).toBe(SHOTS.length);
    expect(SHOTS.every((s) => /^[a-z-]+\.png$/.test(s.file))).toBe(true);
    expect(SHOTS.map((s) => s.viewport)).toContainEqual(PHONE);
    expect(SHOTS.filter((s) => s.viewport === DESKTOP).length).toBe(3);
    expect(SHOTS.map((s) => shotPath(s, { bounced: "a/b" }))).toEqual([
      "/dashboard",
      "/dashboard/emails",
      "/dashboard/emails/a%2Fb",
      "/dashboard",
    ]);
  });

  it("photographs only npm start's in-memory queue with the development inbox, never .dev.vars' Upstash or smart host", () => {
    const banner = (queue: string, smtp: string) =>
      `  edge-smtp-relay is running\n\n    Relay      http://127.0.0.1:8787\n    Queue      ${queue}\n    Smart host ${smtp}\n    API key    dev_x\n`;
    const inbox = `${banner("in memory (set UPSTASH_REDIS_REST_URL/_TOKEN for Upstash)", "development inbox")}    Inbox      http://127.0.0.1:8025\n`;
    expect(notIsolated(inbox)).toBeUndefined();
    expect(notIsolated(banner("Upstash Redis", "development inbox"))).toMatch(/Upstash/);
    expect(notIsolated(banner("in memory", "smtps://mail.example:465"))).toMatch(/smart host/);
  });
});
