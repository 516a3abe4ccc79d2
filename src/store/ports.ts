/**
 * The store's ports, one per thing it stores: the message queue, idempotency keys, API keys,
 * records with their counters, and webhook endpoints with their event queue (the email index
 * and the request log are in history-ports.ts). Each driver
 * (`upstash/`, `memory/`) implements them all over one database, and `RelayStore` (store.ts) is
 * their intersection; the contract suites in test/contract/store/ pin each port.
 *
 * The design fits a REST-only Redis: no blocking commands. Messages sit in one sorted set scored by
 * the time they are next due. Claiming moves a due message's score forward by a lease and stamps a
 * token on it; a run that dies simply lets the lease run out and the message becomes due again.
 * Writing the outcome back (`commit`) only succeeds for the holder of the current token, so two runs
 * never both own a message.
 */

import type { ClaimSlots, SlotsAnswer } from "./slot-ports.ts";
import type { SuppressedRecipient, Suppression } from "./suppression-ports.ts";
import type {
  ApiKeyRecord,
  ClaimedEntry,
  DeliveryState,
  EventDraft,
  QueuedMessage,
  StoredEntry,
} from "./types.ts";

// ---- The message queue ------------------------------------------------------------------------

export interface NewEntry {
  message: QueuedMessage;
  raw: string;
  state: DeliveryState;
  /** When the message is first due (ms). */
  dueAt: number;
  /** Reserve it for the caller right away (the attempt made just after accepting). */
  lease?: { token: string; until: number };
  /** Events accepting it emits, queued for every subscribed webhook endpoint in the same step. */
  events?: EventDraft[];
}

/** Where the message goes after a state change. */
export type NextStep =
  | { kind: "due"; at: number }
  /** Finished: leave the queue and expire after `retainMs`. */
  | { kind: "done"; retainMs: number };

/** Who may write: the holder of a lease, or anyone who read `version` while no lease was held. */
export type WriteGuard = { token: string } | { version: number; now: number };

export type CommitResult = "ok" | "conflict" | "missing";

/** One commit of a group (MessageQueue.commitMany): the arguments of `commit`. */
export interface CommitItem {
  id: string;
  guard: WriteGuard;
  state: DeliveryState;
  next: NextStep;
  events?: EventDraft[] | undefined;
  suppress?: Suppression[] | undefined;
}

/** What enqueue tells the caller: the suppressed recipients of each leased message, by id. */
export interface EnqueueOutcome {
  /**
   * Checked for the leased entries only (their attempt follows at once); the others are checked
   * when claimed. An id with no suppressed recipient is absent.
   */
  suppressed: Record<string, SuppressedRecipient[]>;
}

/** What one claim hands a delivery run. */
export interface ClaimRun {
  entries: ClaimedEntry[];
  /** Webhook event chains due at the claim's `now` (counted in the same command). */
  eventsDue: number;
  /** The claim stopped at its byte budget with due messages left unclaimed: claim again. */
  stoppedAtBudget: boolean;
  /** Messages still due and unleased after this claim (counted in the same command). */
  dueLeft: number;
  /** With `ClaimSlots`: the connection slots taken and left free (slot-ports.ts). */
  slots?: SlotsAnswer;
}

