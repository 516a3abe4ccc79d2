/**
 * Upstash Redis driver for every store port, over the REST API with @upstash/redis. The key
 * layout is in keys.ts; each multi-key operation is one Lua script in scripts/, so each costs one
 * billed command however many messages it touches: accepting a batch, claiming a batch, and
 * acknowledging one message are one command each. The global script lock of a single node (as
 * Upstash is) is what makes claiming atomic. Single-key reads and writes are plain commands.
 */
import { Redis } from "@upstash/redis";
import type {
  EmailListQuery,
  EmailListWindow,
  RequestLogEntry,
  RequestLogQuery,
} from "../history-ports.ts";
import type { QueueDepth, SmartHostOutcomes } from "../insight-ports.ts";
import type {
  ClaimedEvent,
  CommitItem,
  CommitResult,
  EndpointEvent,
  EnqueueOutcome,
  EventCommitResult,
  EventDelivery,
  EventOutcome,
  EventSummary,
  IdempotencyRecord,
  IdempotencyState,
  NewEntry,
  NextStep,
  RecordKind,
  WriteGuard,
} from "../ports.ts";
import { IdempotencyClaimLapsedError } from "../ports.ts";
import { CLAIM_BUDGET_BYTES, LIST_BUDGET_BYTES, newLeaseToken } from "../shared.ts";
import type { ClaimSlots } from "../slot-ports.ts";
import type { RelayStore } from "../store.ts";
import type {
  SuppressedRecipient,
  Suppression,
  SuppressionListQuery,
  SuppressionPage,
  SuppressionSelector,
} from "../suppression-ports.ts";
import type { ApiKeyRecord, DeliveryState, EventDraft, StoredEntry } from "../types.ts";
import { idempotencyState, inFlightMarker } from "./idempotency.ts";
import { type KeyLayout, keyLayout } from "./keys.ts";
import { readEntry, readEventDelivery, readSmartHost } from "./reads.ts";
import { UpstashRecords } from "./records.ts";
import { type BoundScripts, bindScripts } from "./scripts/index.ts";
import { UpstashSlots } from "./slots.ts";

/**
 * How long one store call (with its retries) may take. It bounds how long an idempotency claim's
 * write can be outstanding (src/idempotency.ts SEAL_DEADLINE_MS plus this stays within the
 * in-flight marker's life), and a claim of a full budget (9 MB) still has ample time.
 */
export const STORE_REQUEST_TIMEOUT_MS = 20_000;

export interface UpstashStoreOptions {
  url: string;
  token: string;
  prefix: string;
  /** Network retries inside @upstash/redis before a call fails (and the API answers 503). */
  retries?: number;
  /** The claim's byte budget; CLAIM_BUDGET_BYTES unless a test wants a small one. */
  claimBudgetBytes?: number;
  /** A list window's byte budget; LIST_BUDGET_BYTES unless a test wants a small one. */
  listBudgetBytes?: number;
  /**
   * The clock for times the store stamps itself (an in-flight marker's end, when queued events
   * are due, whether an event's lease ran out).
   * @default Date.now
   */
  now?: () => number;
}

export class UpstashStore implements RelayStore {
  readonly #redis: Redis;
  readonly #keys: KeyLayout;
  readonly #options: UpstashStoreOptions;
  readonly #now: () => number;
  readonly #run: BoundScripts;
  readonly #records: UpstashRecords;
  readonly #slots: UpstashSlots;
  #eventsQueued = 0;

