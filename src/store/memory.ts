/**
 * In-memory queue store: the embedded default for local development and tests. It keeps the same
 * semantics as the Upstash driver (leases, guarded commits, retention) so the contract suite holds
 * for both, but it is not durable: an isolate restart loses every message. The relay logs a warning
 * when it runs on this driver.
 */
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
import type { ApiKeyRecord, ClaimedEntry, DeliveryState, StoredEntry } from "./types.ts";

interface Slot {
  entry: StoredEntry;
  /** Score in the queue: due time, or lease end while leased. Null once finished. */
  dueAt: number | null;
  token: string;
  expiresAt: number | null;
}

/** Values are copied in and out, as a network store would: callers never share state with it. */
const copy = <T>(value: T): T => structuredClone(value);

export class MemoryStore implements RelayStore {
  readonly #slots = new Map<string, Slot>();
  readonly #keys = new Map<string, ApiKeyRecord>();
  readonly #idempotency = new Map<
    string,
    { state: Exclude<IdempotencyState, { kind: "new" }>; expiresAt: number }
  >();
  readonly #records = new Map<string, string>();
  readonly #counters = new Map<string, Record<string, number>>();
  readonly #seen = new Map<string, number>();
  readonly #now: () => number;

  constructor(options: { now?: () => number } = {}) {
    this.#now = options.now ?? Date.now;
  }

  async beginIdempotent(key: string, hash: string, ttlMs: number): Promise<IdempotencyState> {
    const now = this.#now();
    const held = this.#idempotency.get(key);
    if (held && held.expiresAt > now) return copy(held.state);
    this.#idempotency.set(key, { state: { kind: "in_flight", hash }, expiresAt: now + ttlMs });
    return { kind: "new" };
  }

  async abandonIdempotent(key: string): Promise<void> {
    this.#idempotency.delete(key);
  }

  async enqueue(entries: NewEntry[], idempotency?: IdempotencyRecord): Promise<void> {
    if (idempotency) {
      this.#idempotency.set(idempotency.key, {
        state: { kind: "done", hash: idempotency.hash, response: copy(idempotency.response) },
        expiresAt: this.#now() + idempotency.ttlMs,
      });
    }
    for (const e of entries) {
      this.#slots.set(e.message.id, {
        entry: {
          message: copy(e.message),
          raw: e.raw,
          state: copy(e.state),
          version: 1,
          leasedUntil: e.lease?.until ?? null,
        },
        dueAt: e.lease ? e.lease.until : e.dueAt,
        token: e.lease?.token ?? "",
        expiresAt: null,
      });
    }
  }

  async claim(now: number, limit: number, leaseMs: number): Promise<ClaimedEntry[]> {
    this.#purge();
    const due = [...this.#slots.values()]
      .filter((s): s is Slot & { dueAt: number } => s.dueAt !== null && s.dueAt <= now)
      .sort((a, b) => a.dueAt - b.dueAt)
      .slice(0, limit);
    const token = newLeaseToken();
    return due.map((slot) => {
      slot.dueAt = now + leaseMs;
      slot.token = token;
      slot.entry.leasedUntil = now + leaseMs;
      return { ...copy(slot.entry), token };
    });
  }

  async commit(
    id: string,
    guard: WriteGuard,
    state: DeliveryState,
    next: NextStep,
  ): Promise<CommitResult> {
    this.#purge();
    const slot = this.#slots.get(id);
    if (!slot) return "missing";
    if ("token" in guard) {
      if (slot.token !== guard.token) return "conflict";
    } else {
      const leased = slot.token !== "" && (slot.entry.leasedUntil ?? 0) > guard.now;
      if (leased || slot.entry.version !== guard.version) return "conflict";
    }
    slot.entry.state = copy(state);
    slot.entry.version += 1;
    slot.entry.leasedUntil = null;
    slot.token = "";
    if (next.kind === "due") {
      slot.dueAt = next.at;
    } else {
      slot.dueAt = null;
      slot.expiresAt = this.#now() + next.retainMs;
    }
    return "ok";
  }

  async renew(id: string, token: string, until: number): Promise<boolean> {
    const slot = this.#slots.get(id);
    if (!slot || slot.token === "" || slot.token !== token) return false;
    slot.dueAt = until;
    slot.entry.leasedUntil = until;
    return true;
  }

  async get(id: string): Promise<StoredEntry | null> {
    this.#purge();
    const slot = this.#slots.get(id);
    return slot ? copy(slot.entry) : null;
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

  async putRecord<T>(kind: RecordKind, id: string, value: T): Promise<void> {
    this.#records.set(`${kind}:${id}`, JSON.stringify(value));
  }

  async getRecord<T>(kind: RecordKind, id: string): Promise<T | null> {
    const json = this.#records.get(`${kind}:${id}`);
    return json === undefined ? null : (JSON.parse(json) as T);
  }

  async listRecords<T>(kind: RecordKind): Promise<T[]> {
    return [...this.#records]
      .filter(([k]) => k.startsWith(`${kind}:`))
      .map(([, json]) => JSON.parse(json) as T);
  }

  async deleteRecord(kind: RecordKind, id: string): Promise<boolean> {
    this.#counters.delete(`${kind}:${id}`);
    return this.#records.delete(`${kind}:${id}`);
  }

  async count(kind: RecordKind, id: string, counter: string, by = 1): Promise<void> {
    const counters = this.#counters.get(`${kind}:${id}`) ?? {};
    counters[counter] = (counters[counter] ?? 0) + by;
    this.#counters.set(`${kind}:${id}`, counters);
  }

  async counters(kind: RecordKind, id: string): Promise<Record<string, number>> {
    return { ...(this.#counters.get(`${kind}:${id}`) ?? {}) };
  }

  async markSeen(key: string, ttlMs: number): Promise<boolean> {
    const now = this.#now();
    const until = this.#seen.get(key);
    if (until !== undefined && until > now) return false;
    this.#seen.set(key, now + ttlMs);
    return true;
  }

  #purge(): void {
    const now = this.#now();
    for (const [id, slot] of this.#slots) {
      if (slot.expiresAt !== null && slot.expiresAt <= now) this.#slots.delete(id);
    }
    for (const [key, until] of this.#seen) if (until <= now) this.#seen.delete(key);
  }
}
