/**
 * In-memory store: the embedded default for local development and tests. It keeps the same
 * semantics as the Upstash driver (leases, guarded commits, retention) so the contract suites hold
 * for both, but it is not durable: an isolate restart loses every message. The relay logs a
 * warning when it runs on this driver.
 *
 * One object per port (queue.ts, idempotency.ts, keys.ts, records.ts, events.ts) over shared
 * maps; this class only routes calls to them and expires what is past its retention first, at the
 * points where Redis would already have expired it.
 */

import type {
  EmailListQuery,
  EmailListWindow,
  RequestLogEntry,
  RequestLogQuery,
} from "../history-ports.ts";
import type { QueueDepth, SmartHostOutcomes } from "../insight-ports.ts";
import type {
  ClaimedEvent,
  ClaimRun,
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
  KeyUpdate,
  NewEntry,
  NextStep,
  RecordKind,
  WriteGuard,
} from "../ports.ts";
import { CLAIM_BUDGET_BYTES, LIST_BUDGET_BYTES } from "../shared.ts";
import type { ClaimSlots } from "../slot-ports.ts";
import type { RelayStore } from "../store.ts";
import type {
  Suppression,
  SuppressionListQuery,
  SuppressionPage,
  SuppressionSelector,
} from "../suppression-ports.ts";
import type { ApiKeyRecord, DeliveryState, EventDraft, StoredEntry } from "../types.ts";
import { MemoryEvents } from "./events.ts";
import { MemoryIdempotency } from "./idempotency.ts";
import { MemoryKeys } from "./keys.ts";
import { listWindow, MemoryMetrics } from "./listing.ts";
import { MemoryQueue } from "./queue.ts";
import { MemoryRecords } from "./records.ts";
import { MemoryRequestLog } from "./request-log.ts";
import { MemorySlots } from "./slots.ts";
import { MemorySuppressions } from "./suppressions.ts";

export interface MemoryStoreOptions {
  /** @default Date.now */
  now?: () => number;
  /** The claim's byte budget; CLAIM_BUDGET_BYTES unless a test wants a small one. */
  claimBudgetBytes?: number;
  /** A list window's byte budget; LIST_BUDGET_BYTES unless a test wants a small one. */
  listBudgetBytes?: number;
}

export class MemoryStore implements RelayStore {
  readonly #now: () => number;
  readonly #idempotency: MemoryIdempotency;
  readonly #keys = new MemoryKeys();
  readonly #records = new MemoryRecords();
  readonly #events: MemoryEvents;
  readonly #queue: MemoryQueue;
  readonly #metrics = new MemoryMetrics();
  readonly #listBudgetBytes: number;
  readonly #requestLog: MemoryRequestLog;
  readonly #suppressions = new MemorySuppressions();
  readonly #slots = new MemorySlots();

