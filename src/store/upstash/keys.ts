/**
 * The Redis key layout of the Upstash driver, in one place. Everything lives under the configured
 * prefix (default "relay:"):
 *
 *   q        sorted set: message id -> when it is next due (ms), or when its lease ends
 *   m:<id>   hash: m = metadata JSON, r = raw message, s = state JSON, v = version,
 *            l = lease token ("" when free), lu = lease end (ms), ct = token of the last
 *            token-guarded commit (so a repeat of it is known), k = key id, rc = the envelope
 *            recipients normalised, one a line (CLAIM's suppression check)
 *   keys     hash: key id -> key record JSON (for listing)
 *   k:<hex>  string: key record JSON, found by the SHA-256 of the token (for authentication)
 *   idem:<key id>:<Idempotency-Key>  string JSON: an in-flight marker {kind, token, hash, until}
 *            expiring after IN_FLIGHT_TTL_MS, or the done record {kind, hash, response}, 24 h
 *   rec:<kind>  hash: id -> record JSON (forms, hooks, webhook endpoints)
 *   cnt:<kind>:<id>  hash: counter name -> count, for that record
 *   wh:subs  hash: enabled webhook endpoint id -> " email.sent email.delivered " (what it wants;
 *            absent while disabled). The enqueue and commit scripts fan events out from it, so
 *            with no endpoint an event costs nothing but one HGETALL inside a script.
 *   wh:failing  hash: endpoint id -> when its current run of failures began (ms)
 *   wq       sorted set: "<endpoint id>:<email id>" event chain -> when its head is due (ms), or
 *            when its lease ends
 *   wc:<endpoint id>:<email id>  list: that chain's event ids, oldest first; only the head is sent
 *   wd:<endpoint id>:<event id>  hash: p = payload, t = type, e = email id, c = created (ms),
 *            s = status, a = attempts JSON, na = next attempt (ms), l = lease token, lu = lease end
 *   wl:<endpoint id>  sorted set: event id -> created (ms), the newest EVENT_LOG_MAX (event log)
 *   ix       sorted set: email id -> created (ms), every email whose record lives (GET /emails)
 *   ix:k:<key id>  sorted set: the same, for the emails that key sent
 *   ix:exp   sorted set: "<email id> <key id>" -> when that finished email's record expires (ms);
 *            the commit and list scripts drop what is due from ix and ix:k:<key id>
 *   mx:<hour>  hash: event name ("sent", "delivered", ...) -> count in that hour (ms / 3,600,000),
 *            and "<key id>|<event name>" -> that key's count; expires METRICS_RETENTION_MS after
 *            the hour ends
 *   rl:i     sorted set: request log entry id (UUIDv7, all scored 0, so ordered by time as text)
 *   rl:d     hash: request log entry id -> entry JSON; both expire REQUEST_LOG_DAYS after the
 *            last write, and each write trims them to REQUEST_LOG_MAX entries and that age
 *   sh       hash: ok / no = the smart host's latest success / refusal JSON (smart-host.ts), and
 *            ok_at / no_at = when (ms); written by the commit script, newer over older only
 *   secret:<name>  string: a random secret the relay made for itself (attachment download URLs)
 *   sup      hash: normalised address -> "<expires_at|0> <origin> <key id> <id> <entry JSON>"
 *            (scripts/suppressions.ts); ENQUEUE and CLAIM check recipients with one HMGET
 *   sup:i    hash: suppression id -> its address
 *   sup:ix   sorted set: suppression id (UUIDv7, all scored 0, so ordered by time as text)
 *   cs:<host:port>  sorted set: "<holder>#<n>" connection slot -> when it lapses (ms); CLAIM
 *            takes them, releaseSlots gives them back (slot-ports.ts)
 *
 * Scripts that touch per-message or per-event keys build those names in Lua from the prefix
 * (passed in ARGV), which Redis allows on a single node, as Upstash is; the names they build
 * ('m:', 'wd:', 'wc:', 'wl:', 'wh:subs', 'idem:', 'rec:webhook', 'wq', 'ix', 'ix:k:',
 * 'ix:exp', 'mx:', 'sh', 'sup', 'sup:i', 'sup:ix') must match these.
 */
import type { RecordKind } from "../ports.ts";

/** The key names under one prefix. */
export interface KeyLayout {
  readonly prefix: string;
  readonly queue: string;
  message(id: string): string;
  readonly keyList: string;
  keyByDigest(digest: string): string;
  idempotency(key: string): string;
  records(kind: RecordKind): string;
  counters(kind: RecordKind, id: string): string;
  readonly subscriptions: string;
  readonly failing: string;
  readonly eventQueue: string;
  event(endpointId: string, eventId: string): string;
  eventLog(endpointId: string): string;
  readonly index: string;
  keyIndex(keyId: string): string;
  readonly requestLogIndex: string;
  readonly requestLogData: string;
  secret(name: string): string;
  readonly smartHost: string;
  connectionSlots(host: string): string;
}

export function keyLayout(prefix: string): KeyLayout {
  return {
    prefix,
    queue: `${prefix}q`,
    message: (id) => `${prefix}m:${id}`,
    keyList: `${prefix}keys`,
    keyByDigest: (digest) => `${prefix}k:${digest}`,
    idempotency: (key) => `${prefix}idem:${key}`,
    records: (kind) => `${prefix}rec:${kind}`,
    counters: (kind, id) => `${prefix}cnt:${kind}:${id}`,
    subscriptions: `${prefix}wh:subs`,
    failing: `${prefix}wh:failing`,
    eventQueue: `${prefix}wq`,
    event: (endpointId, eventId) => `${prefix}wd:${endpointId}:${eventId}`,
    eventLog: (endpointId) => `${prefix}wl:${endpointId}`,
    index: `${prefix}ix`,
    keyIndex: (keyId) => `${prefix}ix:k:${keyId}`,
    requestLogIndex: `${prefix}rl:i`,
    requestLogData: `${prefix}rl:d`,
    secret: (name) => `${prefix}secret:${name}`,
    smartHost: `${prefix}sh`,
    connectionSlots: (host) => `${prefix}cs:${host}`,
  };
}
