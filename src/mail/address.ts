/**
 * Mailbox parsing for the JSON API. Display-name syntax is parsed by nodemailer's addressparser
 * (it knows quoting, comments and groups); what a mailbox may contain is checked here, because
 * an address becomes an SMTP command argument and must not be able to carry anything else.
 */

import ipaddr from "ipaddr.js";
import addressparser from "nodemailer/lib/addressparser";
import { decodeWords } from "postal-mime";
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
  /^([\p{L}\p{N}]([\p{L}\p{N}-]{0,61}[\p{L}\p{N}])?)(\.[\p{L}\p{N}]([\p{L}\p{N}-]{0,61}[\p{L}\p{N}])?)+$/u;
// Address literals (RFC 5321 4.1.3): [192.0.2.1] or [IPv6:2001:db8::1], with a real address inside.
function isAddressLiteral(domain: string): boolean {
  const m = /^\[(IPv6:)?([0-9A-Fa-f:.]+)\]$/.exec(domain);
  if (!m?.[2]) return false;
  // IPv6 literals are refused: smart hosts rarely route them and no sender we serve needs them.
  return !m[1] && ipaddr.IPv4.isValidFourPartDecimal(m[2]);
}
// C0 and C1 controls, DEL, and the Unicode line/paragraph separators.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

export function isMailboxAddress(address: string): boolean {
  if (address.length > 254) return false;
  const at = address.lastIndexOf("@");
  if (at < 1) return false;
  const local = address.slice(0, at);
  const domain = address.slice(at + 1);
  return (
    local.length <= 64 && LOCAL.test(local) && (DOMAIN.test(domain) || isAddressLiteral(domain))
  );
}

// Bidirectional overrides and isolates: in a display name they can make "moc.knab@evil" read as
// something else, so mailbox fields refuse them.
const BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

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

/**
 * Checks a value that ends up in a header for control characters, also inside RFC 2047 encoded
 * words ("=?utf-8?q?a=0D=0Ab?="): a reader decodes those, so a line break hidden in one is a line
 * break all the same.
 */
export function checkHeaderText(
  value: string,
  field: string,
  options: { bidi?: boolean; tab?: boolean } = {},
): void {
  const decoded = /=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=/.test(value) ? decodeWords(value) : value;
  // A tab is white space a subject may hold (options.tab); every other control is refused.
  const controls = (text: string) =>
    hasControlCharacters(options.tab ? text.replace(/\t/g, " ") : text);
  if (controls(value) || controls(decoded)) {
    throw new ValidationError(
      "must not contain line breaks or control characters (also not encoded)",
      field,
    );
  }
  if (options.bidi === false && (BIDI.test(value) || BIDI.test(decoded))) {
    throw new ValidationError("must not contain bidirectional control characters", field);
  }
}

// What may stand unquoted in a display name: RFC 5322 atext, "." (obs-phrase, as in
// "John Q. Public") and any non-ASCII character (RFC 6532). Everything else (, ; : @ ( ) [ ] \\)
// is a special that changes how readers split the field, so such a name must be quoted.
const PHRASE_WORD = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.\u0080-\u{10ffff}]+$/u;

const ONE_ADDRESS =
  'must be one address: a@example.com, Name <a@example.com> or "Quoted, Name" <a@example.com> (quote a name that holds , ; : @ ( ) [ ] or \\; give several addresses as a list)';

type MailboxScan = { address: string } | { error: string };

function invalidAddress(value: string): { error: string } {
  return { error: `${JSON.stringify(value)} is not a valid email address` };
}

/** An entry without angle brackets: a bare address and nothing else. */
function bareMailbox(s: string, value: string): MailboxScan {
  if (isMailboxAddress(s)) return { address: s };
  return /[,;:\s()]/.test(s) ? { error: ONE_ADDRESS } : invalidAddress(value);
}

/** The index just past the quoted string opening at `i`, or -1 when it is not closed. */
function skipQuoted(s: string, i: number): number {
  let at = i + 1;
  while (at < s.length && s[at] !== '"') at += s[at] === "\\" ? 2 : 1;
  return at >= s.length ? -1 : at + 1;
}

/** The index just past the unquoted word starting at `i`. */
function wordEnd(s: string, i: number): number {
  let at = i;
  while (at < s.length && !' \t"<'.includes(s[at] ?? "")) at++;
  return at;
}

/** The index of the "<" after a display name of quoted strings and plain words, or why not. */
function displayNameEnd(s: string): number | { error: string } {
  let i = 0;
  while (i < s.length && s[i] !== "<") {
    const ch = s[i];
    if (ch === " " || ch === "\t") {
      i++;
    } else if (ch === '"') {
      i = skipQuoted(s, i);
      if (i < 0) return { error: "has a quoted name without its closing quote" };
    } else {
      const j = wordEnd(s, i);
      if (!PHRASE_WORD.test(s.slice(i, j))) return { error: ONE_ADDRESS };
      i = j;
    }
  }
  return i;
}

/**
 * The address of an entry in exactly one of the forms Resend documents: "a@b", "Name <a@b>" or
 * "\"Quoted Name\" <a@b>", or why it is not. addressparser alone is too lenient ("vic tim@b"
 * reads as tim@b named "vic"), so the structure is checked here, in one linear scan.
 */
