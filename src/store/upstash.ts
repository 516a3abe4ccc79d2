/**
 * Upstash Redis driver for the queue store, over the REST API with @upstash/redis.
 *
 * Layout (all under the configured prefix, default "relay:"):
 *   q        sorted set: message id -> when it is next due (ms), or when its lease ends
 *   m:<id>   hash: m = metadata JSON, r = raw message, s = state JSON, v = version,
 *            l = lease token ("" when free), lu = lease end (ms), ct = token of the last
 *            token-guarded commit (so a repeat of it is known)
 *   keys     hash: key id -> key record JSON (for listing)
 *   k:<hex>  string: key record JSON, found by the SHA-256 of the token (for authentication)
 *   idem:<key id>:<Idempotency-Key>  string JSON: an in-flight marker {kind, token, hash, until}
 *            expiring after IN_FLIGHT_TTL_MS, or the done record {kind, hash, response}, 24 h
 *   rec:<kind>  hash: id -> record JSON (forms, hooks, webhook endpoints)
 *   cnt:<kind>:<id>  hash: counter name -> count, for that record
 *   seen:<key>  string "1", expiring: a replay guard (see `markSeen`)
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
 *
 * Every operation is one Lua script, so each costs one billed command however many messages it
 * touches: accepting a batch, claiming a batch, and acknowledging one message are one command each.
 * Scripts build the per-message key names from the prefix, which Redis allows on a single node (as
 * Upstash is); the global script lock that implies is what makes claiming atomic.
 */
import { Redis } from "@upstash/redis";
import type { EventDraft } from "../webhooks/events.ts";
import type {
  ClaimedEvent,
  CommitResult,
  EventAttempt,
  EventCommitResult,
  EventDelivery,
  EventOutcome,
  EventStatus,
  EventSummary,
  IdempotencyRecord,
  IdempotencyState,
  NewEntry,
  NextStep,
  RecordKind,
  RelayStore,
  WriteGuard,
} from "./store.ts";
import {
  CLAIM_BUDGET_BYTES,
  CLAIM_ENTRY_OVERHEAD,
  IdempotencyClaimLapsedError,
  newLeaseToken,
} from "./store.ts";
import type {
  ApiKeyRecord,
  ClaimedEntry,
  DeliveryState,
  QueuedMessage,
  StoredEntry,
} from "./types.ts";

/** Events kept per endpoint in its event log (`GET /webhooks/:id/events`). */
export const EVENT_LOG_MAX = 1000;

// Queues events for every endpoint subscribed to their type. Events are read from ARGV from
// index \`base\`: a count, then per event id, type, email id, created (ms), payload. Returns how
// many deliveries it queued. Subscriptions are plain strings (" type type "), so no cjson.
const FANOUT = `
local function fanout(prefix, base, now)
  local m = tonumber(ARGV[base])
  if not m or m == 0 then return 0 end
  local subs = redis.call('HGETALL', prefix .. 'wh:subs')
  if #subs == 0 then return 0 end
  local queued = 0
  for i = 0, m - 1 do
    local b = base + 1 + i * 5
    local ev, ty, email, created = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
    for j = 1, #subs, 2 do
      local ep = subs[j]
      if string.find(subs[j + 1], ' ' .. ty .. ' ', 1, true) then
        redis.call('HSET', prefix .. 'wd:' .. ep .. ':' .. ev, 'p', ARGV[b + 4], 't', ty,
          'e', email, 'c', created, 's', 'pending', 'a', '[]', 'na', now, 'l', '', 'lu', 0)
        local chain = ep .. ':' .. email
        if redis.call('RPUSH', prefix .. 'wc:' .. chain, ev) == 1 then
          redis.call('ZADD', prefix .. 'wq', now, chain)
        end
        local log = prefix .. 'wl:' .. ep
        redis.call('ZADD', log, created, ev)
        redis.call('ZREMRANGEBYRANK', log, 0, -${EVENT_LOG_MAX + 1})
        queued = queued + 1
      end
    end
  end
  return queued
end
`;

