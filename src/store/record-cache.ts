/**
 * Records (forms, hooks) with a short cache in the isolate: every public request to a form or a
 * hook needs its record, and a busy form or a sender posting steadily should not cost a Redis
 * command each time. Changes made through this isolate apply at once; other isolates see them
 * within the cache lifetime (KEY_CACHE_SECONDS, the same delay a deleted API key has).
 *
 * Ids found missing are remembered too (for NEGATIVE_CACHE_MS, at most KEY_CACHE_SECONDS), and
 * a lookup is refused to a client over its failure limit, so posts to unknown ids cost nothing
 * (see auth/abuse.ts). The cache is bounded: the oldest entries go first.
 */
import { BoundedCache, type FailureGuard, NEGATIVE_CACHE_MS } from "../auth/abuse.ts";
import type { RecordKind, RelayStore } from "./store.ts";

/** A record, or null for an id found missing. */
type Cached = { record: unknown } | { record: null };

const caches = new WeakMap<RelayStore, BoundedCache<Cached>>();

function cacheOf(store: RelayStore): BoundedCache<Cached> {
  let cache = caches.get(store);
  if (!cache) {
    cache = new BoundedCache();
    caches.set(store, cache);
  }
  return cache;
}

export class RecordCache<T extends { id: string }> {
  readonly #kind: RecordKind;

  constructor(kind: RecordKind) {
    this.#kind = kind;
  }

  /**
   * The record, from the cache when `cacheMs` allows it; null when there is none. `guard` is the
   * client's failure limit: checked before a lookup, charged when the id is unknown.
   */
  async load(
    store: RelayStore,
    id: string,
    now: number,
    cacheMs: number,
    guard?: FailureGuard,
  ): Promise<T | null> {
    const cache = cacheOf(store);
    const key = `${this.#kind}:${id}`;
    const hit = cache.get(key, now);
    if (hit) return hit.record as T | null;
    guard?.check();
    const record = await store.getRecord<T>(this.#kind, id);
    const missingMs = Math.min(NEGATIVE_CACHE_MS, cacheMs);
    if (record && cacheMs > 0) cache.set(key, { record }, now + cacheMs);
    else if (!record && missingMs > 0) cache.set(key, { record: null }, now + missingMs);
    else cache.delete(key);
    if (!record) guard?.fail();
    return record;
  }

  async save(store: RelayStore, record: T): Promise<void> {
    await store.putRecord(this.#kind, record.id, record);
    cacheOf(store).delete(`${this.#kind}:${record.id}`);
  }

  /** Saves `record` only while the stored one is still `expected` (null: none); see swapRecord. */
  async swap(store: RelayStore, expected: T | null, record: T): Promise<boolean> {
    const swapped = await store.swapRecord(this.#kind, record.id, expected, record);
    cacheOf(store).delete(`${this.#kind}:${record.id}`);
    return swapped;
  }

  async remove(store: RelayStore, id: string): Promise<boolean> {
    const removed = await store.deleteRecord(this.#kind, id);
    cacheOf(store).delete(`${this.#kind}:${id}`);
    return removed;
  }
}
