/**
 * /api-keys: create (token shown once), list, rotate and delete keys. Needs a full_access key.
 * A key other than ADMIN_TOKEN makes and rotates only keys whose policy lies within its own.
 */
import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { ADMIN_KEY_ID, type Principal, requireFullAccess, touchableBy } from "../../auth/keys.ts";
import {
  boundedPolicy,
  boundedUpdate,
  changedPolicy,
  type KeyPolicy,
  validatePolicy,
} from "../../auth/policy.ts";
import { ValidationError } from "../../errors.ts";
import { authenticate } from "../auth.ts";
import { readJson, validate } from "../body.ts";
import type { AppEnv } from "../env.ts";
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
import { ApiKeySchema, CreateApiKeySchema, UpdateApiKeySchema } from "../schemas.ts";

const isAdmin = (p: Principal) => p.keyId === ADMIN_KEY_ID;

const wider = errorResponse(
  "Invalid API key, or the key would allow more than the calling key (the message names the field)",
);
const created = { description: "{ id, token }: the token is shown only here" };

const createKey = createRoute({
  method: "post",
  path: "/",
  summary: "Create an API key; the token is returned once",
  security: bearer,
  request: { body: { content: { "application/json": { schema: CreateApiKeySchema } } } },
  responses: { 201: created, ...authErrors, ...bodyErrors, 403: wider },
});

const listKeys = createRoute({
  method: "get",
  path: "/",
  summary: "List API keys (never their tokens)",
  security: bearer,
  responses: {
    200: {
      description: "{ object: 'list', data: ApiKey[] }",
      content: { "application/json": { schema: ApiKeySchema } },
    },
    ...authErrors,
  },
});

const rotateKey = createRoute({
  method: "post",
  path: "/{id}/rotate",
  summary:
    "Issue a new token with the same name, permission and policy; the old one works until deleted",
  security: bearer,
  responses: { 201: created, ...authErrors, 403: wider, 404: notFound("API key") },
});

const updateKey = createRoute({
  method: "patch",
  path: "/{id}",
  summary:
    "Rename a key, or change its permission or policy (within the calling key's own); cached keys pick it up within KEY_CACHE_SECONDS",
  security: bearer,
  request: { body: { content: { "application/json": { schema: UpdateApiKeySchema } } } },
  responses: {
    200: { description: "{ object: 'api_key', id }" },
    ...authErrors,
    ...bodyErrors,
    403: wider,
    404: notFound("API key"),
    409: conflict("the key changed while it was being updated: try again"),
  },
});

const deleteKey = createRoute({
  method: "delete",
  path: "/{id}",
  summary: "Delete an API key",
  security: bearer,
  responses: { 200: { description: "Deleted" }, ...authErrors, 404: notFound("API key") },
});

/** Mounted at /api-keys. */
export function apiKeyRoutes(): OpenAPIHono<AppEnv> {
  const app = resourceApp();
  app.use("*", authenticate);
  route(app, createKey, async (c) => {
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

  route(app, listKeys, async (c) => {
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

  // The router matched ":id", so it is there; Context<AppEnv> just does not know the path.
  const keyId = (c: Context<AppEnv>) => c.req.param("id") ?? "";

  route(app, rotateKey, async (c) => {
    requireFullAccess(c.get("principal"));
    const relay = c.get("relay");
    const principal = c.get("principal");
    // The new token keeps the rotated key's policy, so that policy must lie within the caller's.
    const rotated = await relay.keys.rotate(
      keyId(c),
      touchableBy(principal, relay.config.rateLimit),
    );
    relay.log.info("api_key.rotated", {
      key_id: keyId(c),
      new_key_id: rotated.id,
      by: c.get("principal").keyId,
    });
    return c.json(rotated, 201);
  });

  route(app, updateKey, async (c) => {
    requireFullAccess(c.get("principal"));
    const body = validate(UpdateApiKeySchema, await readJson(c, 64 * 1024));
    const { name, permission, ...changes } = body;
    if (!Object.keys(body).length) throw new ValidationError("names nothing to change", "body");
    const relay = c.get("relay");
    const principal = c.get("principal");
    const updated = await relay.keys.update(keyId(c), (old) => {
      const policy = isAdmin(principal)
        ? changedPolicy(old.policy, changes)
        : boundedUpdate(principal.policy, old.policy, changes, relay.config.rateLimit);
      const { policy: _old, ...rest } = old;
      return {
        ...rest,
        name: name ?? old.name,
        permission: permission ?? old.permission,
        ...(policy ? { policy } : {}),
      };
    });
    relay.log.info("api_key.updated", { key_id: updated.id, by: principal.keyId });
    return c.json({ object: "api_key", id: updated.id });
  });

  route(app, deleteKey, async (c) => {
    requireFullAccess(c.get("principal"));
    const relay = c.get("relay");
    const id = keyId(c);
    // A narrower key may not revoke a wider one (or ADMIN_TOKEN's own keys): the same bound as rotate.
    await relay.keys.remove(id, touchableBy(c.get("principal"), relay.config.rateLimit));
    relay.log.info("api_key.deleted", { key_id: id, by: c.get("principal").keyId });
    return c.json({ object: "api_key", id, deleted: true });
  });

  return app;
}
