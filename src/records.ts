/**
 * The records the API manages by kind (forms, hooks): what every kind answers alike, listing,
 * reading one with its counters, deleting. The routes (src/http/routes/resource.ts) call these and only
 * translate the request and the answer; store errors reach them as thrown, to be answered 503.
 */
import type { Logger } from "./log.ts";
import type { RecordCache } from "./store/record-cache.ts";
import type { RecordKind, RelayStore } from "./store/store.ts";

export class Records {
  readonly #store: RelayStore;
  readonly #log: Logger;

  constructor(store: RelayStore, log: Logger) {
    this.#store = store;
    this.#log = log;
  }

  /** Every record of a kind, oldest first. */
  async list<T extends { created_at: number }>(kind: RecordKind): Promise<T[]> {
    const records = await this.#store.listRecords<T>(kind);
    return records.sort((a, b) => a.created_at - b.created_at);
  }

  /** One record and its counters (accepted, rejected, ...), or null when there is none. */
  async get<T>(
    kind: RecordKind,
    id: string,
  ): Promise<{ record: T; counters: Record<string, number> } | null> {
    const [record, counters] = await Promise.all([
      this.#store.getRecord<T>(kind, id),
      this.#store.counters(kind, id),
    ]);
    return record ? { record, counters } : null;
  }

  /** Deletes a record (and its cached copy in this isolate); false when there was none. */
  async remove<T extends { id: string }>(
    kind: RecordKind,
    cache: RecordCache<T>,
    id: string,
    by: string,
  ): Promise<boolean> {
    const removed = await cache.remove(this.#store, id);
    if (removed) this.#log.info(`${kind}.deleted`, { [`${kind}_id`]: id, key_id: by });
    return removed;
  }
}
