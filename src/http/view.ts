/**
 * The email object `GET /emails/:id` answers with: Resend's fields, plus the relay's own
 * `delivery` detail (attempts, next attempt, the SMTP reply per recipient).
 */
import { lastEvent } from "../delivery/state.ts";
import { readBodies } from "../mail/raw.ts";
import type { SmtpReply, StoredEntry } from "../store/types.ts";

const iso = (ms: number | null | undefined) => (ms == null ? null : new Date(ms).toISOString());
const orNull = (list: string[]) => (list.length ? list : null);
const reply = (r: SmtpReply | undefined) => r ?? null;

/**
 * Resend's ListEmail (`GET /emails` items): the email object without html, text, tags and
 * object. `GET /emails/:id` is this plus those.
 */
export function emailListItem(
  { message, state }: Pick<StoredEntry, "message" | "state">,
  last: string,
) {
  return {
    id: message.id,
    from: message.view.from,
    to: message.view.to,
    cc: orNull(message.view.cc),
    bcc: orNull(message.view.bcc),
    reply_to: orNull(message.view.reply_to),
    subject: message.view.subject,
    created_at: new Date(message.createdAt).toISOString(),
    scheduled_at: iso(state.scheduledAt),
    last_event: last,
    message_id: message.messageId,
  };
}

export async function emailView(entry: StoredEntry, now: number) {
  const { message, state } = entry;
  const { html, text } = await readBodies(entry.raw);
  return {
    object: "email" as const,
    ...emailListItem(entry, lastEvent(state, now)),
    html,
    text,
    tags: message.view.tags,
    submitted_via: message.submittedVia ?? ("api" as const),
    delivery: {
      attempts: state.attempts,
      next_attempt_at: iso(state.nextAttemptAt),
      recipients: state.recipients.map((r) => ({
        email: r.address,
        status: r.status,
        reply: reply(r.reply),
        at: iso(r.at),
        // What a later report said (bounce intake): a downstream delay, a spam complaint.
        ...(r.delay ? { delay: { at: iso(r.delay.at), reply: r.delay.reply } } : {}),
        ...(r.complaint
          ? { complaint: { at: iso(r.complaint.at), feedback_type: r.complaint.feedbackType } }
          : {}),
      })),
      history: state.history.map((h) => ({
        at: new Date(h.at).toISOString(),
        tried: h.tried,
        delivered: h.delivered,
        failed: h.failed,
        deferred: h.deferred,
        reply: reply(h.reply),
        host: h.host ?? null,
      })),
    },
  };
}
