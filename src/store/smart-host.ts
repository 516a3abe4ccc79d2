/**
 * Derives the smart host's outcomes from a state being committed: the newest attempt in its
 * history. Both drivers keep an outcome only when it is newer than the one they hold, so a
 * repeated commit, or a commit that carries an old attempt (a cancel), changes nothing.
 */
import type { HostOutcome } from "./insight-ports.ts";
import type { DeliveryState } from "./types.ts";

/** How much of a reply's text is kept. */
export const HOST_REPLY_MAX = 300;

export function hostOutcomes(
  emailId: string,
  state: DeliveryState,
): { success: HostOutcome | null; refusal: HostOutcome | null } {
  const attempt = state.history.at(-1);
  if (!attempt) return { success: null, refusal: null };
  const outcome = (reply: { code: number | null; enhanced?: string; text: string }) => ({
    code: reply.code,
    ...(reply.enhanced ? { enhanced: reply.enhanced } : {}),
    text: reply.text.slice(0, HOST_REPLY_MAX),
    at: attempt.at,
    emailId,
  });
  const delivered = state.recipients.find((r) => r.status === "delivered" && r.reply)?.reply;
  const refused = attempt.failed + attempt.deferred > 0 ? attempt.reply : undefined;
  const success =
    attempt.delivered > 0
      ? outcome(
          attempt.reply && (attempt.reply.code ?? 0) < 400
            ? attempt.reply
            : (delivered ?? { code: 250, text: "" }),
        )
      : null;
  const refusal =
    refused && (refused.code === null || refused.code >= 400) ? outcome(refused) : null;
  return { success, refusal };
}

/** Keeps `next` over `held` only when it is at least as new. */
export function newer(held: HostOutcome | null, next: HostOutcome | null): HostOutcome | null {
  if (!next) return held;
  return !held || next.at >= held.at ? next : held;
}
