/**
 * /webhooks: endpoints that receive the relay's delivery events, in Resend's shape, so the
 * `resend` SDK's `webhooks.create/get/list/update/remove` work unchanged. The signing secret is
 * shown once, at creation (and on rotation). Also the event log: each event queued for an
 * endpoint, its status and every attempt. Needs a full_access key.
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { requireFullAccess } from "../../auth/keys.ts";
import { NotFoundError, ValidationError } from "../../errors.ts";
import { EVENT_TYPES } from "../../events/events.ts";
import type { Endpoint } from "../../events/manage.ts";
import { authenticate } from "../auth.ts";
import { readJson, validate } from "../body.ts";
import type { AppEnv } from "../env.ts";
import {
  authErrors,
  bearer,
  bodyErrors,
  conflict,
  notFound,
  resourceApp,
  route,
} from "../route.ts";
import { UUID } from "./resource.ts";

const BODY_LIMIT = 64 * 1024;
const iso = (ms: number) => new Date(ms).toISOString();

/** The endpoint the path names; an id that is not a UUID is simply not found. */
async function findWebhook(c: Context<AppEnv>): Promise<Endpoint> {
  const id = c.req.param("id") ?? "";
  if (!UUID.test(id)) throw new NotFoundError("Webhook");
  return c.get("relay").webhooks.get(id);
}

function view(found: Endpoint) {
  const { record, enabled } = found;
  return {
    id: record.id,
    endpoint: record.endpoint,
    created_at: iso(record.createdAt),
    status: enabled ? ("enabled" as const) : ("disabled" as const),
    events: record.events,
    ...(!enabled && record.disabledReason
      ? { disabled_reason: record.disabledReason, disabled_at: iso(record.disabledAt ?? 0) }
      : {}),
  };
}

function limitParam(c: Context, fallback: number, max: number): number {
  const raw = c.req.query("limit");
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > max) {
    throw new ValidationError(`must be a whole number from 1 to ${max}`, "limit");
  }
  return n;
}

// The bodies are checked against the schemas the document shows, with the messages the relay
// has always answered. Whether the URL may be an endpoint (https, a public host) and the events'
// order without repeats are the use-case's rules (webhooks/endpoints.ts), as is a field left out
// of a create ("is required"): the handlers validate the schemas' partial() for that reason.
const NOT_AN_EVENT_LIST = "must be a non-empty list of event types";
const EventTypeSchema = z.enum(EVENT_TYPES, {
  error: `must be one of ${EVENT_TYPES.join(", ")} (the events the relay emits)`,
});
const EventsSchema = z
  .array(EventTypeSchema, { error: NOT_AN_EVENT_LIST })
  .min(1, { error: NOT_AN_EVENT_LIST });
const EndpointSchema = z.string({ error: "is required" });
const NOT_AN_OBJECT = { error: "must be a JSON object" };
const CreateWebhookSchema = z
  .object(
    {
      endpoint: EndpointSchema.openapi({ example: "https://app.example/webhooks/relay" }),
      events: EventsSchema,
    },
    NOT_AN_OBJECT,
  )
  .openapi("CreateWebhookRequest");
const UpdateWebhookSchema = z
  .object(
    {
      endpoint: EndpointSchema.optional(),
      events: EventsSchema.optional(),
      status: z.enum(["enabled", "disabled"], { error: "must be enabled or disabled" }).optional(),
    },
    NOT_AN_OBJECT,
  )
  .openapi("UpdateWebhookRequest");
const WebhookSchema = z
  .object({
    object: z.literal("webhook"),
    id: z.string(),
    endpoint: z.string(),
    created_at: z.string(),
    status: z.enum(["enabled", "disabled"]),
    events: z.array(EventTypeSchema),
    disabled_reason: z.string().optional(),
  })
  .openapi("Webhook");

const json = (schema: z.ZodType) => ({ "application/json": { schema } });
const noWebhook = notFound("webhook");
/** The event routes read the webhook first, then the event. */
const noEvent = notFound("webhook, or no such event for it");

const createWebhook = createRoute({
  method: "post",
  path: "/",
  summary: "Register an endpoint for delivery events; the signing secret is returned once",
  security: bearer,
  request: { body: { content: json(CreateWebhookSchema) } },
  responses: {
    201: { description: "{ object: 'webhook', id, signing_secret }" },
    ...authErrors,
    ...bodyErrors,
  },
});

const listWebhooks = createRoute({
  method: "get",
  path: "/",
  summary: "List webhook endpoints (never their secrets)",
  security: bearer,
  responses: { 200: { description: "{ object: 'list', data: Webhook[] }" }, ...authErrors },
});

const getWebhook = createRoute({
  method: "get",
  path: "/{id}",
  summary: "Retrieve a webhook endpoint",
  security: bearer,
  responses: {
    200: { description: "The endpoint", content: json(WebhookSchema) },
    ...authErrors,
    404: noWebhook,
  },
});

const updateWebhook = createRoute({
  method: "patch",
  path: "/{id}",
  summary: "Change the endpoint URL or events, or enable/disable it",
  security: bearer,
  request: { body: { content: json(UpdateWebhookSchema) } },
  responses: {
    200: { description: "{ object: 'webhook', id }" },
    ...authErrors,
    ...bodyErrors,
    404: noWebhook,
  },
});

const deleteWebhook = createRoute({
  method: "delete",
  path: "/{id}",
  summary: "Remove a webhook endpoint; its queued events are dropped",
  security: bearer,
  responses: {
    200: { description: "{ object: 'webhook', id, deleted: true }" },
    ...authErrors,
    404: noWebhook,
  },
});

