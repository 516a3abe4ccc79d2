/**
 * The relay's settings for a fault run and the figures derived from them, shared by the phases.
 * Timings are short so that a run takes seconds: retries from 1 s to 4 s, a 1 s SMTP timeout, a
 * 6 s lease, a cron tick every second (the lease is 6 ticks, as the default 300 s lease is 5
 * minutes of the every-minute cron).
 */

/**
 * The relay's settings for the run (README configuration table); short on purpose. The lease is
 * the shortest the relay accepts for this SMTP timeout (6 x SMTP_TIMEOUT_SECONDS, src/config.ts).
 */
export const TIMINGS = {
  retryFirstSeconds: 1,
  retryMaxSeconds: 4,
  leaseSeconds: 6,
  smtpTimeoutSeconds: 1,
  connections: 3,
  batchSize: 25,
  tickMs: 1000,
};

export const STALL_MS = (TIMINGS.smtpTimeoutSeconds + 1) * 1000;
/** A retry is due at most this long after a temporary failure (first delay + 20 % jitter). */
export const FIRST_RETRY_DUE_MS = TIMINGS.retryFirstSeconds * 1200 + 100;
/** Messages the lease-overrun phases send: eight rounds of stalls; one tarpit round. */
export const STALL_OVERRUN_MESSAGES = 8 * TIMINGS.connections;
export const TARPIT_MESSAGES = TIMINGS.connections;