// ARGV: prefix, count, idempotency key ("" for none), its record, its ttl (ms), now, the start of
// the request's in-flight marker, then per message: id, meta, raw, state, score, leaseToken,
// leaseUntil; then the events (see FANOUT).
// Returns the number of event deliveries queued, or -1 when the idempotency key no longer holds
// this request's marker: then nothing is stored. A write that reaches Redis late (after the
// marker lapsed, perhaps after another request took the key) must not store a second copy.
// @upstash/redis re-sends a request after a network error, so this can run twice with the same
// arguments. Message ids are new for every accept, so an existing first message means this
// script ran already: the repeat writes nothing and queues no event a second time.
const ENQUEUE = `${FANOUT}
local prefix = ARGV[1]
local n = tonumber(ARGV[2])
if n > 0 and redis.call('EXISTS', prefix .. 'm:' .. ARGV[8]) == 1 then return 0 end
if ARGV[3] ~= '' then
  local idem = prefix .. 'idem:' .. ARGV[3]
  local held = redis.call('GET', idem)
  if not held or string.sub(held, 1, #ARGV[7]) ~= ARGV[7] then return -1 end
  redis.call('SET', idem, ARGV[4], 'PX', ARGV[5])
end
for i = 0, n - 1 do
  local b = 8 + i * 7
  local id = ARGV[b]
  redis.call('HSET', prefix .. 'm:' .. id, 'm', ARGV[b + 1], 'r', ARGV[b + 2], 's', ARGV[b + 3],
    'v', 1, 'l', ARGV[b + 5], 'lu', ARGV[b + 6])
  redis.call('ZADD', KEYS[1], ARGV[b + 4], id)
end
return fanout(prefix, 8 + n * 7, ARGV[6])
`;

// ARGV: prefix, now, limit, leaseMs, token, byte budget. Returns {{id, meta, raw, state, version,
// leaseUntil}..., due event chains, 1 when it stopped at the budget (else 0)}: the count rides
// along so an idle run needs no second command.
// The answer must stay within Upstash's response limit: sizes are read first (HSTRLEN, O(1)) and
// a message is taken only while the estimated answer (claimEntryBytes) fits the budget, except
// the first, which is taken alone however large, so no message is ever passed over. Those left
// out are not leased: they stay due for the next claim.
const CLAIM = `
local function entryBytes(m, r, s)
  local function b64(n) return 4 * math.ceil(n / 3) end
  return b64(m) + b64(r) + b64(s) + ${CLAIM_ENTRY_OVERHEAD}
end
local prefix = ARGV[1]
local now = tonumber(ARGV[2])
local untilMs = now + tonumber(ARGV[4])
local budget = tonumber(ARGV[6])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
local used = 0
local stopped = 0
for _, id in ipairs(ids) do
  local k = prefix .. 'm:' .. id
  local m = redis.call('HSTRLEN', k, 'm')
  if m == 0 then
    -- The record expired or was removed: drop the orphaned queue entry.
    redis.call('ZREM', KEYS[1], id)
  else
    local size = entryBytes(m, redis.call('HSTRLEN', k, 'r'), redis.call('HSTRLEN', k, 's'))
    if #out > 0 and used + size > budget then
      stopped = 1
      break
    end
    used = used + size
    local v = redis.call('HMGET', k, 'm', 'r', 's', 'v')
    redis.call('ZADD', KEYS[1], untilMs, id)
    redis.call('HSET', k, 'l', ARGV[5], 'lu', untilMs)
    out[#out + 1] = {id, v[1], v[2], v[3], v[4], tostring(untilMs)}
  end
end
return {out, redis.call('ZCOUNT', prefix .. 'wq', '-inf', now), stopped}
`;

// KEYS: queue, message. ARGV: id, token ("" for a version guard), version, now, state,
// next ("due" | "done"), dueAt or retainMs, prefix, now (for events), then the events (see
// FANOUT).
// Returns {1, deliveries queued} ok, 0 conflict, -1 missing.
// A token-guarded commit may run twice (a lost reply, re-sent by @upstash/redis or by the
// delivery's own retry): the token it applied is kept in ct, and a repeat with it answers ok
// without writing or queueing its events again.
const COMMIT = `${FANOUT}
local k = KEYS[2]
local h = redis.call('HMGET', k, 'v', 'l', 'lu', 'ct')
if not h[1] then return -1 end
if ARGV[2] ~= '' then
  if h[2] ~= ARGV[2] then
    if h[4] == ARGV[2] then return {1, 0} end
    return 0
  end
else
  if (h[2] and h[2] ~= '' and tonumber(h[3] or '0') > tonumber(ARGV[4])) or h[1] ~= ARGV[3] then
    return 0
  end
end
redis.call('HSET', k, 's', ARGV[5], 'v', tonumber(h[1]) + 1, 'l', '', 'lu', 0, 'ct', ARGV[2])
if ARGV[6] == 'due' then
  redis.call('ZADD', KEYS[1], ARGV[7], ARGV[1])
else
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('PEXPIRE', k, ARGV[7])
end
return {1, fanout(ARGV[8], 10, ARGV[9])}
`;