function singleMailbox(value: string): MailboxScan {
  const s = value.trim();
  if (!s.includes("<")) return bareMailbox(s, value);
  const i = displayNameEnd(s);
  if (typeof i !== "number") return i;
  if (i >= s.length || !s.endsWith(">")) return { error: ONE_ADDRESS };
  const inner = s.slice(i + 1, -1);
  if (/[<>]/.test(inner)) return { error: ONE_ADDRESS };
  const address = inner.trim();
  if (!isMailboxAddress(address)) return invalidAddress(value);
  return { address };
}

/**
 * Parses one field entry ("Name <a@example.com>" or "a@example.com"): exactly one mailbox in the
 * forms Resend accepts. A list, a group, a comment or text around a bare address is refused, so
 * no separator smuggled into an entry can add a recipient or move the address.
 */
export function parseMailboxes(value: string, field: string): Mailbox[] {
  if (hasControlCharacters(value)) {
    throw new ValidationError("must not contain control characters (CR, LF, NUL, ...)", field);
  }
  checkHeaderText(value, field, { bidi: false });
  const one = singleMailbox(value);
  if ("error" in one) throw new ValidationError(one.error, field);
  // The display name as addressparser reads it (quotes removed, escapes resolved); the address
  // must be the one the scan found, or the two readings disagree and the entry is refused.
  const parsed = addressparser(value, { flatten: true });
  const m = parsed[0];
  if (parsed.length !== 1 || !m || m.address.trim() !== one.address) {
    throw new ValidationError(ONE_ADDRESS, field);
  }
  return [{ name: m.name, address: one.address }];
}

/** Parses a field given as one string or a list of strings. */
export function parseMailboxList(value: string | string[] | undefined, field: string): Mailbox[] {
  if (value === undefined) return [];
  const items = Array.isArray(value) ? value : [value];
  return items.flatMap((item, i) =>
    parseMailboxes(item, Array.isArray(value) ? `${field}[${i}]` : field),
  );
}

/** "Name <a@b>", with the name quoted when it holds anything but plain words (for display). */
export function formatMailbox(m: Mailbox): string {
  if (m.name && !/^[\p{L}\p{N} !#$%&'*+\-/=?^_`{|}~.]*$/u.test(m.name)) {
    return `"${m.name.replace(/["\\]/g, "\\$&")}" <${m.address}>`;
  }
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

/**
 * Splits an address list into its elements at top-level commas, one character at a time: quoted
 * strings and angle addresses kept whole, comments dropped (a space in their place), a group's
 * display name dropped and its members split like the rest.
 */
class AddressListSplitter {
  readonly elements: string[] = [];
  #current = "";
  #quoted = false;
  #angle = false;
  #comment = 0;
  #group = false;

  /** Takes the character at `i`; returns the index of the last character it consumed. */
  take(value: string, i: number): number {
    const ch = value[i] ?? "";
    if (this.#quoted) return this.#inQuotes(value, i, ch);
    if (this.#comment > 0) return this.#inComment(i, ch);
    this.#outside(ch);
    return i;
  }

  /** The elements, once every quote, comment, angle address and group is closed. */
  finish(field: string): string[] {
    if (this.#quoted || this.#angle || this.#comment > 0 || this.#group) {
      throw new ValidationError(
        "has an unclosed quote, comment, angle address or group in an address header",
        field,
      );
    }
    this.#push();
    return this.elements;
  }

  #inQuotes(value: string, i: number, ch: string): number {
    this.#current += ch;
    if (ch === "\\") {
      this.#current += value[i + 1] ?? "";
      return i + 1;
    }
    if (ch === '"') this.#quoted = false;
    return i;
  }

  #inComment(i: number, ch: string): number {
    if (ch === "\\") return i + 1;
    if (ch === "(") this.#comment++;
    else if (ch === ")") this.#comment--;
    return i;
  }

  #outside(ch: string): void {
    if (ch === "(") {
      this.#comment = 1;
      this.#current += " ";
    } else if (ch === '"') {
      this.#quoted = true;
      this.#current += ch;
    } else if (this.#angle) {
      this.#current += ch;
      if (ch === ">") this.#angle = false;
    } else if (ch === "<") {
      this.#angle = true;
      this.#current += ch;
    } else if (ch === ":" && !this.#group) {
      // A group's display name names no mailbox; its members follow.
      this.#group = true;
      this.#current = "";
    } else if (ch === ";" && this.#group) {
      this.#group = false;
      this.#push();
    } else if (ch === ",") {
      this.#push();
    } else {
      this.#current += ch;
    }
  }

  #push(): void {
    this.elements.push(this.#current);
    this.#current = "";
  }
}

/**
 * The mailboxes of an RFC 5322 address list as a raw message's From, Sender, To, Cc or Bcc field
 * holds it: split at top-level commas, groups opened up, comments dropped, and each element held
 * to the same one-mailbox forms as a JSON entry. Lenient readings ("vic tim@b" as tim@b,
 * "a@b (x) c@d" as c@d) are refused rather than guessed, so the envelope never takes an address
 * a reader of the header would not see as one.
 */
export function parseAddressList(value: string, field: string): string[] {
  const splitter = new AddressListSplitter();
  for (let i = 0; i < value.length; i++) i = splitter.take(value, i);
  const addresses: string[] = [];
  for (const element of splitter.finish(field)) {
    if (element.trim() === "") continue;
    const one = singleMailbox(element);
    if ("error" in one) throw new ValidationError(`in an address header: ${one.error}`, field);
    addresses.push(one.address);
  }
  return addresses;
}
