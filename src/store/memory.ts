/**
 * In-memory queue store: the embedded default for local development and tests. It keeps the same
 * semantics as the Upstash driver (leases, guarded commits, retention) so the contract suite holds
 * for both, but it is not durable: an isolate restart loses every message. The relay logs a warning
 * when it runs on this driver.
 */
import type { EventDraft } from "../webhooks/events.ts";
import type {
  ClaimedEvent,
  CommitResult,
  EventAttempt,
  EventCommitResult,
  EventDelivery,
  EventOutcome,
  EventStatus,
  EventSummary,
  IdempotencyRecord,
  IdempotencyState,
  NewEntry,
  NextStep,
  RecordKind,
  RelayStore,
  WriteGuard,
} from "./store.ts";
import {
  CLAIM_BUDGET_BYTES,
  claimEntryBytes,
  IdempotencyClaimLapsedError,
  newLeaseToken,
} from "./store.ts";
import type { ApiKeyRecord, ClaimedEntry, DeliveryState, StoredEntry } from "./types.ts";

interface Slot {
  entry: StoredEntry;
  /** Score in the queue: due time, or lease end while leased. Null once finished. */
  dueAt: number | null;
  token: string;
  /** The token of the last token-guarded commit applied, so a repeat of it is known. */
  committedToken: string;
  expiresAt: number | null;
}

/** One event queued for one endpoint (the Upstash driver's wd:<endpoint>:<event> hash). */
interface EventSlot {
  id: string;
  type: string;
  emailId: string;
  createdAt: number;
  payload: string;
  status: EventStatus;
  attempts: EventAttempt[];
  nextAttemptAt: number | null;
  token: string;
  leasedUntil: number;
  expiresAt: number | null;
}

/** Events kept per endpoint in its event log, as in the Upstash driver. */
const EVENT_LOG_MAX = 1000;

/** Values are copied in and out, as a network store would: callers never share state with it. */
const copy = <T>(value: T): T => structuredClone(value);

/** Bytes of a string's UTF-8 form: what Redis stores, and what HSTRLEN counts, for it. */
function utf8Length(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    // A surrogate pair (two code units) is one 4-byte character.
    n += c < 0x80 ? 1 : c < 0x800 || (c >= 0xd800 && c <= 0xdfff) ? 2 : 3;
  }
  return n;
}

/** What a claim's answer would carry for this entry, as the Upstash driver counts it. */
function entryBytes(entry: StoredEntry): number {
  return claimEntryBytes(
    utf8Length(JSON.stringify(entry.message)),
    utf8Length(entry.raw),
    utf8Length(JSON.stringify(entry.state)),
  );
}

export class MemoryStore implements RelayStore {
  readonly #slots = new Map<string, Slot>();
  readonly #keys = new Map<string, ApiKeyRecord>();
  readonly #idempotency = new Map<
    string,
    { state: Exclude<IdempotencyState, { kind: "new" }>; token?: string; expiresAt: number }
  >();
  readonly #records = new Map<string, string>();
  readonly #counters = new Map<string, Record<string, number>>();
  readonly #seen = new Map<string, number>();
  readonly #now: () => number;
  readonly #claimBudgetBytes: number;
  /** Enabled endpoint id -> the event types it wants. */
  readonly #subs = new Map<string, string[]>();
  readonly #failing = new Map<string, number>();
  /** Event chain "<endpoint>:<email>" -> when its head is due (or its lease ends). */
  readonly #eventQueue = new Map<string, number>();
  readonly #chains = new Map<string, string[]>();
  readonly #events = new Map<string, EventSlot>();
  readonly #eventLogs = new Map<string, { id: string; createdAt: number }[]>();
  #eventsQueued = 0;

  constructor(options: { now?: () => number; claimBudgetBytes?: number } = {}) {
    this.#now = options.now ?? Date.now;
    this.#claimBudgetBytes = options.claimBudgetBytes ?? CLAIM_BUDGET_BYTES;
  }