export interface MessageQueue {
  /**
   * Stores new messages atomically: all of them or none, together with the request's idempotency
   * record when there is one (see `IdempotencyStore`). Throws if the store is unreachable, and
   * `IdempotencyClaimLapsedError` when the record's key no longer holds the request's marker.
   * Idempotent: the same entries again (a retry after a lost reply) store and queue nothing more.
   * In the same step it checks the leased entries' recipients against the suppression list.
   */
  enqueue(entries: NewEntry[], idempotency?: IdempotencyRecord): Promise<EnqueueOutcome>;
  /**
   * Reserves up to `limit` messages due at `now` for `leaseMs`, oldest due first, and no more
   * than fit in the claim's byte budget (`CLAIM_BUDGET_BYTES`); the first due message is taken
   * even when it alone is over the budget. Messages left out stay due and unleased. It also tells
   * how many webhook event chains are due, in the same command, so an idle scheduled run stays at
   * one command. Each claimed entry carries its recipients that are suppressed at `now`
   * (`ClaimedEntry.suppressed`), found in the same command. With `slots`, it reads (and may take)
   * the smart host's connection slots first, in the same command (slot-ports.ts).
   */
  claimRun(now: number, limit: number, leaseMs: number, slots?: ClaimSlots): Promise<ClaimRun>;
  /**
   * Writes a new state and releases the lease, if `guard` still holds; `events` are queued for
   * the subscribed webhook endpoints in the same atomic step, and only if the write succeeds.
   * A token-guarded commit is idempotent: repeated with the token of the commit last applied to
   * the message (a retry after a lost reply), it answers "ok" and changes nothing. `suppress`
   * are addresses the attempt found dead, added to the suppression list in the same step and
   * only if the write succeeds (an address already suppressed keeps its entry).
   */
  commit(
    id: string,
    guard: WriteGuard,
    state: DeliveryState,
    next: NextStep,
    events?: EventDraft[],
    suppress?: Suppression[],
  ): Promise<CommitResult>;
  /**
   * Several commits in one store command (a group commit), each with its own guard and result,
   * in order: one that fails its guard leaves the others as they would be alone.
   */
  commitMany(items: CommitItem[]): Promise<CommitResult[]>;
  /**
   * Extends a lease its holder still holds (a long SMTP transaction), so no other run takes the
   * message meanwhile. Returns false when the lease is no longer the caller's.
   */
  renew(id: string, token: string, until: number): Promise<boolean>;
  get(id: string): Promise<StoredEntry | null>;
}

// ---- Idempotency keys -------------------------------------------------------------------------

/** A response kept for an idempotency key, replayed when the same request comes again. */
export interface StoredResponse {
  status: number;
  body: unknown;
}

/**
 * What an idempotency key holds when a request claims it. An in-flight marker says when it
 * lapses (`until`, ms since epoch), so a caller can say when to retry.
 */
export type IdempotencyState =
  | { kind: "new" }
  | { kind: "in_flight"; hash: string; until: number }
  | { kind: "done"; hash: string; response: StoredResponse };

/** Written together with the messages a request accepts, so the replay record costs nothing. */
export interface IdempotencyRecord {
  key: string;
  hash: string;
  response: StoredResponse;
  ttlMs: number;
  /** The token of the in-flight marker the request set: the write stores only while it holds. */
  token: string;
}

/**
 * An enqueue found its idempotency key no longer holding the request's in-flight marker (it
 * lapsed, and perhaps another request took the key): nothing was stored.
 */
export class IdempotencyClaimLapsedError extends Error {
  constructor() {
    super("the idempotency claim lapsed before the write reached the store; nothing was stored");
    this.name = "IdempotencyClaimLapsedError";
  }
}

/** Idempotency keys. The done record is written by `MessageQueue.enqueue`, with the messages. */
export interface IdempotencyStore {
  /**
   * Claims an idempotency key for a request in flight (one command): an in-flight marker that
   * carries `token` and lapses after `ttlMs`. Reports what the key held instead when it held one.
   */
  beginIdempotent(
    key: string,
    hash: string,
    token: string,
    ttlMs: number,
  ): Promise<IdempotencyState>;
  /** What an idempotency key holds, changing nothing (one command). */
  peekIdempotent(key: string): Promise<IdempotencyState>;
  /**
   * Releases a claimed key whose request stored nothing, so the client may retry with the same key
   * at once: only while it still holds the in-flight marker with `token` (never a done record, nor
   * another request's marker). True when it released it. One command.
   */
  abandonIdempotent(key: string, token: string): Promise<boolean>;
}

// ---- API keys ---------------------------------------------------------------------------------

