/**
 * The store seam: the message queue and the API keys, in one database. One interface, one file per driver (`upstash.ts`, `memory.ts`), and one
 * contract suite (`test/contract/queue-store.ts`) that every driver passes.
 *
 * The design fits a REST-only Redis: no blocking commands. Messages sit in one sorted set scored by
 * the time they are next due. Claiming moves a due message's score forward by a lease and stamps a
 * token on it; a run that dies simply lets the lease run out and the message becomes due again.
 * Writing the outcome back (`commit`) only succeeds for the holder of the current token, so two runs
 * never both own a message.
 */
import type {
  ApiKeyRecord,
  ClaimedEntry,
  DeliveryState,
  QueuedMessage,
  StoredEntry,
} from "./types.ts";

export interface NewEntry {
  message: QueuedMessage;
  raw: string;
  state: DeliveryState;
  /** When the message is first due (ms). */
  dueAt: number;
  /** Reserve it for the caller right away (the attempt made just after accepting). */
  lease?: { token: string; until: number };
}

/** Where the message goes after a state change. */
export type NextStep =
  | { kind: "due"; at: number }
  /** Finished: leave the queue and expire after `retainMs`. */
  | { kind: "done"; retainMs: number };

/** Who may write: the holder of a lease, or anyone who read `version` while no lease was held. */
export type WriteGuard = { token: string } | { version: number; now: number };

export type CommitResult = "ok" | "conflict" | "missing";

/** A response kept for an idempotency key, replayed when the same request comes again. */
export interface StoredResponse {
  status: number;
  body: unknown;
}

/** What an idempotency key holds when a request claims it. */
export type IdempotencyState =
  | { kind: "new" }
  | { kind: "in_flight"; hash: string }
  | { kind: "done"; hash: string; response: StoredResponse };

/** Written together with the messages a request accepts, so the replay record costs nothing. */
export interface IdempotencyRecord {
  key: string;
  hash: string;
  response: StoredResponse;
  ttlMs: number;
}

export interface RelayStore {
  /**
   * Stores new messages atomically: all of them or none, together with the request's idempotency
   * record when there is one. Throws if the store is unreachable.
   */
  enqueue(entries: NewEntry[], idempotency?: IdempotencyRecord): Promise<void>;
  /** Claims an idempotency key for a request in flight (one command), or reports what it holds. */
  beginIdempotent(key: string, hash: string, ttlMs: number): Promise<IdempotencyState>;
  /** Releases a claimed key whose request failed, so the client may retry with the same key. */
  abandonIdempotent(key: string): Promise<void>;
  /** Reserves up to `limit` messages due at `now` for `leaseMs`, oldest due first. */
  claim(now: number, limit: number, leaseMs: number): Promise<ClaimedEntry[]>;
  /** Writes a new state and releases the lease, if `guard` still holds. */
  commit(
    id: string,
    guard: WriteGuard,
    state: DeliveryState,
    next: NextStep,
  ): Promise<CommitResult>;
  /**
   * Extends a lease its holder still holds (a long SMTP transaction), so no other run takes the
   * message meanwhile. Returns false when the lease is no longer the caller's.
   */
  renew(id: string, token: string, until: number): Promise<boolean>;
  get(id: string): Promise<StoredEntry | null>;

  /** Stores an API key record under its token digest (the token itself is never stored). */
  putKey(record: ApiKeyRecord): Promise<void>;
  keyByDigest(digest: string): Promise<ApiKeyRecord | null>;
  listKeys(): Promise<ApiKeyRecord[]>;
  /** Records when a key was last used (called at most once per key cache period). */
  touchKey(record: ApiKeyRecord, at: number): Promise<void>;
  /** Removes a key; returns false when there was none with that id. */
  deleteKey(id: string): Promise<boolean>;

  /**
   * Small JSON documents the API manages by kind and id (forms, hooks, webhook endpoints). They
   * are few and read whole, so one hash per kind holds them all.
   */
  putRecord<T>(kind: RecordKind, id: string, value: T): Promise<void>;
  getRecord<T>(kind: RecordKind, id: string): Promise<T | null>;
  /** Every record of a kind, in no particular order. */
  listRecords<T>(kind: RecordKind): Promise<T[]>;
  /** Removes a record and its counters; returns false when there was none with that id. */
  deleteRecord(kind: RecordKind, id: string): Promise<boolean>;
  /** Adds `by` to a named counter of a record (rejected submissions by reason, say). */
  count(kind: RecordKind, id: string, counter: string, by?: number): Promise<void>;
  /** A record's counters; an empty object when none has been counted. */
  counters(kind: RecordKind, id: string): Promise<Record<string, number>>;
  /**
   * Remembers `key` for `ttlMs` and reports whether it was new: true the first time, false while
   * it is remembered (a replayed webhook id, say). One command.
   */
  markSeen(key: string, ttlMs: number): Promise<boolean>;
}

/** The kinds of record `putRecord` and friends keep. */
export type RecordKind = "form" | "hook" | "webhook";

/** A fresh, unguessable lease token. */
export function newLeaseToken(): string {
  return crypto.randomUUID();
}
