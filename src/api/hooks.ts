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
import { failureGuard } from "../auth/abuse.ts";
import { requireFullAccess, sha256Hex } from "../auth/keys.ts";
import { checkMessage, ipAllowed, isValidCidr } from "../auth/policy.ts";
import { parseRateLimit, rateLimitField, rateLimitHeaders } from "../auth/rate-limit.ts";
import {
  HookInFlightError,
  HookRateLimitError,
  HookUnauthorizedError,
  MalformedBodyError,
  NotFoundError,
  RelayError,
  ValidationError,
} from "../errors.ts";
import type { AppEnv } from "../http/env.ts";
import {
  authErrors,
  bearer,
  bodyErrors,
  conflict,
  errorResponse,
  notFound,
  resourceApp,
  route,
} from "../http/route.ts";
import {
  CreateHookSchema,
  checkSuppliedSecret,
  type HookRecord,
  hookView,
  list,
  newSecret,
  REJECTION_REASONS,
  type RejectionReason,
  storedSecret,
  UpdateHookSchema,
  type VerifyInput,
  verifySpec,
} from "../intake/hooks/hooks.ts";
import { payloadOf, renderHookMessage } from "../intake/hooks/render.ts";
import { verifyHookRequest } from "../intake/hooks/verify.ts";
import { composeMessage } from "../mail/compose.ts";
import type { Relay } from "../relay.ts";
import { RecordCache } from "../store/record-cache.ts";
import { checkTemplate } from "../templates/render.ts";
import { authenticate } from "./auth.ts";
import { readBodyBytes, readJson, validate } from "./body.ts";
import { KeyClaim, retryAfterSeconds } from "./idempotency.ts";
import {
  registerRecordRoutes,
  requestOrigin,
  resourceId,
  sendingPolicy,
  stored,
} from "./resource.ts";
import { queueMessages } from "./send.ts";

/** Hooks, cached in the isolate: every public request needs one. */
const hooks = new RecordCache<HookRecord>("hook");

/** Two body templates of 256 KiB, JSON-escaped, fit. */
const MAX_DEFINITION_BYTES = 2 * 1024 * 1024;
/**
 * A Standard Webhooks id is remembered this long. The spec's tolerance alone needs ten minutes (a
 * timestamp up to five minutes ahead stays valid until five minutes after it); a day also turns
 * a sender's retry of a delivery whose answer it lost into a duplicate instead of a second mail.
 */
export const WEBHOOK_ID_TTL_MS = 24 * 60 * 60 * 1000;

/**
 * Checks a hook before it is saved, so receiving cannot fail on the hook itself: the templates
 * parse and use only escaped forms, and a message rendered from an empty payload composes and
 * passes the saving key's policy (which checks sender and recipients as a send would).
 */
async function checkHook(relay: Relay, hook: HookRecord): Promise<void> {
  checkTemplate(hook.subject, "subject");
  if (hook.text !== null) checkTemplate(hook.text, "text");
  if (hook.html !== null) checkTemplate(hook.html, "html");
  if (hook.text === null && hook.html === null)
    throw new ValidationError("give a text or an html template (or both)", "text");
  if (hook.rate_limit !== null) rateLimitField(hook.rate_limit, "rate_limit");
  hook.allowed_ips?.forEach((range, i) => {
    if (!isValidCidr(range))
      throw new ValidationError(
        `${JSON.stringify(range)} is not an IP address or CIDR range`,
        `allowed_ips[${i}]`,
      );
  });
  const composed = await composeMessage(renderHookMessage(hook, {}), {
    id: crypto.randomUUID(),
    keyId: hook.id,
    now: relay.now(),
    limits: relay.config.limits,
  });
  checkMessage(hook.policy ?? undefined, composed);
}

/** The spec and secret for a `verify` object: the caller's secret if given, else a new one. */
async function proofOf(
  input: VerifyInput,
): Promise<{ verify: HookRecord["verify"]; secret: string; stored: HookRecord["secret"] }> {
  const verify = verifySpec(input);
  const supplied = "secret" in input ? input.secret : undefined;
  if (supplied !== undefined) checkSuppliedSecret(verify.type, supplied);
  const secret = supplied ?? newSecret(verify.type);
  return { verify, secret, stored: await storedSecret(verify.type, secret) };
}

/** The answer that shows a secret: the only one that ever does. */
function withSecret(c: Context, hook: HookRecord, secret: string) {
  const view = hookView(hook, requestOrigin(c));
  return {
    ...view,
    secret,
    ...(hook.verify.type === "url_secret" ? { secret_url: `${view.url}/${secret}` } : {}),
  };
}

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
 * Mounted at /hooks. Route order matters: `POST /:id/rotate` is registered before
 * `POST /:id/:secret`, so a rotation is never taken for a received request.
 */
