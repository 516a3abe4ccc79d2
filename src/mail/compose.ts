/**
 * Turns a JSON send request into the message the queue stores: the envelope, the complete raw
 * RFC 5322 message (composed once, here, by nodemailer's MailComposer, so Message-ID and Date are
 * fixed at acceptance and every retry sends the same bytes) and the fields `GET /emails/:id` shows.
 * Bcc recipients go into the envelope only: no header anywhere lists them.
 */
// Explicit, so the core names no Node global (Workers give node:buffer under nodejs_compat).
import { Buffer } from "node:buffer";
import MailComposer from "nodemailer/lib/mail-composer";
import { StoredSizeError, TooLargeError, ValidationError } from "../errors.ts";
import type { QueuedMessage } from "../store/types.ts";
import {
  checkHeaderText,
  domainOf,
  envelopeAddress,
  formatMailbox,
  parseMailboxes,
  parseMailboxList,
  uniqueAddresses,
} from "./address.ts";
import { bytesToLatin1, storedSize } from "./bytes.ts";
import type { SendEmailRequest } from "./request.ts";

export interface ComposeLimits {
  maxMessageBytes: number;
  maxRecipients: number;
  /** The smart host takes non-ASCII local parts (SMTPUTF8). */
  smtpUtf8?: boolean;
}

export interface Composed {
  message: QueuedMessage;
  raw: string;
  /** Addresses in the From header recipients see (policies check these as well as MAIL FROM). */
  headerFrom: string[];
  /** The size as stored (storedSize): what every message size limit counts. */
  storedBytes: number;
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
  // Resent-* fields (RFC 5322 3.6.6) name recipients too; a Resent-Bcc would show its list.
  "resent-from",
  "resent-sender",
  "resent-to",
  "resent-cc",
  "resent-bcc",
  "resent-date",
  "resent-message-id",
]);
/** A header line may not exceed 998 octets (RFC 5322 2.1.1); unbreakable values cannot be folded. */
const MAX_HEADER_LINE = 998;
/** type/subtype with simple parameters (text/plain; charset=utf-8). */
const MEDIA_TYPE =
  /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}(\s*;\s*[A-Za-z0-9_.-]+=("[^"\\]*"|[A-Za-z0-9_.+-]+))*$/;
/** A leaf attachment must stay a leaf: a multipart or message type (or a boundary) would let it
 * carry parts of its own. */
const CONTAINER_TYPE = /^\s*(multipart|message)\/|;\s*boundary\s*=/i;
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

/** Checks one custom header: a valid name, no controls, foldable, not one the relay writes. */
function checkCustomHeader(name: string, value: string): void {
  const field = `headers.${name}`;
  if (!HEADER_NAME.test(name) || name.length > 76) {
    throw new ValidationError(
      "is not a valid header name (printable ASCII, no colon, at most 76)",
      field,
    );
  }
  checkHeaderText(value, field);
  // Folding happens at white space, so only an unbreakable run can make a line too long.
  const longestRun = Math.max(0, ...value.split(/[ \t]+/).map((w) => w.length));
  if (name.length + 2 + longestRun > MAX_HEADER_LINE) {
    throw new ValidationError(
      `has a run without white space too long to fold into a ${MAX_HEADER_LINE}-octet header line`,
      field,
    );
  }
  if (STRUCTURAL_HEADERS.has(name.toLowerCase())) {
    throw new ValidationError(
      "is set by the relay from the request fields and cannot be overridden",
      field,
    );
  }
}

function customHeaders(given: SendEmailRequest["headers"]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(given ?? {})) {
    checkCustomHeader(name, value);
    headers[name] = value;
  }
  return headers;
}

type Attachment = NonNullable<SendEmailRequest["attachments"]>[number];

/** One attachment as MailComposer takes it, checked and decoded; `field` names it in errors. */
function attachmentOf(a: Attachment, field: string, maxMessageBytes: number) {
  if (a.path !== undefined) {
    throw new ValidationError(
      "remote attachments are not supported: send the file as base64 in content",
      `${field}.path`,
    );
  }
  if (a.content === undefined) throw new ValidationError("is required", `${field}.content`);
  if (a.filename !== undefined) checkHeaderText(a.filename, `${field}.filename`, { bidi: false });
  if (a.content_id !== undefined) checkHeaderText(a.content_id, `${field}.content_id`);
  if (
    a.content_type !== undefined &&
    (!MEDIA_TYPE.test(a.content_type) || CONTAINER_TYPE.test(a.content_type))
  ) {
    throw new ValidationError(
      "must be a single-part media type such as application/pdf or text/plain; charset=utf-8",
      `${field}.content_type`,
    );
  }
  const content = decodeBase64(a.content, `${field}.content`);
  if (content.byteLength > maxMessageBytes) {
    throw new TooLargeError(
      `${field}.content: attachment is larger than the message limit of ${maxMessageBytes} bytes`,
    );
  }
  return {
    filename: a.filename ?? (false as const),
    content: Buffer.from(content),
    ...(a.content_type ? { contentType: a.content_type } : {}),
    ...(a.content_id ? { cid: a.content_id } : {}),
  };
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

  checkHeaderText(req.subject, "subject", { tab: true });
  const headers = customHeaders(req.headers);

  const attachments = (req.attachments ?? []).map((a, i) =>
    attachmentOf(a, `attachments[${i}]`, ctx.limits.maxMessageBytes),
  );

  // The envelope form of the domain: punycode, as a header must be ASCII without SMTPUTF8.
  const messageId = `<${ctx.id}@${domainOf(envelopeFrom)}>`;
  const composer = new MailComposer({
    // Objects, not "Name <address>" strings: MailComposer then quotes and encodes the name itself
    // and never parses it again, so a name like "Boss <boss@bank.example>" stays a name.
    from: from,
    to: to,
    ...(cc.length ? { cc } : {}),
    ...(replyTo.length ? { replyTo } : {}),
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
  const raw = bytesToLatin1(built);
  // MailComposer writes 7-bit only (it encodes 8-bit text and attachments), so this differs from
  // the octet count by the line ends and quotes alone.
  const storedBytes = storedSize(raw);
  if (storedBytes > ctx.limits.maxMessageBytes) {
    throw new StoredSizeError("the composed message", storedBytes, ctx.limits.maxMessageBytes);
  }

  return {
    raw,
    storedBytes,
    headerFrom: [envelopeFrom],
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
