/**
 * The VERP return path (BOUNCE_DOMAIN): the envelope sender (MAIL FROM) of a delivery becomes an
 * address on the bounce domain that names the email and carries an HMAC tag over it, so a report
 * that comes back to it says which message it is about, and nobody who has not seen the address
 * can make one up for another message.
 *
 *   b-<email id: 32 hex digits>-<tag: 16 characters of lowercase base32>@<BOUNCE_DOMAIN>
 *
 * One address per message, not per recipient: per-recipient VERP needs a separate SMTP
 * transaction for every recipient (MAIL FROM is per transaction), which costs a round trip per
 * recipient on every delivery for the benefit of the rare bounce. A DSN names its recipient
 * anyway (Final-Recipient, RFC 3464), and intake accepts only a recipient the message had, so the
 * per-message address loses nothing but the ability to tell a forger apart from a real report
 * that names the wrong recipient: both are dropped.
 *
 * The local part is 51 octets (RFC 5321 allows 64), only lowercase letters, digits and hyphens:
 * MTAs that lowercase or case-fold the local part still give back an address that verifies, and
 * nothing needs quoting. The tag is HMAC-SHA-256 over "verp:<email id>", truncated to 80 bits:
 * enough that guessing one is hopeless (each try is a mail delivery), short enough to fit.
 */

const PREFIX = "b-";
const TAG_BYTES = 10;
const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const LOCAL = /^b-([0-9a-f]{32})-([a-z2-7]{16})$/;

/** RFC 4648 base32, lowercase, without padding. */
function base32(bytes: Uint8Array): string {
  let out = "";
  let bits = 0;
  let value = 0;
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

const keys = new Map<string, Promise<CryptoKey>>();

/** The HMAC key for a secret, imported once per isolate. */
function hmacKey(secret: string): Promise<CryptoKey> {
  let key = keys.get(secret);
  if (!key) {
    key = crypto.subtle.importKey(
      "raw",
      new TextEncoder().encode(secret),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"],
    );
    keys.set(secret, key);
  }
  return key;
}

async function tag(secret: string, emailId: string): Promise<string> {
  const mac = await crypto.subtle.sign(
    "HMAC",
    await hmacKey(secret),
    new TextEncoder().encode(`verp:${emailId}`),
  );
  return base32(new Uint8Array(mac).subarray(0, TAG_BYTES));
}

/** Email ids are UUIDs (crypto.randomUUID); anything else has no return path of its own. */
export function hasReturnPath(emailId: string): boolean {
  return UUID.test(emailId);
}

/** The return path for an email; `emailId` must be a UUID (hasReturnPath). */
export async function returnPath(emailId: string, domain: string, secret: string): Promise<string> {
  if (!hasReturnPath(emailId)) throw new Error(`email id ${emailId} is not a UUID`);
  const hex = emailId.replaceAll("-", "");
  return `${PREFIX}${hex}-${await tag(secret, emailId)}@${domain}`;
}

/** Equal-length strings compared without an early exit, so timing says nothing of the tag. */
function sameText(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

export type ReturnPathCheck =
  | { ok: true; emailId: string }
  /** Not an address of ours at all (another domain, another shape). */
  | { ok: false; reason: "not_return_path" }
  /** Our shape, but the tag is not the one this email's id gets. */
  | { ok: false; reason: "bad_tag" };

/**
 * Reads a return-path address back: the email id when the address is one this relay made.
 * Case-insensitive (an MTA may have changed case); the domain must be `domain`.
 */
export async function verifyReturnPath(
  address: string,
  domain: string,
  secret: string,
): Promise<ReturnPathCheck> {
  const bare = address.trim().replace(/^<|>$/g, "").toLowerCase();
  const at = bare.lastIndexOf("@");
  if (at < 0 || bare.slice(at + 1) !== domain.toLowerCase()) {
    return { ok: false, reason: "not_return_path" };
  }
  const m = LOCAL.exec(bare.slice(0, at));
  if (!m) return { ok: false, reason: "not_return_path" };
  const hex = m[1] as string;
  const emailId = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  const expected = await tag(secret, emailId);
  if (!sameText(expected, m[2] as string)) return { ok: false, reason: "bad_tag" };
  return { ok: true, emailId };
}
