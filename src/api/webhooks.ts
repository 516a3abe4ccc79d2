/**
 * /webhooks: endpoints that receive the relay's delivery events, in Resend's shape, so the
 * `resend` SDK's `webhooks.create/get/list/update/remove` work unchanged. The signing secret is
 * shown once, at creation (and on rotation). Also the event log: each event queued for an
 * endpoint, its status and every attempt. Needs a full_access key.
 */
import { type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { requireFullAccess } from "../auth/keys.ts";
import { NotFoundError, StoreUnavailableError, ValidationError } from "../errors.ts";
import type { AppEnv } from "../http/env.ts";
import type { RelayStore } from "../store/store.ts";
import {
  checkEndpointUrl,
  checkEvents,
  newSigningSecret,
  type WebhookRecord,
} from "../webhooks/endpoints.ts";
import { EVENT_TYPES } from "../webhooks/events.ts";
import { authenticate } from "./auth.ts";
import { readJson } from "./body.ts";
import { UUID } from "./resource.ts";
import { errorResponse } from "./schemas.ts";

const BODY_LIMIT = 64 * 1024;
const iso = (ms: number) => new Date(ms).toISOString();

function objectBody(raw: unknown): Record<string, unknown> {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new ValidationError("must be a JSON object", "body");
  }
  return raw as Record<string, unknown>;
}

/** Store calls answer 503 when the store is down, as sending does. */
async function stored<T>(op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    throw new StoreUnavailableError(err);
  }
}

async function findWebhook(c: Context<AppEnv>) {
  const id = c.req.param("id") ?? "";
  const store: RelayStore = c.get("relay").store;
  const found = UUID.test(id) ? await stored(() => store.getWebhook<WebhookRecord>(id)) : null;
  if (!found) throw new NotFoundError("Webhook");
  return found;
}

