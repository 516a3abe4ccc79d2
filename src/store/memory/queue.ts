/**
 * The in-memory message queue: the Upstash q sorted set and m:<id> hashes as one map of slots,
 * with the same leases, guarded commits, byte budget and retention.
 */

import type { QueueDepth, SmartHostOutcomes } from "../insight-ports.ts";
import type {
  ClaimRun,
  CommitResult,
  EnqueueOutcome,
  IdempotencyRecord,
  NewEntry,
  NextStep,
  WriteGuard,
} from "../ports.ts";
import { claimEntryBytes, newLeaseToken } from "../shared.ts";
import type { ClaimSlots } from "../slot-ports.ts";
import { hostOutcomes, newer } from "../smart-host.ts";
import { normalizeAddress, type Suppression } from "../suppression-ports.ts";
import type { ClaimedEntry, DeliveryState, EventDraft, StoredEntry } from "../types.ts";
import type { MemoryEvents } from "./events.ts";
import type { MemoryIdempotency } from "./idempotency.ts";
import type { MemoryMetrics } from "./listing.ts";
import type { MemorySlots } from "./slots.ts";
import type { MemorySuppressions } from "./suppressions.ts";
import { copy, utf8Length } from "./values.ts";

interface Slot {
  entry: StoredEntry;
  /** Score in the queue: due time, or lease end while leased. Null once finished. */
  dueAt: number | null;
  token: string;
  /** The token of the last token-guarded commit applied, so a repeat of it is known. */
  committedToken: string;
  expiresAt: number | null;
}

/** What a claim's answer would carry for this entry, as the Upstash driver counts it. */
function entryBytes(entry: StoredEntry): number {
  return claimEntryBytes(
    utf8Length(JSON.stringify(entry.message)),
    utf8Length(entry.raw),
    utf8Length(JSON.stringify(entry.state)),
  );
}

/** Why `guard` may not write to `slot` now, or null when it may. */
function refusal(slot: Slot, guard: WriteGuard): CommitResult | null {
  if ("token" in guard) {
    if (slot.token === guard.token) return null;
    // A repeat of the commit last applied: done already, nothing to write or queue again.
    return slot.committedToken === guard.token ? "ok" : "conflict";
  }
  const leased = slot.token !== "" && (slot.entry.leasedUntil ?? 0) > guard.now;
  return leased || slot.entry.version !== guard.version ? "conflict" : null;
}

export interface MemoryQueueDeps {
  now: () => number;
  claimBudgetBytes: number;
  idempotency: MemoryIdempotency;
  events: MemoryEvents;
  metrics: MemoryMetrics;
  suppressions: MemorySuppressions;
  slots: MemorySlots;
}

/** The MessageQueue port, apart from purging (the store purges every part at once). */
export class MemoryQueue {
  readonly #slots = new Map<string, Slot>();
  readonly #deps: MemoryQueueDeps;
  #host: SmartHostOutcomes = { lastSuccess: null, lastRefusal: null };

  constructor(deps: MemoryQueueDeps) {
    this.#deps = deps;
  }

  async enqueue(entries: NewEntry[], idempotency?: IdempotencyRecord): Promise<EnqueueOutcome> {
    // The leased entries' recipients against the suppression list, a repeat included (its
    // caller makes the immediate attempt all the same), as the Upstash script does.
    const suppressed: EnqueueOutcome["suppressed"] = {};
    for (const e of entries) {
      if (!e.lease) continue;
      const held = this.#suppressedOf(e.message.envelope.to, this.#deps.now());
      if (held.length > 0) suppressed[e.message.id] = held;
    }
    // The same entries again: stored already (as the Upstash script tells a repeat).
    const first = entries[0];
    if (first && this.#slots.has(first.message.id)) return { suppressed };
    // Only while the key still holds this request's marker, as the Upstash script checks.
    if (idempotency) this.#deps.idempotency.settle(idempotency);
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
    const events = entries.flatMap((e) => e.events ?? []);
    this.#deps.metrics.count(events, (id) => this.#slots.get(id)?.entry.message.keyId);
    this.#deps.events.fanout(events);
    return { suppressed };
  }

  #suppressedOf(recipients: string[], now: number) {
    return this.#deps.suppressions.among(recipients.map(normalizeAddress), now);
  }

