/**
 * Garbage traffic must not cost the operator Upstash commands: requests with invalid API keys, to
 * unknown form or hook ids, or to a hook without a valid proof. Two defences in the isolate, both
 * bounded in memory so an attacker cannot grow it without limit:
 * - a negative cache: what a lookup just found missing is answered from memory for
 *   NEGATIVE_CACHE_MS (the same invalid key or unknown id again costs nothing);
 * - a failure limiter per client network: after FAILURE_LIMIT failures that cost a command within
 *   FAILURE_WINDOW_MS, further requests that would need a lookup are answered 429 without one
 *   (distinct random keys or ids, which no cache can catch).
 * In the isolate on purpose: a shared limiter (@upstash/ratelimit) would spend the very command
 * per request it is meant to save. The price is that every isolate counts on its own.
 */
import ipaddr from "ipaddr.js";
import { RelayError } from "../errors.ts";

/** How long "not found" is remembered; also the longest another isolate refuses a new key. */
export const NEGATIVE_CACHE_MS = 10_000;
/** Entries an isolate keeps per cache; the oldest goes first. */
export const CACHE_MAX_ENTRIES = 10_000;
/** Failed lookups a client network may cause per window before it is refused without one. */
export const FAILURE_LIMIT = 20;
export const FAILURE_WINDOW_MS = 60_000;

/** A map with expiring entries and a size bound: the oldest entry is evicted first. */
export class BoundedCache<V> {
  readonly #max: number;
  readonly #entries = new Map<string, { value: V; expires: number }>();

  constructor(max = CACHE_MAX_ENTRIES) {
    this.#max = max;
  }

  get size(): number {
    return this.#entries.size;
  }

  get(key: string, now: number): V | undefined {
    const hit = this.#entries.get(key);
    if (!hit) return undefined;
    if (hit.expires > now) return hit.value;
    this.#entries.delete(key);
    return undefined;
  }

  set(key: string, value: V, expires: number): void {
    this.#entries.delete(key);
    while (this.#entries.size >= this.#max) {
      const oldest = this.#entries.keys().next();
      if (oldest.done) break;
      this.#entries.delete(oldest.value);
    }
    this.#entries.set(key, { value, expires });
  }

  delete(key: string): void {
    this.#entries.delete(key);
  }

  /** Removes every entry whose value matches. */
  deleteWhere(match: (value: V) => boolean): void {
    for (const [key, entry] of this.#entries) if (match(entry.value)) this.#entries.delete(key);
  }
}

/**
 * Whose allowance a request uses: the IPv4 address, or the IPv6 /64 (one subscriber's network:
 * a client that owns a /64 could otherwise take a fresh address for every request).
 */
export function clientBucket(ip: string | undefined): string {
  if (!ip || !ipaddr.isValid(ip)) return "unknown";
  let addr = ipaddr.parse(ip);
  if (addr.kind() === "ipv6" && (addr as ipaddr.IPv6).isIPv4MappedAddress())
    addr = (addr as ipaddr.IPv6).toIPv4Address();
  if (addr.kind() === "ipv4") return addr.toString();
  const parts = (addr as ipaddr.IPv6).parts.slice(0, 4).map((p) => p.toString(16));
  return `${parts.join(":")}::/64`;
}

/** A client network that failed too often; Retry-After says when its window ends. */
export class TooManyFailuresError extends RelayError {
  constructor(retryAfterSeconds: number) {
    super(
      429,
      "rate_limit_exceeded",
      `Too many failed requests from this network. Retry after ${retryAfterSeconds} s.`,
      { headers: { "retry-after": String(retryAfterSeconds) } },
    );
    this.name = "TooManyFailuresError";
  }
}

/** One request's view of its client's failures. */
export interface FailureGuard {
  /** Throws TooManyFailuresError when the client is over its limit: call before a lookup. */
  check(): void;
  /** Counts a failure that cost a command (or would have). */
  fail(): void;
}

/** Fixed windows per client network, in the isolate. */
export class FailureLimiter {
  readonly #windows = new BoundedCache<{ count: number; resetAt: number }>();

  guard(ip: string | undefined, now: number): FailureGuard {
    const bucket = clientBucket(ip);
    return {
      check: () => {
        const w = this.#windows.get(bucket, now);
        if (w && w.count >= FAILURE_LIMIT)
          throw new TooManyFailuresError(Math.max(1, Math.ceil((w.resetAt - now) / 1000)));
      },
      fail: () => {
        const w = this.#windows.get(bucket, now);
        if (w) w.count++;
        else {
          const resetAt = now + FAILURE_WINDOW_MS;
          this.#windows.set(bucket, { count: 1, resetAt }, resetAt);
        }
      },
    };
  }
}

const limiters = new WeakMap<object, FailureLimiter>();

/** The failure limiter of one relay (keyed by its store, as the record caches are). */
export function failureGuard(owner: object, ip: string | undefined, now: number): FailureGuard {
  let limiter = limiters.get(owner);
  if (!limiter) {
    limiter = new FailureLimiter();
    limiters.set(owner, limiter);
  }
  return limiter.guard(ip, now);
}
