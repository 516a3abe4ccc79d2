/**
 * SMTP transport on nodemailer's pooled SMTP client (it runs on Workers under nodejs_compat and on
 * Deno through node:net/node:tls). The pool keeps connections open across the messages of a
 * delivery run and caps how many are open at once.
 */
// Explicit, so the core names no Node global (Workers give node:buffer under nodejs_compat).
import { Buffer } from "node:buffer";
import nodemailer from "nodemailer";
import type { NodemailerError } from "nodemailer/lib/errors";
import { DATA_TIMEOUT_OPTION, installDataTimeout } from "./nodemailer-data-timeout.ts";
import {
  classifyCode,
  type Envelope,
  parseReply,
  type RecipientOutcome,
  type SmtpTransport,
} from "./transport.ts";
import type { SmtpTarget } from "./url.ts";

export interface NodemailerOptions {
  target: SmtpTarget;
  ehloName: string;
  timeoutMs: number;
  /** The wait for the reply to the final "." of DATA (at least timeoutMs; default timeoutMs). */
  dataTimeoutMs?: number | undefined;
  maxConnections: number;
  /** Force an AUTH mechanism; by default the first the server offers that nodemailer knows. */
  authMethod?: "PLAIN" | "LOGIN" | undefined;
}

/**
 * An envelope address must be a bare mailbox: nodemailer re-parses addresses, so one carrying a
 * line break could turn into another recipient. The relay refuses such addresses when it accepts a
 * message; this is the transport's own guard.
 */
const UNSAFE_ADDRESS = /[\u0000-\u0020\u007f<>]/;

export function createNodemailerTransport(options: NodemailerOptions): SmtpTransport {
  const { target } = options;
  const dataTimeoutMs = Math.max(options.dataTimeoutMs ?? options.timeoutMs, options.timeoutMs);
  installDataTimeout();
  const transporter = nodemailer.createTransport({
    pool: true,
    maxConnections: options.maxConnections,
    maxMessages: 100,
    host: target.host,
    port: target.port,
    secure: target.security === "implicit",
    // smtp:// means STARTTLS or nothing: never fall back to plain text when it is missing.
    requireTLS: target.security === "starttls",
    ignoreTLS: target.security === "none",
    name: options.ehloName,
    ...(target.auth ? { auth: { user: target.auth.user, pass: target.auth.pass } } : {}),
    ...(options.authMethod ? { authMethod: options.authMethod } : {}),
    // Connecting and the greeting share one SMTP_TIMEOUT_SECONDS (see sendWindowMs in config.ts).
    connectionTimeout: Math.min(options.timeoutMs / 2, 15_000),
    greetingTimeout: Math.min(options.timeoutMs / 2, 15_000),
    socketTimeout: options.timeoutMs,
    // Only the reply to the final dot waits this long (see nodemailer-data-timeout.ts); not a
    // nodemailer option, so it is typed out of its way.
    ...({ [DATA_TIMEOUT_OPTION]: dataTimeoutMs } as object),
    // A sandbox for message content, not for connecting: given a part as `{ path }` nodemailer
    // reads that file, and as `{ href }` (or an http(s) path) it fetches that URL. The relay hands
    // over raw bytes only, so neither may ever happen. Set on the transport, not per message, they
    // bind every message, and no message data can switch them off again.
    disableFileAccess: true,
    disableUrlAccess: true,
  });

  return {
    async send(original: Envelope, raw: Uint8Array): Promise<RecipientOutcome[]> {
      const refused = (address: string): RecipientOutcome => ({
        address,
        status: "permanent",
        reply: {
          code: null,
          text: "refused by the relay: the address holds a control character, space or angle bracket",
        },
      });
      if (UNSAFE_ADDRESS.test(original.from)) return original.to.map(refused);
      // An empty recipient would fail the whole send (nodemailer's EENVELOPE), the others too.
      const safe = original.to.filter((a) => a !== "" && !UNSAFE_ADDRESS.test(a));
      if (safe.length < original.to.length) {
        const sent = safe.length ? await this.send({ from: original.from, to: safe }, raw) : [];
        return original.to.map((a) => sent.find((o) => o.address === a) ?? refused(a));
      }
      const envelope = original;
      try {
        const info = await transporter.sendMail({
          envelope: { from: envelope.from, to: envelope.to },
          raw: Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength),
        });
        const accepted = parseReply(info.response, null);
        const rejectedErrors =
          (info as { rejectedErrors?: NodemailerError[] }).rejectedErrors ?? [];
        return envelope.to.map((address) => {
          const err = rejectedErrors.find((e) => sameAddress(e.recipient, address));
          if (err) return errorOutcome(address, err);
          if ((info.rejected as string[]).some((r) => sameAddress(r, address))) {
            return {
              address,
              status: "temporary",
              reply: { code: null, text: "rejected without a reply" },
            };
          }
          return { address, status: "accepted", reply: accepted };
        });
      } catch (e) {
        const err = e as NodemailerError;
        // All recipients rejected: nodemailer fails the whole send but keeps each reply.
        const perRecipient = err.rejectedErrors ?? [];
        return envelope.to.map((address) => {
          const own = perRecipient.find((r) => sameAddress(r.recipient, address));
          return errorOutcome(address, own ?? err);
        });
      }
    },
    async close(): Promise<void> {
      transporter.close();
    },
  };
}