  async claimRun(
    now: number,
    limit: number,
    leaseMs: number,
    slots?: ClaimSlots,
  ): Promise<ClaimRun> {
    // Slots first, in the same step, as the Upstash CLAIM takes them (slot-ports.ts).
    const answer = slots && this.#deps.slots.claim(slots, now, this.#due(now).length > 0);
    const claimed = this.#claim(now, answer?.taken === 0 ? 0 : limit, leaseMs);
    return {
      ...claimed,
      eventsDue: this.#deps.events.dueChains(now),
      dueLeft: this.#due(now).length,
      ...(answer ? { slots: answer } : {}),
    };
  }

  #due(now: number): (Slot & { dueAt: number })[] {
    return [...this.#slots.values()].filter(
      (s): s is Slot & { dueAt: number } => s.dueAt !== null && s.dueAt <= now,
    );
  }

  #claim(
    now: number,
    limit: number,
    leaseMs: number,
  ): { entries: ClaimedEntry[]; stoppedAtBudget: boolean } {
    const due = this.#due(now)
      .sort((a, b) => a.dueAt - b.dueAt)
      .slice(0, limit);
    const token = newLeaseToken();
    const entries: ClaimedEntry[] = [];
    let used = 0;
    for (const slot of due) {
      // Within the byte budget, but the first is taken however large (see the Upstash CLAIM).
      const size = entryBytes(slot.entry);
      if (entries.length > 0 && used + size > this.#deps.claimBudgetBytes) {
        return { entries, stoppedAtBudget: true };
      }
      used += size;
      slot.dueAt = now + leaseMs;
      slot.token = token;
      slot.entry.leasedUntil = now + leaseMs;
      const held = this.#suppressedOf(slot.entry.message.envelope.to, now);
      entries.push({ ...copy(slot.entry), token, ...(held.length ? { suppressed: held } : {}) });
    }
    return { entries, stoppedAtBudget: false };
  }

  async commit(
    id: string,
    guard: WriteGuard,
    state: DeliveryState,
    next: NextStep,
    events?: EventDraft[],
    suppress?: Suppression[],
  ): Promise<CommitResult> {
    const slot = this.#slots.get(id);
    if (!slot) return "missing";
    const refused = refusal(slot, guard);
    if (refused) return refused;
    slot.entry.state = copy(state);
    slot.entry.version += 1;
    slot.entry.leasedUntil = null;
    slot.token = "";
    slot.committedToken = "token" in guard ? guard.token : "";
    if (next.kind === "due") {
      slot.dueAt = next.at;
    } else {
      slot.dueAt = null;
      slot.expiresAt = this.#deps.now() + next.retainMs;
    }
    this.#deps.metrics.count(events, () => slot.entry.message.keyId);
    this.#deps.events.fanout(events);
    if (suppress?.length) this.#deps.suppressions.add(suppress, this.#deps.now());
    const outcomes = hostOutcomes(id, state);
    this.#host = {
      lastSuccess: newer(this.#host.lastSuccess, outcomes.success),
      lastRefusal: newer(this.#host.lastRefusal, outcomes.refusal),
    };
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
    const slot = this.#slots.get(id);
    return slot ? copy(slot.entry) : null;
  }

  async queueDepth(now: number, leaseMs: number): Promise<QueueDepth> {
    const queued = [...this.#slots.entries()].filter(
      (e): e is [string, Slot & { dueAt: number }] => e[1].dueAt !== null,
    );
    const due = queued.filter(([, s]) => s.dueAt <= now).sort((a, b) => a[1].dueAt - b[1].dueAt);
    const leased = queued.filter(
      ([, s]) =>
        s.dueAt > now &&
        s.dueAt <= now + leaseMs &&
        s.token !== "" &&
        (s.entry.leasedUntil ?? 0) > now,
    ).length;
    const [oldest] = due;
    return {
      due: due.length,
      scheduled: queued.length - due.length - leased,
      leased,
      leasedCapped: false,
      oldestDue: oldest ? { id: oldest[0], dueAt: oldest[1].dueAt } : null,
    };
  }

  async smartHost(): Promise<SmartHostOutcomes> {
    return copy(this.#host);
  }

  /** The stored messages as they are (not copies), for the list index. */
  live(): StoredEntry[] {
    return [...this.#slots.values()].map((s) => s.entry);
  }

  /** Forgets finished messages past their retention (Redis expires the hashes). */
  purge(now: number): void {
    for (const [id, slot] of this.#slots) {
      if (slot.expiresAt !== null && slot.expiresAt <= now) this.#slots.delete(id);
    }
  }
}
