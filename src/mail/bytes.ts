/**
 * Raw messages are kept as "binary strings" (one char per byte, latin1), so any 8-bit message
 * survives storage byte for byte without base64's third more size.
 */
export function bytesToLatin1(bytes: Uint8Array): string {
  let out = "";
  const CHUNK = 0x8000;
  for (let i = 0; i < bytes.length; i += CHUNK) {
    out += String.fromCharCode(...bytes.subarray(i, i + CHUNK));
  }
  return out;
}

export function latin1ToBytes(value: string): Uint8Array {
  const out = new Uint8Array(value.length);
  for (let i = 0; i < value.length; i++) out[i] = value.charCodeAt(i) & 0xff;
  return out;
}

// What one byte of a binary string costs in the JSON request that stores it in Upstash (the
// string goes in as one command argument, UTF-8 encoded): a byte of 0x80 or more is a two-byte
// UTF-8 character; ", \ and the control characters JSON escapes briefly (\b \t \n \f \r) take
// two; the other control characters take six (\u00XX).
const JSON_COST = Uint8Array.from({ length: 256 }, (_, b) => {
  if (b >= 0x80) return 2;
  if (b === 0x22 || b === 0x5c) return 2;
  if (b < 0x20) return [0x08, 0x09, 0x0a, 0x0c, 0x0d].includes(b) ? 2 : 6;
  return 1;
});

/**
 * The size of a binary-string message as it is stored: what it takes of Upstash's 10 MB request
 * limit, so the message limits count this, not the message's own octets. A 7-bit message grows
 * by its line ends only (CRLF is four bytes); each 8-bit byte counts twice.
 */
export function storedSize(raw: string): number {
  let n = 0;
  for (let i = 0; i < raw.length; i++) n += JSON_COST[raw.charCodeAt(i) & 0xff] ?? 1;
  return n;
}
