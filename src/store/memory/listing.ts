/**
 * The in-memory EmailIndex: the list index is the queue's live messages sorted as the Upstash ix
 * sorted set orders them (created time, then id, newest first), so it loses an email exactly
 * when the queue purges it; the counters are one map per hour, as the mx:<hour> hashes.
 */
import type { EmailListQuery, EmailListWindow } from "../history-ports.ts";
import { METRICS_BUCKET_MS, METRICS_RETENTION_MS } from "../shared.ts";
import type { EventDraft, StoredEntry } from "../types.ts";
import { copy, utf8Length } from "./values.ts";

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

/** Bytes as the Upstash script counts them (HSTRLEN of the metadata and state JSON). */
function storedSize(e: StoredEntry): number {
  return utf8Length(JSON.stringify(e.message)) + utf8Length(JSON.stringify(e.state));
}

/**
 * Takes the window's emails nearest the cursor first, as LIST_EMAILS does: past `since` a walk to
 * older emails ends (nothing more that way), and the byte budget ends it early (more follow).
 */
function pick(
  order: StoredEntry[],
  query: EmailListQuery,
  budgetBytes: number,
): { picked: StoredEntry[]; stop: "since" | "budget" | null; edge: string | null } {
  const before = query.before !== undefined;
  const picked: StoredEntry[] = [];
  let used = 0;
  let edge: string | null = null;
  for (const e of order) {
    if (query.since !== undefined && e.message.createdAt < query.since) {
      if (!before) return { picked, stop: "since", edge };
      edge = e.message.id;
      continue;
    }
    const size = storedSize(e);
    if (used > 0 && used + size > budgetBytes) return { picked, stop: "budget", edge };
    used += size;
    edge = e.message.id;
    picked.push(e);
  }
  return { picked, stop: null, edge };
}

export function listWindow(
  live: StoredEntry[],
  query: EmailListQuery,
  budgetBytes: number,
): EmailListWindow {
  const sorted = live
    .filter((e) => query.keyId === undefined || e.message.keyId === query.keyId)
    .sort(newestFirst);
  const until = query.until;
  const lo = until === undefined ? 0 : sorted.filter((e) => e.message.createdAt > until).length;
  const ranks = windowRanks(
    sorted.map((e) => e.message.id),
    lo,
    query,
  );
  if (!ranks) return { found: false };
  let got = ranks.last < ranks.first ? [] : sorted.slice(ranks.first, ranks.last + 1);
  if (got.length === 0) return { found: true, entries: [], more: false, edge: null };
  const before = query.before !== undefined;
  let more = before && ranks.first > lo;
  const extra = got[query.count];
  if (!before && extra) {
    more = query.since === undefined || extra.message.createdAt >= query.since;
    got = got.slice(0, query.count);
  }
  const { picked, stop, edge } = pick(before ? [...got].reverse() : got, query, budgetBytes);
  if (stop === "since") more = false;
  if (stop === "budget") more = true;
  if (before) picked.reverse();
  return {
    found: true,
    entries: picked.map((e) => ({ message: copy(e.message), state: copy(e.state) })),
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
