/**
 * Listing emails (`GET /emails`): pages of the store's list index, newest first, for one key
 * (a sending_access key sees only its own) or for everyone, with the operator's filters.
 *
 * The index itself knows the key and the created time, so those filters cost nothing. The others
 * (last_event, recipient, tag) need each email's metadata and state: the list reads windows of
 * SCAN_WINDOW index entries and keeps the matches, at most SCAN_WINDOWS windows (one command
 * each) per request, so a filtered page looks at no more than SCAN_WINDOWS × SCAN_WINDOW
 * emails. A page that ends at that bound says where it stopped (`cursor`), to go on from there.
 */
import type { Principal } from "../auth/keys.ts";
import { type LastEvent, lastEvent } from "../delivery/state.ts";
import { ValidationError } from "../errors.ts";
import type { EmailIndex, EmailListQuery, ListedEntry } from "../store/store.ts";

/** Index entries one filtered window reads (one command, answer well under Upstash's 10 MB). */
export const SCAN_WINDOW = 200;
/** Windows one filtered request may read: it looks at no more than 1,000 emails. */
export const SCAN_WINDOWS = 5;

export interface EmailFilters {
  lastEvent?: LastEvent | undefined;
  /** A recipient address (To, Cc or Bcc), compared case-insensitively. */
  to?: string | undefined;
  tag?: { name: string; value: string } | undefined;
  keyId?: string | undefined;
  since?: number | undefined;
  until?: number | undefined;
}

export interface ListRequest {
  limit: number;
  after?: string | undefined;
  before?: string | undefined;
  filters: EmailFilters;
}

export interface ListPage {
  entries: ListedEntry[];
  hasMore: boolean;
  /** Set when a filtered scan stopped at its bound: pass it as `after` (or `before`) to go on. */
  cursor?: string;
}

function matcher(filters: EmailFilters, now: number): ((e: ListedEntry) => boolean) | null {
  const { lastEvent: event, to, tag } = filters;
  if (event === undefined && to === undefined && tag === undefined) return null;
  const address = to?.toLowerCase();
  return (e) =>
    (event === undefined || lastEvent(e.state, now) === event) &&
    (address === undefined || e.message.envelope.to.some((r) => r.toLowerCase() === address)) &&
    (tag === undefined ||
      e.message.view.tags.some((t) => t.name === tag.name && t.value === tag.value));
}

/** The key whose index to read: a sending key's own, whatever it asks for. */
function scope(principal: Principal, keyId: string | undefined): string | undefined {
  if (principal.permission === "full_access") return keyId;
  if (keyId !== undefined && keyId !== principal.keyId) {
    throw new ValidationError("a sending_access key lists only its own emails", "key_id", 403);
  }
  return principal.keyId;
}

export class EmailListing {
  readonly #store: EmailIndex;
  readonly #now: () => number;

  constructor(store: EmailIndex, now: () => number) {
    this.#store = store;
    this.#now = now;
  }

  async list(principal: Principal, request: ListRequest): Promise<ListPage> {
    const now = this.#now();
    const { filters } = request;
    const base = {
      keyId: scope(principal, filters.keyId),
      since: filters.since,
      until: filters.until,
      now,
    };
    const own = (e: ListedEntry) => base.keyId === undefined || e.message.keyId === base.keyId;
    const match = matcher(filters, now);
    if (!match) {
      const window = await this.#window({ ...base, ...cursorOf(request), count: request.limit });
      return { entries: window.entries.filter(own), hasMore: window.more };
    }
    return this.#scan(request, base, (e) => own(e) && match(e));
  }

  async #window(query: EmailListQuery) {
    const window = await this.#store.listEmails(query);
    if (!window.found) {
      const field = query.after !== undefined ? "after" : "before";
      throw new ValidationError("is not an email in this list (unknown, or expired)", field);
    }
    return window;
  }

  /** Filtered: windows of SCAN_WINDOW from the cursor, until the page is full or the bound. */
  async #scan(
    request: ListRequest,
    base: Omit<EmailListQuery, "count">,
    match: (e: ListedEntry) => boolean,
  ): Promise<ListPage> {
    const before = request.before !== undefined;
    let cursor = cursorOf(request);
    const found: ListedEntry[] = [];
    for (let n = 0; n < SCAN_WINDOWS; n++) {
      const window = await this.#window({ ...base, ...cursor, count: SCAN_WINDOW });
      // Walking to newer emails, the ones nearest the cursor are at the window's end.
      const scanned = before ? [...window.entries].reverse() : window.entries;
      const hits = scanned.filter(match);
      const room = request.limit - found.length;
      if (hits.length >= room) {
        found.push(...hits.slice(0, room));
        // Matches may remain in this window past the page, or past the window.
        return page(found, before, window.more || hits.length > room);
      }
      found.push(...hits);
      if (!window.more || window.edge === null) return page(found, before, false);
      cursor = before ? { before: window.edge } : { after: window.edge };
    }
    const next = cursor.after ?? cursor.before;
    return { ...page(found, before, true), ...(next ? { cursor: next } : {}) };
  }
}

function cursorOf(request: ListRequest): { after?: string; before?: string } {
  if (request.after !== undefined) return { after: request.after };
  if (request.before !== undefined) return { before: request.before };
  return {};
}

/** Newest first, whichever way the scan walked. */
function page(found: ListedEntry[], before: boolean, hasMore: boolean): ListPage {
  return { entries: before ? found.reverse() : found, hasMore };
}
