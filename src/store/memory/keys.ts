/** In-memory API keys, by id; found by digest with a scan (there are few). */
import type { KeyStore, KeyUpdate } from "../ports.ts";
import type { ApiKeyRecord } from "../types.ts";
import { copy } from "./values.ts";

export class MemoryKeys implements KeyStore {
  readonly #keys = new Map<string, ApiKeyRecord>();
  readonly #secrets = new Map<string, string>();

  async secret(name: string, fresh: string): Promise<string> {
    const held = this.#secrets.get(name);
    if (held !== undefined) return held;
    this.#secrets.set(name, fresh);
    return fresh;
  }

  async putKey(record: ApiKeyRecord): Promise<void> {
    this.#keys.set(record.id, copy(record));
  }

  async keyByDigest(digest: string): Promise<ApiKeyRecord | null> {
    for (const k of this.#keys.values()) if (k.digest === digest) return copy(k);
    return null;
  }

  async listKeys(): Promise<ApiKeyRecord[]> {
    return [...this.#keys.values()].map(copy).sort((a, b) => b.createdAt - a.createdAt);
  }

  async touchKey(record: ApiKeyRecord, at: number): Promise<void> {
    const held = this.#keys.get(record.id);
    if (held) held.lastUsedAt = at;
  }

  async deleteKey(id: string): Promise<boolean> {
    return this.#keys.delete(id);
  }

  async updateKey(previous: ApiKeyRecord, next: ApiKeyRecord): Promise<KeyUpdate> {
    const held = this.#keys.get(previous.id);
    if (!held) return "missing";
    const now = JSON.stringify(held);
    if (now === JSON.stringify(next)) return "updated";
    if (now !== JSON.stringify(previous)) return "changed";
    this.#keys.set(previous.id, copy(next));
    return "updated";
  }
}