export interface KeyStore {
  /** Stores an API key record under its token digest (the token itself is never stored). */
  putKey(record: ApiKeyRecord): Promise<void>;
  keyByDigest(digest: string): Promise<ApiKeyRecord | null>;
  /** Every key, newest first. */
  listKeys(): Promise<ApiKeyRecord[]>;
  /** Records when a key was last used (called at most once per key cache period). */
  touchKey(record: ApiKeyRecord, at: number): Promise<void>;
  /** Removes a key; returns false when there was none with that id. */
  deleteKey(id: string): Promise<boolean>;
  /**
   * Replaces a key's record only while it still is `previous` (compared whole, so neither a
   * concurrent update nor a touch is overwritten): "missing" when the key is gone, "changed" when
   * it changed since it was read (read it again). Safe to repeat: a record that already is `next`
   * answers "updated". The digest (the token) never changes.
   */
  updateKey(previous: ApiKeyRecord, next: ApiKeyRecord): Promise<KeyUpdate>;
  /**
   * The relay's own secret called `name` (the key that signs attachment download URLs): stores
   * `fresh` unless the store already holds one, and returns the one it holds, so every isolate
   * agrees. Safe to repeat: a retry finds its own value.
   */
  secret(name: string, fresh: string): Promise<string>;
}

export type KeyUpdate = "updated" | "missing" | "changed";

// ---- Records and their counters ---------------------------------------------------------------

/**
 * The kinds of record `putRecord` and friends keep. Email templates are "template", and
 * "template_alias" maps an alias to its template's id (so a send by alias reads one record);
 * "domain" holds a sending domain with its sealed DKIM keys (src/domains.ts); "bounce_intake" has
 * no records, only the counters of what bounce intake did with the reports it got (src/bounces/).
 */
export type RecordKind =
  | "form"
  | "hook"
  | "webhook"
  | "template"
  | "template_alias"
  | "domain"
  | "domain_name"
  | "bounce_intake";

/**
 * Small JSON documents the API manages by kind and id (forms, hooks, webhook endpoints,
 * templates). They
 * are few and read whole, so one hash per kind holds them all.
 */
export interface RecordStore {
  putRecord<T>(kind: RecordKind, id: string, value: T): Promise<void>;
  /**
   * Writes `value` only while the record is still `expected` (as read by getRecord; null: there is
   * none). False when another writer got there first: read again and decide.
   */
  swapRecord<T>(kind: RecordKind, id: string, expected: T | null, value: T): Promise<boolean>;
  getRecord<T>(kind: RecordKind, id: string): Promise<T | null>;
  /** Every record of a kind, in no particular order. */
  listRecords<T>(kind: RecordKind): Promise<T[]>;
  /** Removes a record and its counters; returns false when there was none with that id. */
  deleteRecord(kind: RecordKind, id: string): Promise<boolean>;
  /** Adds `by` to a named counter of a record (rejected submissions by reason, say). */
  count(kind: RecordKind, id: string, counter: string, by?: number): Promise<void>;
  /** A record's counters; an empty object when none has been counted. */
  counters(kind: RecordKind, id: string): Promise<Record<string, number>>;
}

// ---- Webhook endpoints and their event queue --------------------------------------------------

export type EventStatus = "pending" | "attempting" | "success" | "failed" | "dropped";

/** One attempt to deliver an event: when, the HTTP status (null: no answer), how long it took. */
export interface EventAttempt {
  at: number;
  status: number | null;
  ms: number;
  /** A network error or timeout, when there was no HTTP answer. */
  error?: string;
  /** The start of the receiver's answer (bounded). */
  response?: string;
}

export interface EventSummary {
  id: string;
  type: string;
  emailId: string;
  createdAt: number;
  status: EventStatus;
  /** Set on a replay: the id of the event it copies. */
  replayOf?: string;
}

/** An event as queued for one endpoint, with its attempts (the email page's view of it). */
export interface EndpointEvent extends EventSummary {
  endpointId: string;
  attempts: EventAttempt[];
  nextAttemptAt: number | null;
}

/**
 * What `replayEvent` did: queued the copy, or found the event's last replay still unfinished and
 * queued nothing (`pending`: that replay's id), so a second click or a retried request does not
 * send the receiver two more copies.
 */
