import type { KeyPolicy } from "../auth/policy.ts";
import type { SuppressedRecipient, SuppressionOrigin } from "./suppression-ports.ts";

/**
 * What the queue stores about a message, and the delivery state that changes with each attempt.
 * The message itself (envelope and raw bytes) never changes after acceptance, so every retry sends
 * exactly the same message, with the same Message-ID and Date.
 */

/** An SMTP reply as the server gave it. `code` is null when there was no reply (network error). */
export interface SmtpReply {
  code: number | null;
  /** RFC 3463 enhanced status code, e.g. "5.1.1". */
  enhanced?: string;
  text: string;
}

/**
 * "suppressed": not attempted, the address is on the suppression list (src/delivery/state.ts).
 * "bounced": the smart host accepted it ("delivered" until then), and a delivery status
 * notification came back later through the return path saying delivery failed (src/bounces/).
 */
export type RecipientStatus =
  | "pending"
  | "delivered"
  | "failed"
  | "canceled"
  | "suppressed"
  | "bounced";

export interface RecipientState {
  address: string;
  status: RecipientStatus;
  /** The last reply the server gave for this recipient. */
  reply?: SmtpReply;
  /** When the recipient reached its current status (ms since epoch). */
  at?: number;
  /** For a "suppressed" recipient: the origin of the entry that held it back. */
  suppressedBy?: SuppressionOrigin;
  /**
   * A later report said delivery is delayed downstream (a DSN with Action: delayed): when it
   * came and what the reporting server said. The status stays as it was: the message is still
   * on its way, and either arrives (no report) or bounces (a failed report).
   */
  delay?: { at: number; reply: SmtpReply };
  /** A feedback report (ARF) said the recipient marked it as spam: when, and its Feedback-Type. */
  complaint?: { at: number; feedbackType: string };
}

export interface AttemptRecord {
  at: number;
  /** Recipients tried in this attempt. */
  tried: number;
  delivered: number;
  failed: number;
  deferred: number;
  /** Recipients held back because they are suppressed (absent: none). */
  suppressed?: number;
  /** A reply that stands for the attempt (the first failure, or the final 250). */
  reply?: SmtpReply;
  /** The smart host (`host:port`) that took the attempt, or last refused it (absent: none tried). */
  host?: string;
}

export interface DeliveryState {
  attempts: number;
  /** When the next attempt is due (ms), or null when the message is finished. */
  nextAttemptAt: number | null;
  /** Set when the client asked for a later send (`scheduled_at`). */
  scheduledAt: number | null;
  canceledAt: number | null;
  recipients: RecipientState[];
  /** The most recent attempts, newest last (bounded, see `MAX_HISTORY`). */
  history: AttemptRecord[];
}

/** Resend's fields for `GET /emails/:id` that the raw message cannot tell us cheaply. */
export interface MessageView {
  from: string;
  to: string[];
  cc: string[];
  bcc: string[];
  reply_to: string[];
  subject: string;
  tags: { name: string; value: string }[];
}

export interface QueuedMessage {
  id: string;
  /** Id of the API key that sent it ("admin" for ADMIN_TOKEN). */
  keyId: string;
  createdAt: number;
  /** The Message-ID header value, with angle brackets. */
  messageId: string;
  envelope: { from: string; to: string[] };
  view: MessageView;
  /**
   * "smtp" when the submission listener (src/submission/) handed it in; absent for the HTTP API.
   * A label the listener sets on its request, shown by `GET /emails/:id` and the dashboard; not a
   * proof (any client with the key could set it), so nothing decides on it.
   */
  submittedVia?: "smtp" | undefined;
}

/** A message as stored: metadata, the raw RFC 5322 bytes (as a latin1 string), and its state. */
export interface StoredEntry {
  message: QueuedMessage;
  raw: string;
  state: DeliveryState;
  /** Incremented on every state change; lets a writer detect that it raced another. */
  version: number;
  /** Set while a delivery run holds the message. */
  leasedUntil: number | null;
}

/** A message handed to one delivery run, reserved for it until `leasedUntil`. */
export interface ClaimedEntry extends StoredEntry {
  token: string;
  /** Its recipients on the suppression list when it was claimed (absent: none). */
  suppressed?: SuppressedRecipient[];
}

export const MAX_HISTORY = 20;

export type Permission = "full_access" | "sending_access";

export interface ApiKeyRecord {
  id: string;
  name: string;
  permission: Permission;
  /** Hex SHA-256 of the token. */
  digest: string;
  createdAt: number;
  /** When the key was last seen, to within the key cache's lifetime. */
  lastUsedAt?: number | null;
  /** What the key may send (see src/auth/policy.ts). */
  policy?: KeyPolicy;
}

/**
 * A delivery event ready to be stored: its id (the `webhook-id` header) and its JSON payload.
 * src/events/events.ts drafts them (narrowing `type` to its event names); the store only keeps
 * and fans them out, so it takes any type name.
 */
export interface EventDraft<Type extends string = string> {
  id: string;
  type: Type;
  emailId: string;
  createdAt: number;
  payload: string;
}
