/**
 * The request log: what `GET /logs` shows about recent API requests (method, path, status, the
 * key that made it, time, user agent, the emails it created). An entry is built from facts about
 * the request, never from its body, its headers (but the user agent) or its query string, and a
 * secret in the path is replaced before the entry exists (see `endpointOf`).
 *
 * Cost: the entry is written after the answer, with the request's background work, in one store
 * command that also trims the log. Entries a failed write could not store wait in the isolate
 * (at most PENDING_MAX) and go with the next request's write, so logging never costs more than
 * one command per request, and a store failure never reaches the request.
 */
import type { Principal } from "./auth/keys.ts";
import type { RequestLogConfig } from "./config.ts";
import { NotFoundError } from "./errors.ts";
import type { Logger } from "./log.ts";
import {
  type RelayStore,
  type RequestLogEntry,
  timeIdPrefix,
  uuidV7,
  uuidV7Time,
} from "./store/store.ts";

/** Entries kept in the isolate while the store cannot take them; older ones are dropped first. */
const PENDING_MAX = 100;
/** Longest path and user agent kept: the rest of a hostile one is cut off. */
const ENDPOINT_MAX = 256;
const USER_AGENT_MAX = 256;

/**
 * Paths that carry a secret, and what is logged instead. Only inbound hooks do today
 * (`/hooks/:id/:secret`, the url_secret proof); `/hooks/:id/rotate` is a route, not a secret.
 */
const SECRET_PATHS: { pattern: RegExp; replace: (m: RegExpExecArray) => string | null }[] = [
  {
    pattern: /^\/hooks\/([^/]+)\/(.+)$/,
    replace: (m) => (m[2] === "rotate" ? null : `/hooks/${m[1]}/[redacted]`),
  },
];

/** The path as logged: no query string (the caller passes a pathname), no secret, bounded. */
export function endpointOf(path: string): string {
  let out = path;
  for (const { pattern, replace } of SECRET_PATHS) {
    const m = pattern.exec(path);
    const replaced = m ? replace(m) : null;
    if (replaced !== null) out = replaced;
  }
  return out.length > ENDPOINT_MAX ? `${out.slice(0, ENDPOINT_MAX)}…` : out;
}

/** The facts about one request the HTTP layer hands over once it has answered. */
export interface RequestFacts {
  at: number;
  method: string;
  /** The URL's pathname (no query string). */
  path: string;
  status: number;
  keyId: string | null;
  userAgent: string | null;
  emailIds: string[];
  ms: number;
}

export interface LogPage {
  entries: RequestLogEntry[];
  hasMore: boolean;
}

export class RequestLog {
  readonly #store: RelayStore;
  readonly #config: RequestLogConfig;
  readonly #now: () => number;
  readonly #log: Logger;
  #pending: RequestLogEntry[] = [];
  /** The last id's time and counter: ids this isolate makes sort in the order it made them. */
  #lastMs = 0;
  #seq = 0;

  constructor(store: RelayStore, config: RequestLogConfig, now: () => number, log: Logger) {
    this.#store = store;
    this.#config = config;
    this.#now = now;
    this.#log = log;
  }

  get enabled(): boolean {
    return this.#config.enabled;
  }

  /** A UUIDv7 after every earlier one of this isolate (the clock may repeat or step back). */
  #nextId(at: number): string {
    if (at > this.#lastMs) {
      this.#lastMs = at;
      this.#seq = 0;
    } else if (++this.#seq > 0xfff) {
      this.#lastMs++;
      this.#seq = 0;
    }
    return uuidV7(this.#lastMs, this.#seq);
  }

  /** The oldest id still within retention. */
  #since(): string {
    return timeIdPrefix(this.#now() - this.#config.retentionMs);
  }

  /**
   * Stores one request's entry, with any left over from failed writes, in one command. Never
   * throws: a failure is logged and the entries wait for the next request.
   */
  async record(facts: RequestFacts): Promise<void> {
    if (!this.#config.enabled) return;
    const ua = facts.userAgent?.slice(0, USER_AGENT_MAX) ?? null;
    // Field order: keyId first, as the Upstash list script looks for it by text.
    const entry: RequestLogEntry = {
      keyId: facts.keyId,
      id: this.#nextId(facts.at),
      at: facts.at,
      method: facts.method.slice(0, 16),
      endpoint: endpointOf(facts.path),
      status: facts.status,
      userAgent: ua,
      emailIds: facts.emailIds.slice(0, 100),
      ms: Math.max(0, Math.round(facts.ms)),
    };
    const batch = [...this.#pending, entry].slice(-PENDING_MAX);
    this.#pending = [];
    try {
      await this.#store.appendRequestLogs(batch, {
        max: this.#config.maxEntries,
        since: this.#since(),
        ttlMs: this.#config.retentionMs,
      });
    } catch (err) {
      // Put them back for the next request's write (newest kept when over the bound).
      this.#pending = [...batch, ...this.#pending].slice(-PENDING_MAX);
      this.#log.warn("request_log.unavailable", {
        entries: batch.length,
        waiting: this.#pending.length,
        error: String(err),
      });
    }
  }

  /** A page, newest first; a sending key sees only its own requests. */
  list(
    principal: Principal,
    page: { limit: number; after?: string; before?: string },
  ): Promise<LogPage> {
    return this.#store.listRequestLogs({
      ...page,
      since: this.#since(),
      ...(principal.permission === "full_access" ? {} : { keyId: principal.keyId }),
    });
  }

  /** One entry; unknown, expired and (for a sending key) another key's all answer 404. */
  async get(principal: Principal, id: string): Promise<RequestLogEntry> {
    const at = uuidV7Time(id);
    if (!(at >= this.#now() - this.#config.retentionMs)) throw new NotFoundError("Log");
    const entry = await this.#store.getRequestLog(id);
    if (!entry || (principal.permission !== "full_access" && entry.keyId !== principal.keyId)) {
      throw new NotFoundError("Log");
    }
    return entry;
  }
}
