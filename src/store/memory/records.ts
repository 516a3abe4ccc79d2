/** In-memory records and their counters (the Upstash rec:<kind> and cnt:<kind>:<id> hashes). */
import type { RecordKind, RecordStore } from "../ports.ts";

export class MemoryRecords implements RecordStore {
  /** "<kind>:<id>" -> record JSON. Webhook endpoints (kind "webhook") are kept here too. */
  readonly json = new Map<string, string>();
  readonly #counters = new Map<string, Record<string, number>>();

  async putRecord<T>(kind: RecordKind, id: string, value: T): Promise<void> {
    this.json.set(`${kind}:${id}`, JSON.stringify(value));
  }

  async swapRecord<T>(
    kind: RecordKind,
    id: string,
    expected: T | null,
    value: T,
  ): Promise<boolean> {
    const current = this.json.get(`${kind}:${id}`);
    if ((expected === null ? undefined : JSON.stringify(expected)) !== current) return false;
    this.json.set(`${kind}:${id}`, JSON.stringify(value));
    return true;
  }

  async getRecord<T>(kind: RecordKind, id: string): Promise<T | null> {
    const json = this.json.get(`${kind}:${id}`);
    return json === undefined ? null : (JSON.parse(json) as T);
  }

  async listRecords<T>(kind: RecordKind): Promise<T[]> {
    return [...this.json]
      .filter(([k]) => k.startsWith(`${kind}:`))
      .map(([, json]) => JSON.parse(json) as T);
  }

  async deleteRecord(kind: RecordKind, id: string): Promise<boolean> {
    this.#counters.delete(`${kind}:${id}`);
    return this.json.delete(`${kind}:${id}`);
  }

  async count(kind: RecordKind, id: string, counter: string, by = 1): Promise<void> {
    const counters = this.#counters.get(`${kind}:${id}`) ?? {};
    counters[counter] = (counters[counter] ?? 0) + by;
    this.#counters.set(`${kind}:${id}`, counters);
  }

  async counters(kind: RecordKind, id: string): Promise<Record<string, number>> {
    return { ...(this.#counters.get(`${kind}:${id}`) ?? {}) };
  }
}
