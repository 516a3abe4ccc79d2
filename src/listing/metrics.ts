/**
 * Email metrics (`GET /emails/metrics`): counts of the relay's events over a time range, from the
 * per-hour counters the enqueue and commit scripts keep (EmailIndex.emailMetrics, one command).
 * Resend's response shape; periods are UTC hours, days, ISO weeks (from Monday) or months. A
 * sending_access key reads its own counters only (the scripts keep one set per key).
 */
import type { Principal } from "../auth/keys.ts";
import { ValidationError } from "../errors.ts";
import { type EmailIndex, METRICS_BUCKET_MS, METRICS_RETENTION_MS } from "../store/store.ts";

/** What the relay counts, by the events it emits (src/events/events.ts) without "email.". */
export const EMAIL_METRICS = [
  "sent",
  "scheduled",
  "delivered",
  "delivery_delayed",
  "bounced",
  "failed",
  "canceled",
  "suppressed",
  "complained",
] as const;
export type EmailMetricName = (typeof EMAIL_METRICS)[number];

export const GRANULARITIES = ["hourly", "daily", "weekly", "monthly"] as const;
export type Granularity = (typeof GRANULARITIES)[number];

/** The longest range served: what the counters keep (older starts are clamped, as Resend does). */
export const METRICS_MAX_RANGE_MS = METRICS_RETENTION_MS - 24 * METRICS_BUCKET_MS;

export interface MetricsRequest {
  start?: number | undefined;
  end?: number | undefined;
  granularity: Granularity;
  metrics: readonly EmailMetricName[];
  byPeriod: boolean;
  keyId?: string | undefined;
}

export interface MetricsAnswer {
  start: number;
  end: number;
  totals: Record<string, number>;
  /** Per period (its start, ms), when asked for by period. */
  periods?: { start: number; counts: Record<string, number> }[];
}

const DAY = 24 * METRICS_BUCKET_MS;

/** The start (ms, UTC) of the period `at` falls in. */
export function periodStart(at: number, granularity: Granularity): number {
  const d = new Date(at);
  switch (granularity) {
    case "hourly":
      return Math.floor(at / METRICS_BUCKET_MS) * METRICS_BUCKET_MS;
    case "daily":
      return Math.floor(at / DAY) * DAY;
    case "weekly": {
      const day = Math.floor(at / DAY) * DAY;
      return day - ((d.getUTCDay() + 6) % 7) * DAY;
    }
    case "monthly":
      return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
  }
}

export class EmailMetrics {
  readonly #store: EmailIndex;
  readonly #now: () => number;

  constructor(store: EmailIndex, now: () => number) {
    this.#store = store;
    this.#now = now;
  }

  async read(principal: Principal, request: MetricsRequest): Promise<MetricsAnswer> {
    const now = this.#now();
    const end = Math.min(request.end ?? now, now);
    const start = Math.max(request.start ?? end - 6 * DAY, now - METRICS_MAX_RANGE_MS);
    if (request.start !== undefined && request.start > end) {
      throw new ValidationError("must be on or before end_date", "start_date");
    }
    let keyId = request.keyId;
    if (principal.permission !== "full_access") {
      if (keyId !== undefined && keyId !== principal.keyId) {
        throw new ValidationError("a sending_access key reads only its own metrics", "key_id", 403);
      }
      keyId = principal.keyId;
    }
    const fromHour = Math.floor(start / METRICS_BUCKET_MS);
    const toHour = Math.floor(end / METRICS_BUCKET_MS);
    const hours = await this.#store.emailMetrics({
      fromHour,
      toHour,
      names: request.metrics,
      keyId,
    });
    const zero = () => Object.fromEntries(request.metrics.map((m) => [m, 0]));
    const totals: Record<string, number> = zero();
    const periods = new Map<number, Record<string, number>>();
    hours.forEach((counts, i) => {
      const at = (fromHour + i) * METRICS_BUCKET_MS;
      const key = periodStart(at, request.granularity);
      const period = periods.get(key) ?? zero();
      periods.set(key, period);
      for (const m of request.metrics) {
        const n = counts[m] ?? 0;
        totals[m] = (totals[m] ?? 0) + n;
        period[m] = (period[m] ?? 0) + n;
      }
    });
    const answer: MetricsAnswer = { start, end, totals };
    if (request.byPeriod) {
      answer.periods = [...periods].map(([at, counts]) => ({ start: at, counts }));
    }
    return answer;
  }
}
