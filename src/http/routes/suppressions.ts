/**
 * /suppressions: the suppression list in Resend's shape, so the `resend` SDK's
 * `suppressions.add/list/get/remove` and `suppressions.batch.add/remove` work unchanged. Who may
 * do what is decided in src/suppressions.ts (full_access manages, sending_access reads its own
 * view, allowed_recipients bounds what a key may add or remove). Entries carry Resend's fields
 * and the relay's own `expires_at` (null: never).
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { ValidationError } from "../../errors.ts";
import {
  SUPPRESSION_ORIGINS,
  type Suppression,
  type SuppressionOrigin,
} from "../../store/store.ts";
import { type SuppressionPageRequest, suppressionAddress } from "../../suppressions.ts";
import { authenticate } from "../auth.ts";
import { readJson, validate } from "../body.ts";
import type { AppEnv } from "../env.ts";
import { authErrors, bearer, bodyErrors, notFound, resourceApp, route } from "../route.ts";
import { stored, UUID } from "./resource.ts";

const BODY_LIMIT = 64 * 1024;
const MAX_BATCH = 100;

const json = (schema: z.ZodType) => ({ "application/json": { schema } });
const iso = (ms: number) => new Date(ms).toISOString();

/** An entry as Resend answers it (`object` is left out of list items, as its SDK types them). */
export function suppressionView(s: Suppression, object = true) {
  return {
    ...(object ? { object: "suppression" as const } : {}),
    id: s.id,
    email: s.email,
    origin: s.origin,
    source_id: s.source_id,
    created_at: iso(s.created_at),
    expires_at: s.expires_at === null ? null : iso(s.expires_at),
  };
}

const AddSchema = z.object({ email: z.string().openapi({ description: "The address" }) });
const emailList = z
  .array(z.string())
  .min(1, "must list 1 to 100 addresses")
  .max(MAX_BATCH, "must list 1 to 100 addresses");
const BatchAddSchema = z.object({ emails: emailList });
const BatchRemoveSchema = z.object({
  emails: emailList.optional(),
  ids: z
    .array(z.string().regex(UUID, "must be a suppression id (a UUID)"))
    .min(1, "must list 1 to 100 ids")
    .max(MAX_BATCH, "must list 1 to 100 ids")
    .optional(),
});

/** The list's query: limit 1..100 (20), after or before (an id), origin. */
export function suppressionPage(q: (name: string) => string | undefined): SuppressionPageRequest {
  const raw = q("limit");
  const limit = raw === undefined ? 20 : /^\d{1,3}$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isInteger(limit) || limit < 1 || limit > 100)
    throw new ValidationError("must be a whole number from 1 to 100", "limit");
  const after = q("after");
  const before = q("before");
  if (after !== undefined && before !== undefined)
    throw new ValidationError("cannot be used together with after", "before");
  for (const [name, v] of [
    ["after", after],
    ["before", before],
  ] as const) {
    if (v !== undefined && !UUID.test(v))
      throw new ValidationError("must be a suppression id (a UUID)", name);
  }
  const origin = q("origin");
  if (origin !== undefined && !SUPPRESSION_ORIGINS.includes(origin as SuppressionOrigin))
    throw new ValidationError("must be bounce, complaint or manual", "origin");
  return {
    limit,
    after: after?.toLowerCase(),
    before: before?.toLowerCase(),
    origin: origin as SuppressionOrigin | undefined,
  };
}

const IdOrEmail = z.object({
  id_or_email: z.string().openapi({ description: "A suppression id or the suppressed address" }),
});
const noEntry = notFound("suppression");

const addOne = createRoute({
  method: "post",
  path: "/",
  summary: "Suppress an address (origin manual); one already suppressed keeps its entry",
  security: bearer,
  request: { body: { content: json(AddSchema) } },
  responses: {
    201: { description: "{ object: 'suppression', id }" },
    200: { description: "Already suppressed: { object: 'suppression', id } of that entry" },
    ...authErrors,
    ...bodyErrors,
  },
});

const list = createRoute({
  method: "get",
  path: "/",
  summary: "List suppressions, newest first (limit, after, before, origin)",
  security: bearer,
  request: {
    query: z.object({
      limit: z.string().optional().openapi({ description: "1 to 100; 20" }),
      after: z.string().optional().openapi({ description: "An id: the page after it" }),
      before: z.string().optional().openapi({ description: "An id: the page before it" }),
      origin: z.enum(["bounce", "complaint", "manual"]).optional(),
    }),
  },
  responses: {
    200: { description: "{ object: 'list', has_more, data: Suppression[] }" },
    ...authErrors,
    422: bodyErrors[422],
  },
});

