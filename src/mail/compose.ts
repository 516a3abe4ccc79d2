/**
 * Turns a JSON send request into the message the queue stores: the envelope, the complete raw
 * RFC 5322 message (composed once, here, by nodemailer's MailComposer, so Message-ID and Date are
 * fixed at acceptance and every retry sends the same bytes) and the fields `GET /emails/:id` shows.
 * Bcc recipients go into the envelope only: no header anywhere lists them.
 */
// Explicit, so the core names no Node global (Workers give node:buffer under nodejs_compat).
import { Buffer } from "node:buffer";
import MailComposer from "nodemailer/lib/mail-composer";
import type { SendEmailRequest } from "../api/schemas.ts";
import { TooLargeError, ValidationError } from "../errors.ts";
import type { QueuedMessage } from "../store/types.ts";
import {
  domainOf,
  envelopeAddress,
  formatMailbox,
  hasControlCharacters,
  parseMailboxes,
  parseMailboxList,
  uniqueAddresses,
} from "./address.ts";
import { bytesToLatin1 } from "./bytes.ts";

export interface ComposeLimits {
  maxMessageBytes: number;
  maxRecipients: number;
  /** The smart host takes non-ASCII local parts (SMTPUTF8). */
  smtpUtf8?: boolean;
}

export interface Composed {
  message: QueuedMessage;
  raw: string;
}

// Headers the relay writes itself from the request fields; a custom header may not replace them,
// or it could add recipients the envelope does not know about or break the MIME structure.
const STRUCTURAL_HEADERS = new Set([
  "from",
  "to",
  "cc",
  "bcc",
  "reply-to",
  "subject",
  "date",
  "sender",
  "content-type",
  "content-transfer-encoding",
  "mime-version",
  "message-id",
  "return-path",
]);
const HEADER_NAME = /^[!-9;-~]+$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function decodeBase64(value: string, field: string): Uint8Array {
  const compact = value.replace(/[\r\n\t ]/g, "");
  if (!BASE64.test(compact)) throw new ValidationError("is not valid base64", field);
  const binary = atob(compact);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

export async function composeMessage(
  req: SendEmailRequest,
  ctx: { id: string; keyId: string; now: number; limits: ComposeLimits },
): Promise<Composed> {
  const fromList = parseMailboxes(req.from, "from");
  const from = fromList[0];
  if (fromList.length !== 1 || !from)
    throw new ValidationError("must be exactly one address", "from");
  const to = parseMailboxList(req.to, "to");
  const cc = parseMailboxList(req.cc, "cc");
  const bcc = parseMailboxList(req.bcc, "bcc");
  const replyTo = parseMailboxList(req.reply_to, "reply_to");
  if (to.length === 0) throw new ValidationError("must list at least one recipient", "to");
  const utf8 = ctx.limits.smtpUtf8 ?? false;
  const recipients = uniqueAddresses(
    [
      ...to.map((m, i) => [m, `to[${i}]`] as const),
      ...cc.map((m, i) => [m, `cc[${i}]`] as const),
      ...bcc.map((m, i) => [m, `bcc[${i}]`] as const),
    ].map(([m, field]) => envelopeAddress(m.address, utf8, field)),
  );
  const envelopeFrom = envelopeAddress(from.address, utf8, "from");
  if (recipients.length > ctx.limits.maxRecipients) {
    throw new ValidationError(
      `too many recipients: ${recipients.length} (to + cc + bcc may list at most ${ctx.limits.maxRecipients})`,
      "to",
    );
  }
  if (req.html === undefined && req.text === undefined) {
    throw new ValidationError("give html or text (or both)", "html");
  }

  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers ?? {})) {
    const field = `headers.${name}`;
    if (!HEADER_NAME.test(name)) throw new ValidationError("is not a valid header name", field);
    if (hasControlCharacters(value)) {
      throw new ValidationError("must not contain line breaks or control characters", field);
    }
    if (STRUCTURAL_HEADERS.has(name.toLowerCase())) {
      throw new ValidationError(
        "is set by the relay from the request fields and cannot be overridden",
        field,
      );
    }
    headers[name] = value;
  }

  const attachments = (req.attachments ?? []).map((a, i) => {
    const field = `attachments[${i}]`;
    if (a.path !== undefined) {
      throw new ValidationError(
        "remote attachments are not supported: send the file as base64 in content",
        `${field}.path`,
      );
    }
    if (a.content === undefined) throw new ValidationError("is required", `${field}.content`);
    const content = decodeBase64(a.content, `${field}.content`);
    if (content.byteLength > ctx.limits.maxMessageBytes) {
      throw new TooLargeError(
        `${field}.content: attachment is larger than the message limit of ${ctx.limits.maxMessageBytes} bytes`,
      );
    }
    return {
      filename: a.filename ?? (false as const),
      content: Buffer.from(content),
      ...(a.content_type ? { contentType: a.content_type } : {}),
      ...(a.content_id ? { cid: a.content_id } : {}),
    };
  });

  const messageId = `<${ctx.id}@${domainOf(from.address)}>`;
  const composer = new MailComposer({
    from: formatMailbox(from),
    to: to.map(formatMailbox),
    ...(cc.length ? { cc: cc.map(formatMailbox) } : {}),
    ...(replyTo.length ? { replyTo: replyTo.map(formatMailbox) } : {}),
    subject: req.subject,
    ...(req.text !== undefined ? { text: req.text } : {}),
    ...(req.html !== undefined ? { html: req.html } : {}),
    headers,
    attachments,
    messageId,
    date: new Date(ctx.now),
    // Never read local files or fetch URLs named in a request.
    disableFileAccess: true,
    disableUrlAccess: true,
  });
  const built = await composer.compile().build();
  if (built.byteLength > ctx.limits.maxMessageBytes) {
    throw new TooLargeError(
      `the composed message is ${built.byteLength} bytes, over the limit of ${ctx.limits.maxMessageBytes}`,
    );
  }

  return {
    raw: bytesToLatin1(built),
    message: {
      id: ctx.id,
      keyId: ctx.keyId,
      createdAt: ctx.now,
      messageId,
      envelope: { from: envelopeFrom, to: recipients },
      view: {
        from: formatMailbox(from),
        to: to.map(formatMailbox),
        cc: cc.map(formatMailbox),
        bcc: bcc.map(formatMailbox),
        reply_to: replyTo.map(formatMailbox),
        subject: req.subject,
        tags: req.tags ?? [],
      },
    },
  };
}