export function hookRoutes(): OpenAPIHono<AppEnv> {
  const app = resourceApp();
  route(app, createHook, async (c) => {
    const principal = c.get("principal");
    requireFullAccess(principal);
    const relay = c.get("relay");
    const body = validate(CreateHookSchema, await readJson(c, MAX_DEFINITION_BYTES));
    const proof = await proofOf(body.verify);
    const now = relay.now();
    const hook: HookRecord = {
      id: crypto.randomUUID(),
      name: body.name ?? null,
      from: body.from,
      to: list(body.to),
      cc: body.cc === undefined ? null : list(body.cc),
      reply_to: body.reply_to === undefined ? null : list(body.reply_to),
      subject: body.subject,
      text: body.text ?? null,
      html: body.html ?? null,
      verify: proof.verify,
      secret: proof.stored,
      rate_limit: body.rate_limit ?? null,
      allowed_ips: body.allowed_ips ?? null,
      policy: sendingPolicy(principal.policy),
      created_by: principal.keyId,
      created_at: now,
      updated_at: now,
    };
    await checkHook(relay, hook);
    await stored(relay, "hook.create", () => hooks.save(relay.store, hook));
    relay.log.info("hook.created", {
      hook_id: hook.id,
      verify: hook.verify.type,
      key_id: principal.keyId,
    });
    return c.json(withSecret(c, hook, proof.secret), 201);
  });

  registerRecordRoutes(app, {
    kind: "hook",
    name: "Hook",
    cache: hooks,
    view: hookView,
    counted: (counters) => ({
      rejected: Object.fromEntries(REJECTION_REASONS.map((r) => [r, counters[r] ?? 0])),
      duplicates: counters.duplicate ?? 0,
    }),
    docs: {
      list: "List inbound hooks (never their secrets)",
      get: "Read a hook, with its rejection counters",
      delete: "Delete a hook",
    },
  });

  route(app, updateHook, async (c) => {
    const principal = c.get("principal");
    requireFullAccess(principal);
    const relay = c.get("relay");
    const id = resourceId(c, "Hook");
    const body = validate(UpdateHookSchema, await readJson(c, MAX_DEFINITION_BYTES));
    const old = await stored(relay, "hook.get", () =>
      relay.store.getRecord<HookRecord>("hook", id),
    );
    if (!old) throw new NotFoundError("Hook");
    const proof = body.verify ? await proofOf(body.verify) : undefined;
    const optionalList = (v: string | string[] | null | undefined, was: string[] | null) =>
      v === undefined ? was : v === null ? null : list(v);
    const hook: HookRecord = {
      ...old,
      name: body.name === undefined ? old.name : body.name,
      from: body.from ?? old.from,
      to: body.to === undefined ? old.to : list(body.to),
      cc: optionalList(body.cc, old.cc),
      reply_to: optionalList(body.reply_to, old.reply_to),
      subject: body.subject ?? old.subject,
      text: body.text === undefined ? old.text : body.text,
      html: body.html === undefined ? old.html : body.html,
      rate_limit: body.rate_limit === undefined ? old.rate_limit : body.rate_limit,
      allowed_ips: body.allowed_ips === undefined ? (old.allowed_ips ?? null) : body.allowed_ips,
      ...(proof ? { verify: proof.verify, secret: proof.stored } : {}),
      // A hook sends under the policy of the key that last saved it: a narrower key cannot
      // widen where an existing hook sends by editing it.
      policy: sendingPolicy(principal.policy),
      updated_by: principal.keyId,
      updated_at: relay.now(),
    };
    await checkHook(relay, hook);
    await stored(relay, "hook.update", () => hooks.save(relay.store, hook));
    relay.log.info("hook.updated", { hook_id: id, key_id: principal.keyId });
    return c.json(proof ? withSecret(c, hook, proof.secret) : hookView(hook, requestOrigin(c)));
  });

  route(app, rotateHook, async (c) => {
    const principal = c.get("principal");
    requireFullAccess(principal);
    const relay = c.get("relay");
    const id = resourceId(c, "Hook");
    const old = await stored(relay, "hook.get", () =>
      relay.store.getRecord<HookRecord>("hook", id),
    );
    if (!old) throw new NotFoundError("Hook");
    const secret = newSecret(old.verify.type);
    const hook: HookRecord = {
      ...old,
      secret: await storedSecret(old.verify.type, secret),
      updated_at: relay.now(),
    };
    await stored(relay, "hook.rotate", () => hooks.save(relay.store, hook));
    relay.log.info("hook.rotated", { hook_id: id, key_id: principal.keyId });
    return c.json(withSecret(c, hook, secret));
  });

  route(app, receiveHook, (c) => receive(c, undefined));
  route(app, receiveWithSecret, (c) => receive(c, c.req.param("secret")));
  return app;
}

