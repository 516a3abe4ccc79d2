/**
 * Bounce intake: a report that came back to a VERP return path (src/mail/verp.ts), from the
 * Worker's email() handler or the authenticated POST /bounces, read and applied to the message it
 * names. In this order, each step ending the report when it refuses: the address must be a return
 * path of ours with a tag that verifies (before anything else is read), the bytes within
 * MAX_REPORT_BYTES, the message a DSN or a feedback report (src/mail/report.ts), the email one
 * the store has, and the recipients the report names ones it had (apply.ts). Then the new state
 * is written with the version guard, with the events it emits, in one store command.
 *
 * Not through the intake pipeline (src/intake/pipeline.ts): its steps are about turning a
 * request into a message to send (a record with a sending policy, rendering, composing, queueing
 * a send). A report sends nothing: it changes a stored message's state, as steering does
 * (src/delivery/steer.ts). What it shares with the pipeline is the shape of its refusals: every
 * one is a value with a reason, logged and counted, never thrown.
 *
 * Every refusal is a drop, counted by reason in the `bounce_intake` counters (and logged as
 * `bounce.dropped`), so the operator can see forged or broken reports; the reports applied are
 * counted too. The tag and the address are never logged (the address is a capability for its
 * email's reports): the email id is.
 */
import { TooLargeError } from "../errors.ts";
import { reportEvents } from "../events/events.ts";
import { type BounceReport, parseReport } from "../mail/report.ts";
import { verifyReturnPath } from "../mail/verp.ts";
import { readWithin } from "../read-within.ts";
import type { Relay } from "../relay.ts";
import { relaySecret } from "../relay-secrets.ts";
import { applyReport, nextAfterReport, type ReportRefusal } from "./apply.ts";

/**
 * The largest report read. A DSN carries the original message or its headers (Postfix cuts the
 * copy at bounce_size_limit, 50 kB by default), a feedback report the same; 1 MiB leaves room
 * for senders that return it whole, and a flood of large mail costs no more than that each.
 */
export const MAX_REPORT_BYTES = 1024 * 1024;

/** How often a write that lost to another writer (a delivery run) is read and tried again. */
const WRITE_TRIES = 3;

export const DROP_REASONS = [
  /** BOUNCE_DOMAIN is not set: there is no return path to come back to. */
  "not_configured",
  /** The envelope recipient is not a return path of ours (another domain or shape). */
  "not_return_path",
  /** Our shape, but the tag does not verify: forged, or damaged on the way. */
  "bad_tag",
  /** Over MAX_REPORT_BYTES. */
  "too_large",
  /** postal-mime could not read it, or its report part is broken. */
  "malformed",
  /** Neither a delivery status notification nor a feedback report. */
  "not_report",
  /** The tag verified, but the store has no such email (it expired). */
  "unknown_email",
  /** It names a recipient the message did not have. */
  "unknown_recipient",
  /** A complaint without a recipient, for a message that had several. */
  "no_recipient",
  /** Another writer kept changing the message (a delivery run holds it). */
  "busy",
  /** The store could not be reached (email() only; the endpoint answers 503). */
  "store_unavailable",
] as const;

export type DropReason = (typeof DROP_REASONS)[number];

export type ReportOutcome =
  | {
      outcome: "applied";
      emailId: string;
      /** What changed: recipients bounced, delayed or complained, by that name. */
      events: string[];
    }
  /** A valid report that says nothing new (a repeat, a delivered or relayed action). */
  | { outcome: "unchanged"; emailId: string }
  | { outcome: "dropped"; reason: DropReason; emailId?: string; detail?: string };

/** The counters record (kind "bounce_intake") all of intake's counts are kept under. */
export const COUNTERS_ID = "reports";

type ReportBytes = Uint8Array | (() => Promise<Uint8Array>);

/**
 * Takes one report sent to `envelopeTo`. `bytes` may be a reader, called only once the address
 * has verified, so forged mail is refused before its body is read. A store that cannot be reached
 * throws (the endpoint answers 503); every other refusal is a dropped outcome, counted. Events an
 * applied report queued go out with the next dispatch: the caller starts one (dispatchSoon).
 */
export async function receiveReport(
  relay: Relay,
  envelopeTo: string,
  bytes: ReportBytes,
): Promise<ReportOutcome> {
  const outcome = await evaluate(relay, envelopeTo, bytes);
  await count(relay, outcome);
  return outcome;
}

async function evaluate(
  relay: Relay,
  envelopeTo: string,
  bytes: ReportBytes,
): Promise<ReportOutcome> {
  const domain = relay.config.bounceDomain;
  if (!domain) return drop("not_configured");
  const check = await verifyReturnPath(envelopeTo, domain, await relaySecret(relay, "bounce"));
  if (!check.ok) return drop(check.reason);
  const { emailId } = check;
  const read = await readReport(emailId, bytes);
  return "outcome" in read ? read : applyToStore(relay, emailId, read.report);
}

