/**
 * /emails: send (JSON or raw MIME), send a batch, read, reschedule and cancel. Resend's paths,
 * fields and answers, so its SDK works unchanged.
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { checkMessage } from "../../auth/policy.ts";
import { UnsupportedMediaTypeError, ValidationError } from "../../errors.ts";
import { parseJson } from "../../json.ts";
import { type Composed, composeMessage } from "../../mail/compose.ts";
import { acceptRawMessage } from "../../mail/raw.ts";
import { SendEmailSchema } from "../../mail/request.ts";
import type { Relay } from "../../relay.ts";
import { SUBMITTED_VIA_HEADER } from "../../submission/relay-client.ts";
import { authenticate } from "../auth.ts";
import { batchAnswer, batchValidation, composeBatch } from "../batch.ts";
import { readBodyBytes, readJson, validate } from "../body.ts";
import type { AppEnv } from "../env.ts";
import { idempotent } from "../idempotency.ts";
import {
  authErrors,
  bearer,
  bodyErrors,
  conflict,
  errorResponse,
  notFound,
  resourceApp,
  route,
} from "../route.ts";
import { parseScheduledAt } from "../schedule.ts";
import {
  BatchResponseSchema,
  BatchSchema,
  EmailSchema,
  IdSchema,
  UpdateEmailSchema,
} from "../schemas.ts";
import { queueMessages } from "../send.ts";
import { applyTemplate } from "../send-template.ts";
import { emailView } from "../view.ts";
import { UUID } from "./resource.ts";

function emailId(c: Context): string {
  const id = c.req.param("id") ?? "";
  if (!UUID.test(id)) throw new ValidationError("must be an email id (a UUID)", "id");
  return id.toLowerCase();
}

/** JSON carries attachments as base64: a third larger than the message, plus field overhead. */
function jsonLimit(relay: Relay): number {
  return Math.ceil((relay.config.limits.maxMessageBytes * 4) / 3) + 256 * 1024;
}

