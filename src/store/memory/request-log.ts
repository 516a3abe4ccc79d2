/** The in-memory request log (the Upstash rl:i sorted set and rl:d hash): ids sort by time. */
import type { RequestLogEntry, RequestLogQuery, RequestLogStore } from "../history-ports.ts";
import { copy } from "./values.ts";

export class MemoryRequestLog implements RequestLogStore {
  /** id -> entry; kept in id order by `#ids`. */
  readonly #entries = new Map<string, RequestLogEntry>();
  #ids: string[] = [];
  #expiresAt = Number.POSITIVE_INFINITY;
  readonly #now: () => number;

  constructor(now: () => number) {
    this.#now = now;
  }

  #expire(): void {
    if (this.#now() < this.#expiresAt) return;
    this.#entries.clear();
    this.#ids = [];
    this.#expiresAt = Number.POSITIVE_INFINITY;
  }

  async appendRequestLogs(
    entries: RequestLogEntry[],
    retention: { max: number; since: string; ttlMs: number },
  ): Promise<void> {
    this.#expire();
    for (const e of entries) this.#entries.set(e.id, copy(e));
    const ids = [...this.#entries.keys()].sort();
    const old = ids.filter((id) => id < retention.since).length;
    const drop = Math.max(old, ids.length - retention.max);
    for (const id of ids.slice(0, drop)) this.#entries.delete(id);
    this.#ids = ids.slice(drop);
    this.#expiresAt = this.#now() + retention.ttlMs;
  }

  async listRequestLogs(
    query: RequestLogQuery,
  ): Promise<{ entries: RequestLogEntry[]; hasMore: boolean }> {
    this.#expire();
    const { after, before, keyId, since, limit } = query;
    const visible = this.#ids.filter(
      (id) => id >= since && (!keyId || this.#entries.get(id)?.keyId === keyId),
    );
    let page: string[];
    let hasMore: boolean;
    if (before !== undefined) {
      // The `limit` entries just newer than the cursor, still shown newest first.
      const newer = visible.filter((id) => id > before);
      page = newer.slice(0, limit).reverse();
      hasMore = newer.length > limit;
    } else {
      const older = visible.filter((id) => after === undefined || id < after).reverse();
      page = older.slice(0, limit);
      hasMore = older.length > limit;
    }
    return { entries: page.map((id) => copy(this.#entries.get(id) as RequestLogEntry)), hasMore };
  }

  async getRequestLog(id: string): Promise<RequestLogEntry | null> {
    this.#expire();
    const entry = this.#entries.get(id);
    return entry ? copy(entry) : null;
  }
}
