/**
 * Reading one environment variable each: trimmed strings, bounded whole numbers, switches, rate
 * limits and retry schedules. Each reader names the variable in its ConfigError, so a mistyped
 * value is reported by name. src/config.ts assembles the whole configuration from these.
 */
import { parseRateLimit, type RateLimit } from "../auth/rate-limit.ts";
import { ConfigError } from "../errors.ts";

/** The raw environment: every runtime hands us string variables (and, on Workers, bindings). */
export type Env = Record<string, unknown>;

export function str(env: Env, name: string): string | undefined {
  const value = env[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string") throw new ConfigError(name, "must be a string variable or secret");
  const trimmed = value.trim();
  return trimmed === "" ? undefined : trimmed;
}

export function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = str(env, name);
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw))
    throw new ConfigError(name, `must be a whole number, got ${JSON.stringify(raw)}`);
  const n = Number(raw);
  if (n < min || n > max)
    throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
  return n;
}

export function bool(env: Env, name: string, fallback: boolean): boolean {
  const raw = str(env, name);
  if (raw === undefined) return fallback;
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new ConfigError(name, `must be true or false, got ${JSON.stringify(raw)}`);
}

export function logLevel(env: Env): "info" | "warn" | "error" {
  const raw = (str(env, "LOG_LEVEL") ?? "info").toLowerCase();
  if (raw === "info" || raw === "warn" || raw === "error") return raw;
  throw new ConfigError("LOG_LEVEL", `must be info, warn or error, got ${JSON.stringify(raw)}`);
}

/**
 * A rate limit read from `name`: HOOK_RATE_LIMIT (each inbound hook: a sender's burst passes, a
 * flood does not), DASHBOARD_RATE_LIMIT (each signed-in dashboard key).
 */
export function namedRateLimit(env: Env, name: string, fallback: string): RateLimit {
  const raw = str(env, name) ?? fallback;
  const limit = parseRateLimit(raw);
  if (!limit)
    throw new ConfigError(
      name,
      `must look like 10/1s, ${fallback} or 1000/1h; got ${JSON.stringify(raw)}`,
    );
  return limit;
}

const DURATION_UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "5s,5m,30m" -> milliseconds; each wait at most a day, at most 20 of them. */
export function parseRetrySchedule(raw: string, variable = "WEBHOOK_RETRY_SCHEDULE"): number[] {
  const parts = raw
    .split(",")
    .map((p) => p.trim())
    .filter((p) => p !== "");
  if (parts.length > 20) throw new ConfigError(variable, "has more than 20 retries");
  return parts.map((p) => {
    const m = /^(\d{1,9})(ms|s|m|h)$/.exec(p);
    const ms = m?.[1] && m[2] ? Number(m[1]) * (DURATION_UNIT_MS[m[2]] ?? 0) : Number.NaN;
    if (!Number.isFinite(ms) || ms < 1 || ms > 24 * 3_600_000) {
      throw new ConfigError(
        variable,
        `must be waits such as "5s,5m,30m,2h" (ms, s, m or h, each up to 24h), got ${JSON.stringify(p)}`,
      );
    }
    return ms;
  });
}
