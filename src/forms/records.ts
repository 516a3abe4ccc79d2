/**
 * Form records in the store, with a short cache in the isolate: every request to a form needs
 * its record, and a busy form should not cost a Redis command for every visitor.
 * Changes made through this isolate apply at once; other isolates see them within the cache
 * lifetime (KEY_CACHE_SECONDS, the same delay a deleted API key has).
 */
import type { RelayStore } from "../store/store.ts";
import type { FormRecord } from "./forms.ts";

interface Cached {
  form: FormRecord;
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

/** The form, from the cache when `cacheMs` allows it; null when there is none. */
export async function loadForm(
  store: RelayStore,
  id: string,
  now: number,
  cacheMs: number,
): Promise<FormRecord | null> {
  const cache = cacheOf(store);
  const hit = cache.get(id);
  if (hit && hit.expires > now) return hit.form;
  const form = await store.getRecord<FormRecord>("form", id);
  if (form && cacheMs > 0) cache.set(id, { form, expires: now + cacheMs });
  else cache.delete(id);
  return form;
}

export async function saveForm(store: RelayStore, form: FormRecord): Promise<void> {
  await store.putRecord("form", form.id, form);
  cacheOf(store).delete(form.id);
}

export async function removeForm(store: RelayStore, id: string): Promise<boolean> {
  const removed = await store.deleteRecord("form", id);
  cacheOf(store).delete(id);
  return removed;
}
