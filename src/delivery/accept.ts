/**
 * The one way anything queues mail: the relay stores it (all or none, with the idempotency record
 * when there is one), then the first attempt runs at once in the background. `POST /emails`, the
 * batch endpoint and every intake path (forms, hooks) go through here, so they share one
 * durability promise.
 */
import type { Composed } from "../mail/compose.ts";
import type { Relay } from "../relay.ts";
import type { IdempotencyRecord } from "../store/store.ts";

/** Keeps a promise running after the answer (Workers' waitUntil). */
export type Background = (promise: Promise<unknown>) => void;

export async function acceptAndDeliver(
  relay: Relay,
  background: Background,
  items: { composed: Composed; scheduledAt: number | null }[],
  idempotency?: IdempotencyRecord,
): Promise<string[]> {
  const accepted = await relay.accept(items, idempotency);
  if (accepted.immediate.length > 0 || accepted.events) {
    background(
      relay
        .deliverNow(accepted.immediate)
        .catch((err) => relay.log.error("delivery.immediate_failed", { error: String(err) })),
    );
  }
  return accepted.ids;
}
