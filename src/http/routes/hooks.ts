/**
 * /hooks: inbound hooks. A full_access key creates, lists, reads, changes, rotates and deletes
 * them; anyone with the hook's proof (a URL secret, a header token, an HMAC signature or a
 * Standard Webhooks signature) posts to `POST /hooks/:id`, which renders the payload into the
 * hook's message and queues it through the same path as `POST /emails`.
 *
 * The receiving routes are not behind the API-key middleware: each management route takes it
 * explicitly instead of a "/hooks/*" pattern, which would catch them.
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { requireFullAccess } from "../../auth/keys.ts";
import {
  CreateHookSchema,
  type HookRecord,
  hookView,
  UpdateHookSchema,
} from "../../intake/hooks/hooks.ts";
import {
  changedHook,
  checkHook,
  hookCounters,
  newHook,
  proofOf,
  rotatedHook,
  type Saver,
  saveHook,
  storedHook,
} from "../../intake/hooks/records.ts";
import { hookCache, hookSource } from "../../intake/hooks/source.ts";
import { HOOK_DEFINITION_BYTES } from "../../intake/limits.ts";
import { receive } from "../../intake/pipeline.ts";
import { reject } from "../../intake/result.ts";
import { authenticate } from "../auth.ts";
import { readJson, validate } from "../body.ts";
import type { AppEnv } from "../env.ts";
import { intakeContext, intakeError } from "../intake.ts";
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
import {
  registerRecordRoutes,
  requestOrigin,
  resourceId,
  sendingPolicy,
  stored,
} from "./resource.ts";

/** The answer that shows a secret: the only one that ever does. */
function withSecret(c: Context, hook: HookRecord, secret: string) {
  const view = hookView(hook, requestOrigin(c));
  return {
    ...view,
    secret,
    ...(hook.verify.type === "url_secret" ? { secret_url: `${view.url}/${secret}` } : {}),
  };
}

/** The key saving a hook: it sends under that key's policy. */
function saverOf(c: Context<AppEnv>): Saver {
  const principal = c.get("principal");
  requireFullAccess(principal);
  return { keyId: principal.keyId, policy: sendingPolicy(principal.policy) };
}

const missingHook = () => intakeError("hook", reject("not_found", "not found"));

const noHook = notFound("hook");
const hookErrors = {
  ...authErrors,
  ...bodyErrors,
  403: errorResponse(
    "Invalid API key, or the hook's sender or recipients are outside the key's policy",
  ),
};

const createHook = createRoute({
  method: "post",
  path: "/",
  summary: "Create an inbound hook; its secret is returned once",
  security: bearer,
  middleware: authenticate,
  request: { body: { content: { "application/json": { schema: CreateHookSchema } } } },
  responses: {
    201: { description: "The hook, with `secret` (and `secret_url` for url_secret)" },
    ...hookErrors,
  },
});

const updateHook = createRoute({
  method: "patch",
  path: "/{id}",
  summary: "Change a hook; a new `verify` issues a new secret, returned once",
  security: bearer,
  middleware: authenticate,
  request: { body: { content: { "application/json": { schema: UpdateHookSchema } } } },
  responses: { 200: { description: "The hook" }, ...hookErrors, 404: noHook },
});

const rotateHook = createRoute({
  method: "post",
  path: "/{id}/rotate",
  summary: "Replace a hook's secret at once; the new one is returned once",
  security: bearer,
  middleware: authenticate,
  responses: { 200: { description: "The hook, with `secret`" }, ...authErrors, 404: noHook },
});

const received = {
  202: { description: "{ id }: the queued email" },
  200: { description: "{ id, duplicate: true }: a Standard Webhooks id seen before" },
  400: errorResponse("The body is not JSON"),
  401: errorResponse("Missing or invalid signature or secret, or a client outside allowed_ips"),
  403: errorResponse("The rendered message is outside the hook's policy"),
  404: noHook,
  409: conflict("the first request with this webhook-id is still being queued"),
  413: errorResponse("Body over HOOK_MAX_BODY_BYTES"),
  422: errorResponse("The rendered message is invalid (the message names the field)"),
  429: errorResponse("Over the hook's rate limit, or too many failed requests from this network"),
  503: errorResponse("Store unavailable or did not confirm: retry after Retry-After"),
};
const receiveSummary =
  "Receive a webhook: verify its proof, render the hook's message from the JSON body, queue it (no API key)";

