/**
 * One SMTP session's checks, as a careful submission server makes them (RFC 6409): who the
 * client is (AUTH, or a trusted network), what the key may send, checked at MAIL and at each
 * RCPT with the API's own policy functions (src/auth/policy.ts) so a refused recipient is 550
 * 5.7.1 naming why while the others are still accepted, and the recipient and message limits.
 * The message itself is checked by the relay when the listener hands it over.
 */
import ipaddr from "ipaddr.js";
import { checkClient, checkMessage, ipAllowed } from "../auth/policy.ts";
import type { TrustedNetwork } from "../config/submission.ts";
import { RelayError } from "../errors.ts";
import { type AuthLockout, MAX_MESSAGES_PER_SESSION, MAX_RECIPIENTS } from "./limits.ts";
import { type KeySession, keySession, type RelayFetch, SmtpReplyError } from "./relay-client.ts";

/** What smtp-server keeps as `session.user`: the key, and how the client came to use it. */
export interface SessionUser {
  token: string;
  key: KeySession;
  /** "auth", or the trusted range the client connected from. */
  via: "auth" | { trusted: string };
}

export const SMTP_USERNAME = "resend";

/** Whether `ip` is this machine: plaintext AUTH from it never crosses a network. */
export function isLoopback(ip: string | undefined): boolean {
  if (!ip || !ipaddr.isValid(ip)) return false;
  let addr = ipaddr.parse(ip);
  if (addr.kind() === "ipv6" && (addr as ipaddr.IPv6).isIPv4MappedAddress())
    addr = (addr as ipaddr.IPv6).toIPv4Address();
  return addr.range() === "loopback";
}

/** The trusted network `ip` is in, if any. */
export function trustedNetworkOf(
  networks: TrustedNetwork[],
  ip: string | undefined,
): TrustedNetwork | undefined {
  return networks.find((n) => ipAllowed(ip, [n.range]));
}

/** A policy refusal from the API's checks, as the SMTP reply that names it. */
function policyReply(err: unknown): SmtpReplyError {
  if (err instanceof SmtpReplyError) return err;
  if (err instanceof RelayError) {
    if (err.status === 413) return new SmtpReplyError(552, "5.3.4", err.message);
    return new SmtpReplyError(550, "5.7.1", err.message);
  }
  throw err;
}

/**
 * The key for `token` as the relay sees it from `ip`: its allowed_ips checked against the SMTP
 * client (a relay over the network sees this process's address instead, so the listener checks
 * the client itself too, with the API's function).
 */
export async function authorize(
  relay: RelayFetch,
  token: string,
  ip: string | undefined,
): Promise<KeySession> {
  const key = await keySession(relay, token, ip);
  try {
    checkClient(key.policy, ip);
  } catch (err) {
    if (err instanceof RelayError)
      throw new SmtpReplyError(535, "5.7.8", `Authentication credentials invalid: ${err.message}`);
    throw err;
  }
  return key;
}

export interface AuthInput {
  method: string;
  username: string | undefined;
  password: string | undefined;
  secure: boolean;
  ip: string | undefined;
  now: number;
}

/** AUTH PLAIN or LOGIN: the user `resend` and an API key, after TLS unless on loopback. */
export async function authenticateClient(
  relay: RelayFetch,
  lockout: AuthLockout,
  input: AuthInput,
): Promise<SessionUser> {
  if (!input.secure && !isLoopback(input.ip))
    throw new SmtpReplyError(538, "5.7.11", "Encryption required: send STARTTLS first");
  const locked = lockout.lockedFor(input.ip, input.now);
  if (locked > 0)
    throw new SmtpReplyError(
      421,
      "4.7.0",
      `Too many failed authentications from this network; try again in ${locked} s`,
    );
  const fail = (text: string) => {
    lockout.fail(input.ip, input.now);
    return new SmtpReplyError(535, "5.7.8", text);
  };
  if ((input.username ?? "").toLowerCase() !== SMTP_USERNAME)
    throw fail(
      `Authentication credentials invalid: the username is "${SMTP_USERNAME}" and the password an API key`,
    );
  if (!input.password) throw fail("Authentication credentials invalid: no API key given");
  try {
    const key = await authorize(relay, input.password, input.ip);
    return { token: input.password, key, via: "auth" };
  } catch (err) {
    if (err instanceof SmtpReplyError && err.responseCode === 535) {
      lockout.fail(input.ip, input.now);
    }
    throw err;
  }
}

/** MAIL FROM: the sender against the key's policy, and SIZE against the key's limit. */
export function checkSender(
  user: SessionUser,
  from: string,
  declaredSize: number | undefined,
  messagesSoFar: number,
): void {
  if (messagesSoFar >= MAX_MESSAGES_PER_SESSION)
    throw new SmtpReplyError(
      421,
      "4.7.0",
      `At most ${MAX_MESSAGES_PER_SESSION} messages per session; connect again for more`,
    );
  const limit = Math.min(
    user.key.maxMessageBytes,
    user.key.policy?.max_message_bytes ?? Number.POSITIVE_INFINITY,
  );
  if (declaredSize !== undefined && declaredSize > limit)
    throw new SmtpReplyError(
      552,
      "5.3.4",
      `The message is ${declaredSize} bytes, over this key's limit of ${limit}`,
    );
  // The null sender (bounces) has no address a policy could allow.
  if (from === "") throw new SmtpReplyError(550, "5.7.1", "from: a sender address is required");
  try {
    checkMessage(user.key.policy, {
      message: { envelope: { from, to: [] } },
      headerFrom: [],
      storedBytes: 0,
    });
  } catch (err) {
    throw policyReply(err);
  }
}

/** RCPT TO: this recipient alone, so a refusal leaves the others standing. */
export function checkRecipient(
  user: SessionUser,
  from: string,
  to: string,
  recipientsSoFar: number,
): void {
  const max = Math.min(MAX_RECIPIENTS, user.key.maxRecipients);
  if (recipientsSoFar >= max)
    throw new SmtpReplyError(
      452,
      "4.5.3",
      `Too many recipients: at most ${max} per message, send the rest in another`,
    );
  try {
    checkMessage(user.key.policy, {
      message: { envelope: { from, to: [to] } },
      headerFrom: [],
      storedBytes: 0,
    });
  } catch (err) {
    throw policyReply(err);
  }
}

/**
 * The trace field RFC 5321 section 4.4 asks of a server that accepts a message: who handed it
 * over, to whom, how and when. `with` is the protocol as RFC 3848 names it (ESMTPSA: ESMTP with
 * TLS and AUTH).
 */
export function receivedHeader(o: {
  clientName: string | undefined;
  clientIp: string | undefined;
  serverName: string;
  protocol: string;
  id: string;
  now: number;
}): string {
  const name = (o.clientName ?? "unknown").replace(/[^A-Za-z0-9.:[\]-]/g, "");
  const date = new Date(o.now).toUTCString().replace("GMT", "+0000");
  return `Received: from ${name || "unknown"} ([${o.clientIp ?? "unknown"}])\r\n\tby ${o.serverName} with ${o.protocol} id ${o.id.replace(/[^A-Za-z0-9]/g, "")};\r\n\t${date}\r\n`;
}
