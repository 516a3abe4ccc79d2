/**
 * The SMTP transport seam. One interface, one file per client library, one contract suite
 * (`test/contract/transport.ts`, run by test/workers/transport.test.ts). A transport reports an
 * outcome for every recipient, so a rejected recipient never blocks or re-sends the others.
 */
import type { SmtpReply } from "../store/types.ts";

export interface Envelope {
  from: string;
  to: string[];
}

export interface RecipientOutcome {
  address: string;
  /** accepted: the server took responsibility (250 after DATA). */
  status: "accepted" | "temporary" | "permanent";
  reply: SmtpReply;
  /** The smart host that gave this outcome, `host:port` (set by failover.ts; no credentials). */
  host?: string;
}

/** Who a message is from, for routing (src/smtp/routes.ts); the client transports ignore it. */
export interface SendContext {
  /** The API key that sent it. */
  keyId: string;
  /** The envelope sender as accepted (MAIL FROM may be a VERP return path instead). */
  sender: string;
}

export interface SmtpTransport {
  /** Sends one message. Never throws for SMTP or network failures: they become outcomes. */
  send(envelope: Envelope, raw: Uint8Array, context?: SendContext): Promise<RecipientOutcome[]>;
  /** Closes pooled connections. */
  close(): Promise<void>;
}

/** RFC 3463 enhanced status code at the start of a reply text ("250 2.0.0 Ok" -> "2.0.0"). */
export function parseReply(response: string | undefined, code: number | null): SmtpReply {
  const text = (response ?? "").trim();
  const m = /^(\d{3})[ -](?:([245]\.\d{1,3}\.\d{1,3})\s)?/.exec(text);
  const reply: SmtpReply = { code: code ?? (m?.[1] ? Number(m[1]) : null), text };
  if (m?.[2]) reply.enhanced = m[2];
  return reply;
}

/** Where in the transaction a reply came: only RCPT TO changes how a code is read. */
export type ReplyStage = "rcpt" | "other";

/**
 * RFC 5321: 5yz is permanent and 4yz transient. 503 (bad sequence) is a session problem, not a
 * verdict on the message, so it is retried. No reply at all (network, TLS, timeout) is transient.
 */
export function classifyCode(
  code: number | null,
  stage: ReplyStage = "other",
): "temporary" | "permanent" {
  if (code === null) return "temporary";
  // RFC 5321 section 4.5.3.1.10: a 552 to RCPT TO (too many recipients, or out of storage) must
  // be treated as a temporary failure, as if it were 452; Postfix's smtp client does the same.
  if (stage === "rcpt" && code === 552) return "temporary";
  return code >= 500 && code !== 503 ? "permanent" : "temporary";
}
