/**
 * Mailbox parsing for the JSON API. Display-name syntax is parsed by nodemailer's addressparser
 * (it knows quoting, comments and groups); what a mailbox may contain is checked here, because
 * an address becomes an SMTP command argument and must not be able to carry anything else.
 */
import addressparser from "nodemailer/lib/addressparser";
import { ValidationError } from "../errors.ts";

export interface Mailbox {
  name: string;
  address: string;
}

// A pragmatic RFC 5321 mailbox: dot-atom local part (no quoted strings, which smart hosts
// handle inconsistently) and a domain of LDH labels or an address literal. UTF-8 is allowed in
// both parts for SMTPUTF8 upstreams; control characters, spaces and angle brackets never are.
const LOCAL = /^[\p{L}\p{N}!#$%&'*+/=?^_`{|}~-]+(\.[\p{L}\p{N}!#$%&'*+/=?^_`{|}~-]+)*$/u;
const DOMAIN =
  /^([\p{L}\p{N}]([\p{L}\p{N}-]{0,61}[\p{L}\p{N}])?)(\.[\p{L}\p{N}]([\p{L}\p{N}-]{0,61}[\p{L}\p{N}])?)+$|^\[[0-9A-Fa-f:.]+\]$/u;
// C0 and C1 controls, DEL, and the Unicode line/paragraph separators.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

export function isMailboxAddress(address: string): boolean {
  if (address.length > 254) return false;
  const at = address.lastIndexOf("@");
  if (at < 1) return false;
  const local = address.slice(0, at);
  const domain = address.slice(at + 1);
  return local.length <= 64 && LOCAL.test(local) && DOMAIN.test(domain);
}

// Bidirectional overrides and isolates: in a display name they can make "moc.knab@evil" read as
// something else, so mailbox fields refuse them.
const BIDI = /[\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

/**
 * The address as it goes into the SMTP envelope: an internationalised domain becomes its ASCII
 * (punycode) form, which every server accepts; a non-ASCII local part needs SMTPUTF8 upstream, so
 * it is refused unless the operator says the smart host has it (SMTP_UTF8=true).
 */
export function envelopeAddress(address: string, smtpUtf8: boolean, field: string): string {
  const at = address.lastIndexOf("@");
  const local = address.slice(0, at);
  let domain = address.slice(at + 1);
  if (/[^\x00-\x7f]/.test(domain)) {
    try {
      domain = new URL(`http://${domain}/`).hostname;
    } catch {
      throw new ValidationError(
        `${JSON.stringify(address)} has a domain that is not a valid host name`,
        field,
      );
    }
  }
  if (/[^\x00-\x7f]/.test(local) && !smtpUtf8) {
    throw new ValidationError(
      `${JSON.stringify(address)} has a non-ASCII local part, which needs SMTPUTF8 upstream (the relay's SMTP_UTF8 setting is off)`,
      field,
    );
  }
  return `${local}@${domain}`;
}

export function hasControlCharacters(value: string): boolean {
  return CONTROL.test(value);
}

/** Parses one field entry ("Name <a@example.com>" or "a@example.com") into mailboxes. */
export function parseMailboxes(value: string, field: string): Mailbox[] {
  if (hasControlCharacters(value)) {
    throw new ValidationError("must not contain control characters (CR, LF, NUL, ...)", field);
  }
  if (BIDI.test(value)) {
    throw new ValidationError("must not contain bidirectional control characters", field);
  }
  const parsed = addressparser(value, { flatten: true });
  if (parsed.length === 0)
    throw new ValidationError(`${JSON.stringify(value)} is not an email address`, field);
  return parsed.map((m) => {
    const address = m.address.trim();
    if (!isMailboxAddress(address)) {
      throw new ValidationError(`${JSON.stringify(value)} is not a valid email address`, field);
    }
    return { name: m.name, address };
  });
}

/** Parses a field given as one string or a list of strings. */
export function parseMailboxList(value: string | string[] | undefined, field: string): Mailbox[] {
  if (value === undefined) return [];
  const items = Array.isArray(value) ? value : [value];
  return items.flatMap((item, i) =>
    parseMailboxes(item, Array.isArray(value) ? `${field}[${i}]` : field),
  );
}

export function formatMailbox(m: Mailbox): string {
  return m.name ? `${m.name} <${m.address}>` : m.address;
}

/** Addresses compare case-insensitively in the domain; we also fold the local part, as MTAs do
 * for deduplication, so one recipient never receives two copies of the same message. */
export function uniqueAddresses(addresses: string[]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const a of addresses) {
    const key = a.toLowerCase();
    if (!seen.has(key)) {
      seen.add(key);
      out.push(a);
    }
  }
  return out;
}

export function domainOf(address: string): string {
  return address.slice(address.lastIndexOf("@") + 1);
}
