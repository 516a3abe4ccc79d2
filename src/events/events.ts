/**
 * Delivery events in Resend's shape (`{ type, created_at, data: { email_id, from, to, subject,
 * created_at, ... } }`), derived from the relay's state changes. Pure functions: the caller hands
 * the drafts to the store together with the state change that caused them, so both are written in
 * one atomic step (a crash can neither lose an event nor invent one).
 *
 * Nothing in a payload names a Bcc recipient: `to` is the message's To list, and an SMTP reply
 * that echoes a Bcc address (or its bare local part) has it replaced.
 *
 * An event's id is derived from what makes it unique (email id, type, attempt number), never
 * random: a state change that is written twice (a retried store command, a recomputed commit)
 * carries the same ids, so the store can skip what it already has and receivers can deduplicate
 * on `webhook-id`.
 */
// Synchronous SHA-256: drafts are made inside state transitions, which stay synchronous and pure
// (WebCrypto's digest is async). Workers give node:crypto under nodejs_compat; Deno has it too.
import { createHash } from "node:crypto";
import type {
  DeliveryState,
  QueuedMessage,
  RecipientState,
  EventDraft as StoreEventDraft,
} from "../store/types.ts";
import { redactBcc } from "./redact.ts";

/**
 * The events the relay emits, by Resend's names (`email.canceled` is the relay's own);
 * `email.complained`, and the later `email.bounced` and `email.delivery_delayed`, come from reports
 * through the return path (src/bounces/).
 */