/** `POST /hooks/:id[/:secret]`: verify, render, queue; 202 with the email's id. */
async function receive(c: Context<AppEnv>, pathSecret: string | undefined): Promise<Response> {
  const relay = c.get("relay");
  const id = resourceId(c, "Hook");
  // Unknown ids and refusals before the proof are charged to the client's failure limit: past
  // it, such requests are answered 429 without a lookup or a counter (no command).
  const guard = failureGuard(relay.store, c.get("clientIp"), relay.now());
  const hook = await stored(relay, "hook.get", () =>
    hooks.load(relay.store, id, relay.now(), relay.config.keyCacheMs, guard),
  );
  if (!hook) throw new NotFoundError("Hook");

  // Checked first and not counted: it costs nothing, and a flood from elsewhere neither uses up
  // the hook's rate limit nor makes the relay pay a command per request to count it.
  if (hook.allowed_ips?.length && !ipAllowed(c.get("clientIp"), hook.allowed_ips)) {
    relay.log.warn("hook.rejected", { hook_id: id, reason: "client_address" });
    throw new HookUnauthorizedError();
  }

  const reject = (reason: RejectionReason | "duplicate") => {
    relay.log.warn(reason === "duplicate" ? "hook.duplicate" : "hook.rejected", {
      hook_id: id,
      reason,
    });
    c.get("background")(
      relay.store
        .count("hook", id, reason)
        .catch((err) => relay.log.warn("hook.count_failed", { error: String(err) })),
    );
  };
  /** A refusal of a request not (yet) proven to come from the sender. */
  const rejectUnproven = (reason: RejectionReason) => {
    guard.check();
    guard.fail();
    reject(reason);
  };
  const counted = async <T>(run: () => Promise<T>, proven: boolean): Promise<T> => {
    try {
      return await run();
    } catch (err) {
      if (err instanceof RelayError && err.status < 500 && err.status !== 409) {
        const reason =
          err.status === 413
            ? "too_large"
            : err instanceof MalformedBodyError
              ? "invalid_body"
              : "invalid_message";
        if (proven) reject(reason);
        else rejectUnproven(reason);
      }
      throw err;
    }
  };

  // readBodyBytes always returns a fresh ArrayBuffer-backed array, as WebCrypto wants.
  const body = (await counted(
    () => readBodyBytes(c, relay.config.hooks.maxBodyBytes),
    false,
  )) as Uint8Array<ArrayBuffer>;
  const verdict = await verifyHookRequest(hook, {
    body,
    header: (name) => c.req.header(name),
    pathSecret,
  });
  if (!verdict.ok) {
    rejectUnproven(verdict.reason);
    throw new HookUnauthorizedError();
  }

  // After the proof: only the sender, who holds the secret, spends the hook's allowance, so a
  // flood without it cannot make the sender's own requests see 429s.
  const limit =
    (hook.rate_limit && parseRateLimit(hook.rate_limit)) || relay.config.hooks.rateLimit;
  const limited = await stored(relay, "hook.rate_limit", () =>
    relay.limiter.check(`hook:${id}`, limit),
  );
  if (!limited.allowed) {
    const headers = rateLimitHeaders(limited, relay.now());
    throw new HookRateLimitError(limited.limit, {
      ...headers,
      "retry-after": String(Math.max(1, Number(headers["ratelimit-reset"]))),
    });
  }

  const composed = await counted(async () => {
    const request = renderHookMessage(hook, payloadOf(body, c.req.header("content-type")));
    const message = await composeMessage(request, {
      id: crypto.randomUUID(),
      keyId: hook.id,
      now: relay.now(),
      limits: relay.config.limits,
    });
    checkMessage(hook.policy ?? undefined, message);
    return message;
  }, true);
  const item = { composed, scheduledAt: null };
  const response = { status: 202, body: { id: composed.message.id } };

  if (verdict.webhookId === undefined) {
    await queueMessages(c, [item]);
    return c.json(response.body, 202);
  }

  // Standard Webhooks: the webhook-id is claimed with the idempotency machinery, and the claim
  // becomes "done" in the same store write that queues the message. A replay answers 200 without
  // queueing. A write whose outcome is unknown keeps the id claimed (see KeyClaim): the sender's
  // retry then finds the message queued (200, duplicate) or, once the claim lapsed, queues it.
  const key = `hook:${id}:${verdict.webhookId}`;
  const claim = new KeyClaim(relay, key, await sha256Hex(body), WEBHOOK_ID_TTL_MS);
  const held = await claim.begin("hook.replay_guard");
  if (held.kind === "in_flight")
    throw new HookInFlightError(retryAfterSeconds(held.until, relay.now()));
  if (held.kind === "done") {
    reject("duplicate");
    return c.json({ ...(held.response.body as object), duplicate: true }, 200);
  }
  try {
    await queueMessages(c, [item], claim.seal(response));
  } catch (err) {
    // Stored after all (the reply was lost): the answer this request would have given.
    return c.json((await claim.failed(err)).body as object, 202);
  }
  return c.json(response.body, 202);
}
