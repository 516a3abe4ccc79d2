/**
 * Records (forms, hooks) with a short cache in the isolate: every public request to a form or a
 * hook needs its record, and a busy form or a sender posting steadily should not cost a Redis
 * command each time. Changes made through this isolate apply at once; other isolates see them
 * within the cache lifetime (KEY_CACHE_SECONDS, the same delay a deleted API key has).
 */
import type { RecordKind, RelayStore } from "./store.ts";

interface Cached {
  record: unknown;
  expires: number;
}

const caches = new WeakMap<RelayStore, Map<string, Cached>>();

function cacheOf(store: RelayStore): Map<string, Cached> {
  let cache = caches.get(store);
  if (!cache) {
    cache = new Map();
    caches.set(store, cache);
  }
  return cache;
}

export class RecordCache<T extends { id: string }> {
  readonly #kind: RecordKind;

  constructor(kind: RecordKind) {
    this.#kind = kind;
  }

  /** The record, from the cache when `cacheMs` allows it; null when there is none. */
  async load(store: RelayStore, id: string, now: number, cacheMs: number): Promise<T | null> {
    const cache = cacheOf(store);
    const key = `${this.#kind}:${id}`;
    const hit = cache.get(key);
    if (hit && hit.expires > now) return hit.record as T;
    const record = await store.getRecord<T>(this.#kind, id);
    if (record && cacheMs > 0) cache.set(key, { record, expires: now + cacheMs });
    else cache.delete(key);
    return record;
  }

  async save(store: RelayStore, record: T): Promise<void> {
    await store.putRecord(this.#kind, record.id, record);
    cacheOf(store).delete(`${this.#kind}:${record.id}`);
  }

  async remove(store: RelayStore, id: string): Promise<boolean> {
    const removed = await store.deleteRecord(this.#kind, id);
    cacheOf(store).delete(`${this.#kind}:${id}`);
    return removed;
  }
}
