/**
 * When to try again after a temporary failure: exponential backoff from one minute, doubling to a
 * ceiling of four hours, with jitter so a backlog that failed together does not retry together.
 * The queue gives up after `MAX_QUEUE_AGE_HOURS` (default 96, like Postfix's maximal_queue_lifetime
 * of 5 days and sendmail's 4-5 days).
 */
export const FIRST_RETRY_MS = 60_000;
export const MAX_RETRY_MS = 4 * 60 * 60_000;
/** Each delay is scaled by a random factor in [1 - JITTER, 1 + JITTER]. */
export const JITTER = 0.2;

export interface RetrySchedule {
  firstMs: number;
  maxMs: number;
}

export const DEFAULT_SCHEDULE: RetrySchedule = { firstMs: FIRST_RETRY_MS, maxMs: MAX_RETRY_MS };

export function retryDelayMs(
  attempts: number,
  random: () => number = Math.random,
  schedule: RetrySchedule = DEFAULT_SCHEDULE,
): number {
  const base = Math.min(schedule.firstMs * 2 ** Math.max(0, attempts - 1), schedule.maxMs);
  return Math.round(base * (1 - JITTER + 2 * JITTER * random()));
}

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000 };

/**
 * A wait the server states in a temporary reply ("451 4.7.1 Try again in 5 minutes", "retry after
 * 300 seconds"). Greylisting servers say how long they want; retrying sooner only earns another
 * 451. Returns milliseconds, or null when the reply names no wait.
 */
export function statedWaitMs(text: string): number | null {
  const m =
    /\b(?:in|after|for)\s+(\d{1,6})\s*(s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?)\b/i.exec(
      text,
    );
  if (!m?.[1] || !m[2]) return null;
  const unit = UNIT_MS[m[2][0]?.toLowerCase() ?? ""];
  return unit === undefined ? null : Number(m[1]) * unit;
}
