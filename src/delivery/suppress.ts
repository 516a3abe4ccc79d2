/**
 * The suppression list in the delivery stage, as pure functions over the state: holding back the
 * recipients the claim (or enqueue) found suppressed, and picking the addresses an attempt proved
 * dead, which the commit adds to the list in the same store command.
 */

import {
  normalizeAddress,
  type SuppressedRecipient,
  type Suppression,
  type SuppressionOrigin,
  uuidV7,
} from "../store/store.ts";
import type { DeliveryState, QueuedMessage, SmtpReply } from "../store/types.ts";

/**
 * RFC 3463 enhanced codes that, in a permanent (5xx) refusal of one recipient, say the address
 * itself is dead, so sending to it again would only bounce again:
 *   5.1.1  bad destination mailbox address (no such user)
 *   5.1.2  bad destination system address (no such domain)
 *   5.1.3  bad destination mailbox address syntax
 *   5.1.6  destination mailbox has moved, no forwarding address
 *   5.1.10 recipient address has a null MX (RFC 7505: the domain takes no mail)
 *   5.2.1  mailbox disabled, not accepting messages
 * Left out on purpose: 5.7.x (policy: spam filtering, authentication, a blocklist: about the
 * sender or the message, not the address), 5.2.2 (mailbox full: it may empty), 5.3.4 (message
 * too big: another message is fine), and a bare 550 without an enhanced code (too often policy).
 */
export const SUPPRESSING_CODES: readonly string[] = [
  "5.1.1",
  "5.1.2",
  "5.1.3",
  "5.1.6",
  "5.1.10",
  "5.2.1",
];

/** Whether a reply to a recipient proves the address dead (see SUPPRESSING_CODES). */
export function provesDead(reply: SmtpReply | undefined): boolean {
  return (
    reply !== undefined &&
    (reply.code ?? 0) >= 500 &&
    reply.enhanced !== undefined &&
    SUPPRESSING_CODES.includes(reply.enhanced)
  );
}

/** The reply a suppressed recipient is left with (never sent to the smart host). */
export function suppressedReply(origin: SuppressionOrigin): SmtpReply {
  return { code: null, text: `not attempted: the address is on the suppression list (${origin})` };
}

/**
 * Marks the pending recipients found suppressed as "suppressed", so the attempt leaves them out.
 * A canceled message is left as it is. `held` is how many were marked.
 */
export function holdSuppressed(
  state: DeliveryState,
  suppressed: SuppressedRecipient[] | undefined,
  now: number,
): { state: DeliveryState; held: number } {
  if (!suppressed?.length || state.canceledAt !== null) return { state, held: 0 };
  const origins = new Map(suppressed.map((s) => [s.email, s.origin]));
  let held = 0;
  const recipients = state.recipients.map((r) => {
    const origin = r.status === "pending" ? origins.get(normalizeAddress(r.address)) : undefined;
    if (!origin) return r;
    held++;
    return {
      address: r.address,
      status: "suppressed" as const,
      reply: suppressedReply(origin),
      at: now,
      suppressedBy: origin,
    };
  });
  return held === 0 ? { state, held } : { state: { ...state, recipients }, held };
}

/** Records in the attempt's history entry how many recipients were held back. */
export function countHeld(state: DeliveryState, held: number): DeliveryState {
  const last = state.history.at(-1);
  if (held === 0 || !last) return state;
  return { ...state, history: [...state.history.slice(0, -1), { ...last, suppressed: held }] };
}

/**
 * The addresses this attempt proved dead (newly failed with a SUPPRESSING_CODES reply), as
 * entries of origin "bounce" naming the email and its key. `expiresInMs` null: never expires.
 */
export function deadAddresses(
  message: QueuedMessage,
  before: DeliveryState,
  after: DeliveryState,
  now: number,
  expiresInMs: number | null,
): Suppression[] {
  const wasPending = new Set(
    before.recipients.filter((r) => r.status === "pending").map((r) => r.address),
  );
  const seen = new Set<string>();
  const out: Suppression[] = [];
  for (const r of after.recipients) {
    if (r.status !== "failed" || !wasPending.has(r.address) || !provesDead(r.reply)) continue;
    const email = normalizeAddress(r.address);
    if (seen.has(email)) continue;
    seen.add(email);
    out.push({
      id: uuidV7(now, out.length),
      email,
      origin: "bounce",
      source_id: message.id,
      key_id: message.keyId,
      created_at: now,
      expires_at: expiresInMs === null ? null : now + expiresInMs,
    });
  }
  return out;
}