function view(found: { record: WebhookRecord; enabled: boolean }) {
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

export function registerWebhookRoutes(app: OpenAPIHono<AppEnv>): void {
  app.use("/webhooks", authenticate);
  app.use("/webhooks/*", authenticate);
  // Hono's "/webhooks/*" matches "/webhooks" too.
  app.use("/webhooks/*", async (c, next) => {
    requireFullAccess(c.get("principal"));
    await next();
  });

  app.post("/webhooks", async (c) => {
    const relay = c.get("relay");
    const body = objectBody(await readJson(c, BODY_LIMIT));
    const endpoint = checkEndpointUrl(body.endpoint, relay.config.webhooks.allowLoopback);
    const events = checkEvents(body.events);
    const record: WebhookRecord = {
      id: crypto.randomUUID(),
      endpoint,
      events,
      secret: newSigningSecret(),
      createdAt: relay.now(),
    };
    await stored(() => relay.store.putWebhook(record.id, record, events));
    relay.log.info("webhook.created", { webhook_id: record.id, by: c.get("principal").keyId });
    return c.json({ object: "webhook", id: record.id, signing_secret: record.secret }, 201);
  });

  app.get("/webhooks", async (c) => {
    const store = c.get("relay").store;
    const all = await stored(() => store.listWebhooks<WebhookRecord>());
    all.sort((a, b) => b.record.createdAt - a.record.createdAt);
    return c.json({ object: "list", has_more: false, data: all.map(view) });
  });

  app.get("/webhooks/:id", async (c) => {
    return c.json({ object: "webhook", ...view(await findWebhook(c)) });
  });

  app.patch("/webhooks/:id", async (c) => {
    const relay = c.get("relay");
    const found = await findWebhook(c);
    const body = objectBody(await readJson(c, BODY_LIMIT));
    const record: WebhookRecord = { ...found.record };
    if (body.endpoint !== undefined) {
      record.endpoint = checkEndpointUrl(body.endpoint, relay.config.webhooks.allowLoopback);
    }
    if (body.events !== undefined) record.events = checkEvents(body.events);
    let enabled = found.enabled;
    if (body.status !== undefined) {
      if (body.status !== "enabled" && body.status !== "disabled") {
        throw new ValidationError("must be enabled or disabled", "status");
      }
      enabled = body.status === "enabled";
    }
    if (enabled) {
      delete record.disabledReason;
      delete record.disabledAt;
    } else if (found.enabled) {
      record.disabledReason = "disabled through the API";
      record.disabledAt = relay.now();
    }
    await stored(() => relay.store.putWebhook(record.id, record, enabled ? record.events : null));
    relay.log.info("webhook.updated", {
      webhook_id: record.id,
      status: enabled ? "enabled" : "disabled",
      by: c.get("principal").keyId,
    });
    return c.json({ object: "webhook", id: record.id });
  });

  app.delete("/webhooks/:id", async (c) => {
    const relay = c.get("relay");
    const { record } = await findWebhook(c);
    await stored(() => relay.store.deleteWebhook(record.id));
    relay.log.info("webhook.deleted", { webhook_id: record.id, by: c.get("principal").keyId });
    return c.json({ object: "webhook", id: record.id, deleted: true });
  });

  app.post("/webhooks/:id/signing-secret/rotate", async (c) => {
    const relay = c.get("relay");
    const found = await findWebhook(c);
    // Events still queued are signed with the new secret when they are sent.
    const record: WebhookRecord = { ...found.record, secret: newSigningSecret() };
    await stored(() =>
      relay.store.putWebhook(record.id, record, found.enabled ? record.events : null),
    );
    relay.log.info("webhook.secret_rotated", { webhook_id: record.id });
    return c.json({ object: "webhook", id: record.id, signing_secret: record.secret });
  });

  app.get("/webhooks/:id/events", async (c) => {
    const { record } = await findWebhook(c);
    const limit = limitParam(c, 50, 100);
    const store = c.get("relay").store;
    const log = await stored(() => store.eventLog(record.id, limit));
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
    const { record } = await findWebhook(c);
    const eventId = c.req.param("event_id") ?? "";
    const store = c.get("relay").store;
    const event = UUID.test(eventId)
      ? await stored(() => store.eventDelivery(record.id, eventId))
      : null;
    if (!event) throw new NotFoundError("Webhook event");
    return event;
  };

  app.get("/webhooks/:id/events/:event_id", async (c) => {
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

  app.get("/webhooks/:id/events/:event_id/attempts", async (c) => {
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

  registerWebhookDocs(app);
}

const EventTypeSchema = z.enum(EVENT_TYPES);
const CreateWebhookSchema = z
  .object({
    endpoint: z.string().openapi({ example: "https://app.example/webhooks/relay" }),
    events: z.array(EventTypeSchema).min(1),
  })
  .openapi("CreateWebhookRequest");
const UpdateWebhookSchema = z
  .object({
    endpoint: z.string().optional(),
    events: z.array(EventTypeSchema).min(1).optional(),
    status: z.enum(["enabled", "disabled"]).optional(),
  })
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

function registerWebhookDocs(app: OpenAPIHono<AppEnv>): void {
  const r = app.openAPIRegistry;
  const security = [{ bearer: [] }];
  const json = (schema: z.ZodType) => ({ "application/json": { schema } });
  const notFound = errorResponse("No such webhook");
  r.registerPath({
    method: "post",
    path: "/webhooks",
    summary: "Register an endpoint for delivery events; the signing secret is returned once",
    security,
    request: { body: { content: json(CreateWebhookSchema) } },
    responses: {
      201: { description: "{ object: 'webhook', id, signing_secret }" },
      422: errorResponse("endpoint or events[i] is invalid"),
    },
  });
  r.registerPath({
    method: "get",
    path: "/webhooks",
    summary: "List webhook endpoints (never their secrets)",
    security,
    responses: { 200: { description: "{ object: 'list', data: Webhook[] }" } },
  });
  r.registerPath({
    method: "get",
    path: "/webhooks/{id}",
    summary: "Retrieve a webhook endpoint",
    security,
    responses: {
      200: { description: "The endpoint", content: json(WebhookSchema) },
      404: notFound,
    },
  });
  r.registerPath({
    method: "patch",
    path: "/webhooks/{id}",
    summary: "Change the endpoint URL or events, or enable/disable it",
    security,
    request: { body: { content: json(UpdateWebhookSchema) } },
    responses: { 200: { description: "{ object: 'webhook', id }" }, 404: notFound },
  });
  r.registerPath({
    method: "delete",
    path: "/webhooks/{id}",
    summary: "Remove a webhook endpoint; its queued events are dropped",
    security,
    responses: { 200: { description: "{ object: 'webhook', id, deleted: true }" }, 404: notFound },
  });
  r.registerPath({
    method: "post",
    path: "/webhooks/{id}/signing-secret/rotate",
    summary: "Replace the signing secret; the new one is returned once",
    security,
    responses: { 200: { description: "{ object: 'webhook', id, signing_secret }" }, 404: notFound },
  });
  r.registerPath({
    method: "get",
    path: "/webhooks/{id}/events",
    summary: "The newest events queued for an endpoint, with their status",
    security,
    responses: {
      200: { description: "{ object: 'list', data: [{ id, type, created_at, status }] }" },
    },
  });
  r.registerPath({
    method: "get",
    path: "/webhooks/{id}/events/{event_id}",
    summary: "One event: status, next attempt and payload",
    security,
    responses: { 200: { description: "{ object: 'webhook_event', ... }" }, 404: notFound },
  });
  r.registerPath({
    method: "get",
    path: "/webhooks/{id}/events/{event_id}/attempts",
    summary: "Every attempt to deliver an event: time, HTTP status or error, duration",
    security,
    responses: { 200: { description: "{ object: 'list', data: Attempt[] }" }, 404: notFound },
  });
}
