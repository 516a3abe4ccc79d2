/**
 * Hook records in the store, with a short cache in the isolate: every request to a hook needs
 * its record, and a sender posting steadily should not pay a Redis command for it each time.
 * Changes made through this isolate apply at once; other isolates see them within the cache
 * lifetime (KEY_CACHE_SECONDS, the same delay a deleted API key has).
 */
import type { RelayStore } from "../store/store.ts";
import type { HookRecord } from "./hooks.ts";

interface Cached {
  hook: HookRecord;
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

/** The hook, from the cache when `cacheMs` allows it; null when there is none. */
export async function loadHook(
  store: RelayStore,
  id: string,
  now: number,
  cacheMs: number,
): Promise<HookRecord | null> {
  const cache = cacheOf(store);
  const hit = cache.get(id);
  if (hit && hit.expires > now) return hit.hook;
  const hook = await store.getRecord<HookRecord>("hook", id);
  if (hook && cacheMs > 0) cache.set(id, { hook, expires: now + cacheMs });
  else cache.delete(id);
  return hook;
}

export async function saveHook(store: RelayStore, hook: HookRecord): Promise<void> {
  await store.putRecord("hook", hook.id, hook);
  cacheOf(store).delete(hook.id);
}

export async function removeHook(store: RelayStore, id: string): Promise<boolean> {
  const removed = await store.deleteRecord("hook", id);
  cacheOf(store).delete(id);
  return removed;
}
