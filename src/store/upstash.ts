/**
 * Upstash Redis driver for the queue store, over the REST API with @upstash/redis.
 *
 * Layout (all under the configured prefix, default "relay:"):
 *   q        sorted set: message id -> when it is next due (ms), or when its lease ends
 *   m:<id>   hash: m = metadata JSON, r = raw message, s = state JSON, v = version,
 *            l = lease token ("" when free), lu = lease end (ms)
 *   keys     hash: key id -> key record JSON (for listing)
 *   k:<hex>  string: key record JSON, found by the SHA-256 of the token (for authentication)
 *   idem:<key id>:<Idempotency-Key>  string: {hash, state, response} JSON, expiring after 24 h
 *   rec:<kind>  hash: id -> record JSON (forms, hooks, webhook endpoints)
 *   cnt:<kind>:<id>  hash: counter name -> count, for that record
 *   seen:<key>  string "1", expiring: a replay guard (see `markSeen`)
 *
 * Every operation is one Lua script, so each costs one billed command however many messages it
 * touches: accepting a batch, claiming a batch, and acknowledging one message are one command each.
 * Scripts build the per-message key names from the prefix, which Redis allows on a single node (as
 * Upstash is); the global script lock that implies is what makes claiming atomic.
 */
import { Redis } from "@upstash/redis";
import type {
  CommitResult,
  IdempotencyRecord,
  IdempotencyState,
  NewEntry,
  NextStep,
  RecordKind,
  RelayStore,
  WriteGuard,
} from "./store.ts";
import { newLeaseToken } from "./store.ts";
import type {
  ApiKeyRecord,
  ClaimedEntry,
  DeliveryState,
  QueuedMessage,
  StoredEntry,
} from "./types.ts";

// ARGV: prefix, count, idempotency key ("" for none), its record, its ttl (ms), then per message:
// id, meta, raw, state, score, leaseToken, leaseUntil.
const ENQUEUE = `
local prefix = ARGV[1]
local n = tonumber(ARGV[2])
if ARGV[3] ~= '' then
  redis.call('SET', prefix .. 'idem:' .. ARGV[3], ARGV[4], 'PX', ARGV[5])
end
for i = 0, n - 1 do
  local b = 6 + i * 7
  local id = ARGV[b]
  redis.call('HSET', prefix .. 'm:' .. id, 'm', ARGV[b + 1], 'r', ARGV[b + 2], 's', ARGV[b + 3],
    'v', 1, 'l', ARGV[b + 5], 'lu', ARGV[b + 6])
  redis.call('ZADD', KEYS[1], ARGV[b + 4], id)
end
return n
`;

// ARGV: prefix, now, limit, leaseMs, token. Returns {id, meta, raw, state, version, leaseUntil}...
const CLAIM = `
local prefix = ARGV[1]
local now = tonumber(ARGV[2])
local untilMs = now + tonumber(ARGV[4])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do
  local k = prefix .. 'm:' .. id
  local v = redis.call('HMGET', k, 'm', 'r', 's', 'v')
  if v[1] then
    redis.call('ZADD', KEYS[1], untilMs, id)
    redis.call('HSET', k, 'l', ARGV[5], 'lu', untilMs)
    out[#out + 1] = {id, v[1], v[2], v[3], v[4], tostring(untilMs)}
  else
    -- The record expired or was removed: drop the orphaned queue entry.
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
`;

// KEYS: queue, message. ARGV: id, token ("" for a version guard), version, now, state,
// next ("due" | "done"), dueAt or retainMs. Returns 1 ok, 0 conflict, -1 missing.
const COMMIT = `
local k = KEYS[2]
local h = redis.call('HMGET', k, 'v', 'l', 'lu')
if not h[1] then return -1 end
if ARGV[2] ~= '' then
  if h[2] ~= ARGV[2] then return 0 end
else
  if (h[2] and h[2] ~= '' and tonumber(h[3] or '0') > tonumber(ARGV[4])) or h[1] ~= ARGV[3] then
    return 0
  end
end
redis.call('HSET', k, 's', ARGV[5], 'v', tonumber(h[1]) + 1, 'l', '', 'lu', 0)
if ARGV[6] == 'due' then
  redis.call('ZADD', KEYS[1], ARGV[7], ARGV[1])
else
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('PEXPIRE', k, ARGV[7])
end
return 1
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

export interface UpstashStoreOptions {
  url: string;
  token: string;
  prefix: string;
  /** Network retries inside @upstash/redis before a call fails (and the API answers 503). */
  retries?: number;
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

  constructor(options: UpstashStoreOptions) {
    this.#redis = new Redis({
      url: options.url,
      token: options.token,
      // Values are our own JSON and raw MIME: parse them ourselves, never guess.
      automaticDeserialization: false,
      enableTelemetry: false,
      retry: { retries: options.retries ?? 2, backoff: (n) => 100 * 2 ** n },
    });
    this.#prefix = options.prefix;
    this.#options = options;
    this.#enqueue = this.#redis.createScript<number>(ENQUEUE);
    this.#claim = this.#redis.createScript<string[][]>(CLAIM);
    this.#commit = this.#redis.createScript<number>(COMMIT);
    this.#touch = this.#redis.createScript<number>(TOUCH_KEY);
    this.#renew = this.#redis.createScript<number>(RENEW);
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

  async beginIdempotent(key: string, hash: string, ttlMs: number): Promise<IdempotencyState> {
    // SET NX GET claims the key and returns what it held, in one command.
    const held = await this.#redis.set<string>(
      `${this.#prefix}idem:${key}`,
      JSON.stringify({ kind: "in_flight", hash }),
      { nx: true, px: ttlMs, get: true },
    );
    if (held === null || held === undefined) return { kind: "new" };
    return JSON.parse(String(held)) as IdempotencyState;
  }

  async abandonIdempotent(key: string): Promise<void> {
    await this.#redis.del(`${this.#prefix}idem:${key}`);
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
    await this.#enqueue.exec([`${this.#prefix}q`], args);
  }

  async claim(now: number, limit: number, leaseMs: number): Promise<ClaimedEntry[]> {
    const token = newLeaseToken();
    const rows = await this.#claim.exec(
      [`${this.#prefix}q`],
      [this.#prefix, String(now), String(limit), String(leaseMs), token],
    );
    return rows.map(([, meta, raw, state, version, until]) => ({
      message: JSON.parse(String(meta)) as QueuedMessage,
      raw: String(raw),
      state: JSON.parse(String(state)) as DeliveryState,
      version: Number(version),
      leasedUntil: Number(until),
      token,
    }));
  }

  async commit(
    id: string,
    guard: WriteGuard,
    state: DeliveryState,
    next: NextStep,
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
      ],
    );
    return result === 1 ? "ok" : result === 0 ? "conflict" : "missing";
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
}