// KEYS: queue, message. ARGV: id, token, new lease end. Returns 1 when renewed, 0 otherwise.
const RENEW = `
if redis.call('HGET', KEYS[2], 'l') ~= ARGV[2] or ARGV[2] == '' then return 0 end
redis.call('HSET', KEYS[2], 'lu', ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
`;

// KEYS: key list, key by digest. ARGV: id, record JSON.
const TOUCH_KEY = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[2])
return 1
`;

// KEYS: event queue. ARGV: prefix, now, limit, leaseMs, token. Returns per claimed chain head
// {chain, event id, endpoint id, payload, type, email id, created, attempts JSON, endpoint record
// or "", enabled 1/0, lease end}. A chain with no head left is dropped from the queue.
const CLAIM_EVENTS = `
local prefix = ARGV[1]
local now = tonumber(ARGV[2])
local untilMs = now + tonumber(ARGV[4])
local chains = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, chain in ipairs(chains) do
  local ck = prefix .. 'wc:' .. chain
  local ev = redis.call('LINDEX', ck, 0)
  local ep = string.match(chain, '^([^:]+):')
  if not ev or not ep then
    redis.call('ZREM', KEYS[1], chain)
  else
    local d = prefix .. 'wd:' .. ep .. ':' .. ev
    local h = redis.call('HMGET', d, 'p', 't', 'e', 'c', 'a')
    if not h[1] then
      -- Its record is gone: move on to the next event of the chain.
      redis.call('LPOP', ck)
      if redis.call('LLEN', ck) > 0 then
        redis.call('ZADD', KEYS[1], now, chain)
      else
        redis.call('ZREM', KEYS[1], chain)
      end
    else
      redis.call('ZADD', KEYS[1], untilMs, chain)
      redis.call('HSET', d, 's', 'attempting', 'l', ARGV[5], 'lu', untilMs)
      local rec = redis.call('HGET', prefix .. 'rec:webhook', ep) or ''
      local enabled = redis.call('HEXISTS', prefix .. 'wh:subs', ep)
      out[#out + 1] = {chain, ev, ep, h[1], h[2], h[3], h[4], h[5], rec, enabled, tostring(untilMs)}
    end
  end
end
return out
`;

// KEYS: event queue. ARGV: prefix, chain, event id, endpoint id, token, outcome
// (success | retry | failed | dropped), attempts JSON, next attempt (retry), retainMs, now,
// disable (1/0). Returns {1, disabled 1/0}, or 0 when the lease is no longer the caller's.
const COMMIT_EVENT = `
local prefix, chain, ev, ep = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local outcome = ARGV[6]
local d = prefix .. 'wd:' .. ep .. ':' .. ev
if ARGV[5] == '' or redis.call('HGET', d, 'l') ~= ARGV[5] then return 0 end
local ck = prefix .. 'wc:' .. chain
local failing = prefix .. 'wh:failing'
local disabled = 0
if outcome == 'retry' then
  redis.call('HSET', d, 's', 'pending', 'a', ARGV[7], 'na', ARGV[8], 'l', '', 'lu', 0)
  redis.call('ZADD', KEYS[1], ARGV[8], chain)
  redis.call('HSETNX', failing, ep, ARGV[10])
  return {1, 0}
end
if outcome == 'dropped' then
  for _, other in ipairs(redis.call('LRANGE', ck, 0, -1)) do
    local od = prefix .. 'wd:' .. ep .. ':' .. other
    redis.call('HSET', od, 's', 'dropped', 'na', '', 'l', '', 'lu', 0)
    redis.call('PEXPIRE', od, ARGV[9])
  end
  redis.call('DEL', ck)
  redis.call('ZREM', KEYS[1], chain)
  return {1, 0}
end
redis.call('HSET', d, 's', outcome, 'a', ARGV[7], 'na', '', 'l', '', 'lu', 0)
redis.call('PEXPIRE', d, ARGV[9])
if redis.call('LINDEX', ck, 0) == ev then redis.call('LPOP', ck) end
if redis.call('LLEN', ck) > 0 then
  redis.call('ZADD', KEYS[1], ARGV[10], chain)
else
  redis.call('ZREM', KEYS[1], chain)
end
if outcome == 'success' then
  redis.call('HDEL', failing, ep)
else
  local since = redis.call('HGET', failing, ep)
  if ARGV[11] == '1' or since then
    if redis.call('HDEL', prefix .. 'wh:subs', ep) == 1 then disabled = 1 end
    redis.call('HDEL', failing, ep)
  else
    redis.call('HSET', failing, ep, ARGV[10])
  end
end
return {1, disabled}
`;

// KEYS: event log. ARGV: prefix, endpoint id, limit. Returns {id, type, email, created, status}...
const EVENT_LOG = `
local ids = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1)
local out = {}
for _, ev in ipairs(ids) do
  local h = redis.call('HMGET', ARGV[1] .. 'wd:' .. ARGV[2] .. ':' .. ev, 't', 'e', 'c', 's', 'l', 'lu')
  if h[1] then out[#out + 1] = {ev, h[1], h[2], h[3], h[4], h[5], h[6]} end
end
return out
`;

// KEYS: records, subscriptions, failing, event log. ARGV: id, record JSON, subscription ("" none).
const PUT_WEBHOOK = `
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[2], ARGV[1])
else
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
  redis.call('HDEL', KEYS[3], ARGV[1])