function mediaType(c: Context): string {
  return (c.req.header("content-type") ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
}

function limitsOf(relay: Relay) {
  return relay.config.limits;
}

/** The request body, read within the limit its content type allows. */
async function readSendBody(c: Context<AppEnv>): Promise<Uint8Array> {
  const relay = c.get("relay");
  const type = mediaType(c);
  if (type === "message/rfc822") return readBodyBytes(c, relay.config.limits.maxMessageBytes);
  if (type !== "application/json" && type !== "") throw new UnsupportedMediaTypeError(type);
  return readBodyBytes(c, jsonLimit(relay));
}

async function composeFromRequest(
  c: Context<AppEnv>,
  bytes: Uint8Array,
): Promise<{ composed: Composed; scheduledAt: number | null }> {
  const relay = c.get("relay");
  const principal = c.get("principal");
  const now = relay.now();
  const ctx = { id: crypto.randomUUID(), keyId: principal.keyId, now, limits: limitsOf(relay) };
  if (mediaType(c) === "message/rfc822") {
    const to = c.req
      .queries("to")
      ?.flatMap((t) => t.split(","))
      .map((t) => t.trim())
      .filter(Boolean);
    const composed = await acceptRawMessage(bytes, { from: c.req.query("from"), to }, ctx);
    checkMessage(principal.policy, composed);
    // The listener says so on its request (src/submission/relay-client.ts); a label, see the type.
    if (c.req.header(SUBMITTED_VIA_HEADER)?.toLowerCase() === "smtp")
      composed.message.submittedVia = "smtp";
    return { composed, scheduledAt: parseScheduledAt(c.req.query("scheduled_at"), now) };
  }
  const body = validate(SendEmailSchema, await applyTemplate(c, parseJson(bytes)));
  const scheduledAt = parseScheduledAt(body.scheduled_at, now);
  const composed = await composeMessage(body, ctx);
  checkMessage(principal.policy, composed);
  return { composed, scheduledAt };
}

const send = {
  200: {
    description: "Stored durably; delivery follows",
    content: { "application/json": { schema: IdSchema } },
  },
  ...authErrors,
  ...bodyErrors,
  400: errorResponse("Malformed body, or an Idempotency-Key that is not 1 to 256 characters"),
  403: errorResponse("Invalid API key, or a sender, recipient or size outside the key's policy"),
  409: conflict(
    "the Idempotency-Key was used with another body, or its first request is still in progress",
  ),
  415: errorResponse("Content-Type other than application/json (or message/rfc822 for /emails)"),
  503: errorResponse(
    "Store unavailable or did not confirm: retry after Retry-After (with the same Idempotency-Key)",
  ),
};

const sendEmail = createRoute({
  method: "post",
  path: "/",
  summary: "Send an email (JSON, or raw MIME as message/rfc822)",
  security: bearer,
  request: {
    body: {
      content: {
        "application/json": { schema: SendEmailSchema },
        "message/rfc822": {
          schema: {
            type: "string",
            description:
              "A complete message; Bcc headers are removed. Query ?from= and ?to= override the envelope.",
          },
        },
      },
    },
  },
  responses: send,
});

const sendBatch = createRoute({
  method: "post",
  path: "/batch",
  summary:
    "Send up to 100 emails at once: all or none (x-batch-validation: strict, the default), or the valid ones with per-index errors (permissive)",
  security: bearer,
  request: {
    headers: z.object({ "x-batch-validation": z.enum(["strict", "permissive"]).optional() }),
    body: { content: { "application/json": { schema: BatchSchema } } },
  },
  responses: {
    ...send,
    200: {
      description: "Stored",
      content: { "application/json": { schema: BatchResponseSchema } },
    },
  },
});

const byId = { 404: notFound("email (for this key)"), 422: errorResponse("id: not a UUID") };

const getEmail = createRoute({
  method: "get",
  path: "/{id}",
  summary: "Retrieve an email with its delivery state",
  security: bearer,
  request: { params: IdSchema },
  responses: {
    200: { description: "The email", content: { "application/json": { schema: EmailSchema } } },
    ...authErrors,
    ...byId,
  },
});

const rescheduleEmail = createRoute({
  method: "patch",
  path: "/{id}",
  summary: "Reschedule a scheduled email",
  security: bearer,
  request: {
    params: IdSchema,
    body: { content: { "application/json": { schema: UpdateEmailSchema } } },
  },
  responses: {
    200: { description: "Rescheduled", content: { "application/json": { schema: IdSchema } } },
    ...authErrors,
    ...bodyErrors,
    ...byId,
    409: conflict("the email is no longer scheduled (sent, being sent or canceled)"),
  },
});

const cancelEmail = createRoute({
  method: "post",
  path: "/{id}/cancel",
  summary: "Cancel an email that has not been delivered yet",
  security: bearer,
  request: { params: IdSchema },
  responses: {
    200: { description: "Canceled", content: { "application/json": { schema: IdSchema } } },
    ...authErrors,
    ...byId,
    409: conflict("the email was delivered already or is being delivered right now"),
  },
});

/** Mounted at /emails. */
export function emailRoutes(): OpenAPIHono<AppEnv> {
  const app = resourceApp();
  // "*" within the mount: unknown paths under /emails ask for a key before they are not found.
  app.use("*", authenticate);

  route(app, sendEmail, async (c) => {
    const bytes = await readSendBody(c);
    return idempotent(c, bytes, async (seal) => {
      const item = await composeFromRequest(c, bytes);
      const id = item.composed.message.id;
      const response = { status: 200, body: { id } };
      await queueMessages(c, [item], seal(response));
      return response;
    });
  });

  route(app, sendBatch, async (c) => {
    const relay = c.get("relay");
    const type = mediaType(c);
    if (type !== "application/json" && type !== "") throw new UnsupportedMediaTypeError(type);
    const mode = batchValidation(c);
    const bytes = await readBodyBytes(c, jsonLimit(relay));
    return idempotent(c, bytes, async (seal) => {
      const batch = await composeBatch(c, parseJson(bytes), mode);
      const response = { status: 200, body: batchAnswer(batch, mode) };
      // Nothing valid, nothing stored: the answer is computed again on a retry.
      if (batch.items.length) await queueMessages(c, batch.items, seal(response));
      return response;
    });
  });

  route(app, getEmail, async (c) => {
    const relay = c.get("relay");
    const entry = await relay.get(emailId(c), c.get("principal"));
    return c.json(await emailView(entry, relay.now()));
  });

  route(app, rescheduleEmail, async (c) => {
    const relay = c.get("relay");
    const id = emailId(c);
    const body = validate(UpdateEmailSchema, await readJson(c, 64 * 1024));
    const at = parseScheduledAt(body.scheduled_at, relay.now());
    if (at === null) throw new ValidationError("is required", "scheduled_at");
    await relay.reschedule(id, c.get("principal"), at);
    return c.json({ object: "email", id });
  });

  route(app, cancelEmail, async (c) => {
    const id = emailId(c);
    await c.get("relay").cancel(id, c.get("principal"));
    return c.json({ object: "email", id });
  });

  return app;
}
