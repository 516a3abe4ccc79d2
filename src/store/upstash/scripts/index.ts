/** Every script of the Upstash driver, and their final text by name (bench/ tells them apart by SHA-1). */

import type { Redis } from "@upstash/redis";
import { claimScript } from "./claim.ts";
import { claimEventsScript } from "./claim-events.ts";
import { commitScript } from "./commit.ts";
import { commitEventScript } from "./commit-event.ts";
import { bind } from "./define.ts";
import { emailEventsScript } from "./email-events.ts";
import { enqueueScript } from "./enqueue.ts";
import { eventLogScript } from "./event-log.ts";
import { listEmailsScript, metricsScript } from "./list-emails.ts";
import { queueDepthScript } from "./queue-depth.ts";
import { releaseIdempotentScript } from "./release-idempotent.ts";
import { renewScript } from "./renew.ts";
import { replayEventScript } from "./replay-event.ts";
import { appendRequestLogScript, listRequestLogScript } from "./request-log.ts";
import {
  addSuppressionsScript,
  getSuppressionScript,
  listSuppressionsScript,
  removeSuppressionsScript,
  suppressedAmongScript,
} from "./suppressions.ts";
import { swapRecordScript } from "./swap-record.ts";
import { touchKeyScript } from "./touch-key.ts";
import { updateKeyScript } from "./update-key.ts";
import { deleteWebhookScript, getWebhooksScript, putWebhookScript } from "./webhooks.ts";

export {
  addSuppressionsScript,
  appendRequestLogScript,
  claimEventsScript,
  claimScript,
  commitEventScript,
  commitScript,
  deleteWebhookScript,
  emailEventsScript,
  enqueueScript,
  eventLogScript,
  getSuppressionScript,
  getWebhooksScript,
  listEmailsScript,
  listRequestLogScript,
  listSuppressionsScript,
  metricsScript,
  putWebhookScript,
  queueDepthScript,
  releaseIdempotentScript,
  removeSuppressionsScript,
  renewScript,
  replayEventScript,
  suppressedAmongScript,
  swapRecordScript,
  touchKeyScript,
  updateKeyScript,
};

export const STORE_SCRIPTS: Record<string, string> = Object.fromEntries(
  [
    enqueueScript,
    claimScript,
    commitScript,
    renewScript,
    touchKeyScript,
    updateKeyScript,
    claimEventsScript,
    commitEventScript,
    eventLogScript,
    putWebhookScript,
    deleteWebhookScript,
    getWebhooksScript,
    releaseIdempotentScript,
    listEmailsScript,
    metricsScript,
    appendRequestLogScript,
    listRequestLogScript,
    queueDepthScript,
    swapRecordScript,
    replayEventScript,
    emailEventsScript,
    addSuppressionsScript,
    getSuppressionScript,
    listSuppressionsScript,
    removeSuppressionsScript,
    suppressedAmongScript,
  ].map((s) => [s.name, s.lua]),
);

/** Every script bound to one client: what the store calls (EVALSHA, EVAL when not cached). */
export function bindScripts(r: Redis) {
  return {
    enqueue: bind(r, enqueueScript),
    claim: bind(r, claimScript),
    commit: bind(r, commitScript),
    renew: bind(r, renewScript),
    touchKey: bind(r, touchKeyScript),
    swapRecord: bind(r, swapRecordScript),
    updateKey: bind(r, updateKeyScript),
    releaseIdempotent: bind(r, releaseIdempotentScript),
    claimEvents: bind(r, claimEventsScript),
    commitEvent: bind(r, commitEventScript),
    eventLog: bind(r, eventLogScript),
    putWebhook: bind(r, putWebhookScript),
    deleteWebhook: bind(r, deleteWebhookScript),
    getWebhooks: bind(r, getWebhooksScript),
    listEmails: bind(r, listEmailsScript),
    metrics: bind(r, metricsScript),
    appendRequestLog: bind(r, appendRequestLogScript),
    listRequestLog: bind(r, listRequestLogScript),
    queueDepth: bind(r, queueDepthScript),
    replayEvent: bind(r, replayEventScript),
    emailEvents: bind(r, emailEventsScript),
    addSuppressions: bind(r, addSuppressionsScript),
    getSuppression: bind(r, getSuppressionScript),
    listSuppressions: bind(r, listSuppressionsScript),
    removeSuppressions: bind(r, removeSuppressionsScript),
    suppressedAmong: bind(r, suppressedAmongScript),
  };
}

export type BoundScripts = ReturnType<typeof bindScripts>;
