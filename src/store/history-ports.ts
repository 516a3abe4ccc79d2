/**
 * The store's ports for what happened, read by operators rather than by delivery: the email list
 * index with its per-hour event counters (GET /emails, /emails/metrics), and the request log
 * (GET /logs). Split from ports.ts, which holds what delivery itself runs on.
 */
import type { DeliveryState, QueuedMessage } from "./types.ts";

// ---- The email list index and the event counters ----------------------------------------------

/**
 * One window of the email list index (`GET /emails`): emails newest first (by created time, then
 * id), all of them or one key's. A cursor is an email id; `after` walks to older emails, `before`
 * to newer ones. `since` / `until` bound the created time (ms, inclusive).
 */
export interface EmailListQuery {
  /** Only the emails this key sent (its own index); every email when absent. */
  keyId?: string | undefined;
  after?: string | undefined;
  before?: string | undefined;
  since?: number | undefined;
  until?: number | undefined;
  /** Index entries to look at, at most (1 to 200). */
  count: number;
  now: number;
}

/** An email as the list shows it: no raw message. */
export interface ListedEntry {
  message: QueuedMessage;
  state: DeliveryState;
}

export type EmailListWindow =
  /** The cursor is not in this index (never was, another key's, or trimmed with retention). */
  | { found: false }
  | {
      found: true;
      /** Newest first; index entries whose email expired meanwhile are left out. */
      entries: ListedEntry[];
      /** More index entries lie past the window, in the direction it walked. */
      more: boolean;
      /** The id the window ended on (oldest for `after`, newest for `before`), to walk on. */
      edge: string | null;
    };

/**
 * The email list index and the per-hour event counters (`GET /emails/metrics`). Both are written
 * inside `enqueue` and `commit` (no extra command on the send path): an email enters the index
 * when it is accepted and leaves it when its record expires (a finished email's retention); each
 * event drafted counts in the hour it was made, for everyone and for the sending key.
 */
export interface EmailIndex {
  /** One window of the index (one command). */
  listEmails(query: EmailListQuery): Promise<EmailListWindow>;
  /**
   * Event counts per hour from `fromHour` to `toHour` (hour numbers: ms / METRICS_BUCKET_MS,
   * inclusive), one record per hour, by event name without "email." (`sent`, `delivered`, ...);
   * only the key's own when `keyId` is given. One command.
   */
  emailMetrics(query: {
    fromHour: number;
    toHour: number;
    names: readonly string[];
    keyId?: string | undefined;
  }): Promise<Record<string, number>[]>;
}

// ---- The request log --------------------------------------------------------------------------

/**
 * One API request as `GET /logs` shows it. Never a body, a header value other than the user
 * agent, a query string or a secret in the path: the use case (src/request-log.ts) builds it.
 */
export interface RequestLogEntry {
  /** A UUIDv7: its text sorts by time, so it is the log's order and its cursor. */
  id: string;
  /** When the request arrived (ms). */
  at: number;
  method: string;
  /** The path, with any secret in it replaced, without the query string. */
  endpoint: string;
  status: number;
  /** The key that made it; null for an inbound hook's delivery (no key). */
  keyId: string | null;
  userAgent: string | null;
  /** Emails the request created. */
  emailIds: string[];
  /** How long the answer took (ms). */
  ms: number;
}

export interface RequestLogQuery {
  limit: number;
  /** Entries older than this id (the next page)... */
  after?: string;
  /** ...or newer than it (the previous page); never both. */
  before?: string;
  /** Only this key's entries. */
  keyId?: string;
  /** The oldest id still within retention: nothing older is answered. */
  since: string;
}

/**
 * The request log: newest entries, capped by count and age. Writing is one command for any
 * number of entries (the relay writes a request's entry with its background work).
 */
export interface RequestLogStore {
  /**
   * Adds entries and drops all but the newest `max` and those older than `since` (an id bound),
   * in one atomic step; the log expires `ttlMs` after its last write. Idempotent: the same
   * entries again (a retry after a lost reply) change nothing.
   */
  appendRequestLogs(
    entries: RequestLogEntry[],
    retention: { max: number; since: string; ttlMs: number },
  ): Promise<void>;
  /** Newest first, one page; `hasMore` says whether the page's far side has more. */
  listRequestLogs(
    query: RequestLogQuery,
  ): Promise<{ entries: RequestLogEntry[]; hasMore: boolean }>;
  /** One entry, or null when unknown or trimmed away. */
  getRequestLog(id: string): Promise<RequestLogEntry | null>;
}
