/**
 * What `npm run screenshots` (dev/screenshots.ts) sends and photographs, apart from the running of
 * it, so a test can check the plan without a relay or a browser: the emails (delivered ones, one
 * scheduled, one the development inbox refuses, so the pages show each state) and the pages, with
 * the file each goes to and its viewport.
 */

/** The address the script tells the development inbox to refuse (550), for a bounce. */
export const REFUSED = "old-address@customer.example";
export const REFUSED_REPLY = { code: 550, text: "5.1.1 No such user here" } as const;

export interface DemoEmail {
  from: string;
  to: string[];
  subject: string;
  text: string;
  tags?: { name: string; value: string }[];
  scheduled_at?: string;
}

const FROM = "Acme Billing <billing@acme.example>";

/** The emails, in the order they are sent; `now` fixes the scheduled one's time. */
export function demoEmails(now: Date): DemoEmail[] {
  const tag = (value: string) => [{ name: "category", value }];
  return [
    {
      from: FROM,
      to: ["ada@customer.example"],
      subject: "Your invoice INV-2041 is ready",
      text: "Hi Ada,\n\nyour invoice INV-2041 for 49.00 EUR is attached.\n\nAcme Billing",
      tags: tag("invoice"),
    },
    {
      from: "Acme <hello@acme.example>",
      to: ["grace@customer.example"],
      subject: "Welcome to Acme, Grace",
      text: "Hi Grace,\n\nthanks for signing up. Your workspace is ready.\n\nThe Acme team",
      tags: tag("welcome"),
    },
    {
      from: "Acme Security <security@acme.example>",
      to: ["linus@customer.example"],
      subject: "Your sign-in code: 482 913",
      text: "Your code is 482 913. It expires in 10 minutes.",
      tags: tag("security"),
    },
    {
      from: FROM,
      to: [REFUSED],
      subject: "Payment reminder for INV-1987",
      text: "Hello,\n\ninvoice INV-1987 is due in three days.\n\nAcme Billing",
      tags: tag("reminder"),
    },
    {
      from: "Acme <news@acme.example>",
      to: ["ada@customer.example", "grace@customer.example"],
      subject: "What's new in December",
      text: "Three new features this month.",
      tags: tag("newsletter"),
      scheduled_at: new Date(now.getTime() + 2 * 3600_000).toISOString(),
    },
  ];
}

export interface Shot {
  /** Under docs/screenshots/. */
  file: string;
  /** The dashboard path; `{bounced}` is replaced by the refused email's id. */
  path: string;
  viewport: { width: number; height: number };
  alt: string;
}

export const DESKTOP = { width: 1200, height: 800 } as const;
export const PHONE = { width: 390, height: 844 } as const;

export const SHOTS: readonly Shot[] = [
  { file: "overview.png", path: "/dashboard", viewport: DESKTOP, alt: "The dashboard's overview" },
  { file: "emails.png", path: "/dashboard/emails", viewport: DESKTOP, alt: "The email list" },
  {
    file: "email.png",
    path: "/dashboard/emails/{bounced}",
    viewport: DESKTOP,
    alt: "One email: a bounce and its SMTP reply",
  },
  {
    file: "overview-phone.png",
    path: "/dashboard",
    viewport: PHONE,
    alt: "The overview at phone width",
  },
];

/** The path of a shot with the bounced email's id filled in. */
export function shotPath(shot: Shot, ids: { bounced: string }): string {
  return shot.path.replace("{bounced}", encodeURIComponent(ids.bounced));
}

/** What the last event of a sent email must become before the pages are photographed. */
export function settled(email: DemoEmail, lastEvent: string): boolean {
  if (email.scheduled_at) return lastEvent === "scheduled";
  if (email.to.includes(REFUSED)) return lastEvent === "bounced";
  return lastEvent === "delivered";
}

/**
 * Why the banner of `npm start` (its output) is not a relay to photograph, or undefined if it is.
 * Settings in .dev.vars reach npm start even with a clean environment: with the developer's
 * Upstash or smart host the demo emails would land in real data (and real mailboxes) and the
 * pictures would show it, so only the in-memory queue with the development inbox will do.
 */
export function notIsolated(output: string): string | undefined {
  if (!/^\s*Queue\s+in memory/m.test(output))
    return "npm start is using Upstash (UPSTASH_REDIS_REST_URL in .dev.vars?): the screenshots need the in-memory queue";
  if (!/^\s*Smart host\s+development inbox/m.test(output) || !/^\s*Inbox\s+http:/m.test(output))
    return "npm start is using a smart host (SMTP_URL in .dev.vars?): the screenshots need the development inbox";
  return undefined;
}
