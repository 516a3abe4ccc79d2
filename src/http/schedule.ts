/**
 * `scheduled_at`: an ISO 8601 time with a zone, or Resend's short natural form "in N minutes".
 */
import { ValidationError } from "../errors.ts";

/** How far ahead a message may be scheduled, as Resend allows. */
export const MAX_SCHEDULE_AHEAD_MS = 30 * 24 * 60 * 60_000;

const UNITS: Record<string, number> = {
  second: 1000,
  minute: 60_000,
  min: 60_000,
  hour: 3_600_000,
  day: 86_400_000,
};

export function parseScheduledAt(value: string | undefined, now: number): number | null {
  if (value === undefined) return null;
  const field = "scheduled_at";
  const natural = /^in\s+(\d{1,6})\s+(second|minute|min|hour|day)s?$/i.exec(value.trim());
  let at: number;
  if (natural?.[1] && natural[2]) {
    at = now + Number(natural[1]) * (UNITS[natural[2].toLowerCase()] ?? 0);
  } else {
    // Require a zone: a bare local time would mean different instants on different servers.
    if (
      !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/i.test(
        value.trim(),
      )
    ) {
      throw new ValidationError(
        'must be an ISO 8601 time with a zone (2026-12-01T09:00:00Z) or "in N minutes|hours|days"',
        field,
      );
    }
    at = Date.parse(value);
    if (Number.isNaN(at)) throw new ValidationError("is not a valid date", field);
  }
  if (at - now > MAX_SCHEDULE_AHEAD_MS)
    throw new ValidationError("must be at most 30 days ahead", field);
  return at;
}
