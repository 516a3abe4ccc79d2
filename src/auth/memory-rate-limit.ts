/**
 * The rate limiter of the in-memory store (`npm start`, `deno task start`, tests without Upstash):
 * the sliding window of @upstash/ratelimit 2.2 (`Ratelimit.slidingWindow`, single region), so a
 * client meets the same 429s and the same ratelimit-* numbers in development as in production.
 *
 * The arithmetic is copied rather than @upstash/ratelimit run over a Redis-like adapter: the
 * library reads Date.now() itself, so no clock could be injected (and workerd holds Date.now()
 * still between I/O), and an adapter would have to interpret the library's Lua scripts. What the
 * library does, per limit and identifier (its Lua script plus its ephemeral block cache):
 * - time is cut into fixed windows numbered floor(now / window); a counter for the current window
 *   and one for the previous (the library's keys expire after two windows and a second, so older
 *   windows never count);
 * - the previous window weighs floor((1 - (now % window) / window) * previous); a request is
 *   refused when that plus the current count reaches the limit, otherwise it is counted and
 *   remaining = limit - (current + weighted), never below 0;
 * - reset is the end of the current fixed window;
 * - a refused identifier is refused from the cache, uncounted, until that reset (the cache tests
 *   `reset < now`, so at the reset instant itself it is still refused), even though the weighted
 *   count may fall below the limit sooner.
 */
import type { RateLimit, RateLimiter, RateLimitResult } from "./rate-limit.ts";

interface Counter {
  windowMs: number;
  /** The fixed window `current` counts in. */
  window: number;
  current: number;
  previous: number;
}

/** This window's count and the one before it, from a counter last written in `c.window`. */
function windowCounts(
  c: Counter | undefined,
  window: number,
): { current: number; previous: number } {
  if (c?.window === window) return { current: c.current, previous: c.previous };
  return { current: 0, previous: c?.window === window - 1 ? c.current : 0 };
}

export function memoryRateLimiter(now: () => number): RateLimiter {
  const counters = new Map<string, Counter>();
  const blockedUntil = new Map<string, number>();
  // Forgotten identifiers (a form's past visitors) are swept once the maps have doubled since the
  // last sweep: memory stays within twice what is live, at a constant cost per check.
  let sweepAt = 1024;
  const sweep = (t: number) => {
    for (const [key, c] of counters)
      if (c.window < Math.floor(t / c.windowMs) - 1) counters.delete(key);
    for (const [key, until] of blockedUntil) if (until < t) blockedUntil.delete(key);
    sweepAt = Math.max(1024, 2 * (counters.size + blockedUntil.size));
  };

  return {
    async check(identifier: string, limit: RateLimit): Promise<RateLimitResult> {
      const t = now();
      if (counters.size + blockedUntil.size >= sweepAt) sweep(t);
      // One limiter per distinct limit, as upstashRateLimiter keys Redis by it.
      const key = `${limit.requests}/${limit.windowSeconds}:${identifier}`;
      const refused = (resetAt: number) => ({
        allowed: false,
        limit: limit.requests,
        remaining: 0,
        resetAt,
      });

      const until = blockedUntil.get(key);
      if (until !== undefined) {
        if (until >= t) return refused(until);
        blockedUntil.delete(key);
      }

      const windowMs = limit.windowSeconds * 1000;
      const window = Math.floor(t / windowMs);
      const resetAt = (window + 1) * windowMs;
      const { current, previous } = windowCounts(counters.get(key), window);
      const weighted = Math.floor((1 - (t % windowMs) / windowMs) * previous);
      if (weighted + current >= limit.requests) {
        blockedUntil.set(key, resetAt);
        return refused(resetAt);
      }
      counters.set(key, { windowMs, window, current: current + 1, previous });
      return {
        allowed: true,
        limit: limit.requests,
        remaining: Math.max(0, limit.requests - (current + 1 + weighted)),
        resetAt,
      };
    },
  };
}
