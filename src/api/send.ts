/**
 * The one way a request queues mail: store it (all or none, with the idempotency record when
 * there is one), then try it at once in the background. `POST /emails`, the batch endpoint, form
 * submissions and inbound hooks all go through here, so they share one durability promise.
 */
import type { Context } from "hono";
import type { AppEnv } from "../http/env.ts";
import type { Composed } from "../mail/compose.ts";
import type { IdempotencyRecord } from "../store/store.ts";

export async function queueMessages(
  c: Context<AppEnv>,
  items: { composed: Composed; scheduledAt: number | null }[],
  idempotency?: IdempotencyRecord,
): Promise<string[]> {
  const relay = c.get("relay");
  const accepted = await relay.accept(items, idempotency);
  if (accepted.immediate.length > 0 || accepted.events) {
    c.get("background")(
      relay
        .deliverNow(accepted.immediate)
        .catch((err) => relay.log.error("delivery.immediate_failed", { error: String(err) })),
    );
  }
  return accepted.ids;
}
