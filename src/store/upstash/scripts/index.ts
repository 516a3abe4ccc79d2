/** Every script of the Upstash driver, and their final text by name (bench/ tells them apart by SHA-1). */
import { claimScript } from "./claim.ts";
import { claimEventsScript } from "./claim-events.ts";
import { commitScript } from "./commit.ts";
import { commitEventScript } from "./commit-event.ts";
import { enqueueScript } from "./enqueue.ts";
import { eventLogScript } from "./event-log.ts";
import { releaseIdempotentScript } from "./release-idempotent.ts";
import { renewScript } from "./renew.ts";
import { touchKeyScript } from "./touch-key.ts";
import { updateKeyScript } from "./update-key.ts";
import { deleteWebhookScript, getWebhooksScript, putWebhookScript } from "./webhooks.ts";

export {
  claimEventsScript,
  claimScript,
  commitEventScript,
  commitScript,
  deleteWebhookScript,
  enqueueScript,
  eventLogScript,
  getWebhooksScript,
  putWebhookScript,
  releaseIdempotentScript,
  renewScript,
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
  ].map((s) => [s.name, s.lua]),
);