  async beginIdempotent(
    key: string,
    hash: string,
    token: string,
    ttlMs: number,
  ): Promise<IdempotencyState> {
    const held = await this.peekIdempotent(key);
    if (held.kind === "in_flight" && this.#idempotency.get(key)?.token === token)
      return { kind: "new" };
    if (held.kind !== "new") return held;
    const until = this.#now() + ttlMs;
    this.#idempotency.set(key, {
      state: { kind: "in_flight", hash, until },
      token,
      expiresAt: until,
    });
    return { kind: "new" };
  }

  async peekIdempotent(key: string): Promise<IdempotencyState> {
    const held = this.#idempotency.get(key);
    return held && held.expiresAt > this.#now() ? copy(held.state) : { kind: "new" };
  }

  async abandonIdempotent(key: string, token: string): Promise<boolean> {
    const held = this.#idempotency.get(key);
    if (held?.state.kind !== "in_flight" || held.token !== token || held.expiresAt <= this.#now())
      return false;
    this.#idempotency.delete(key);
    return true;
  }

  get eventsQueued(): number {
    return this.#eventsQueued;
  }

  /** Queues events for every endpoint subscribed to their type (the scripts' FANOUT). */
  #fanout(events: EventDraft[] | undefined): void {
    const now = this.#now();
    for (const e of events ?? []) {
      for (const [ep, types] of this.#subs) {
        if (!types.includes(e.type)) continue;
        this.#events.set(`${ep}:${e.id}`, {
          id: e.id,
          type: e.type,
          emailId: e.emailId,
          createdAt: e.createdAt,
          payload: e.payload,
          status: "pending",
          attempts: [],
          nextAttemptAt: now,
          token: "",
          leasedUntil: 0,
          expiresAt: null,
        });
        const chain = `${ep}:${e.emailId}`;
        const list = this.#chains.get(chain) ?? [];
        list.push(e.id);
        this.#chains.set(chain, list);
        if (list.length === 1) this.#eventQueue.set(chain, now);
        const log = this.#eventLogs.get(ep) ?? [];
        log.push({ id: e.id, createdAt: e.createdAt });
        log.sort((a, b) => a.createdAt - b.createdAt);
        this.#eventLogs.set(ep, log.slice(-EVENT_LOG_MAX));
        this.#eventsQueued++;
      }
    }
  }

  async enqueue(entries: NewEntry[], idempotency?: IdempotencyRecord): Promise<void> {
    // The same entries again: stored already (as the Upstash script tells a repeat).
    const first = entries[0];
    if (first && this.#slots.has(first.message.id)) return;
    if (idempotency) {
      // Only while the key still holds this request's marker, as the Upstash script checks.
      const held = this.#idempotency.get(idempotency.key);
      if (
        held?.state.kind !== "in_flight" ||
        held.token !== idempotency.token ||
        held.expiresAt <= this.#now()
      )
        throw new IdempotencyClaimLapsedError();
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
        committedToken: "",
        expiresAt: null,
      });
    }
    this.#fanout(entries.flatMap((e) => e.events ?? []));
  }

  async claimRun(
    now: number,
    limit: number,
    leaseMs: number,
  ): Promise<{ entries: ClaimedEntry[]; eventsDue: number; stoppedAtBudget: boolean }> {
    const claimed = this.#claim(now, limit, leaseMs);
    const eventsDue = [...this.#eventQueue.values()].filter((at) => at <= now).length;
    return { ...claimed, eventsDue };
  }

  async claim(now: number, limit: number, leaseMs: number): Promise<ClaimedEntry[]> {
    return this.#claim(now, limit, leaseMs).entries;
  }

  #claim(
    now: number,
    limit: number,
    leaseMs: number,
  ): { entries: ClaimedEntry[]; stoppedAtBudget: boolean } {
    this.#purge();
    const due = [...this.#slots.values()]
      .filter((s): s is Slot & { dueAt: number } => s.dueAt !== null && s.dueAt <= now)
      .sort((a, b) => a.dueAt - b.dueAt)
      .slice(0, limit);
    const token = newLeaseToken();
    const entries: ClaimedEntry[] = [];
    let used = 0;
    for (const slot of due) {
      // Within the byte budget, but the first is taken however large (see the Upstash CLAIM).
      const size = entryBytes(slot.entry);
      if (entries.length > 0 && used + size > this.#claimBudgetBytes) {
        return { entries, stoppedAtBudget: true };
      }
      used += size;
      slot.dueAt = now + leaseMs;
      slot.token = token;
      slot.entry.leasedUntil = now + leaseMs;
      entries.push({ ...copy(slot.entry), token });
    }
    return { entries, stoppedAtBudget: false };
  }

  async commit(
    id: string,
    guard: WriteGuard,
    state: DeliveryState,
    next: NextStep,
    events?: EventDraft[],
  ): Promise<CommitResult> {
    this.#purge();
    const slot = this.#slots.get(id);
    if (!slot) return "missing";
    if ("token" in guard) {
      // A repeat of the commit last applied: done already, nothing to write or queue again.
      if (slot.token !== guard.token) {
        return slot.committedToken === guard.token ? "ok" : "conflict";
      }
    } else {
      const leased = slot.token !== "" && (slot.entry.leasedUntil ?? 0) > guard.now;
      if (leased || slot.entry.version !== guard.version) return "conflict";
    }
    slot.entry.state = copy(state);
    slot.entry.version += 1;
    slot.entry.leasedUntil = null;
    slot.token = "";
    slot.committedToken = "token" in guard ? guard.token : "";
    if (next.kind === "due") {
      slot.dueAt = next.at;
    } else {
      slot.dueAt = null;
      slot.expiresAt = this.#now() + next.retainMs;
    }
    this.#fanout(events);
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

  async putWebhook<T>(id: string, record: T, events: readonly string[] | null): Promise<void> {
    this.#records.set(`webhook:${id}`, JSON.stringify(record));
    if (events === null) {
      this.#subs.delete(id);
    } else {
      this.#subs.set(id, [...events]);
      this.#failing.delete(id);
    }
  }

  async getWebhook<T>(id: string): Promise<{ record: T; enabled: boolean } | null> {
    const json = this.#records.get(`webhook:${id}`);
    return json === undefined
      ? null
      : { record: JSON.parse(json) as T, enabled: this.#subs.has(id) };
  }

  async listWebhooks<T>(): Promise<{ record: T; enabled: boolean }[]> {
    return [...this.#records]
      .filter(([k]) => k.startsWith("webhook:"))
      .map(([k, json]) => ({
        record: JSON.parse(json) as T,
        enabled: this.#subs.has(k.slice("webhook:".length)),
      }));
  }

  async deleteWebhook(id: string): Promise<boolean> {
    this.#subs.delete(id);
    this.#failing.delete(id);
    this.#eventLogs.delete(id);
    return this.#records.delete(`webhook:${id}`);
  }

  async claimEvents(now: number, limit: number, leaseMs: number): Promise<ClaimedEvent[]> {
    this.#purge();
    const due = [...this.#eventQueue]
      .filter(([, at]) => at <= now)
      .sort((a, b) => a[1] - b[1])
      .slice(0, limit);
    const token = newLeaseToken();
    const out: ClaimedEvent[] = [];
    for (const [chain] of due) {
      const endpointId = chain.slice(0, chain.indexOf(":"));
      const list = this.#chains.get(chain) ?? [];
      const head = list[0];
      const slot = head === undefined ? undefined : this.#events.get(`${endpointId}:${head}`);
      if (head === undefined) {
        this.#eventQueue.delete(chain);
        continue;
      }
      if (!slot) {
        list.shift();
        if (list.length > 0) this.#eventQueue.set(chain, now);
        else this.#eventQueue.delete(chain);
        continue;
      }
      this.#eventQueue.set(chain, now + leaseMs);
      slot.status = "attempting";
      slot.token = token;
      slot.leasedUntil = now + leaseMs;
      out.push({
        id: slot.id,
        type: slot.type,
        emailId: slot.emailId,
        createdAt: slot.createdAt,
        status: "attempting",
        payload: slot.payload,
        attempts: copy(slot.attempts),
        nextAttemptAt: null,
        endpointId,
        endpoint: this.#records.get(`webhook:${endpointId}`) ?? null,
        enabled: this.#subs.has(endpointId),
        token,
        leasedUntil: now + leaseMs,
      });
    }
    return out;
  }

  async commitEvent(event: ClaimedEvent, outcome: EventOutcome): Promise<EventCommitResult> {
    const ep = event.endpointId;
    const slot = this.#events.get(`${ep}:${event.id}`);
    if (!slot || event.token === "" || slot.token !== event.token) return { ok: false };
    const chain = `${ep}:${event.emailId}`;
    const list = this.#chains.get(chain) ?? [];
    slot.token = "";
    slot.leasedUntil = 0;
    if (outcome.kind === "retry") {
      slot.status = "pending";
      slot.attempts = copy(outcome.attempts);
      slot.nextAttemptAt = outcome.at;
      this.#eventQueue.set(chain, outcome.at);
      if (!this.#failing.has(ep)) this.#failing.set(ep, outcome.now);
      return { ok: true, disabled: false };
    }
    const expiresAt = this.#now() + outcome.retainMs;
    if (outcome.kind === "dropped") {
      for (const other of list) {
        const o = this.#events.get(`${ep}:${other}`);
        if (!o) continue;
        Object.assign(o, { status: "dropped", nextAttemptAt: null, token: "", expiresAt });
      }
      this.#chains.delete(chain);
      this.#eventQueue.delete(chain);
      return { ok: true, disabled: false };
    }
    Object.assign(slot, {
      status: outcome.kind,
      attempts: copy(outcome.attempts),
      nextAttemptAt: null,
      expiresAt,
    });
    if (list[0] === event.id) list.shift();
    if (list.length > 0) this.#eventQueue.set(chain, outcome.now);
    else {
      this.#eventQueue.delete(chain);
      this.#chains.delete(chain);
    }
    let disabled = false;
    if (outcome.kind === "success") {
      this.#failing.delete(ep);
    } else if (outcome.disable || this.#failing.has(ep)) {
      disabled = this.#subs.delete(ep);
      this.#failing.delete(ep);
    } else {
      this.#failing.set(ep, outcome.now);
    }
    return { ok: true, disabled };
  }

  async eventLog(endpointId: string, limit: number): Promise<EventSummary[]> {
    this.#purge();
    const log = this.#eventLogs.get(endpointId) ?? [];
    const out: EventSummary[] = [];
    for (const { id } of [...log].reverse().slice(0, limit)) {
      const slot = this.#events.get(`${endpointId}:${id}`);
      if (slot) {
        out.push({
          id,
          type: slot.type,
          emailId: slot.emailId,
          createdAt: slot.createdAt,
          status: this.#status(slot),
        });
      }
    }
    return out;
  }

  async eventDelivery(endpointId: string, eventId: string): Promise<EventDelivery | null> {
    this.#purge();
    const slot = this.#events.get(`${endpointId}:${eventId}`);
    if (!slot) return null;
    const status = this.#status(slot);
    return {
      id: slot.id,
      type: slot.type,
      emailId: slot.emailId,
      createdAt: slot.createdAt,
      status,
      payload: slot.payload,
      attempts: copy(slot.attempts),
      nextAttemptAt: status === "pending" ? slot.nextAttemptAt : null,
    };
  }

  #status(slot: EventSlot): EventStatus {
    if (slot.status === "attempting" && (slot.token === "" || slot.leasedUntil <= this.#now()))
      return "pending";
    return slot.status;
  }

  #purge(): void {
    const now = this.#now();
    for (const [id, slot] of this.#slots) {
      if (slot.expiresAt !== null && slot.expiresAt <= now) this.#slots.delete(id);
    }
    for (const [key, until] of this.#seen) if (until <= now) this.#seen.delete(key);
    for (const [key, slot] of this.#events) {
      if (slot.expiresAt !== null && slot.expiresAt <= now) this.#events.delete(key);
    }
  }
}
