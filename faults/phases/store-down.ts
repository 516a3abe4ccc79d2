/**
 * Phase 3, store down: the Redis gateway stops listening for a window; every send then must be
 * refused (503), scheduled runs must pause, and resume after.
 */
import { sleep, within } from "../async.ts";
import { attempted, type FaultRun } from "../context.ts";
import type { SendRecord } from "../ledger.ts";

export interface OutageReport {
  ms: number;
  sends: number;
  refusedStatuses: Record<string, number>;
  ticksDuring: number;
  /** Copies the server received while the store was down (runs already past their claim). */
  deliveriesDuring: number;
  /** From the store coming back to the next copy at the server. */
  firstDeliveryAfterMs: number | null;
}

export async function storeDown(
  run: FaultRun,
  count: number,
  outageMs: number,
): Promise<OutageReport | undefined> {
  let outage: OutageReport | undefined;
  await run.phase("store down", async () => {
    // An immediate attempt holds its message for a fixed 2 minutes (not DELIVERY_LEASE_SECONDS):
    // if the outage caught one before its commit, the message would wait that long. Let them end.
    const stuck = await run.waitUntil(run.acceptedIds(), attempted, Date.now() + 15_000);
    if (stuck > 0) run.say(`store down: ${stuck} immediate attempt(s) still open, going ahead`);
    const ticksBefore = run.ticker.fired;
    await run.gateway.down();
    const from = Date.now();
    const batch = run.plan("storedown", count);
    for (const s of batch) {
      await run.send(s);
      await sleep((outageMs * 0.6) / batch.length);
    }
    await sleep(outageMs - (Date.now() - from));
    const to = Date.now();
    await run.gateway.up();
    run.storeOutages.push({ name: "store down", from, to });
    outage = {
      ms: to - from,
      sends: batch.length,
      refusedStatuses: statusCounts(batch),
      ticksDuring: run.ticker.fired - ticksBefore,
      deliveriesDuring: run.smtp.messages.filter((m) => {
        const at = Date.parse(m.receivedAt);
        return at >= from && at <= to;
      }).length,
      firstDeliveryAfterMs: null,
    };
    outage.firstDeliveryAfterMs = await firstDeliveryAfter(run, to);
  });
  return outage;
}

function statusCounts(batch: SendRecord[]): Record<string, number> {
  const statuses: Record<string, number> = {};
  for (const s of batch) statuses[s.status] = (statuses[s.status] ?? 0) + 1;
  return statuses;
}

/** Resumption: ms from `to` to the next copy at the server (bounded wait; null if none came). */
function firstDeliveryAfter(run: FaultRun, to: number): Promise<number | null> {
  return within(
    (async () => {
      while (Date.now() - to < 10_000) {
        const next = run.smtp.messages.find((m) => Date.parse(m.receivedAt) > to);
        if (next) return Date.parse(next.receivedAt) - to;
        await sleep(50);
      }
      return null;
    })(),
    11_000,
    null,
  );
}