  constructor(options: UpstashStoreOptions) {
    this.#redis = new Redis({
      url: options.url,
      token: options.token,
      // Values are our own JSON and raw MIME: parse them ourselves, never guess.
      automaticDeserialization: false,
      enableTelemetry: false,
      retry: { retries: options.retries ?? 2, backoff: (n) => 100 * 2 ** n },
      // fetch has no timeout of its own: a request that hangs would hold a delivery run or an
      // accept for ever. A function gives each call (all its attempts) a fresh signal, and makes
      // the client throw on abort instead of answering a made-up "Aborted" result.
      signal: () => AbortSignal.timeout(STORE_REQUEST_TIMEOUT_MS),
    });
    this.#keys = keyLayout(options.prefix);
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#run = bindScripts(this.#redis);
    this.#records = new UpstashRecords(this.#redis, this.#keys, this.#run);
    this.#slots = new UpstashSlots(this.#redis, this.#keys);
  }

  get eventsQueued(): number {
    return this.#eventsQueued;
  }

  /**
   * A client with the library's default settings (JSON deserialisation on), for libraries such as
   * @upstash/ratelimit that expect them; the store's own client leaves values untouched.
   */
  libraryClient(): Redis {
    return new Redis({
      url: this.#options.url,
      token: this.#options.token,
      enableTelemetry: false,
    });
  }

  // ---- IdempotencyStore

  async beginIdempotent(
    key: string,
    hash: string,
    token: string,
    ttlMs: number,
  ): Promise<IdempotencyState> {
    // SET NX GET claims the key and returns what it held, in one command. The token leads the
    // marker so RELEASE_IDEMPOTENT can recognise its own marker by prefix.
    const held = await this.#redis.set<string>(
      this.#keys.idempotency(key),
      inFlightMarker(token, hash, this.#now() + ttlMs),
      { nx: true, px: ttlMs, get: true },
    );
    // The client's retry of a SET whose reply was lost finds this request's own marker.
    return idempotencyState(held, token);
  }

  async peekIdempotent(key: string): Promise<IdempotencyState> {
    return idempotencyState(await this.#redis.get<string>(this.#keys.idempotency(key)));
  }

  async abandonIdempotent(key: string, token: string): Promise<boolean> {
    return this.#run.releaseIdempotent({ keys: this.#keys, key, token });
  }

  // ---- MessageQueue

  async enqueue(entries: NewEntry[], idempotency?: IdempotencyRecord): Promise<EnqueueOutcome> {
    if (entries.length === 0) return { suppressed: {} };
    const result = await this.#run.enqueue({
      keys: this.#keys,
      entries,
      idempotency,
      now: this.#now(),
    });
    if (result === "lapsed") throw new IdempotencyClaimLapsedError();
    this.#eventsQueued += result.queued;
    return { suppressed: result.suppressed };
  }

  async claimRun(now: number, limit: number, leaseMs: number, slots?: ClaimSlots) {
    return this.#run.claim({
      keys: this.#keys,
      now,
      limit,
      leaseMs,
      token: newLeaseToken(),
      budgetBytes: this.#options.claimBudgetBytes ?? CLAIM_BUDGET_BYTES,
      slots,
    });
  }

  // ---- ConnectionSlots (slots.ts)

  releaseSlots(host: string, holder: string, count: number) {
    return this.#slots.release(host, holder, count);
  }
  renewSlots(host: string, holder: string, count: number, until: number) {
    return this.#slots.renew(host, holder, count, until);
  }

  async commit(
    id: string,
    guard: WriteGuard,
    state: DeliveryState,
    next: NextStep,
    events?: EventDraft[],
    suppress?: Suppression[],
  ): Promise<CommitResult> {
    const [result] = await this.commitMany([{ id, guard, state, next, events, suppress }]);
    return result ?? "missing";
  }

  async commitMany(items: CommitItem[]): Promise<CommitResult[]> {
    if (items.length === 0) return [];
    const replies = await this.#run.commit({ keys: this.#keys, items, now: this.#now() });
    this.#eventsQueued += replies.reduce((sum, r) => sum + r.queued, 0);
    return replies.map((r) => r.result);
  }

  async renew(id: string, token: string, until: number): Promise<boolean> {
    return this.#run.renew({ keys: this.#keys, id, token, until });
  }

  async get(id: string): Promise<StoredEntry | null> {
    return readEntry(this.#redis, this.#keys, id);
  }

  // ---- QueueInsight

  async queueDepth(now: number, leaseMs: number): Promise<QueueDepth> {
    return this.#run.queueDepth({ keys: this.#keys, now, leaseWindowMs: leaseMs });
  }

  async smartHost(): Promise<SmartHostOutcomes> {
    return readSmartHost(this.#redis, this.#keys);
  }

  // ---- EmailIndex

  async listEmails(query: EmailListQuery): Promise<EmailListWindow> {
    const budgetBytes = this.#options.listBudgetBytes ?? LIST_BUDGET_BYTES;
    return this.#run.listEmails({ keys: this.#keys, query, budgetBytes });
  }

  async emailMetrics(query: {
    fromHour: number;
    toHour: number;
    names: readonly string[];
    keyId?: string | undefined;
  }): Promise<Record<string, number>[]> {
    const { keyId, names } = query;
    const fields = names.map((n) => (keyId === undefined ? n : `${keyId}|${n}`));
    if (fields.length === 0 || query.toHour < query.fromHour) return [];
    const flat = await this.#run.metrics({ keys: this.#keys, ...query, fields });
    const hours: Record<string, number>[] = [];
    for (let i = 0; i < flat.length; i += names.length) {
      hours.push(Object.fromEntries(names.map((n, j) => [n, flat[i + j] ?? 0])));
    }
    return hours;
  }

  // ---- KeyStore and RecordStore (records.ts)

  putKey(record: ApiKeyRecord) {
    return this.#records.putKey(record);
  }
  keyByDigest(digest: string) {
    return this.#records.keyByDigest(digest);
  }
  listKeys() {
    return this.#records.listKeys();
  }
  touchKey(record: ApiKeyRecord, at: number) {
    return this.#records.touchKey(record, at);
  }
  updateKey(previous: ApiKeyRecord, next: ApiKeyRecord) {
    return this.#records.updateKey(previous, next);
  }
  secret(name: string, fresh: string) {
    return this.#records.secret(name, fresh);
  }
  deleteKey(id: string) {
    return this.#records.deleteKey(id);
  }
  putRecord<T>(kind: RecordKind, id: string, value: T) {
    return this.#records.putRecord(kind, id, value);
  }
  swapRecord<T>(kind: RecordKind, id: string, expected: T | null, value: T) {
    return this.#records.swapRecord(kind, id, expected, value);
  }
  getRecord<T>(kind: RecordKind, id: string) {
    return this.#records.getRecord<T>(kind, id);
  }
  listRecords<T>(kind: RecordKind) {
    return this.#records.listRecords<T>(kind);
  }
  deleteRecord(kind: RecordKind, id: string) {
    return this.#records.deleteRecord(kind, id);
  }
  count(kind: RecordKind, id: string, counter: string, by?: number) {
    return this.#records.count(kind, id, counter, by);
  }
  counters(kind: RecordKind, id: string) {
    return this.#records.counters(kind, id);
  }

  // ---- EventQueue

  async putWebhook<T>(id: string, record: T, events: readonly string[] | null): Promise<void> {
    await this.#run.putWebhook({ keys: this.#keys, id, record, events });
  }

  async getWebhook<T>(id: string): Promise<{ record: T; enabled: boolean } | null> {
    const [row] = await this.#run.getWebhooks({ keys: this.#keys, id });
    return row ? { record: JSON.parse(row.json) as T, enabled: row.enabled } : null;
  }

  async listWebhooks<T>(): Promise<{ record: T; enabled: boolean }[]> {
    const rows = await this.#run.getWebhooks({ keys: this.#keys, id: null });
    return rows.map((row) => ({ record: JSON.parse(row.json) as T, enabled: row.enabled }));
  }

  async deleteWebhook(id: string): Promise<boolean> {
    return this.#run.deleteWebhook({ keys: this.#keys, id });
  }

  async claimEvents(now: number, limit: number, leaseMs: number): Promise<ClaimedEvent[]> {
    return this.#run.claimEvents({ keys: this.#keys, now, limit, leaseMs, token: newLeaseToken() });
  }

  async commitEvent(event: ClaimedEvent, outcome: EventOutcome): Promise<EventCommitResult> {
    return this.#run.commitEvent({ keys: this.#keys, event, outcome });
  }

  async eventLog(endpointId: string, limit: number): Promise<EventSummary[]> {
    const rows = await this.#run.eventLog({ keys: this.#keys, endpointId, limit, now: this.#now });
    return rows.map(({ endpointId: _e, attempts: _a, nextAttemptAt: _n, ...summary }) => summary);
  }

  async endpointEvents(endpointId: string, limit: number): Promise<EndpointEvent[]> {
    const args = { keys: this.#keys, endpointId, limit, attempts: true };
    return this.#run.eventLog({ ...args, now: this.#now });
  }

  async eventDelivery(endpointId: string, eventId: string): Promise<EventDelivery | null> {
    return readEventDelivery(this.#redis, this.#keys, endpointId, eventId, this.#now());
  }

  async replayEvent(endpointId: string, eventId: string, newId: string, now: number) {
    const args = { keys: this.#keys, endpointId, eventId, newId, now };
    const { result, queued } = await this.#run.replayEvent(args);
    this.#eventsQueued += queued;
    return result;
  }

  async emailEvents(eventIds: string[]): Promise<EndpointEvent[]> {
    if (eventIds.length === 0) return [];
    return this.#run.emailEvents({ keys: this.#keys, eventIds, now: this.#now });
  }

  // ---- SuppressionStore (scripts/suppressions.ts)

  async addSuppressions(
    entries: Suppression[],
    now: number,
  ): Promise<{ entry: Suppression; created: boolean }[]> {
    if (entries.length === 0) return [];
    return this.#run.addSuppressions({ keys: this.#keys, entries, now });
  }

  async getSuppression(idOrEmail: string, now: number): Promise<Suppression | null> {
    return this.#run.getSuppression({ keys: this.#keys, idOrEmail, now });
  }

  async listSuppressions(query: SuppressionListQuery): Promise<SuppressionPage> {
    return this.#run.listSuppressions({ keys: this.#keys, query });
  }

  async removeSuppressions(selector: SuppressionSelector, now: number): Promise<Suppression[]> {
    const n = "ids" in selector ? selector.ids.length : selector.emails.length;
    if (n === 0) return [];
    return this.#run.removeSuppressions({ keys: this.#keys, selector, now });
  }

  async suppressedAmong(emails: string[], now: number): Promise<SuppressedRecipient[]> {
    if (emails.length === 0) return [];
    return this.#run.suppressedAmong({ keys: this.#keys, emails, now });
  }

  // ---- RequestLogStore

  async appendRequestLogs(
    entries: RequestLogEntry[],
    retention: { max: number; since: string; ttlMs: number },
  ): Promise<void> {
    if (entries.length === 0) return;
    await this.#run.appendRequestLog({ keys: this.#keys, entries, ...retention });
  }

  async listRequestLogs(
    query: RequestLogQuery,
  ): Promise<{ entries: RequestLogEntry[]; hasMore: boolean }> {
    return this.#run.listRequestLog({ keys: this.#keys, query });
  }

  async getRequestLog(id: string): Promise<RequestLogEntry | null> {
    const json = await this.#redis.hget<string>(this.#keys.requestLogData, id);
    return json ? (JSON.parse(json) as RequestLogEntry) : null;
  }
}
