/**
 * The store contract: every RelayStore driver runs these suites, one per port
 * (test/workers/store.test.ts runs them for the in-memory and Upstash drivers).
 */
import { describeEventsContract } from "./events.ts";
import { describeIdempotencyContract } from "./idempotency.ts";
import { describeInsightContract } from "./insight.ts";
import { describeKeysContract } from "./keys.ts";
import { describeListingContract } from "./listing.ts";
import { describeQueueContract } from "./queue.ts";
import { describeRecordsContract } from "./records.ts";
import { describeRequestLogContract } from "./request-log.ts";
import { describeSlotsContract } from "./slots.ts";
import type { StoreFactory } from "./support.ts";
import { describeSuppressionsContract } from "./suppressions.ts";

export type { StoreFactory } from "./support.ts";
export { eventDraft, newEntry } from "./support.ts";

export function describeStoreContract(factory: StoreFactory): void {
  describeQueueContract(factory);
  describeIdempotencyContract(factory);
  describeKeysContract(factory);
  describeRecordsContract(factory);
  describeEventsContract(factory);
  describeListingContract(factory);
  describeRequestLogContract(factory);
  describeInsightContract(factory);
  describeSuppressionsContract(factory);
  describeSlotsContract(factory);
}
