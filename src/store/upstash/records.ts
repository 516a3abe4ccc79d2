/**
 * The Upstash driver's RecordStore (forms, hooks, webhook endpoints, templates, by kind and id)
 * and KeyStore (API keys and the relay's own secrets): one hash per record kind, plain commands
 * except where a compare-and-set needs a script (swap-record.ts, touch-key.ts, update-key.ts).
 */
import type { Redis } from "@upstash/redis";
import type { KeyStore, KeyUpdate, RecordKind, RecordStore } from "../ports.ts";
import type { ApiKeyRecord } from "../types.ts";
import type { KeyLayout } from "./keys.ts";
import type { BoundScripts } from "./scripts/index.ts";

/** Without automatic deserialisation the client returns HGETALL as [field, value, ...]. */
export function hashValues(flat: unknown): string[] {
  return ((flat ?? []) as string[]).filter((_, i) => i % 2 === 1);
}

export class UpstashRecords implements KeyStore, RecordStore {
  readonly #redis: Redis;
  readonly #keys: KeyLayout;
  readonly #run: BoundScripts;

  constructor(redis: Redis, keys: KeyLayout, run: BoundScripts) {
    this.#redis = redis;
    this.#keys = keys;
    this.#run = run;
  }

  async putKey(record: ApiKeyRecord): Promise<void> {
    const json = JSON.stringify(record);
    const tx = this.#redis.multi();
    tx.set(this.#keys.keyByDigest(record.digest), json);
    tx.hset(this.#keys.keyList, { [record.id]: json });
    await tx.exec();
  }

  async keyByDigest(digest: string): Promise<ApiKeyRecord | null> {
    const json = await this.#redis.get<string>(this.#keys.keyByDigest(digest));
    return json ? (JSON.parse(json) as ApiKeyRecord) : null;
  }

  async listKeys(): Promise<ApiKeyRecord[]> {
    return hashValues(await this.#redis.hgetall(this.#keys.keyList))
      .map((json) => JSON.parse(json) as ApiKeyRecord)
      .sort((a, b) => b.createdAt - a.createdAt);
  }

  async touchKey(record: ApiKeyRecord, at: number): Promise<void> {
    await this.#run.touchKey({ keys: this.#keys, record, at });
  }

  async updateKey(previous: ApiKeyRecord, next: ApiKeyRecord): Promise<KeyUpdate> {
    return this.#run.updateKey({ keys: this.#keys, previous, next });
  }

  async secret(name: string, fresh: string): Promise<string> {
    // SET NX GET: one command; null means this call stored `fresh` (or a lost reply's retry did).
    const held = await this.#redis.set<string>(this.#keys.secret(name), fresh, {
      nx: true,
      get: true,
    });
    return held ?? fresh;
  }

  async deleteKey(id: string): Promise<boolean> {
    const json = await this.#redis.hget<string>(this.#keys.keyList, id);
    if (!json) return false;
    const record = JSON.parse(json) as ApiKeyRecord;
    const tx = this.#redis.multi();
    tx.del(this.#keys.keyByDigest(record.digest));
    tx.hdel(this.#keys.keyList, id);
    await tx.exec();
    return true;
  }

  async putRecord<T>(kind: RecordKind, id: string, value: T): Promise<void> {
    await this.#redis.hset(this.#keys.records(kind), { [id]: JSON.stringify(value) });
  }

  async swapRecord<T>(
    kind: RecordKind,
    id: string,
    expected: T | null,
    value: T,
  ): Promise<boolean> {
    // A record read back and stringified again is the same text (key order is kept), so the
    // script can compare JSON strings.
    return this.#run.swapRecord({
      keys: this.#keys,
      kind,
      id,
      expected: expected === null ? null : JSON.stringify(expected),
      value: JSON.stringify(value),
    });
  }

  async getRecord<T>(kind: RecordKind, id: string): Promise<T | null> {
    const json = await this.#redis.hget<string>(this.#keys.records(kind), id);
    return json ? (JSON.parse(json) as T) : null;
  }

  async listRecords<T>(kind: RecordKind): Promise<T[]> {
    const flat = await this.#redis.hgetall(this.#keys.records(kind));
    return hashValues(flat).map((json) => JSON.parse(json) as T);
  }

  async deleteRecord(kind: RecordKind, id: string): Promise<boolean> {
    const tx = this.#redis.multi();
    tx.hdel(this.#keys.records(kind), id);
    tx.del(this.#keys.counters(kind, id));
    const [removed] = (await tx.exec()) as [number, number];
    return removed === 1;
  }

  async count(kind: RecordKind, id: string, counter: string, by = 1): Promise<void> {
    await this.#redis.hincrby(this.#keys.counters(kind, id), counter, by);
  }

  async counters(kind: RecordKind, id: string): Promise<Record<string, number>> {
    const flat = ((await this.#redis.hgetall(this.#keys.counters(kind, id))) ??
      []) as unknown as string[];
    const out: Record<string, number> = {};
    for (let i = 0; i + 1 < flat.length; i += 2) out[String(flat[i])] = Number(flat[i + 1]);
    return out;
  }
}