/** Failures of the session rather than of the message: always worth another attempt. */
const SESSION_ERRORS = new Set([
  "EAUTH",
  "ETLS",
  "ECONNECTION",
  "ESOCKET",
  "ETIMEDOUT",
  "EDNS",
  "EPROTOCOL",
]);

/**
 * nodemailer 10's error codes that come without a server reply (lib/errors, lib/smtp-connection,
 * lib/smtp-pool, lib/mailer) and can never succeed for the same message, so they are permanent
 * instead of being retried for MAX_QUEUE_AGE_HOURS:
 * - EENVELOPE without a reply: "No recipients defined", "Invalid sender", "Invalid recipient",
 *   "Invalid DSN", found before anything is sent (with a reply it is a MAIL/RCPT/DATA refusal,
 *   classified by its code);
 * - EMESSAGE without a reply: "Empty message", or larger than the SIZE the server announced;
 * - EMAXRECIPIENTS: more recipients than the transport's maxRecipients;
 * - EFILEACCESS, EURLACCESS: the message refers to a file or URL (disabled here).
 * Every other code without a reply is temporary: the session or the configuration (ECONNECTION,
 * ESOCKET, ETIMEDOUT, EDNS, ETLS, EREQUIRETLS, EPROTOCOL, EAUTH, ENOAUTH, EOAUTH2, EPROXY,
 * ECONFIG), nodemailer's own pool (EMAXLIMIT) or stream (ESTREAM), or a send the relay aborted
 * (EABORT); fixing the smart host or the settings then delivers the backlog. ESENDMAIL, ESES,
 * EFETCH and EOTP belong to parts the relay does not use.
 */
const HOPELESS_WITHOUT_REPLY = new Set([
  "EENVELOPE",
  "EMESSAGE",
  "EMAXRECIPIENTS",
  "EFILEACCESS",
  "EURLACCESS",
]);

function sameAddress(a: string | undefined, b: string): boolean {
  return a !== undefined && a.toLowerCase() === b.toLowerCase();
}

/** The outcome for `address` of a nodemailer error (exported for the classification tests). */
export function errorOutcome(address: string, err: NodemailerError): RecipientOutcome {
  const code = typeof err.responseCode === "number" ? err.responseCode : null;
  const reply =
    code === null
      ? { code: null, text: describeNetworkError(err) }
      : parseReply(err.response ?? err.message, code);
  // A refused login or a smart host without the TLS we require is the operator's configuration,
  // not a verdict on the message: keep it queued, as Postfix does (smtp_sasl_auth_soft_bounce, and
  // deferring when TLS is required but not offered), so fixing the setting delivers the backlog.
  const status = SESSION_ERRORS.has(err.code ?? "")
    ? "temporary"
    : code === null && HOPELESS_WITHOUT_REPLY.has(err.code ?? "")
      ? "permanent"
      : classifyCode(code, err.command === "RCPT TO" ? "rcpt" : "other");
  return { address, status, reply };
}

function describeNetworkError(err: NodemailerError): string {
  const parts = [err.code, err.originalCode, err.message].filter(Boolean);
  return parts.join(": ");
}
