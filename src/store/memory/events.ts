/**
 * In-memory webhook endpoints and their event queue, shaped like the Upstash keys (wh:subs,
 * wh:failing, wq, wc:, wd:, wl:) so the two drivers behave alike. Endpoint records live with the
 * other records (kind "webhook"); `fanout` is what the queue's enqueue and commit call in the same
 * step as their write.
 */
import type {
  ClaimedEvent,
  EndpointEvent,
  EventAttempt,
  EventCommitResult,
  EventDelivery,
  EventOutcome,
  EventQueue,
  EventStatus,
  EventSummary,
  ReplayResult,
} from "../ports.ts";
import { EVENT_LOG_MAX, newLeaseToken } from "../shared.ts";
import type { EventDraft } from "../types.ts";
import type { MemoryRecords } from "./records.ts";
import { copy } from "./values.ts";

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
  /** A replay: the event it copies. */
  replayOf?: string;
  /** Replays of this event, oldest first. */
  replays?: string[];
}

export class MemoryEvents implements EventQueue {
  readonly #now: () => number;
  readonly #records: MemoryRecords;
  /** Enabled endpoint id -> the event types it wants. */
  readonly #subs = new Map<string, string[]>();
  readonly #failing = new Map<string, number>();
  /** Event chain "<endpoint>:<email>" -> when its head is due (or its lease ends). */
  readonly #queue = new Map<string, number>();
  readonly #chains = new Map<string, string[]>();
  readonly #events = new Map<string, EventSlot>();
  readonly #logs = new Map<string, { id: string; createdAt: number }[]>();
  #eventsQueued = 0;

  constructor(now: () => number, records: MemoryRecords) {
    this.#now = now;
    this.#records = records;
  }

  get eventsQueued(): number {
    return this.#eventsQueued;
  }

  /** Event chains due at `now` (what a claim of messages reports alongside). */
  dueChains(now: number): number {
    return [...this.#queue.values()].filter((at) => at <= now).length;
  }

  /** Queues events for every endpoint subscribed to their type (the scripts' FANOUT). */
  fanout(events: EventDraft[] | undefined): void {
    const now = this.#now();
    for (const e of events ?? []) {
      for (const [ep, types] of this.#subs) {
        if (types.includes(e.type)) this.#queueOne(ep, e, now);
      }
    }
  }

  #queueOne(ep: string, e: EventDraft, now: number, replayOf?: string): void {
    this.#events.set(`${ep}:${e.id}`, {
      ...(replayOf ? { replayOf } : {}),
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
    if (list.length === 1) this.#queue.set(chain, now);
    const log = this.#logs.get(ep) ?? [];
    log.push({ id: e.id, createdAt: e.createdAt });
    log.sort((a, b) => a.createdAt - b.createdAt);
    this.#logs.set(ep, log.slice(-EVENT_LOG_MAX));
    this.#eventsQueued++;
  }

  async putWebhook<T>(id: string, record: T, events: readonly string[] | null): Promise<void> {
    this.#records.json.set(`webhook:${id}`, JSON.stringify(record));
    if (events === null) {
      this.#subs.delete(id);
    } else {
      this.#subs.set(id, [...events]);
      this.#failing.delete(id);
    }
  }

