/**
 * The store seam: `RelayStore`, every port in ports.ts over one database, with the types and
 * shared limits callers need re-exported, so code that takes "the store" imports one module.
 * One folder per driver (`upstash/`, `memory/`) and one contract suite per port
 * (test/contract/store/, run against both by test/workers/store.test.ts).
 */

import type { EmailIndex, RequestLogStore } from "./history-ports.ts";
import type { QueueInsight } from "./insight-ports.ts";
import type { EventQueue, IdempotencyStore, KeyStore, MessageQueue, RecordStore } from "./ports.ts";
import type { ConnectionSlots } from "./slot-ports.ts";
import type { SuppressionStore } from "./suppression-ports.ts";

export type {
  EmailIndex,
  EmailListQuery,
  EmailListWindow,
  ListedEntry,
  RequestLogEntry,
  RequestLogQuery,
  RequestLogStore,
} from "./history-ports.ts";
export type {
  HostOutcome,
  QueueDepth,
  QueueInsight,
  SmartHostOutcomes,
} from "./insight-ports.ts";
export type {
  ClaimedEvent,
  ClaimRun,
  CommitItem,
  CommitResult,
  EndpointEvent,
  EnqueueOutcome,
  EventAttempt,
  EventCommitResult,
  EventDelivery,
  EventOutcome,
  EventQueue,
  EventStatus,
  EventSummary,
  IdempotencyRecord,
  IdempotencyState,
  IdempotencyStore,
  KeyStore,
  MessageQueue,
  NewEntry,
  NextStep,
  RecordKind,
  RecordStore,
  ReplayResult,
  StoredResponse,
  WriteGuard,
} from "./ports.ts";
export { IdempotencyClaimLapsedError } from "./ports.ts";
export {
  CLAIM_BUDGET_BYTES,
  CLAIM_ENTRY_OVERHEAD,
  claimEntryBytes,
  EVENT_LOG_MAX,
  INDEX_TRIM_PER_COMMIT,
  INDEX_TRIM_PER_READ,
  LIST_BUDGET_BYTES,
  METRICS_BUCKET_MS,
  METRICS_RETENTION_MS,
  newLeaseToken,
  timeIdPrefix,
  UPSTASH_MAX_RESPONSE_BYTES,
  uuidV7,
  uuidV7Time,
} from "./shared.ts";
export type { ClaimSlots, ConnectionSlots, SlotsAnswer } from "./slot-ports.ts";
export { slotMembers } from "./slot-ports.ts";
export type {
  SuppressedRecipient,
  Suppression,
  SuppressionListQuery,
  SuppressionOrigin,
  SuppressionPage,
  SuppressionSelector,
  SuppressionStore,
} from "./suppression-ports.ts";
export { normalizeAddress, SUPPRESSION_ORIGINS } from "./suppression-ports.ts";

/** Everything the relay keeps, in one database: what the use-cases and routes are handed. */
export type RelayStore = MessageQueue &
  IdempotencyStore &
  KeyStore &
  RecordStore &
  EventQueue &
  EmailIndex &
  RequestLogStore &
  QueueInsight &
  SuppressionStore &
  ConnectionSlots;
