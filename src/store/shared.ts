/**
 * What both store drivers share so they agree to the byte: the claim's byte budget and how one
 * entry counts against it, the event log's cap, and lease tokens. The Upstash scripts embed these
 * numbers in their Lua text, so changing one changes those scripts' SHA-1s too.
 */

/**
 * Upstash's size limit for one response, as for one request: "max request size which is 10MB"
 * (docs: https://upstash.com/docs/redis/troubleshooting/max_request_size_exceeded), read as
 * 10,000,000 bytes, the stricter reading. A claim whose answer is larger fails after it has set
 * its leases.
 */
export const UPSTASH_MAX_RESPONSE_BYTES = 10_000_000;

/**
 * The largest answer one claim may make, as estimated by `claimEntryBytes`: what bounds a batch
 * is its REST response (under UPSTASH_MAX_RESPONSE_BYTES, with 1 MB to spare for what the
 * estimate leaves out) and the Worker's 128 MB, which holds the batch's raw messages as strings
 * and each one again as bytes while it is sent.
 */
export const CLAIM_BUDGET_BYTES = UPSTASH_MAX_RESPONSE_BYTES - 1_000_000;

/** Per message in a claim's answer: its id, version, lease end and the JSON around them. */
export const CLAIM_ENTRY_OVERHEAD = 256;

/**
 * What one claimed message adds to the claim's answer, from the stored sizes (UTF-8 bytes) of its
 * metadata, raw and state: @upstash/redis asks for `Upstash-Encoding: base64`, so each string
 * travels as base64, 4 characters per 3 bytes. The raw is stored as the UTF-8 of a latin1 string,
 * so each byte >= 0x80 takes two. The Upstash script computes the same from HSTRLEN.
 */
export function claimEntryBytes(metaBytes: number, rawBytes: number, stateBytes: number): number {
  const b64 = (n: number) => 4 * Math.ceil(n / 3);
  return b64(metaBytes) + b64(rawBytes) + b64(stateBytes) + CLAIM_ENTRY_OVERHEAD;
}

/** Events kept per endpoint in its event log (`GET /webhooks/:id/events`); older ones drop out. */
export const EVENT_LOG_MAX = 1000;

/** A fresh, unguessable lease token. */
export function newLeaseToken(): string {
  return crypto.randomUUID();
}

/** Finished emails leave the list index this many at a time, inside a commit or a list read. */
export const INDEX_TRIM_PER_COMMIT = 10;
export const INDEX_TRIM_PER_READ = 100;

/** One metrics bucket per hour (`mx:<hour>`), counted inside the enqueue and commit scripts. */
export const METRICS_BUCKET_MS = 3_600_000;

/**
 * How long an hour's counters are kept after the hour ends: 32 days, so `GET /emails/metrics`
 * can serve the last 31 days at any hour (older starts are clamped, as Resend clamps to its
 * retention). Bounds the counters to 32 × 24 small hashes.
 */
export const METRICS_RETENTION_MS = 32 * 24 * METRICS_BUCKET_MS;

/**
 * The most metadata and state bytes (as stored) one list window carries: a window stops before
 * the email that would pass it (the first is taken whatever its size), so a page of 200 emails
 * with long SMTP replies still answers well under UPSTASH_MAX_RESPONSE_BYTES (base64: 4/3).
 */
export const LIST_BUDGET_BYTES = 4_000_000;

/**
 * The time part of a UUIDv7 as its text begins ("0190a1b2-c3d4"): 48 bits of milliseconds in
 * fixed-width hex, so comparing ids as strings compares their times. A request log bound ("no
 * entry older than ...") is this prefix; every id of that millisecond or later sorts at or above it.
 */
export function timeIdPrefix(ms: number): string {
  const hex = Math.max(0, Math.floor(ms)).toString(16).padStart(12, "0").slice(-12);
  return `${hex.slice(0, 8)}-${hex.slice(8)}`;
}

/**
 * A UUIDv7 (RFC 9562) for `ms`. `seq` (0 to 4095) fills the 12 bits after the version, RFC 9562's
 * counter method, so ids made in one millisecond sort in the order they were made; the 62 bits
 * after it are random.
 */
export function uuidV7(ms: number, seq = 0): string {
  const rand = crypto.getRandomValues(new Uint8Array(8));
  const hex = Array.from(rand, (b) => b.toString(16).padStart(2, "0")).join("");
  const counter = (seq & 0xfff).toString(16).padStart(3, "0");
  const variant = ((Number.parseInt(hex.slice(0, 1), 16) & 0x3) | 0x8).toString(16);
  return `${timeIdPrefix(ms)}-7${counter}-${variant}${hex.slice(1, 4)}-${hex.slice(4, 16)}`;
}

/** The time (ms) a UUIDv7 carries; NaN for anything else. */
export function uuidV7Time(id: string): number {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-7/.test(id)) return Number.NaN;
  return Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}
