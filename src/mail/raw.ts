/**
 * Accepts a pre-built message (`Content-Type: message/rfc822`). postal-mime parses it to check
 * that it is a message and to read the envelope from From/To/Cc/Bcc (the request may override
 * both). The message is relayed as submitted, with three changes a submission server makes
 * (RFC 6409 section 8): line ends become CRLF, Bcc headers are removed, and a missing Message-ID
 * or Date is added, so every retry sends the same bytes.
 */
import addressparser from "nodemailer/lib/addressparser";
import PostalMime from "postal-mime";
import { MalformedBodyError, StoredSizeError, TooLargeError, ValidationError } from "../errors.ts";
import type { QueuedMessage } from "../store/types.ts";
import {
  domainOf,
  envelopeAddress,
  formatMailbox,
  isMailboxAddress,
  parseAddressList,
  parseMailboxList,
  uniqueAddresses,
} from "./address.ts";
import { bytesToLatin1, latin1ToBytes, storedSize } from "./bytes.ts";
import type { Composed, ComposeLimits } from "./compose.ts";
import { checkStructure, MAX_LINE } from "./structure.ts";

/** Deeper MIME nesting than this is refused: it serves no real message and costs parse time. */
export const MAX_MIME_DEPTH = 50;
/** Header block size limit, as in postal-mime's own default, stated here so it is documented. */
export const MAX_HEADER_BYTES = 256 * 1024;

export interface RawOverrides {
  from?: string | undefined;
  to?: string[] | undefined;
}

type Mailboxish = { address?: string | undefined; group?: { address: string }[] | undefined };
const flatten = (list: Mailboxish[] | undefined): string[] =>
  (list ?? []).flatMap((a) =>
    a.group ? a.group.map((g) => g.address) : a.address ? [a.address] : [],
  );

/** Splits at the blank line that ends the header section. */
function splitHeader(text: string): { header: string; body: string } {
  const m = /\r?\n\r?\n/.exec(text);
  if (!m) return { header: text, body: "" };
  return { header: text.slice(0, m.index), body: text.slice(m.index + m[0].length) };
}

/** Header fields, each with its folded continuation lines. */
function headerFields(header: string): string[] {
  const fields: string[] = [];
  for (const line of header.split(/\r?\n/)) {
    if (/^[ \t]/.test(line) && fields.length > 0) fields[fields.length - 1] += `\r\n${line}`;
    else if (line !== "") fields.push(line);
  }
  return fields;
}

const utf8 = new TextDecoder();

/** A header field's value, unfolded and read as UTF-8 (RFC 6532), as readers show it. */
function fieldValue(f: string): string {
  return utf8.decode(latin1ToBytes(f.slice(f.indexOf(":") + 1).replace(/\r\n/g, "")));
}

const fieldsNamed = (fields: string[], name: string) =>
  fields.filter((f) => new RegExp(`^${name}[ \\t]*:`, "i").test(f));

/**
 * Every address of the From and Sender fields, groups included. postal-mime reports only the
 * first From address, so a policy checking that alone would pass "From: allowed@example.com,
 * CEO <ceo@bank.example>". RFC 5322 3.6 allows each field once; a second one (which some readers
 * show instead of the first) is refused.
 */
function senderAddresses(fields: string[]): string[] {
  const out: string[] = [];
  for (const [name, field] of [
    ["From", "from"],
    ["Sender", "sender"],
  ] as const) {
    const found = fieldsNamed(fields, name);
    if (found.length > 1) {
      throw new ValidationError(
        `the message has ${found.length} ${name} header fields; RFC 5322 allows one`,
        field,
      );
    }
    const f = found[0];
    if (f === undefined) continue;
    const value = fieldValue(f);
    const listed = parseAddressList(value, field);
    if (listed.length === 0)
      throw new ValidationError(`the ${name} header lists no address`, field);
    // The project's address parser must read the same addresses, or one of the readings is wrong.
    const known = new Set(listed.map((a) => a.toLowerCase()));
    for (const m of addressparser(value, { flatten: true })) {
      if (!known.has(m.address.trim().toLowerCase())) {
        throw new ValidationError(
          `the ${name} header reads as ${JSON.stringify(m.address || m.name)}, which is not one of its addresses`,
          field,
        );
      }
    }
    out.push(...listed);
  }
  return out;
}