const getOne = createRoute({
  method: "get",
  path: "/{id_or_email}",
  summary: "Retrieve a suppression by id or address",
  security: bearer,
  request: { params: IdOrEmail },
  responses: { 200: { description: "The suppression" }, ...authErrors, 404: noEntry },
});

const removeOne = createRoute({
  method: "delete",
  path: "/{id_or_email}",
  summary: "Remove a suppression by id or address: the address may be sent to again",
  security: bearer,
  request: { params: IdOrEmail },
  responses: {
    200: { description: "{ object: 'suppression', id, deleted: true }" },
    ...authErrors,
    404: noEntry,
  },
});

const batchAdd = createRoute({
  method: "post",
  path: "/batch/add",
  summary: "Suppress up to 100 addresses at once",
  security: bearer,
  request: { body: { content: json(BatchAddSchema) } },
  responses: {
    200: { description: "{ data: [{ object: 'suppression', id }] }, one per address" },
    ...authErrors,
    ...bodyErrors,
  },
});

const batchRemove = createRoute({
  method: "post",
  path: "/batch/remove",
  summary: "Remove up to 100 suppressions by emails or by ids (not both)",
  security: bearer,
  request: { body: { content: json(BatchRemoveSchema) } },
  responses: {
    200: { description: "{ data: [{ object: 'suppression', id, deleted: true }] }, those removed" },
    ...authErrors,
    ...bodyErrors,
  },
});

const idParam = (c: Context<AppEnv>) => c.req.param("id_or_email") ?? "";

/** Mounted at /suppressions. */
export function suppressionRoutes(): OpenAPIHono<AppEnv> {
  const app = resourceApp();
  app.use("*", authenticate);
  const who = (c: Context<AppEnv>) => c.get("principal");

  route(app, addOne, async (c) => {
    const relay = c.get("relay");
    const body = validate(AddSchema, await readJson(c, BODY_LIMIT));
    const email = suppressionAddress(body.email, "email");
    const [added] = await stored(relay, "suppression.add", () =>
      relay.suppressions.add(who(c), [email]),
    );
    if (!added) throw new Error("the store answered no entry");
    return c.json({ object: "suppression", id: added.entry.id }, added.created ? 201 : 200);
  });

  route(app, batchAdd, async (c) => {
    const relay = c.get("relay");
    const body = validate(BatchAddSchema, await readJson(c, BODY_LIMIT));
    const emails = body.emails.map((e, i) => suppressionAddress(e, `emails[${i}]`));
    const added = await stored(relay, "suppression.batch_add", () =>
      relay.suppressions.add(who(c), emails),
    );
    return c.json({ data: added.map((a) => ({ object: "suppression", id: a.entry.id })) });
  });

  route(app, batchRemove, async (c) => {
    const relay = c.get("relay");
    const body = validate(BatchRemoveSchema, await readJson(c, BODY_LIMIT));
    if (body.emails && body.ids)
      throw new ValidationError("cannot be used together with emails", "ids");
    if (!body.emails && !body.ids) throw new ValidationError("emails or ids is required", "emails");
    const request = body.emails
      ? { emails: body.emails.map((e, i) => suppressionAddress(e, `emails[${i}]`)) }
      : { ids: (body.ids ?? []).map((id) => id.toLowerCase()) };
    const removed = await stored(relay, "suppression.batch_remove", () =>
      relay.suppressions.remove(who(c), request),
    );
    return c.json({
      data: removed.map((s) => ({ object: "suppression", id: s.id, deleted: true })),
    });
  });

  route(app, list, async (c) => {
    const relay = c.get("relay");
    const page = suppressionPage((n) => c.req.query(n));
    const got = await stored(relay, "suppression.list", () =>
      relay.suppressions.list(who(c), page),
    );
    return c.json({
      object: "list",
      has_more: got.hasMore,
      data: got.data.map((s) => suppressionView(s)),
    });
  });

  route(app, getOne, async (c) => {
    const relay = c.get("relay");
    const id = idParam(c);
    const s = await stored(relay, "suppression.get", () => relay.suppressions.get(who(c), id));
    return c.json(suppressionView(s));
  });

  route(app, removeOne, async (c) => {
    const relay = c.get("relay");
    const id = idParam(c);
    const s = await stored(relay, "suppression.remove", () =>
      relay.suppressions.removeOne(who(c), id),
    );
    return c.json({ object: "suppression", id: s.id, deleted: true });
  });

  return app;
}
