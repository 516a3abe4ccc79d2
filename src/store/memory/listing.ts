/**
 * The in-memory EmailIndex: the list index is the queue's live messages sorted as the Upstash ix
 * sorted set orders them (created time, then id, newest first), so it loses an email exactly
 * when the queue purges it; the counters are one map per hour, as the mx:<hour> hashes.
 */
import type { EmailListQuery, EmailListWindow } from "../ports.ts";
import { METRICS_BUCKET_MS, METRICS_RETENTION_MS } from "../shared.ts";
import type { EventDraft, StoredEntry } from "../types.ts";
import { copy } from "./values.ts";

/** ZREVRANGE order: score descending, then member descending (byte order; ids are ASCII). */
function newestFirst(a: StoredEntry, b: StoredEntry): number {
  const byTime = b.message.createdAt - a.message.createdAt;
  if (byTime !== 0) return byTime;
  return a.message.id < b.message.id ? 1 : a.message.id > b.message.id ? -1 : 0;
}

/** The ranks [first, last] a window covers, as LIST_EMAILS computes them; null: no cursor. */
function windowRanks(
  ids: string[],
  lo: number,
  query: EmailListQuery,
): { first: number; last: number } | null {
  const cursor = query.after ?? query.before;
  if (cursor === undefined) return { first: lo, last: lo + query.count };
  const r = ids.indexOf(cursor);
  if (r < 0) return null;
  if (query.after !== undefined) {
    const first = Math.max(lo, r + 1);
    return { first, last: first + query.count };
  }
  return { first: Math.max(lo, r - query.count), last: r - 1 };
}

export function listWindow(live: StoredEntry[], query: EmailListQuery): EmailListWindow {
  const sorted = live
    .filter((e) => query.keyId === undefined || e.message.keyId === query.keyId)
    .sort(newestFirst);
  const ids = sorted.map((e) => e.message.id);
  const until = query.until;
  const lo = until === undefined ? 0 : sorted.filter((e) => e.message.createdAt > until).length;
  const ranks = windowRanks(ids, lo, query);
  if (!ranks) return { found: false };
  const before = query.before !== undefined;
  let got = ranks.last < ranks.first ? [] : sorted.slice(ranks.first, ranks.last + 1);
  const inRange = (e: StoredEntry | undefined) =>
    e !== undefined && (query.since === undefined || e.message.createdAt >= query.since);
  let more = before ? ranks.first > lo && got.length > 0 : false;
  if (!before && got.length > query.count) {
    more = inRange(got[query.count]);
    got = got.slice(0, query.count);
  }
  const kept = got.filter(inRange);
  if (!before && kept.length < got.length) more = false;
  const edge = before ? (got[0]?.message.id ?? null) : (kept.at(-1)?.message.id ?? null);
  return {
    found: true,
    entries: kept.map((e) => ({ message: copy(e.message), state: copy(e.state) })),
    more,
    edge,
  };
}

export class MemoryMetrics {
  readonly #hours = new Map<number, Map<string, number>>();

  /** Counts each event in its hour, for everyone and for the key that sent its email. */
  count(events: EventDraft[] | undefined, keyOf: (emailId: string) => string | undefined): void {
    for (const e of events ?? []) {
      if (!e.type.startsWith("email.")) continue;
      const name = e.type.slice("email.".length);
      const hour = Math.floor(e.createdAt / METRICS_BUCKET_MS);
      const bucket = this.#hours.get(hour) ?? new Map<string, number>();
      this.#hours.set(hour, bucket);
      bucket.set(name, (bucket.get(name) ?? 0) + 1);
      const keyId = keyOf(e.emailId);
      if (keyId) bucket.set(`${keyId}|${name}`, (bucket.get(`${keyId}|${name}`) ?? 0) + 1);
    }
  }

  read(query: {
    fromHour: number;
    toHour: number;
    names: readonly string[];
    keyId?: string | undefined;
  }): Record<string, number>[] {
    const out: Record<string, number>[] = [];
    for (let hour = query.fromHour; hour <= query.toHour; hour++) {
      const bucket = this.#hours.get(hour);
      const field = (n: string) => (query.keyId === undefined ? n : `${query.keyId}|${n}`);
      out.push(Object.fromEntries(query.names.map((n) => [n, bucket?.get(field(n)) ?? 0])));
    }
    return out;
  }

  /** Forgets hours past their retention (Redis expires the buckets). */
  purge(now: number): void {
    for (const hour of this.#hours.keys()) {
      if ((hour + 1) * METRICS_BUCKET_MS + METRICS_RETENTION_MS <= now) this.#hours.delete(hour);
    }
  }
}
