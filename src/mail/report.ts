/**
 * Reads the reports that come back to the VERP return path (src/mail/verp.ts), with postal-mime:
 * - RFC 3464 delivery status notifications: `multipart/report; report-type=delivery-status`,
 *   whose `message/delivery-status` part (RFC 6533's `message/global-delivery-status` too) holds
 *   one block of fields for the message and one per recipient (Final-Recipient, Action, Status,
 *   Diagnostic-Code);
 * - RFC 5965 (ARF) feedback reports: a `message/feedback-report` part (Feedback-Type,
 *   Original-Rcpt-To, ...), which is what a mailbox provider's feedback loop sends when a
 *   recipient marks the message as spam.
 * postal-mime gives both report parts as attachments (its mimeType, the body as text): the
 * fields are read from there, and only from there, never from the human-readable part.
 */
import PostalMime from "postal-mime";
import type { SmtpReply } from "../store/types.ts";

/** One recipient's block of a DSN, as the reporting MTA wrote it. */
export interface DsnRecipient {
  /** Final-Recipient's address, lowercased, without the address type. */
  address: string;
  /** RFC 3464's actions: failed, delayed, delivered, relayed, expanded. */
  action: string;
  /** The remote reply: Status as the enhanced code, Diagnostic-Code's text (its SMTP code). */
  reply: SmtpReply;
}

export type BounceReport =
  | { kind: "dsn"; recipients: DsnRecipient[] }
  | {
      kind: "complaint";
      /** abuse, fraud, virus, other, ... (RFC 5965 section 7.3); lowercased. */
      feedbackType: string;
      /** Original-Rcpt-To, lowercased; often absent (providers redact it). */
      recipients: string[];
      userAgent: string | null;
    };

export type ReportParse =
  | { ok: true; report: BounceReport }
  /** postal-mime could not read it, or a report part is not made of header fields. */
  | { ok: false; reason: "malformed"; detail: string }
  /** A message, but neither a DSN nor a feedback report (an auto-reply, spam, a person). */
  | { ok: false; reason: "not_report" };

/** Nesting and header limits for mail from anyone: a report is small and shallow. */
const MAX_DEPTH = 10;
const MAX_HEADERS = 64 * 1024;

/** Splits a block of header fields into (lowercased name, unfolded value) pairs. */
function fields(block: string): [string, string][] | null {
  const out: [string, string][] = [];
  for (const line of block.split(/\r?\n/)) {
    if (line === "") continue;
    if (/^[ \t]/.test(line)) {
      const last = out.at(-1);
      if (!last) return null;
      last[1] += ` ${line.trim()}`;
      continue;
    }
    const m = /^([!-9;-~]+):[ \t]*(.*)$/.exec(line);
    if (!m) return null;
    out.push([(m[1] as string).toLowerCase(), (m[2] as string).trim()]);
  }
  return out;
}

/** Blocks separated by blank lines (the per-message block first). */
function blocks(text: string): string[] {
  return text
    .replace(/\r\n/g, "\n")
    .split(/\n[ \t]*\n/)
    .map((b) => b.trim())
    .filter((b) => b !== "");
}

/** "rfc822; Bob@Example.net" or "<bob@example.net>": the bare address, lowercased. */
function typedAddress(value: string): string {
  const semi = value.indexOf(";");
  const addr = (semi >= 0 ? value.slice(semi + 1) : value).trim();
  return addr.replace(/^<|>$/g, "").trim().toLowerCase();
}

/** The reply a DSN recipient block describes, from Status and Diagnostic-Code. */
function dsnReply(status: string, diagnostic: string | undefined): SmtpReply {
  const enhanced = /^\d\.\d{1,3}\.\d{1,3}/.exec(status)?.[0];
  // Diagnostic-Code is "<type>; <text>": for type smtp the text is the remote server's reply.
  const semi = diagnostic?.indexOf(";") ?? -1;
  const text = (diagnostic && semi >= 0 ? diagnostic.slice(semi + 1) : (diagnostic ?? "")).trim();
  const code = /^([2-5]\d\d)[ -]/.exec(`${text} `)?.[1];
  return {
    code: code ? Number(code) : null,
    ...(enhanced ? { enhanced } : {}),
    text: text || status,
  };
}

function parseDsn(body: string): ReportParse {
  const [, ...perRecipient] = blocks(body);
  const recipients: DsnRecipient[] = [];
  for (const block of perRecipient) {
    const f = fields(block);
    if (!f) return { ok: false, reason: "malformed", detail: "a delivery-status field is broken" };
    const get = (name: string) => f.find(([n]) => n === name)?.[1];
    const final = get("final-recipient");
    const action = get("action")?.toLowerCase();
    const status = get("status");
    if (!final || !action || !status)
      return {
        ok: false,
        reason: "malformed",
        detail: "a recipient block lacks Final-Recipient, Action or Status",
      };
    recipients.push({
      address: typedAddress(final),
      action: action.split(/[\s(]/)[0] as string,
      reply: dsnReply(status, get("diagnostic-code")),
    });
  }
  if (recipients.length === 0)
    return { ok: false, reason: "malformed", detail: "the delivery status names no recipient" };
  return { ok: true, report: { kind: "dsn", recipients } };
}

function parseFeedback(body: string): ReportParse {
  const f = fields(blocks(body).join("\n"));
  const type = f?.find(([n]) => n === "feedback-type")?.[1];
  if (!f || !type)
    return { ok: false, reason: "malformed", detail: "the feedback report has no Feedback-Type" };
  return {
    ok: true,
    report: {
      kind: "complaint",
      feedbackType: type.toLowerCase().split(/[\s;]/)[0] as string,
      recipients: f.filter(([n]) => n === "original-rcpt-to").map(([, v]) => typedAddress(v)),
      userAgent: f.find(([n]) => n === "user-agent")?.[1] ?? null,
    },
  };
}

const DSN_TYPES = new Set(["message/delivery-status", "message/global-delivery-status"]);

/** What a message that came back to the return path reports, if anything. */
export async function parseReport(bytes: Uint8Array): Promise<ReportParse> {
  let parsed: Awaited<ReturnType<typeof PostalMime.parse>>;
  try {
    parsed = await PostalMime.parse(bytes, {
      attachmentEncoding: "utf8",
      maxNestingDepth: MAX_DEPTH,
      maxHeadersSize: MAX_HEADERS,
    });
  } catch (err) {
    return { ok: false, reason: "malformed", detail: String((err as Error).message ?? err) };
  }
  if (parsed.headers.length === 0)
    return { ok: false, reason: "malformed", detail: "no header fields" };
  for (const a of parsed.attachments) {
    const type = a.mimeType.toLowerCase();
    const body = typeof a.content === "string" ? a.content : new TextDecoder().decode(a.content);
    if (DSN_TYPES.has(type)) return parseDsn(body);
    if (type === "message/feedback-report") return parseFeedback(body);
  }
  return { ok: false, reason: "not_report" };
}
