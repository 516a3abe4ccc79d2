/**
 * DELIVERY_FANOUT and SMTP_HOST_MAX_CONNECTIONS: how far a scheduled run may fan out to further
 * invocations (src/delivery/fanout.ts), and the cap on connections to the smart host that all of
 * them together, and any run still going from the last cron tick, share.
 */
import { type Env, int, str } from "./read.ts";

export interface FanoutConfig {
  /**
   * Invocations a scheduled run may use, itself included (DELIVERY_FANOUT). 1: never fans out.
   * @default 1
   */
  invocations: number;
  /**
   * Connections to the smart host all delivery runs together may hold (SMTP_HOST_MAX_CONNECTIONS),
   * kept in the store (src/store/slot-ports.ts); undefined: no shared cap, each run opens its own
   * SMTP_MAX_CONNECTIONS. Defaults to DELIVERY_FANOUT × SMTP_MAX_CONNECTIONS when DELIVERY_FANOUT
   * is above 1.
   */
  hostConnectionCap: number | undefined;
}

/**
 * Each helper is a subrequest of the scheduled run and shares its thread (Cloudflare runs service
 * binding calls on the caller's thread), so more helpers add connections, not CPU: sixteen is
 * already 96 connections, more than one smart host usually takes from one client.
 */
export const MAX_FANOUT = 16;

export function fanoutConfig(env: Env, smtpMaxConnections: number): FanoutConfig {
  const invocations = int(env, "DELIVERY_FANOUT", 1, 1, MAX_FANOUT);
  const cap =
    str(env, "SMTP_HOST_MAX_CONNECTIONS") === undefined
      ? invocations > 1
        ? invocations * smtpMaxConnections
        : undefined
      : int(env, "SMTP_HOST_MAX_CONNECTIONS", 0, 1, 1000);
  return { invocations, hostConnectionCap: cap };
}