end
return 1
`;

// KEYS: records, subscriptions, failing, event log. ARGV: id. Returns 1 when it existed.
const DELETE_WEBHOOK = `
local existed = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('DEL', KEYS[4])
return existed
`;

// KEYS: records, subscriptions. ARGV: id ("" for all). Returns {record, enabled}...
const GET_WEBHOOKS = `
local out = {}
if ARGV[1] ~= '' then
  local rec = redis.call('HGET', KEYS[1], ARGV[1])
  if rec then out[1] = {rec, redis.call('HEXISTS', KEYS[2], ARGV[1])} end
  return out
end
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  out[#out + 1] = {all[i + 1], redis.call('HEXISTS', KEYS[2], all[i])}
end
return out
`;

// KEYS: the idempotency key. ARGV: the start of this request's in-flight marker. Deletes the key
// only while it holds that marker: never a done record (its messages are stored) nor the marker
// of a request that claimed the key after this one's lapsed. Returns 1 when it deleted.
const RELEASE_IDEMPOTENT = `
local held = redis.call('GET', KEYS[1])
if held and string.sub(held, 1, #ARGV[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`;

/** Every script's final text by name, so tools (bench/relay.ts) can tell them apart by SHA-1. */
export const STORE_SCRIPTS: Record<string, string> = {
  ENQUEUE,
  CLAIM,
  COMMIT,
  RENEW,
  TOUCH_KEY,
  CLAIM_EVENTS,
  COMMIT_EVENT,
  EVENT_LOG,
  PUT_WEBHOOK,
  DELETE_WEBHOOK,
  GET_WEBHOOKS,
  RELEASE_IDEMPOTENT,
};

/** Lua-side subscription string: " type type ", matched with a plain find. */
function subscription(events: readonly string[]): string {
  return ` ${events.join(" ")} `;
}

function eventArgs(events: EventDraft[] | undefined): string[] {
  const list = events ?? [];
  const args = [String(list.length)];
  for (const e of list) args.push(e.id, e.type, e.emailId, String(e.createdAt), e.payload);
  return args;
}

/** An in-flight marker's JSON; without hash and until, the prefix that identifies it. */
function inFlightMarker(token: string, hash?: string, until?: number): string {
  const head = `{"kind":"in_flight","token":${JSON.stringify(token)}`;
  return hash === undefined ? head : `${head},"hash":${JSON.stringify(hash)},"until":${until}}`;
}

/** A stored idempotency value as a state; the marker of `own` (a token) counts as new. */
function idempotencyState(held: string | null | undefined, own?: string): IdempotencyState {
  if (held === null || held === undefined) return { kind: "new" };
  const state = JSON.parse(String(held)) as IdempotencyState & { token?: string };
  if (state.kind !== "in_flight") return state;
  if (own !== undefined && state.token === own) return { kind: "new" };
  return { kind: "in_flight", hash: state.hash, until: Number(state.until) || 0 };
}

/**
 * How long one store call (with its retries) may take. It bounds how long an idempotency claim's
 * write can be outstanding (src/api/idempotency.ts SEAL_DEADLINE_MS plus this stays within the
 * in-flight marker's life), and a claim of a full budget (9 MB) still has ample time.
 */
export const STORE_REQUEST_TIMEOUT_MS = 20_000;

export interface UpstashStoreOptions {
  url: string;
  token: string;
  prefix: string;
  /** Network retries inside @upstash/redis before a call fails (and the API answers 503). */
  retries?: number;
  /** The claim's byte budget; CLAIM_BUDGET_BYTES unless a test wants a small one. */
  claimBudgetBytes?: number;
}

export class UpstashStore implements RelayStore {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #options: UpstashStoreOptions;
  readonly #enqueue;
  readonly #claim;
  readonly #commit;
  readonly #touch;
  readonly #renew;
  readonly #claimEvents;
  readonly #commitEvent;
  readonly #eventLog;
  readonly #putWebhook;
  readonly #deleteWebhook;
  readonly #getWebhooks;
  readonly #releaseIdempotent;
  #eventsQueued = 0;

  constructor(options: UpstashStoreOptions) {
    this.#redis = new Redis({
      url: options.url,
      token: options.token,
      // Values are our own JSON and raw MIME: parse them ourselves, never guess.
      automaticDeserialization: false,
      enableTelemetry: false,
      retry: { retries: options.retries ?? 2, backoff: (n) => 100 * 2 ** n },
      // fetch has no timeout of its own: a request that hangs would hold a delivery run or an
      // accept for ever. A function gives each call (all its attempts) a fresh signal, and makes
      // the client throw on abort instead of answering a made-up "Aborted" result.
      signal: () => AbortSignal.timeout(STORE_REQUEST_TIMEOUT_MS),
    });
    this.#prefix = options.prefix;
    this.#options = options;
    this.#enqueue = this.#redis.createScript<number>(ENQUEUE);
    this.#claim = this.#redis.createScript<[string[][], number, number]>(CLAIM);
    this.#commit = this.#redis.createScript<number | [number, number]>(COMMIT);
    this.#touch = this.#redis.createScript<number>(TOUCH_KEY);
    this.#renew = this.#redis.createScript<number>(RENEW);
    this.#claimEvents = this.#redis.createScript<string[][]>(CLAIM_EVENTS);
    this.#commitEvent = this.#redis.createScript<number | [number, number]>(COMMIT_EVENT);
    this.#eventLog = this.#redis.createScript<string[][]>(EVENT_LOG);
    this.#putWebhook = this.#redis.createScript<number>(PUT_WEBHOOK);
    this.#deleteWebhook = this.#redis.createScript<number>(DELETE_WEBHOOK);
    this.#getWebhooks = this.#redis.createScript<[string, number][]>(GET_WEBHOOKS);
    this.#releaseIdempotent = this.#redis.createScript<number>(RELEASE_IDEMPOTENT);
  }

  get eventsQueued(): number {
    return this.#eventsQueued;
  }

  /**
   * A client with the library's default settings (JSON deserialisation on), for libraries such as
   * @upstash/ratelimit that expect them; the store's own client leaves values untouched.
   */
  libraryClient(): Redis {
    return new Redis({
      url: this.#options.url,
      token: this.#options.token,
      enableTelemetry: false,
    });
  }

  #key(id: string): string {
    return `${this.#prefix}m:${id}`;
  }

  async beginIdempotent(
    key: string,
    hash: string,
    token: string,
    ttlMs: number,
  ): Promise<IdempotencyState> {
    // SET NX GET claims the key and returns what it held, in one command. The token leads the
    // marker so RELEASE_IDEMPOTENT can recognise its own marker by prefix.
    const held = await this.#redis.set<string>(
      `${this.#prefix}idem:${key}`,
      inFlightMarker(token, hash, Date.now() + ttlMs),
      { nx: true, px: ttlMs, get: true },
    );
    // The client's retry of a SET whose reply was lost finds this request's own marker.
    return idempotencyState(held, token);
  }

  async peekIdempotent(key: string): Promise<IdempotencyState> {
    return idempotencyState(await this.#redis.get<string>(`${this.#prefix}idem:${key}`));
  }

  async abandonIdempotent(key: string, token: string): Promise<boolean> {
    const released = await this.#releaseIdempotent.exec(
      [`${this.#prefix}idem:${key}`],
      [inFlightMarker(token)],
    );
    return Number(released) === 1;
  }

  async enqueue(entries: NewEntry[], idempotency?: IdempotencyRecord): Promise<void> {
    if (entries.length === 0) return;
    const args = [
      this.#prefix,
      String(entries.length),
      idempotency?.key ?? "",
      idempotency
        ? JSON.stringify({ kind: "done", hash: idempotency.hash, response: idempotency.response })
        : "",
      String(idempotency?.ttlMs ?? 0),
      String(Date.now()),
      idempotency ? inFlightMarker(idempotency.token) : "",
    ];
    for (const e of entries) {
      args.push(
        e.message.id,
        JSON.stringify(e.message),
        e.raw,
        JSON.stringify(e.state),
        String(e.lease ? e.lease.until : e.dueAt),
        e.lease?.token ?? "",
        String(e.lease?.until ?? 0),
      );
    }
    args.push(...eventArgs(entries.flatMap((e) => e.events ?? [])));
    const queued = Number(await this.#enqueue.exec([`${this.#prefix}q`], args));
    if (queued < 0) throw new IdempotencyClaimLapsedError();
    this.#eventsQueued += queued || 0;
  }

  async claim(now: number, limit: number, leaseMs: number): Promise<ClaimedEntry[]> {
    return (await this.claimRun(now, limit, leaseMs)).entries;
  }

  async claimRun(
    now: number,
    limit: number,
    leaseMs: number,
  ): Promise<{ entries: ClaimedEntry[]; eventsDue: number; stoppedAtBudget: boolean }> {
    const token = newLeaseToken();
    const [rows, eventsDue, stopped] = await this.#claim.exec(
      [`${this.#prefix}q`],
      [
        this.#prefix,
        String(now),
        String(limit),
        String(leaseMs),
        token,
        String(this.#options.claimBudgetBytes ?? CLAIM_BUDGET_BYTES),
      ],
    );
    const entries = rows.map(([, meta, raw, state, version, until]) => ({
      message: JSON.parse(String(meta)) as QueuedMessage,
      raw: String(raw),
      state: JSON.parse(String(state)) as DeliveryState,
      version: Number(version),
      leasedUntil: Number(until),
      token,
    }));
    return { entries, eventsDue: Number(eventsDue), stoppedAtBudget: Number(stopped) === 1 };
  }

  async commit(
    id: string,
    guard: WriteGuard,
    state: DeliveryState,
    next: NextStep,
    events?: EventDraft[],
  ): Promise<CommitResult> {
    const byToken = "token" in guard;
    const result = await this.#commit.exec(
      [`${this.#prefix}q`, this.#key(id)],
      [
        id,
        byToken ? guard.token : "",
        byToken ? "" : String(guard.version),
        byToken ? "0" : String(guard.now),
        JSON.stringify(state),
        next.kind,
        String(next.kind === "due" ? Math.round(next.at) : Math.max(1, Math.round(next.retainMs))),
        this.#prefix,
        String(Date.now()),
        ...eventArgs(events),
      ],
    );
    if (Array.isArray(result)) {
      this.#eventsQueued += Number(result[1]) || 0;
      return "ok";
    }
    return result === 0 ? "conflict" : "missing";
  }

  async renew(id: string, token: string, until: number): Promise<boolean> {
    const r = await this.#renew.exec(
      [`${this.#prefix}q`, this.#key(id)],
      [id, token, String(until)],
    );
    return r === 1;
  }

  async get(id: string): Promise<StoredEntry | null> {
    // Without automatic deserialisation the client returns HMGET as a plain array.
    const fields = (await this.#redis.hmget(
      this.#key(id),
      "m",
      "r",
      "s",
      "v",
      "l",
      "lu",
    )) as unknown as (string | null)[] | null;
    const [meta, raw, state, version, lease, leaseUntil] = fields ?? [];
    if (!meta || raw == null || !state) return null;
    const until = Number(leaseUntil ?? 0);
    return {
      message: JSON.parse(meta) as QueuedMessage,
      raw,
      state: JSON.parse(state) as DeliveryState,
      version: Number(version),
      leasedUntil: lease && until > 0 ? until : null,
    };
  }

  async putKey(record: ApiKeyRecord): Promise<void> {
    const json = JSON.stringify(record);
    const tx = this.#redis.multi();
    tx.set(`${this.#prefix}k:${record.digest}`, json);
    tx.hset(`${this.#prefix}keys`, { [record.id]: json });
    await tx.exec();
  }

  async keyByDigest(digest: string): Promise<ApiKeyRecord | null> {
    const json = await this.#redis.get<string>(`${this.#prefix}k:${digest}`);
    return json ? (JSON.parse(json) as ApiKeyRecord) : null;
  }

  async listKeys(): Promise<ApiKeyRecord[]> {
    // Without automatic deserialisation the client returns HGETALL as [field, value, ...].
    const flat = ((await this.#redis.hgetall(`${this.#prefix}keys`)) ?? []) as unknown as string[];
    return flat
      .filter((_, i) => i % 2 === 1)
      .map((json) => JSON.parse(json) as ApiKeyRecord)
      .sort((a, b) => b.createdAt - a.createdAt);
  }

  async touchKey(record: ApiKeyRecord, at: number): Promise<void> {
    // Only while the key still exists: a plain write could bring back a key deleted meanwhile.
    await this.#touch.exec(
      [`${this.#prefix}keys`, `${this.#prefix}k:${record.digest}`],
      [record.id, JSON.stringify({ ...record, lastUsedAt: at })],
    );
  }

  async deleteKey(id: string): Promise<boolean> {
    const json = await this.#redis.hget<string>(`${this.#prefix}keys`, id);
    if (!json) return false;
    const record = JSON.parse(json) as ApiKeyRecord;
    const tx = this.#redis.multi();
    tx.del(`${this.#prefix}k:${record.digest}`);
    tx.hdel(`${this.#prefix}keys`, id);
    await tx.exec();
    return true;
  }

  async putRecord<T>(kind: RecordKind, id: string, value: T): Promise<void> {
    await this.#redis.hset(`${this.#prefix}rec:${kind}`, { [id]: JSON.stringify(value) });
  }

  async getRecord<T>(kind: RecordKind, id: string): Promise<T | null> {
    const json = await this.#redis.hget<string>(`${this.#prefix}rec:${kind}`, id);
    return json ? (JSON.parse(json) as T) : null;
  }

  async listRecords<T>(kind: RecordKind): Promise<T[]> {
    const flat = ((await this.#redis.hgetall(`${this.#prefix}rec:${kind}`)) ??
      []) as unknown as string[];
    return flat.filter((_, i) => i % 2 === 1).map((json) => JSON.parse(json) as T);
  }

  async deleteRecord(kind: RecordKind, id: string): Promise<boolean> {
    const tx = this.#redis.multi();
    tx.hdel(`${this.#prefix}rec:${kind}`, id);
    tx.del(`${this.#prefix}cnt:${kind}:${id}`);
    const [removed] = (await tx.exec()) as [number, number];
    return removed === 1;
  }

  async count(kind: RecordKind, id: string, counter: string, by = 1): Promise<void> {
    await this.#redis.hincrby(`${this.#prefix}cnt:${kind}:${id}`, counter, by);
  }

  async counters(kind: RecordKind, id: string): Promise<Record<string, number>> {
    const flat = ((await this.#redis.hgetall(`${this.#prefix}cnt:${kind}:${id}`)) ??
      []) as unknown as string[];
    const out: Record<string, number> = {};
    for (let i = 0; i + 1 < flat.length; i += 2) out[String(flat[i])] = Number(flat[i + 1]);
    return out;
  }

  async markSeen(key: string, ttlMs: number): Promise<boolean> {
    const set = await this.#redis.set(`${this.#prefix}seen:${key}`, "1", {
      nx: true,
      px: Math.max(1, Math.round(ttlMs)),
    });
    return set === "OK";
  }

  #webhookKeys(id: string): string[] {
    const p = this.#prefix;
    return [`${p}rec:webhook`, `${p}wh:subs`, `${p}wh:failing`, `${p}wl:${id}`];
  }

  async putWebhook<T>(id: string, record: T, events: readonly string[] | null): Promise<void> {
    await this.#putWebhook.exec(this.#webhookKeys(id), [
      id,
      JSON.stringify(record),
      events === null ? "" : subscription(events),
    ]);
  }

  async getWebhook<T>(id: string): Promise<{ record: T; enabled: boolean } | null> {
    const rows = await this.#getWebhooks.exec(this.#webhookKeys(id).slice(0, 2), [id]);
    const [row] = rows;
    return row ? { record: JSON.parse(String(row[0])) as T, enabled: Number(row[1]) === 1 } : null;
  }

  async listWebhooks<T>(): Promise<{ record: T; enabled: boolean }[]> {
    const rows = await this.#getWebhooks.exec(this.#webhookKeys("").slice(0, 2), [""]);
    return rows.map(([json, enabled]) => ({
      record: JSON.parse(String(json)) as T,
      enabled: Number(enabled) === 1,
    }));
  }

  async deleteWebhook(id: string): Promise<boolean> {
    return (await this.#deleteWebhook.exec(this.#webhookKeys(id), [id])) === 1;
  }

  async claimEvents(now: number, limit: number, leaseMs: number): Promise<ClaimedEvent[]> {
    const token = newLeaseToken();
    const rows = await this.#claimEvents.exec(
      [`${this.#prefix}wq`],
      [this.#prefix, String(now), String(limit), String(leaseMs), token],
    );
    return rows.map(
      ([chain, id, endpointId, payload, type, emailId, created, attempts, rec, enabled, until]) => {
        void chain;
        return {
          id: String(id),
          endpointId: String(endpointId),
          payload: String(payload),
          type: String(type),
          emailId: String(emailId),
          createdAt: Number(created),
          status: "attempting" as const,
          attempts: JSON.parse(String(attempts ?? "[]")) as EventAttempt[],
          nextAttemptAt: null,
          endpoint: rec ? String(rec) : null,
          enabled: Number(enabled) === 1,
          token,
          leasedUntil: Number(until),
        };
      },
    );
  }

  async commitEvent(event: ClaimedEvent, outcome: EventOutcome): Promise<EventCommitResult> {
    const result = await this.#commitEvent.exec(
      [`${this.#prefix}wq`],
      [
        this.#prefix,
        `${event.endpointId}:${event.emailId}`,
        event.id,
        event.endpointId,
        event.token,
        outcome.kind,
        outcome.kind === "dropped" ? "[]" : JSON.stringify(outcome.attempts),
        outcome.kind === "retry" ? String(Math.round(outcome.at)) : "",
        outcome.kind === "retry" ? "0" : String(Math.max(1, Math.round(outcome.retainMs))),
        String(outcome.now),
        outcome.kind === "failed" && outcome.disable ? "1" : "0",
      ],
    );
    if (!Array.isArray(result)) return { ok: false };
    return { ok: true, disabled: Number(result[1]) === 1 };
  }

  async eventLog(endpointId: string, limit: number): Promise<EventSummary[]> {
    const rows = await this.#eventLog.exec(
      [`${this.#prefix}wl:${endpointId}`],
      [this.#prefix, endpointId, String(limit)],
    );
    return rows.map(([id, type, emailId, created, status, lease, until]) => ({
      id: String(id),
      type: String(type),
      emailId: String(emailId),
      createdAt: Number(created),
      status: summaryStatus(String(status), String(lease ?? ""), Number(until ?? 0)),
    }));
  }

  async eventDelivery(endpointId: string, eventId: string): Promise<EventDelivery | null> {
    const fields = (await this.#redis.hmget(
      `${this.#prefix}wd:${endpointId}:${eventId}`,
      "p",
      "t",
      "e",
      "c",
      "s",
      "a",
      "na",
      "l",
      "lu",
    )) as unknown as (string | null)[] | null;
    const [payload, type, emailId, created, status, attempts, next, lease, until] = fields ?? [];
    if (!payload || !type) return null;
    const s = summaryStatus(String(status), String(lease ?? ""), Number(until ?? 0));
    return {
      id: eventId,
      type,
      emailId: String(emailId),
      createdAt: Number(created),
      status: s,
      payload,
      attempts: JSON.parse(attempts ?? "[]") as EventAttempt[],
      nextAttemptAt: s === "pending" && next ? Number(next) : null,
    };
  }
}

/** A leased event shows as "attempting"; once its lease ran out it is waiting again. */
function summaryStatus(status: string, lease: string, until: number): EventStatus {
  if (status === "attempting" && (lease === "" || until <= Date.now())) return "pending";
  return status as EventStatus;
}
