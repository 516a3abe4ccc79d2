/**
 * /api-keys: create (token shown once), list, rotate and delete keys. Needs a full_access key.
 * A key other than ADMIN_TOKEN makes and rotates only keys whose policy lies within its own.
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import { ADMIN_KEY_ID, type Principal, requireFullAccess } from "../auth/keys.ts";
import { boundedPolicy, checkWithin, type KeyPolicy, validatePolicy } from "../auth/policy.ts";
import type { AppEnv } from "../http/env.ts";
import { authenticate } from "./auth.ts";
import { readJson, validate } from "./body.ts";
import { ApiKeySchema, CreateApiKeySchema, type ErrorSchema, errorResponse } from "./schemas.ts";

const isAdmin = (p: Principal) => p.keyId === ADMIN_KEY_ID;

export function registerApiKeyRoutes(app: OpenAPIHono<AppEnv>): void {
  app.use("/api-keys", authenticate);
  app.use("/api-keys/*", authenticate);

  app.post("/api-keys", async (c) => {
    requireFullAccess(c.get("principal"));
    const body = validate(CreateApiKeySchema, await readJson(c, 64 * 1024));
    const relay = c.get("relay");
    const policy: KeyPolicy = {};
    if (body.allowed_from) policy.allowed_from = body.allowed_from;
    if (body.allowed_recipients) policy.allowed_recipients = body.allowed_recipients;
    if (body.max_message_bytes !== undefined) policy.max_message_bytes = body.max_message_bytes;
    if (body.allowed_ips) policy.allowed_ips = body.allowed_ips;
    if (body.rate_limit !== undefined) policy.rate_limit = body.rate_limit;
    validatePolicy(policy);
    const principal = c.get("principal");
    const bounded = isAdmin(principal)
      ? policy
      : boundedPolicy(principal.policy, policy, relay.config.rateLimit);
    const created = await relay.keys.create(
      body.name,
      body.permission ?? "full_access",
      Object.keys(bounded).length ? bounded : undefined,
    );
    relay.log.info("api_key.created", { key_id: created.id, by: c.get("principal").keyId });
    return c.json(created, 201);
  });

  app.get("/api-keys", async (c) => {
    requireFullAccess(c.get("principal"));
    const keys = await c.get("relay").keys.list();
    return c.json({
      object: "list",
      has_more: false,
      data: keys.map((k) => ({
        id: k.id,
        name: k.name,
        permission: k.permission,
        created_at: new Date(k.createdAt).toISOString(),
        last_used_at: k.lastUsedAt ? new Date(k.lastUsedAt).toISOString() : null,
        ...k.policy,
      })),
    });
  });

  app.post("/api-keys/:id/rotate", async (c) => {
    requireFullAccess(c.get("principal"));
    const relay = c.get("relay");
    const principal = c.get("principal");
    // The new token keeps the rotated key's policy, so that policy must lie within the caller's.
    const rotated = await relay.keys.rotate(c.req.param("id"), (old) => {
      if (!isAdmin(principal)) checkWithin(principal.policy, old, relay.config.rateLimit);
    });
    relay.log.info("api_key.rotated", {
      key_id: c.req.param("id"),
      new_key_id: rotated.id,
      by: c.get("principal").keyId,
    });
    return c.json(rotated, 201);
  });

  app.delete("/api-keys/:id", async (c) => {
    requireFullAccess(c.get("principal"));
    const relay = c.get("relay");
    const id = c.req.param("id");
    await relay.keys.remove(id);
    relay.log.info("api_key.deleted", { key_id: id, by: c.get("principal").keyId });
    return c.json({ object: "api_key", id, deleted: true });
  });

  const r = app.openAPIRegistry;
  const json = (schema: typeof ApiKeySchema | typeof ErrorSchema) => ({
    "application/json": { schema },
  });
  r.registerPath({
    method: "post",
    path: "/api-keys",
    summary: "Create an API key; the token is returned once",
    security: [{ bearer: [] }],
    request: { body: { content: { "application/json": { schema: CreateApiKeySchema } } } },
    responses: {
      201: { description: "{ id, token }" },
      401: errorResponse("Not a full_access key"),
      403: errorResponse(
        "The new key would allow more than the calling key (the message names the field)",
      ),
    },
  });
  r.registerPath({
    method: "get",
    path: "/api-keys",
    summary: "List API keys (never their tokens)",
    security: [{ bearer: [] }],
    responses: {
      200: { description: "{ object: 'list', data: ApiKey[] }", content: json(ApiKeySchema) },
    },
  });
  r.registerPath({
    method: "post",
    path: "/api-keys/{id}/rotate",
    summary:
      "Issue a new token with the same name, permission and policy; the old one works until deleted",
    security: [{ bearer: [] }],
    responses: {
      201: { description: "{ id, token }" },
      403: errorResponse("The rotated key allows more than the calling key"),
      404: errorResponse("No such key"),
    },
  });
  r.registerPath({
    method: "delete",
    path: "/api-keys/{id}",
    summary: "Delete an API key",
    security: [{ bearer: [] }],
    responses: {
      200: { description: "Deleted" },
      404: errorResponse("No such key"),
    },
  });
}