const rotateSecret = createRoute({
  method: "post",
  path: "/{id}/signing-secret/rotate",
  summary: "Replace the signing secret; the new one is returned once",
  security: bearer,
  responses: {
    200: { description: "{ object: 'webhook', id, signing_secret }" },
    ...authErrors,
    404: noWebhook,
  },
});

const listEvents = createRoute({
  method: "get",
  path: "/{id}/events",
  summary: "The newest events queued for an endpoint, with their status",
  security: bearer,
  request: {
    query: z.object({ limit: z.string().optional().openapi({ description: "1 to 100; 50" }) }),
  },
  responses: {
    200: { description: "{ object: 'list', data: [{ id, type, created_at, status }] }" },
    ...authErrors,
    404: noWebhook,
    422: bodyErrors[422],
  },
});

const getEvent = createRoute({
  method: "get",
  path: "/{id}/events/{event_id}",
  summary: "One event: status, next attempt and payload",
  security: bearer,
  responses: {
    200: { description: "{ object: 'webhook_event', ... }" },
    ...authErrors,
    404: noEvent,
  },
});

const listAttempts = createRoute({
  method: "get",
  path: "/{id}/events/{event_id}/attempts",
  summary: "Every attempt to deliver an event: time, HTTP status or error, duration",
  security: bearer,
  responses: {
    200: { description: "{ object: 'list', data: Attempt[] }" },
    ...authErrors,
    404: noEvent,
  },
});

const replayEvent = createRoute({
  method: "post",
  path: "/{id}/events/{event_id}/replay",
  summary:
    "Send an event again: a new delivery (new id) with the same payload and a fresh retry schedule",
  security: bearer,
  responses: {
    200: { description: "{ object: 'webhook_event', id } (the new delivery's id)" },
    ...authErrors,
    404: noEvent,
    409: conflict("the endpoint is disabled"),
  },
});

/** Mounted at /webhooks. */
export function webhookRoutes(): OpenAPIHono<AppEnv> {
  const app = resourceApp();
  app.use("*", authenticate);
  app.use("*", async (c, next) => {
    requireFullAccess(c.get("principal"));
    await next();
  });

  route(app, createWebhook, async (c) => {
    const body = validate(CreateWebhookSchema.partial(), await readJson(c, BODY_LIMIT));
    const input = { endpoint: body.endpoint, events: body.events };
    const record = await c.get("relay").webhooks.create(input, c.get("principal").keyId);
    return c.json({ object: "webhook", id: record.id, signing_secret: record.secret }, 201);
  });

  route(app, listWebhooks, async (c) => {
    const all = await c.get("relay").webhooks.list();
    return c.json({ object: "list", has_more: false, data: all.map(view) });
  });

  route(app, getWebhook, async (c) => {
    return c.json({ object: "webhook", ...view(await findWebhook(c)) });
  });

  route(app, updateWebhook, async (c) => {
    const found = await findWebhook(c);
    const change = validate(UpdateWebhookSchema, await readJson(c, BODY_LIMIT));
    await c.get("relay").webhooks.update(found, change, c.get("principal").keyId);
    return c.json({ object: "webhook", id: found.record.id });
  });

  route(app, deleteWebhook, async (c) => {
    const found = await findWebhook(c);
    await c.get("relay").webhooks.remove(found, c.get("principal").keyId);
    return c.json({ object: "webhook", id: found.record.id, deleted: true });
  });

  route(app, rotateSecret, async (c) => {
    const record = await c.get("relay").webhooks.rotateSecret(await findWebhook(c));
    return c.json({ object: "webhook", id: record.id, signing_secret: record.secret });
  });

  route(app, listEvents, async (c) => {
    const found = await findWebhook(c);
    const limit = limitParam(c, 50, 100);
    const log = await c.get("relay").webhooks.events(found, limit);
    return c.json({
      object: "list",
      has_more: false,
      data: log.map((e) => ({
        id: e.id,
        type: e.type,
        created_at: iso(e.createdAt),
        status: e.status,
        email_id: e.emailId,
      })),
    });
  });

  const findEvent = async (c: Context<AppEnv>) => {
    const found = await findWebhook(c);
    const eventId = c.req.param("event_id") ?? "";
    if (!UUID.test(eventId)) throw new NotFoundError("Webhook event");
    return c.get("relay").webhooks.event(found, eventId);
  };

  route(app, getEvent, async (c) => {
    const event = await findEvent(c);
    return c.json({
      object: "webhook_event",
      id: event.id,
      type: event.type,
      created_at: iso(event.createdAt),
      status: event.status,
      next_attempt_at: event.nextAttemptAt === null ? null : iso(event.nextAttemptAt),
      payload: JSON.parse(event.payload),
    });
  });

  route(app, listAttempts, async (c) => {
    const event = await findEvent(c);
    return c.json({
      object: "list",
      has_more: false,
      data: event.attempts.map((a, i) => ({
        id: `${event.id}:${i + 1}`,
        http_status_code: a.status,
        response: a.response ?? "",
        sent_at: iso(a.at),
        duration_ms: a.ms,
        ...(a.error ? { error: a.error } : {}),
      })),
    });
  });

  route(app, replayEvent, async (c) => {
    const relay = c.get("relay");
    const found = await findWebhook(c);
    const eventId = c.req.param("event_id") ?? "";
    if (!UUID.test(eventId)) throw new NotFoundError("Webhook event");
    const id = await relay.webhooks.replay(found, eventId.toLowerCase(), c.get("principal").keyId);
    c.get("background")(relay.dispatchSoon());
    return c.json({ object: "webhook_event", id });
  });

  return app;
}
