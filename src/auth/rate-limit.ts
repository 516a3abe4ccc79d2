/**
 * Request rate limits per API key, form, form visitor and hook, with @upstash/ratelimit (sliding
 * window, one script call per request; identifiers already over their limit are refused from an
 * in-isolate cache without asking Redis). The in-memory store gets the same algorithm without
 * Redis (memory-rate-limit.ts), so development limits as production does.
 */
import { Ratelimit } from "@upstash/ratelimit";
import type { Redis } from "@upstash/redis";
import { ConfigError, RelayError, ValidationError } from "../errors.ts";

export interface RateLimit {
  requests: number;
  windowSeconds: number;
}

export interface RateLimitResult {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** When the window frees up again (ms since epoch). */
  resetAt: number;
}

export interface RateLimiter {
  check(identifier: string, limit: RateLimit): Promise<RateLimitResult>;
}

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600 };

/** Reads "10/1s", "600/1m" or "5000/1h". */
export function parseRateLimit(value: string): RateLimit | null {
  const m = /^(\d{1,7})\s*\/\s*(\d{0,5})\s*(s|m|h)$/.exec(value.trim());
  if (!m?.[1] || m[3] === undefined) return null;
  const requests = Number(m[1]);
  const windowSeconds = Number(m[2] || "1") * (UNITS[m[3]] ?? 1);
  return requests > 0 && windowSeconds > 0 ? { requests, windowSeconds } : null;
}

export function rateLimitFromEnv(value: string | undefined): RateLimit {
  const limit = parseRateLimit(value ?? "10/1s");
  if (!limit)
    throw new ConfigError(
      "RATE_LIMIT",
      `must look like 10/1s, 600/1m or 5000/1h; got ${JSON.stringify(value)}`,
    );
  return limit;
}

export function rateLimitField(value: string, field: string): RateLimit {
  const limit = parseRateLimit(value);
  if (!limit) throw new ValidationError("must look like 10/1s, 600/1m or 5000/1h", field);
  return limit;
}

export function upstashRateLimiter(redis: Redis, prefix: string): RateLimiter {
  // One limiter per distinct limit, made once per isolate so its block cache outlives requests.
  // The library reads Date.now() itself: no clock can be injected here.
  const limiters = new Map<string, Ratelimit>();
  return {
    async check(identifier, limit) {
      const id = `${limit.requests}/${limit.windowSeconds}`;
      let limiter = limiters.get(id);
      if (!limiter) {
        limiter = new Ratelimit({
          redis,
          limiter: Ratelimit.slidingWindow(limit.requests, `${limit.windowSeconds} s`),
          prefix: `${prefix}rl:${id}`,
          analytics: false,
          ephemeralCache: new Map(),
        });
        limiters.set(id, limiter);
      }
      const r = await limiter.limit(identifier);
      return {
        allowed: r.success,
        limit: r.limit,
        remaining: Math.max(0, r.remaining),
        resetAt: r.reset,
      };
    },
  };
}

/** The headers Resend sends with every answer (IETF draft RateLimit fields, in seconds). */
export function rateLimitHeaders(r: RateLimitResult, now: number): Record<string, string> {
  const reset = Math.max(0, Math.ceil((r.resetAt - now) / 1000));
  return {
    "ratelimit-limit": String(r.limit),
    "ratelimit-remaining": String(r.remaining),
    "ratelimit-reset": String(reset),
  };
}

/**
 * The Retry-After for a window that resets in `resetSeconds`: never under a second, since a 0
 * would invite a client to loop. Every rate-limited answer (API keys, forms, hooks) uses it.
 */
export function retryAfterForReset(resetSeconds: number): number {
  return Math.max(1, resetSeconds);
}

export class RateLimitError extends RelayError {
  constructor(r: RateLimitResult, now: number) {
    const headers = rateLimitHeaders(r, now);
    super(
      429,
      "rate_limit_exceeded",
      `Too many requests: this API key may make ${r.limit} requests per window. Retry after ${headers["ratelimit-reset"]} s.`,
      {
        headers: {
          ...headers,
          "retry-after": String(retryAfterForReset(Number(headers["ratelimit-reset"]))),
        },
      },
    );
    this.name = "RateLimitError";
  }
}