  async getWebhook<T>(id: string): Promise<{ record: T; enabled: boolean } | null> {
    const json = this.#records.json.get(`webhook:${id}`);
    return json === undefined
      ? null
      : { record: JSON.parse(json) as T, enabled: this.#subs.has(id) };
  }

  async listWebhooks<T>(): Promise<{ record: T; enabled: boolean }[]> {
    return [...this.#records.json]
      .filter(([k]) => k.startsWith("webhook:"))
      .map(([k, json]) => ({
        record: JSON.parse(json) as T,
        enabled: this.#subs.has(k.slice("webhook:".length)),
      }));
  }

  async deleteWebhook(id: string): Promise<boolean> {
    this.#subs.delete(id);
    this.#failing.delete(id);
    this.#logs.delete(id);
    return this.#records.json.delete(`webhook:${id}`);
  }

  async claimEvents(now: number, limit: number, leaseMs: number): Promise<ClaimedEvent[]> {
    const due = [...this.#queue]
      .filter(([, at]) => at <= now)
      .sort((a, b) => a[1] - b[1])
      .slice(0, limit);
    const token = newLeaseToken();
    const out: ClaimedEvent[] = [];
    for (const [chain] of due) {
      const claimed = this.#claimHead(chain, now, leaseMs, token);
      if (claimed) out.push(claimed);
    }
    return out;
  }

  /** Leases a chain's head; drops a chain with no head, and skips a head whose record is gone. */
  #claimHead(chain: string, now: number, leaseMs: number, token: string): ClaimedEvent | null {
    const endpointId = chain.slice(0, chain.indexOf(":"));
    const list = this.#chains.get(chain) ?? [];
    const head = list[0];
    if (head === undefined) {
      this.#queue.delete(chain);
      return null;
    }
    const slot = this.#events.get(`${endpointId}:${head}`);
    if (!slot) {
      list.shift();
      if (list.length > 0) this.#queue.set(chain, now);
      else this.#queue.delete(chain);
      return null;
    }
    this.#queue.set(chain, now + leaseMs);
    slot.status = "attempting";
    slot.token = token;
    slot.leasedUntil = now + leaseMs;
    return {
      id: slot.id,
      type: slot.type,
      emailId: slot.emailId,
      createdAt: slot.createdAt,
      status: "attempting",
      payload: slot.payload,
      attempts: copy(slot.attempts),
      nextAttemptAt: null,
      endpointId,
      endpoint: this.#records.json.get(`webhook:${endpointId}`) ?? null,
      enabled: this.#subs.has(endpointId),
      token,
      leasedUntil: now + leaseMs,
    };
  }

  async commitEvent(event: ClaimedEvent, outcome: EventOutcome): Promise<EventCommitResult> {
    const ep = event.endpointId;
    const slot = this.#events.get(`${ep}:${event.id}`);
    if (!slot || event.token === "" || slot.token !== event.token) return { ok: false };
    const chain = `${ep}:${event.emailId}`;
    slot.token = "";
    slot.leasedUntil = 0;
    if (outcome.kind === "retry") {
      slot.status = "pending";
      slot.attempts = copy(outcome.attempts);
      slot.nextAttemptAt = outcome.at;
      this.#queue.set(chain, outcome.at);
      if (!this.#failing.has(ep)) this.#failing.set(ep, outcome.now);
      return { ok: true, disabled: false };
    }
    const expiresAt = this.#now() + outcome.retainMs;
    if (outcome.kind === "dropped") {
      this.#dropChain(ep, chain, expiresAt);
      return { ok: true, disabled: false };
    }
    Object.assign(slot, {
      status: outcome.kind,
      attempts: copy(outcome.attempts),
      nextAttemptAt: null,
      expiresAt,
    });
    this.#advance(chain, event.id, outcome.now);
    return { ok: true, disabled: this.#afterFinal(ep, outcome) };
  }

  #dropChain(ep: string, chain: string, expiresAt: number): void {
    for (const other of this.#chains.get(chain) ?? []) {
      const o = this.#events.get(`${ep}:${other}`);
      if (!o) continue;
      Object.assign(o, { status: "dropped", nextAttemptAt: null, token: "", expiresAt });
    }
    this.#chains.delete(chain);
    this.#queue.delete(chain);
  }

  /** The head is finished: the chain's next event is due at once, or the chain is done. */
  #advance(chain: string, eventId: string, now: number): void {
    const list = this.#chains.get(chain) ?? [];
    if (list[0] === eventId) list.shift();
    if (list.length > 0) this.#queue.set(chain, now);
    else {
      this.#queue.delete(chain);
      this.#chains.delete(chain);
    }
  }

  /** Keeps the endpoint's run of failures; true when this outcome disabled the endpoint. */
  #afterFinal(ep: string, outcome: EventOutcome & { kind: "success" | "failed" }): boolean {
    if (outcome.kind === "success") {
      this.#failing.delete(ep);
      return false;
    }
    if (outcome.disable || this.#failing.has(ep)) {
      const disabled = this.#subs.delete(ep);
      this.#failing.delete(ep);
      return disabled;
    }
    this.#failing.set(ep, outcome.now);
    return false;
  }

  async eventLog(endpointId: string, limit: number): Promise<EventSummary[]> {
    const log = this.#logs.get(endpointId) ?? [];
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
          ...(slot.replayOf ? { replayOf: slot.replayOf } : {}),
        });
      }
    }
    return out;
  }

  async replayEvent(
    endpointId: string,
    eventId: string,
    newId: string,
    now: number,
  ): Promise<ReplayResult> {
    const slot = this.#events.get(`${endpointId}:${eventId}`);
    if (!slot) return "missing";
    if (!this.#subs.has(endpointId)) return "disabled";
    if (this.#events.has(`${endpointId}:${newId}`)) return "queued";
    const last = slot.replays?.at(-1);
    const previous = last ? this.#events.get(`${endpointId}:${last}`) : undefined;
    if (last && previous && (previous.status === "pending" || previous.status === "attempting"))
      return { pending: last };
    const draft = { ...slot, id: newId, createdAt: now };
    this.#queueOne(endpointId, draft, now, eventId);
    slot.replays = [...(slot.replays ?? []), newId];
    return "queued";
  }

  async emailEvents(eventIds: string[]): Promise<EndpointEvent[]> {
    const out: EndpointEvent[] = [];
    const endpoints = [...this.#records.json.keys()]
      .filter((k) => k.startsWith("webhook:"))
      .map((k) => k.slice("webhook:".length));
    for (const ep of endpoints) {
      const ids = [...eventIds];
      for (let n = 0; n < ids.length && out.length < 500; n++) {
        const slot = this.#events.get(`${ep}:${ids[n]}`);
        if (!slot) continue;
        const status = this.#status(slot);
        out.push({
          endpointId: ep,
          id: slot.id,
          type: slot.type,
          emailId: slot.emailId,
          createdAt: slot.createdAt,
          status,
          attempts: copy(slot.attempts),
          nextAttemptAt: status === "pending" ? slot.nextAttemptAt : null,
          ...(slot.replayOf ? { replayOf: slot.replayOf } : {}),
        });
        ids.push(...(slot.replays ?? []));
      }
    }
    return out;
  }

  async endpointEvents(endpointId: string, limit: number): Promise<EndpointEvent[]> {
    const out: EndpointEvent[] = [];
    for (const summary of await this.eventLog(endpointId, limit)) {
      const slot = this.#events.get(`${endpointId}:${summary.id}`);
      if (!slot) continue;
      out.push({
        ...summary,
        endpointId,
        attempts: copy(slot.attempts),
        nextAttemptAt: summary.status === "pending" ? slot.nextAttemptAt : null,
      });
    }
    return out;
  }

  async eventDelivery(endpointId: string, eventId: string): Promise<EventDelivery | null> {
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
      ...(slot.replayOf ? { replayOf: slot.replayOf } : {}),
    };
  }

  #status(slot: EventSlot): EventStatus {
    if (slot.status === "attempting" && (slot.token === "" || slot.leasedUntil <= this.#now()))
      return "pending";
    return slot.status;
  }

  /** Forgets events past their retention (Redis expires the hashes). */
  purge(now: number): void {
    for (const [key, slot] of this.#events) {
      if (slot.expiresAt !== null && slot.expiresAt <= now) this.#events.delete(key);
    }
  }
}