  constructor(options: MemoryStoreOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#listBudgetBytes = options.listBudgetBytes ?? LIST_BUDGET_BYTES;
    this.#idempotency = new MemoryIdempotency(this.#now);
    this.#events = new MemoryEvents(this.#now, this.#records);
    this.#requestLog = new MemoryRequestLog(this.#now);
    this.#queue = new MemoryQueue({
      now: this.#now,
      claimBudgetBytes: options.claimBudgetBytes ?? CLAIM_BUDGET_BYTES,
      idempotency: this.#idempotency,
      events: this.#events,
      metrics: this.#metrics,
      suppressions: this.#suppressions,
      slots: this.#slots,
    });
  }

  #purge(): void {
    const now = this.#now();
    this.#queue.purge(now);
    this.#events.purge(now);
    this.#metrics.purge(now);
  }

  // ---- IdempotencyStore

  beginIdempotent(
    key: string,
    hash: string,
    token: string,
    ttlMs: number,
  ): Promise<IdempotencyState> {
    return this.#idempotency.beginIdempotent(key, hash, token, ttlMs);
  }

  peekIdempotent(key: string): Promise<IdempotencyState> {
    return this.#idempotency.peekIdempotent(key);
  }

  abandonIdempotent(key: string, token: string): Promise<boolean> {
    return this.#idempotency.abandonIdempotent(key, token);
  }

  // ---- MessageQueue

  enqueue(entries: NewEntry[], idempotency?: IdempotencyRecord): Promise<EnqueueOutcome> {
    return this.#queue.enqueue(entries, idempotency);
  }

  claimRun(now: number, limit: number, leaseMs: number, slots?: ClaimSlots): Promise<ClaimRun> {
    this.#purge();
    return this.#queue.claimRun(now, limit, leaseMs, slots);
  }

  async releaseSlots(host: string, holder: string, count: number): Promise<void> {
    this.#slots.release(host, holder, count);
  }

  async renewSlots(host: string, holder: string, count: number, until: number): Promise<void> {
    this.#slots.renew(host, holder, count, until);
  }

  commit(
    id: string,
    guard: WriteGuard,
    state: DeliveryState,
    next: NextStep,
    events?: EventDraft[],
    suppress?: Suppression[],
  ): Promise<CommitResult> {
    this.#purge();
    return this.#queue.commit(id, guard, state, next, events, suppress);
  }

  async commitMany(items: CommitItem[]): Promise<CommitResult[]> {
    const results: CommitResult[] = [];
    for (const i of items)
      results.push(await this.commit(i.id, i.guard, i.state, i.next, i.events, i.suppress));
    return results;
  }

  renew(id: string, token: string, until: number): Promise<boolean> {
    return this.#queue.renew(id, token, until);
  }

  get(id: string): Promise<StoredEntry | null> {
    this.#purge();
    return this.#queue.get(id);
  }

  // ---- QueueInsight

  queueDepth(now: number, leaseMs: number): Promise<QueueDepth> {
    this.#purge();
    return this.#queue.queueDepth(now, leaseMs);
  }

  smartHost(): Promise<SmartHostOutcomes> {
    return this.#queue.smartHost();
  }

  // ---- EmailIndex

  async listEmails(query: EmailListQuery): Promise<EmailListWindow> {
    this.#purge();
    return listWindow(this.#queue.live(), query, this.#listBudgetBytes);
  }

  async emailMetrics(query: {
    fromHour: number;
    toHour: number;
    names: readonly string[];
    keyId?: string | undefined;
  }): Promise<Record<string, number>[]> {
    this.#purge();
    return this.#metrics.read(query);
  }

  // ---- KeyStore

  putKey(record: ApiKeyRecord): Promise<void> {
    return this.#keys.putKey(record);
  }

  keyByDigest(digest: string): Promise<ApiKeyRecord | null> {
    return this.#keys.keyByDigest(digest);
  }

  listKeys(): Promise<ApiKeyRecord[]> {
    return this.#keys.listKeys();
  }

  touchKey(record: ApiKeyRecord, at: number): Promise<void> {
    return this.#keys.touchKey(record, at);
  }

  deleteKey(id: string): Promise<boolean> {
    return this.#keys.deleteKey(id);
  }

  updateKey(previous: ApiKeyRecord, next: ApiKeyRecord): Promise<KeyUpdate> {
    return this.#keys.updateKey(previous, next);
  }

  secret(name: string, fresh: string): Promise<string> {
    return this.#keys.secret(name, fresh);
  }

  // ---- RecordStore

  putRecord<T>(kind: RecordKind, id: string, value: T): Promise<void> {
    return this.#records.putRecord(kind, id, value);
  }

  swapRecord<T>(kind: RecordKind, id: string, expected: T | null, value: T): Promise<boolean> {
    return this.#records.swapRecord(kind, id, expected, value);
  }

  getRecord<T>(kind: RecordKind, id: string): Promise<T | null> {
    return this.#records.getRecord<T>(kind, id);
  }

  listRecords<T>(kind: RecordKind): Promise<T[]> {
    return this.#records.listRecords<T>(kind);
  }

  deleteRecord(kind: RecordKind, id: string): Promise<boolean> {
    return this.#records.deleteRecord(kind, id);
  }

  count(kind: RecordKind, id: string, counter: string, by?: number): Promise<void> {
    return this.#records.count(kind, id, counter, by);
  }

  counters(kind: RecordKind, id: string): Promise<Record<string, number>> {
    return this.#records.counters(kind, id);
  }

  // ---- EventQueue

  get eventsQueued(): number {
    return this.#events.eventsQueued;
  }

  putWebhook<T>(id: string, record: T, events: readonly string[] | null): Promise<void> {
    return this.#events.putWebhook(id, record, events);
  }

  getWebhook<T>(id: string): Promise<{ record: T; enabled: boolean } | null> {
    return this.#events.getWebhook<T>(id);
  }

  listWebhooks<T>(): Promise<{ record: T; enabled: boolean }[]> {
    return this.#events.listWebhooks<T>();
  }

  deleteWebhook(id: string): Promise<boolean> {
    return this.#events.deleteWebhook(id);
  }

  claimEvents(now: number, limit: number, leaseMs: number): Promise<ClaimedEvent[]> {
    this.#purge();
    return this.#events.claimEvents(now, limit, leaseMs);
  }

  commitEvent(event: ClaimedEvent, outcome: EventOutcome): Promise<EventCommitResult> {
    return this.#events.commitEvent(event, outcome);
  }

  eventLog(endpointId: string, limit: number): Promise<EventSummary[]> {
    this.#purge();
    return this.#events.eventLog(endpointId, limit);
  }

  endpointEvents(endpointId: string, limit: number): Promise<EndpointEvent[]> {
    this.#purge();
    return this.#events.endpointEvents(endpointId, limit);
  }

  eventDelivery(endpointId: string, eventId: string): Promise<EventDelivery | null> {
    this.#purge();
    return this.#events.eventDelivery(endpointId, eventId);
  }

  replayEvent(endpointId: string, eventId: string, newId: string, now: number) {
    this.#purge();
    return this.#events.replayEvent(endpointId, eventId, newId, now);
  }

  emailEvents(eventIds: string[]): Promise<EndpointEvent[]> {
    this.#purge();
    return this.#events.emailEvents(eventIds);
  }

  // ---- RequestLogStore

  appendRequestLogs(
    entries: RequestLogEntry[],
    retention: { max: number; since: string; ttlMs: number },
  ): Promise<void> {
    return this.#requestLog.appendRequestLogs(entries, retention);
  }

  listRequestLogs(
    query: RequestLogQuery,
  ): Promise<{ entries: RequestLogEntry[]; hasMore: boolean }> {
    return this.#requestLog.listRequestLogs(query);
  }

  getRequestLog(id: string): Promise<RequestLogEntry | null> {
    return this.#requestLog.getRequestLog(id);
  }

  // ---- SuppressionStore (the queue checks and adds through the same object)

  async addSuppressions(entries: Suppression[], now: number) {
    return this.#suppressions.add(entries, now);
  }

  async getSuppression(idOrEmail: string, now: number): Promise<Suppression | null> {
    return this.#suppressions.get(idOrEmail, now);
  }

  async listSuppressions(query: SuppressionListQuery): Promise<SuppressionPage> {
    return this.#suppressions.list(query);
  }

  async removeSuppressions(selector: SuppressionSelector, now: number): Promise<Suppression[]> {
    return this.#suppressions.remove(selector, now);
  }

  async suppressedAmong(emails: string[], now: number) {
    return this.#suppressions.among(emails, now);
  }
}