/**
 * Checks that every recipient postal-mime reads from To, Cc and Bcc is an address the strict
 * list parser finds there too, so no lenient reading becomes an envelope recipient.
 */
function checkRecipientFields(fields: string[], read: string[]): void {
  const known = new Set<string>();
  for (const f of [
    ...fieldsNamed(fields, "To"),
    ...fieldsNamed(fields, "Cc"),
    ...fieldsNamed(fields, "Bcc"),
  ]) {
    for (const a of parseAddressList(fieldValue(f), "to")) known.add(a.toLowerCase());
  }
  const stray = read.find((a) => !known.has(a.toLowerCase()));
  if (stray !== undefined) {
    throw new ValidationError(
      `the message's recipient headers read as ${JSON.stringify(stray)}, which is not one of their addresses`,
      "to",
    );
  }
}

type Parsed = Awaited<ReturnType<typeof PostalMime.parse>>;

interface RawContext {
  id: string;
  keyId: string;
  now: number;
  limits: ComposeLimits;
}

/** postal-mime's reading of `bytes`, once they are within the size limit. */
async function parseMessage(bytes: Uint8Array, limits: ComposeLimits): Promise<Parsed> {
  if (bytes.byteLength === 0) throw new MalformedBodyError("message/rfc822 body is empty");
  if (bytes.byteLength > limits.maxMessageBytes) {
    throw new TooLargeError(
      `the message is ${bytes.byteLength} bytes, over the limit of ${limits.maxMessageBytes}`,
    );
  }
  try {
    return await PostalMime.parse(bytes, {
      maxNestingDepth: MAX_MIME_DEPTH,
      maxHeadersSize: MAX_HEADER_BYTES,
    });
  } catch (err) {
    throw new ValidationError(
      `could not be parsed as a message: ${(err as Error).message}`,
      "body",
    );
  }
}

/** What the bytes themselves must be: a header first, no NUL or bare CR, lines within limits. */
function checkText(text: string, header: string): void {
  if (!/^[!-9;-~]+:/.test(header))
    throw new ValidationError("does not start with a header field", "body");
  // RFC 5322 forbids NUL and a CR not followed by LF; an SMTP client turns a bare CR into a line
  // break, which would let "Subject: x\rBcc: ..." grow a header on the way out.
  if (text.includes("\u0000")) throw new ValidationError("contains a NUL byte", "body");
  if (/\r(?!\n)/.test(text))
    throw new ValidationError("contains a CR that does not end a line", "body");
  for (const line of header.split(/\r?\n/)) {
    if (line.length > MAX_LINE)
      throw new ValidationError(`has a header line longer than ${MAX_LINE} octets`, "body");
  }
  checkStructure(text, MAX_MIME_DEPTH);
}

/** The envelope sender as ?from= gives it or the header names it, as a mailbox address. */
function senderOf(parsed: Parsed, overrides: RawOverrides): string {
  const fromAddress = overrides.from ?? parsed.from?.address ?? parsed.sender?.address;
  if (!fromAddress)
    throw new ValidationError("has no From address and none was given in ?from=", "from");
  if (!isMailboxAddress(fromAddress)) {
    throw new ValidationError(
      `${JSON.stringify(fromAddress)} is not a valid email address`,
      "from",
    );
  }
  return fromAddress;
}

/** The recipients as ?to= gives them or the headers list them, each a mailbox address. */
function recipientsOf(overrides: RawOverrides, headerRecipients: string[]): string[] {
  const listed = uniqueAddresses(
    overrides.to
      ? overrides.to.flatMap((t, i) => parseMailboxList(t, `to[${i}]`).map((m) => m.address))
      : headerRecipients,
  );
  if (listed.length === 0) {
    throw new ValidationError("the message has no To, Cc or Bcc and no ?to= was given", "to");
  }
  for (const r of listed) {
    if (!isMailboxAddress(r))
      throw new ValidationError(`${JSON.stringify(r)} is not a valid email address`, "to");
  }
  return listed;
}

