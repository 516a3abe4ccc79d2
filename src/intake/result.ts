/**
 * What every intake step returns: a value, or a rejection tagged with one reason from a single
 * union. Expected refusals (a wrong origin, a bad signature, a body over its limit, a field that
 * fails its check) are values, not exceptions; only what the step cannot answer for (the store
 * unreachable, a bug) is thrown. The route layer maps each reason to its HTTP answer in one
 * exhaustive switch (src/http/intake.ts); which reasons are counted, and under what name,
 * is `counterOf` below, exhaustive too, so a new reason cannot be forgotten in either.
 */
import type { RelayError } from "../errors.ts";

/** Where the mail came in; also the store's record kind, and the prefix of log events. */
export type IntakeKind = "form" | "hook";

/** Every reason an intake step can refuse with, each with what it means. */
export const INTAKE_REASONS = [
  /** No record with that id. */
  "not_found",
  /** A form post from an origin the form does not allow. */
  "origin",
  /** A hook request from outside the hook's allowed_ips (logged, not counted: it costs nothing). */
  "client_address",
  /** A hook request without a valid proof. */
  "unauthorized",
  /** A Standard Webhooks request signed correctly but with a timestamp out of tolerance. */
  "stale_timestamp",
  /** Over a rate limit; `headers` say when to retry. */
  "rate_limited",
  /** The body, a file or the composed message is over a limit. */
  "too_large",
  /** The body could not be read or parsed. */
  "invalid_body",
  /** A Content-Type the source does not read. */
  "unsupported_type",
  /** The body parsed, but is not the shape the source takes (JSON that is not an object). */
  "invalid_payload",
  /** A submitted field fails its check (`field` names it). */
  "invalid_field",
  /** A required field is missing (`field` names it). */
  "missing_field",
  /** A filled honeypot: the bot is answered as if it had succeeded. */
  "honeypot",
  /** Sent sooner after the page loaded than the form's minimum fill time. */
  "too_fast",
  /** A start token that is missing (when required), forged or expired. */
  "start_token",
  /** Turnstile missing or refused. */
  "turnstile",
  /** A verifier (Turnstile) could not be asked: nothing is known, nothing was sent. */
  "verifier_unavailable",
  /** The rendered message does not compose (`error` is the composer's refusal). */
  "invalid_message",
  /** A form's message is outside its sending policy (`error` says how). */
  "outside_policy",
  /** The first request with this webhook-id is still being queued. */
  "in_flight",
] as const;

export type RejectionReason = (typeof INTAKE_REASONS)[number];

export interface Rejection {
  ok: false;
  reason: RejectionReason;
  /** Safe to show the client; without the field name (the answer prefixes it). */
  message: string;
  field?: string;
  /** Rate-limit and Retry-After headers. */
  headers?: Record<string, string>;
  /** The refusal of the composer or the policy check, answered as it is. */
  error?: RelayError;
  /** Retry-After for a refusal that a later retry may pass (a key still in flight). */
  retryAfterSeconds?: number;
  /** Refused before the sender proved itself: charged to the client's failure limit. */
  unproven?: boolean;
}

export type Result<T> = { ok: true; value: T } | Rejection;

export function ok<T>(value: T): { ok: true; value: T } {
  return { ok: true, value };
}

/** Shared by steps that pass or refuse without producing anything. */
export const PASSED = ok(undefined);

export function reject(
  reason: RejectionReason,
  message: string,
  extra: Omit<Rejection, "ok" | "reason" | "message"> = {},
): Rejection {
  return { ok: false, reason, message, ...extra };
}

/**
 * The counter a rejection is counted under for its record (`GET /forms/:id`, `GET /hooks/:id`
 * show them), or null when it is not counted: refusals that cost nothing to make (a foreign
 * address, an unknown id) or that say nothing about the record (a verifier down, a retry).
 */
export function counterOf(kind: IntakeKind, reason: RejectionReason): string | null {
  switch (reason) {
    case "not_found":
    case "client_address":
    case "verifier_unavailable":
    case "in_flight":
    // The policy is the operator's, not the visitor's (a hook's sender is refused as
    // invalid_message or too_large instead: its payload made the message).
    case "outside_policy":
      return null;
    case "too_large":
    case "invalid_body":
      return reason;
    case "unsupported_type":
    case "invalid_payload":
      return "invalid_body";
    case "unauthorized":
    case "stale_timestamp":
    case "invalid_message":
      return kind === "hook" ? reason : null;
    case "origin":
    case "invalid_field":
    case "honeypot":
    case "too_fast":
    case "start_token":
    case "turnstile":
      return kind === "form" ? reason : null;
    case "missing_field":
      return kind === "form" ? "invalid_field" : null;
    // A form's limits are the visitor's; a hook's belongs to its one sender, and is not counted.
    case "rate_limited":
      return kind === "form" ? "rate_limited" : null;
    default:
      return unreachable(reason);
  }
}

export function unreachable(value: never): never {
  throw new Error(`unhandled intake reason ${String(value)}`);
}