export type ReplayResult = "queued" | "missing" | "disabled" | { pending: string };

export interface EventDelivery extends EventSummary {
  payload: string;
  attempts: EventAttempt[];
  nextAttemptAt: number | null;
}

export interface ClaimedEvent extends EventDelivery {
  endpointId: string;
  /** The endpoint's record JSON, or null when it was deleted. */
  endpoint: string | null;
  enabled: boolean;
  token: string;
  leasedUntil: number;
}

export type EventOutcome =
  /** The receiver answered 2xx. */
  | { kind: "success"; attempts: EventAttempt[]; now: number; retainMs: number }
  /** A failed attempt with another one due at `at`. */
  | { kind: "retry"; attempts: EventAttempt[]; now: number; at: number }
  /**
   * The last attempt failed. The endpoint is disabled when no delivery to it has succeeded since
   * its failures began (or at once when `disable` is set, as for 410 Gone).
   */
  | { kind: "failed"; attempts: EventAttempt[]; now: number; retainMs: number; disable?: boolean }
  /** The endpoint is gone or disabled: this event and the rest of its chain are dropped. */
  | { kind: "dropped"; now: number; retainMs: number };

export type EventCommitResult =
  | { ok: false }
  | {
      ok: true;
      /** The endpoint was disabled by this outcome. */
      disabled: boolean;
    };

/**
 * Webhook endpoints (src/events/) and the events queued for them. An endpoint is "enabled"
 * exactly while it has a subscription: what `enqueue` and `commit` fan events out from, in the
 * same atomic step as the message write.
 */
export interface EventQueue {
  /** Saves an endpoint's record (kind "webhook") and its subscription (null: disabled) together. */
  putWebhook<T>(id: string, record: T, events: readonly string[] | null): Promise<void>;
  /** An endpoint's record and whether it is enabled, or null. */
  getWebhook<T>(id: string): Promise<{ record: T; enabled: boolean } | null>;
  listWebhooks<T>(): Promise<{ record: T; enabled: boolean }[]>;
  /** Removes an endpoint, its subscription and its event log; false when there was none. */
  deleteWebhook(id: string): Promise<boolean>;
  /**
   * Reserves the heads of up to `limit` due event chains (one chain per endpoint and email, so
   * a later event waits behind an earlier one), each with its endpoint's record.
   */
  claimEvents(now: number, limit: number, leaseMs: number): Promise<ClaimedEvent[]>;
  /** Records an attempt's outcome if the lease still holds; see `EventOutcome`. */
  commitEvent(event: ClaimedEvent, outcome: EventOutcome): Promise<EventCommitResult>;
  /** The newest `limit` events queued for an endpoint, newest first. */
  eventLog(endpointId: string, limit: number): Promise<EventSummary[]>;
  /** `eventLog` with each event's attempts and next attempt (one command too). */
  endpointEvents(endpointId: string, limit: number): Promise<EndpointEvent[]>;
  /** One event as queued for an endpoint, with its attempts; null when unknown or expired. */
  eventDelivery(endpointId: string, eventId: string): Promise<EventDelivery | null>;
  /**
   * Queues a copy of an event for its endpoint under `newId`: the same type, email and payload,
   * created at `now`, no attempts, a fresh retry schedule, behind whatever of its email's chain
   * is still pending (so order per email holds). "missing" when the event is unknown or
   * expired, "disabled" when the endpoint is disabled or gone: then nothing is queued. One
   * atomic step.
   */
  replayEvent(
    endpointId: string,
    eventId: string,
    newId: string,
    now: number,
  ): Promise<ReplayResult>;
  /**
   * The events named by `eventIds` (all of one email) as queued for every endpoint, with their
   * attempts: ids no endpoint has are left out. One command, whatever the number of endpoints.
   */
  emailEvents(eventIds: string[]): Promise<EndpointEvent[]>;
  /**
   * Event deliveries this store object has queued since it was made: a hint that the dispatcher
   * has work. It stays 0 while no endpoint subscribes.
   */
  readonly eventsQueued: number;
}