/** The envelope in its SMTP form (punycode domains), within the recipient limit. */
function envelopeOf(fromAddress: string, listed: string[], limits: ComposeLimits) {
  const utf8 = limits.smtpUtf8 ?? false;
  const to = uniqueAddresses(listed.map((r) => envelopeAddress(r, utf8, "to")));
  const from = envelopeAddress(fromAddress, utf8, "from");
  if (to.length > limits.maxRecipients) {
    throw new ValidationError(
      `too many recipients: ${to.length} (at most ${limits.maxRecipients})`,
      "to",
    );
  }
  return { from, to };
}

/** Adds the Message-ID and Date a submission server adds when missing; the Message-ID. */
function completeFields(
  fields: string[],
  parsed: Parsed,
  ctx: RawContext,
  envelopeFrom: string,
): string {
  let messageId = parsed.messageId?.trim();
  if (!messageId) {
    // The envelope form of the domain: punycode, as a header must be ASCII without SMTPUTF8.
    messageId = `<${ctx.id}@${domainOf(envelopeFrom)}>`;
    fields.push(`Message-ID: ${messageId}`);
  }
  if (!fields.some((f) => /^date[ \t]*:/i.test(f))) {
    fields.push(`Date: ${new Date(ctx.now).toUTCString().replace("GMT", "+0000")}`);
  }
  return messageId;
}

function viewOf(parsed: Parsed, fromAddress: string): QueuedMessage["view"] {
  return {
    from: parsed.from?.address
      ? formatMailbox({ name: parsed.from.name, address: parsed.from.address })
      : fromAddress,
    to: flatten(parsed.to),
    cc: flatten(parsed.cc),
    bcc: flatten(parsed.bcc),
    reply_to: flatten(parsed.replyTo),
    subject: parsed.subject ?? "",
    tags: [],
  };
}

/**
 * Every sender address the header names, for the key's policy. Policies match the envelope's form
 * of an address (punycode domain); postal-mime's readings are added in case they differ from the
 * parser's.
 */
function headerFromOf(senders: string[], parsed: Parsed): string[] {
  return uniqueAddresses(
    [
      ...senders,
      ...flatten(parsed.from ? [parsed.from] : []),
      ...flatten(parsed.sender ? [parsed.sender] : []),
    ].map((a) => envelopeAddress(a, true, "from")),
  );
}

export async function acceptRawMessage(
  bytes: Uint8Array,
  overrides: RawOverrides,
  ctx: RawContext,
): Promise<Composed> {
  const parsed = await parseMessage(bytes, ctx.limits);
  const text = bytesToLatin1(bytes);
  const { header, body } = splitHeader(text);
  checkText(text, header);
  const allFields = headerFields(header);
  const fields = allFields.filter((f) => !/^(resent-)?bcc[ \t]*:/i.test(f));
  const senders = senderAddresses(fields);
  const headerRecipients = [...flatten(parsed.to), ...flatten(parsed.cc), ...flatten(parsed.bcc)];
  // With ?to= the headers name no envelope recipient, so a forwarded message's old To stays as is.
  if (!overrides.to) checkRecipientFields(allFields, headerRecipients);

  const fromAddress = senderOf(parsed, overrides);
  const envelope = envelopeOf(fromAddress, recipientsOf(overrides, headerRecipients), ctx.limits);
  const messageId = completeFields(fields, parsed, ctx, envelope.from);
  const raw = `${fields.join("\r\n")}\r\n\r\n${body.replace(/\r?\n/g, "\r\n")}`;
  const storedBytes = storedSize(raw);
  if (storedBytes > ctx.limits.maxMessageBytes) {
    throw new StoredSizeError("the message", storedBytes, ctx.limits.maxMessageBytes);
  }

  const message: QueuedMessage = {
    id: ctx.id,
    keyId: ctx.keyId,
    createdAt: ctx.now,
    messageId,
    envelope,
    view: viewOf(parsed, fromAddress),
  };
  return { message, raw, headerFrom: headerFromOf(senders, parsed), storedBytes };
}

/** The html and text parts of a stored message, for `GET /emails/:id`. */
export async function readBodies(
  raw: string,
): Promise<{ html: string | null; text: string | null }> {
  try {
    const parsed = await PostalMime.parse(latin1ToBytes(raw));
    return { html: parsed.html ?? null, text: parsed.text ?? null };
  } catch {
    return { html: null, text: null };
  }
}