/** The report's bytes, read and parsed; a drop when they are too many or not a report. */
async function readReport(
  emailId: string,
  bytes: ReportBytes,
): Promise<ReportOutcome | { report: BounceReport }> {
  let raw: Uint8Array;
  try {
    raw = typeof bytes === "function" ? await bytes() : bytes;
  } catch (err) {
    const reason = err instanceof TooLargeError ? "too_large" : "malformed";
    return drop(reason, emailId, (err as Error).message);
  }
  if (raw.byteLength > MAX_REPORT_BYTES)
    return drop("too_large", emailId, `${raw.byteLength} bytes`);
  const parsed = await parseReport(raw);
  if (!parsed.ok) return drop(parsed.reason, emailId, "detail" in parsed ? parsed.detail : "");
  return { report: parsed.report };
}

/** Reads the email, applies the report, writes it with the version guard (again if it raced). */
async function applyToStore(
  relay: Relay,
  emailId: string,
  report: BounceReport,
): Promise<ReportOutcome> {
  for (let attempt = 1; attempt <= WRITE_TRIES; attempt++) {
    const entry = await relay.store.get(emailId);
    if (!entry) return drop("unknown_email", emailId);
    const now = relay.now();
    const applied = applyReport(entry.message, entry.state, report, now);
    if (!applied.ok) return drop(applied.reason satisfies ReportRefusal, emailId);
    if (!applied.changed) return { outcome: "unchanged", emailId };
    const events = reportEvents(entry.message, entry.state, applied.state, now);
    // A bounced or complained address goes on the suppression list in the same command that
    // records the report, so the next send to it is not attempted.
    const suppress = applied.effects.map((effect) =>
      relay.suppressions.reportEntry(
        {
          email: effect.email,
          origin: effect.origin,
          sourceId: emailId,
          keyId: entry.message.keyId,
        },
        now,
      ),
    );
    const result = await relay.store.commit(
      emailId,
      { version: entry.version, now },
      applied.state,
      nextAfterReport(applied.state, now, relay.config.retentionMs),
      events,
      suppress,
    );
    if (result === "missing") return drop("unknown_email", emailId);
    if (result === "conflict") continue;
    relay.log.info("bounce.applied", {
      email_id: emailId,
      key_id: entry.message.keyId,
      kind: report.kind,
      events: events.map((e) => e.type),
    });
    return { outcome: "applied", emailId, events: events.map((e) => e.type) };
  }
  return drop("busy", emailId);
}

function drop(reason: DropReason, emailId?: string, detail?: string): ReportOutcome {
  return {
    outcome: "dropped",
    reason,
    ...(emailId ? { emailId } : {}),
    ...(detail ? { detail: detail.slice(0, 200) } : {}),
  };
}

/** Logs the outcome and counts it; a count that fails is logged, never fails the report. */
async function count(relay: Relay, outcome: ReportOutcome): Promise<void> {
  const name = outcome.outcome === "dropped" ? `dropped:${outcome.reason}` : outcome.outcome;
  if (outcome.outcome === "dropped") {
    relay.log.warn("bounce.dropped", {
      reason: outcome.reason,
      email_id: outcome.emailId ?? null,
      detail: outcome.detail ?? null,
    });
  }
  try {
    await relay.store.count("bounce_intake", COUNTERS_ID, name);
  } catch (err) {
    relay.log.error("store.unavailable", { op: "bounce.count", error: String(err) });
  }
}

/** What intake has done so far, by outcome (`applied`, `unchanged`, `dropped:<reason>`). */
export function intakeCounters(relay: Relay): Promise<Record<string, number>> {
  return relay.store.counters("bounce_intake", COUNTERS_ID);
}

/**
 * The Worker's email() door (Cloudflare Email Routing): never throws, whatever the mail is, and
 * whatever the store does. A store that cannot be reached drops the report (counted when the
 * count gets through): Email Routing does not redeliver, and a throw would only be logged there.
 */
export async function receiveEmail(
  relay: Relay,
  mail: { to: string; raw: ReadableStream<Uint8Array>; rawSize: number },
): Promise<ReportOutcome> {
  try {
    return await receiveReport(relay, mail.to, () =>
      readWithin(mail.raw, String(mail.rawSize), MAX_REPORT_BYTES),
    );
  } catch (err) {
    relay.log.error("store.unavailable", { op: "bounce.email", error: String(err) });
    const outcome = drop("store_unavailable");
    await count(relay, outcome);
    return outcome;
  }
}