const receiveHook = createRoute({
  method: "post",
  path: "/{id}",
  summary: receiveSummary,
  responses: received,
});

const receiveWithSecret = createRoute({
  method: "post",
  path: "/{id}/{secret}",
  summary: `${receiveSummary}; the url_secret proof in the path`,
  request: { params: z.object({ id: z.string(), secret: z.string() }) },
  responses: received,
});

/**
 * The hooks' management routes (API key), mounted at /hooks. They are mounted before
 * `publicHookRoutes` on the same path: `POST /:id/rotate` must match before `POST /:id/:secret`,
 * so a rotation is never taken for a received request.
 */
export function hookRoutes(): OpenAPIHono<AppEnv> {
  const app = resourceApp();
  route(app, createHook, async (c) => {
    const saver = saverOf(c);
    const relay = c.get("relay");
    const body = validate(CreateHookSchema, await readJson(c, HOOK_DEFINITION_BYTES));
    const proof = await proofOf(body.verify);
    const hook = newHook(body, proof, saver, relay.now());
    await checkHook(relay, hook);
    await stored(relay, "hook.create", () => saveHook(relay, hook));
    relay.log.info("hook.created", {
      hook_id: hook.id,
      verify: hook.verify.type,
      key_id: saver.keyId,
    });
    return c.json(withSecret(c, hook, proof.secret), 201);
  });

  registerRecordRoutes(app, {
    kind: "hook",
    name: "Hook",
    cache: hookCache,
    view: hookView,
    counted: hookCounters,
    docs: {
      list: "List inbound hooks (never their secrets)",
      get: "Read a hook, with its rejection counters",
      delete: "Delete a hook",
    },
  });

  route(app, updateHook, async (c) => {
    const saver = saverOf(c);
    const relay = c.get("relay");
    const id = resourceId(c, "Hook");
    const body = validate(UpdateHookSchema, await readJson(c, HOOK_DEFINITION_BYTES));
    const old = await stored(relay, "hook.get", () => storedHook(relay, id));
    if (!old) throw missingHook();
    const proof = body.verify ? await proofOf(body.verify) : undefined;
    const hook = changedHook(old, body, proof, saver, relay.now());
    await checkHook(relay, hook);
    await stored(relay, "hook.update", () => saveHook(relay, hook));
    relay.log.info("hook.updated", { hook_id: id, key_id: saver.keyId });
    return c.json(proof ? withSecret(c, hook, proof.secret) : hookView(hook, requestOrigin(c)));
  });

  route(app, rotateHook, async (c) => {
    const saver = saverOf(c);
    const relay = c.get("relay");
    const id = resourceId(c, "Hook");
    const old = await stored(relay, "hook.get", () => storedHook(relay, id));
    if (!old) throw missingHook();
    const { hook, secret } = await rotatedHook(old, relay.now());
    await stored(relay, "hook.rotate", () => saveHook(relay, hook));
    relay.log.info("hook.rotated", { hook_id: id, key_id: saver.keyId });
    return c.json(withSecret(c, hook, secret));
  });

  return app;
}

/** What other systems post to (no API key: each hook's own proof), mounted at /hooks. */
export function publicHookRoutes(): OpenAPIHono<AppEnv> {
  const app = resourceApp();
  route(app, receiveHook, (c) => receiveRequest(c, undefined));
  route(app, receiveWithSecret, (c) => receiveRequest(c, c.req.param("secret")));
  return app;
}

/** `POST /hooks/:id[/:secret]`: the intake pipeline; 202 with the email's id. */
async function receiveRequest(
  c: Context<AppEnv>,
  pathSecret: string | undefined,
): Promise<Response> {
  const id = resourceId(c, "Hook");
  const { result } = await receive(hookSource(pathSecret), intakeContext(c), id);
  if (!result.ok) throw intakeError("hook", result);
  const accepted = result.value;
  if (accepted.kind === "duplicate") return c.json({ ...accepted.body, duplicate: true }, 200);
  return c.json(accepted.body, 202);
}
