/**
 * What a report that came back through the return path does to its message's delivery state:
 * a pure function, so the intake (intake.ts) only reads, applies, and writes with the version
 * guard. A report changes only recipients the smart host had accepted ("delivered"): one still
 * pending, failed or canceled never left the relay, so a report about it is not about this
 * delivery. Everything is idempotent: a recipient that is already bounced, already has its delay
 * or its complaint, stays as it is, so the same report twice changes nothing.
 */

import type { BounceReport, DsnRecipient } from "../mail/report.ts";
import type { NextStep } from "../store/store.ts";
import type { DeliveryState, QueuedMessage, RecipientState } from "../store/types.ts";

export type ReportRefusal =
  /** The report names a recipient the message did not have. */
  | "unknown_recipient"
  /** A complaint that names no recipient, for a message that had more than one. */
  | "no_recipient";

export interface ReportEffect {
  email: string;
  origin: "bounce" | "complaint";
}

export type Applied =
  | { ok: true; state: DeliveryState; changed: boolean; effects: ReportEffect[] }
  | { ok: false; reason: ReportRefusal };

function byAddress(state: DeliveryState): Map<string, RecipientState> {
  return new Map(state.recipients.map((r) => [r.address.toLowerCase(), r]));
}

type Updates = Map<string, RecipientState>;

/** Applies a report to a message's state; nothing changes unless `changed`. */
export function applyReport(
  message: QueuedMessage,
  state: DeliveryState,
  report: BounceReport,
  now: number,
): Applied {
  const known = byAddress(state);
  const updates: Updates = new Map();
  const effects: ReportEffect[] = [];
  const refused =
    report.kind === "dsn"
      ? applyDsn(report.recipients, known, updates, effects, now)
      : applyComplaint(message, report, known, updates, effects, now);
  if (refused) return { ok: false, reason: refused };
  if (updates.size === 0) return { ok: true, state, changed: false, effects: [] };
  return {
    ok: true,
    changed: true,
    effects,
    state: {
      ...state,
      recipients: state.recipients.map((r) => updates.get(r.address.toLowerCase()) ?? r),
    },
  };
}

function applyDsn(
  recipients: DsnRecipient[],
  known: Map<string, RecipientState>,
  updates: Updates,
  effects: ReportEffect[],
  now: number,
): ReportRefusal | null {
  // A real MTA reports only recipients it was given: one it was not given means the report is
  // not about this message (or was made up), and none of it is believed.
  if (recipients.some((r) => !known.has(r.address))) return "unknown_recipient";
  for (const r of recipients) {
    const current = updates.get(r.address) ?? (known.get(r.address) as RecipientState);
    if (current.status !== "delivered") continue;
    if (r.action === "failed") {
      updates.set(r.address, { ...current, status: "bounced", reply: r.reply, at: now });
      effects.push({ email: current.address, origin: "bounce" });
    } else if (r.action === "delayed" && !current.delay) {
      updates.set(r.address, { ...current, delay: { at: now, reply: r.reply } });
    }
    // delivered, relayed, expanded: the smart host's 250 said as much already.
  }
  return null;
}

function applyComplaint(
  message: QueuedMessage,
  report: Extract<BounceReport, { kind: "complaint" }>,
  known: Map<string, RecipientState>,
  updates: Updates,
  effects: ReportEffect[],
  now: number,
): ReportRefusal | null {
  let named = report.recipients;
  if (named.length === 0) {
    // Feedback loops often redact the recipient; with one recipient there is no doubt.
    if (message.envelope.to.length !== 1) return "no_recipient";
    named = [(message.envelope.to[0] as string).toLowerCase()];
  }
  if (named.some((a) => !known.has(a))) return "unknown_recipient";
  for (const address of named) {
    const current = updates.get(address) ?? (known.get(address) as RecipientState);
    // A complaint is about mail that arrived: delivered, or bounced by a later hop of a copy.
    if (current.complaint || (current.status !== "delivered" && current.status !== "bounced"))
      continue;
    updates.set(address, { ...current, complaint: { at: now, feedbackType: report.feedbackType } });
    effects.push({ email: current.address, origin: "complaint" });
  }
  return null;
}

/**
 * Where the message goes after a report: a message with recipients still pending stays due when
 * it was due; a finished one keeps the retention it got when it finished (from its last attempt,
 * or its cancel), so a late report does not keep it longer than any other message.
 */
export function nextAfterReport(state: DeliveryState, now: number, retentionMs: number): NextStep {
  if (state.recipients.some((r) => r.status === "pending")) {
    return { kind: "due", at: state.nextAttemptAt ?? state.scheduledAt ?? now };
  }
  const finishedAt = Math.max(state.history.at(-1)?.at ?? 0, state.canceledAt ?? 0);
  return { kind: "done", retainMs: Math.max(1, finishedAt + retentionMs - now) };
}
