/**
 * Queueing mail from a route: the relay and the background hook of the request's context, handed
 * to the one accept path (src/delivery/accept.ts) that every sender shares.
 */
import type { Context } from "hono";
import { acceptAndDeliver } from "../delivery/accept.ts";
import type { Composed } from "../mail/compose.ts";
import type { IdempotencyRecord } from "../store/store.ts";
import type { AppEnv } from "./env.ts";

export async function queueMessages(
  c: Context<AppEnv>,
  items: { composed: Composed; scheduledAt: number | null }[],
  idempotency?: IdempotencyRecord,
): Promise<string[]> {
  return acceptAndDeliver(c.get("relay"), c.get("background"), items, idempotency);
}