export const EVENT_TYPES = [
  "email.sent",
  "email.scheduled",
  "email.delivered",
  "email.delivery_delayed",
  "email.bounced",
  "email.failed",
  "email.canceled",
  "email.suppressed",
  "email.complained",
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

/** An event ready to be stored (the store's `EventDraft`, with one of the relay's types). */
export type EventDraft = StoreEventDraft<EventType>;

/** A message accepted with a send time in the future (not just "now", give or take a second). */
export function isScheduled(message: QueuedMessage, state: DeliveryState): boolean {
  return state.scheduledAt !== null && state.scheduledAt > message.createdAt;
}

/**
 * A UUID-shaped id (RFC 9562 version 8: custom) made of the SHA-256 of
 * "<email id>:<type>:<attempt>", so the same transition always gets the same id.
 */
export function eventId(emailId: string, type: EventType, attempt: number | string): string {
  const b = createHash("sha256").update(`${emailId}:${type}:${attempt}`).digest();
  b[6] = ((b[6] as number) & 0x0f) | 0x80;
  b[8] = ((b[8] as number) & 0x3f) | 0x80;
  const hex = b.subarray(0, 16).toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * `attempt` is the attempt count the transition produced (0 when accepting): each event type is
 * emitted at most once per transition, so email id, type and attempt identify it.
 */
function draft(
  message: QueuedMessage,
  type: EventType,
  attempt: number | string,
  now: number,
  extra: Record<string, unknown> = {},
): EventDraft {
  const id = eventId(message.id, type, attempt);
  const { view } = message;
  const payload = {
    type,
    created_at: new Date(now).toISOString(),
    data: {
      created_at: new Date(message.createdAt).toISOString(),
      email_id: message.id,
      message_id: message.messageId,
      from: view.from,
      to: view.to,
      subject: view.subject,
      ...(view.tags.length
        ? { tags: Object.fromEntries(view.tags.map((t) => [t.name, t.value])) }
        : {}),
      ...extra,
    },
  };
  return { id, type, emailId: message.id, createdAt: now, payload: JSON.stringify(payload) };
}

/** What accepting a message emits: `email.scheduled` for a later send, else `email.sent`. */
export function acceptedEvents(
  message: QueuedMessage,
  state: DeliveryState,
  now: number,
): EventDraft[] {
  const type = isScheduled(message, state) ? "email.scheduled" : "email.sent";
  return [draft(message, type, state.attempts, now)];
}

/** The types an attempt may emit (deliveryEvents), each at most once per attempt. */
const ATTEMPT_TYPES: readonly EventType[] = [
  "email.sent",
  "email.bounced",
  "email.failed",
  "email.delivery_delayed",
  "email.delivered",
  "email.suppressed",
];

/**
 * Every id an event of this email can have after `attempts` attempts: what accepting and
 * canceling emit, and each type per attempt. Ids are derived, so a store finds the email's
 * events by them without an index of its own (the ones never emitted are simply not there).
 */
export function possibleEventIds(
  emailId: string,
  attempts: number,
  recipients: readonly string[] = [],
): string[] {
  const ids = [
    eventId(emailId, "email.sent", 0),
    eventId(emailId, "email.scheduled", 0),
    eventId(emailId, "email.canceled", "cancel"),
  ];
  for (let n = 1; n <= attempts; n++) {
    for (const type of ATTEMPT_TYPES) ids.push(eventId(emailId, type, n));
  }
  for (const address of recipients) {
    for (const type of REPORT_TYPES) ids.push(eventId(emailId, type, reportKey(address)));
  }
  return ids;
}

/** The types a later report emits, at most once per recipient each (reportEvents). */
const REPORT_TYPES: readonly EventType[] = [
  "email.bounced",
  "email.delivery_delayed",
  "email.complained",
];

/** The id part of a report's event: the recipient it is about (lowercased). */
function reportKey(address: string): string {
  return `report:${address.toLowerCase()}`;
}

/**
 * The events a report through the return path emits, from the state before and after it, one
 * per recipient it changed: `email.bounced` for a recipient that moved to bounced (`bounce`
 * describes its server's reply, `bounce.recipients` names it unless it was Bcc),
 * `email.delivery_delayed` for one that got its first delay, `email.complained` for one that got
 * its complaint. Each recipient has at most one of each in its life, so email id, type and
 * recipient identify the event: the same report twice gives the same ids.
 */
export function reportEvents(
  message: QueuedMessage,
  before: DeliveryState,
  after: DeliveryState,
  now: number,
): EventDraft[] {
  const shown = visible(message);
  const old = new Map(before.recipients.map((r) => [r.address.toLowerCase(), r]));
  return after.recipients.flatMap((r) => {
    const was = old.get(r.address.toLowerCase());
    return was ? recipientReportEvents(message, shown, was, r, now) : [];
  });
}

function recipientReportEvents(
  message: QueuedMessage,
  shown: Set<string>,
  was: RecipientState,
  r: RecipientState,
  now: number,
): EventDraft[] {
  const out: EventDraft[] = [];
  const key = reportKey(r.address);
  if (r.status === "bounced" && was.status !== "bounced") {
    out.push(
      draft(message, "email.bounced", key, now, {
        bounce: {
          // A DSN may fail a recipient on a 4.x.x status too (the remote queue gave up).
          type: r.reply?.enhanced?.startsWith("4.") ? "Transient" : "Permanent",
          subType: bounceSubType(r),
          message: replyText(message, r),
          recipients: shown.has(r.address.toLowerCase()) ? [r.address] : [],
        },
      }),
    );
  }
  if (r.delay && !was.delay) out.push(draft(message, "email.delivery_delayed", key, now));
  if (r.complaint && !was.complaint) {
    out.push(
      draft(message, "email.complained", key, now, {
        complaint: { feedback_type: r.complaint.feedbackType },
      }),
    );
  }
  return out;
}

/** What canceling emits (a message is canceled at most once, so no attempt number is needed). */
export function canceledEvents(message: QueuedMessage, now: number): EventDraft[] {
  return [draft(message, "email.canceled", "cancel", now)];
}

/** The recipients a payload may name: To and Cc, never Bcc. */
function visible(message: QueuedMessage): Set<string> {
  return new Set([...message.view.to, ...message.view.cc].map(bareAddress));
}

function bareAddress(entry: string): string {
  const m = /<([^>]*)>\s*$/.exec(entry);
  return (m?.[1] ?? entry).trim().toLowerCase();
}

/** An SMTP reply as text, with any Bcc address (or its local part) it echoes replaced. */
function replyText(message: QueuedMessage, r: RecipientState): string {
  const reply = r.reply;
  // Transports keep the server's whole line ("550 5.1.1 ..."); a reply without one names its code.
  const text = !reply
    ? ""
    : reply.code !== null && !reply.text.startsWith(String(reply.code))
      ? `${reply.code} ${reply.text}`.trim()
      : reply.text;
  const shown = visible(message);
  const hidden = message.envelope.to.filter((rcpt) => !shown.has(rcpt.toLowerCase()));
  return redactBcc(text, hidden, [...shown]);
}

/** Resend's (SES's) bounce sub-types, from the RFC 3463 enhanced code where it says. */
function bounceSubType(r: RecipientState): string {
  const e = r.reply?.enhanced ?? "";
  if (/^5\.1\.[0-3]$/.test(e)) return "NoEmail";
  if (e === "5.2.2") return "MailboxFull";
  if (e === "5.3.4" || e === "5.2.3") return "MessageTooLarge";
  if (/^5\.7\./.test(e)) return "ContentRejected";
  return "General";
}

/**
 * The events one delivery attempt emits, from the state before and after it, in this order:
 * - `email.sent` when a scheduled message gets its first attempt;
 * - `email.bounced` when recipients were refused for good (a 5xx), with `bounce` describing the
 *   first of them and `bounce.recipients` the To/Cc ones among them;
 * - `email.failed` when recipients were given up on without a 5xx (the queue age ran out);
 * - `email.suppressed` when recipients were held back by the suppression list, with
 *   `suppressed.type` the origin of the first one's entry and `suppressed.recipients` the To/Cc
 *   ones among them (never a Bcc);
 * - `email.delivery_delayed` the first time an attempt is deferred (a 4xx or no answer);
 * - `email.delivered` when the message is finished and the smart host accepted it for at least
 *   one recipient.
 */
export function deliveryEvents(
  message: QueuedMessage,
  before: DeliveryState,
  after: DeliveryState,
  now: number,
): EventDraft[] {
  const out: EventDraft[] = [];
  if (before.attempts === 0 && after.attempts > 0 && isScheduled(message, before)) {
    out.push(draft(message, "email.sent", after.attempts, now));
  }
  const wasPending = new Set(
    before.recipients.filter((r) => r.status === "pending").map((r) => r.address),
  );
  const newlyFailed = after.recipients.filter(
    (r) => r.status === "failed" && wasPending.has(r.address),
  );
  const bounced = newlyFailed.filter((r) => (r.reply?.code ?? 0) >= 500);
  const gaveUp = newlyFailed.filter((r) => (r.reply?.code ?? 0) < 500);
  const shown = visible(message);
  const first = bounced[0];
  if (first) {
    out.push(
      draft(message, "email.bounced", after.attempts, now, {
        bounce: {
          type: "Permanent",
          subType: bounceSubType(first),
          message: replyText(message, first),
          recipients: bounced.map((r) => r.address).filter((a) => shown.has(a.toLowerCase())),
        },
      }),
    );
  }
  const lost = gaveUp[0];
  if (lost) {
    out.push(
      draft(message, "email.failed", after.attempts, now, {
        failed: { reason: replyText(message, lost) },
      }),
    );
  }
  const held = after.recipients.filter(
    (r) => r.status === "suppressed" && wasPending.has(r.address),
  );
  const firstHeld = held[0];
  if (firstHeld) {
    const origin = firstHeld.suppressedBy ?? "manual";
    out.push(
      draft(message, "email.suppressed", after.attempts, now, {
        suppressed: {
          type: origin,
          message: `The recipient is on the suppression list (origin: ${origin}); the relay did not send to it.`,
          recipients: held.map((r) => r.address).filter((a) => shown.has(a.toLowerCase())),
        },
      }),
    );
  }
  const last = after.history.at(-1);
  if (
    after.attempts > before.attempts &&
    last &&
    last.deferred > 0 &&
    !before.history.some((h) => h.deferred > 0)
  ) {
    out.push(draft(message, "email.delivery_delayed", after.attempts, now));
  }
  const finished = !after.recipients.some((r) => r.status === "pending");
  if (
    finished &&
    wasPending.size > 0 &&
    after.canceledAt === null &&
    after.recipients.some((r) => r.status === "delivered")
  ) {
    out.push(draft(message, "email.delivered", after.attempts, now));
  }
  return out;
}
