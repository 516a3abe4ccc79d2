/**
 * /templates: email templates in Resend's shape, so the `resend` SDK's `templates.create/get/
 * list/update/remove/publish/duplicate` work unchanged. A template is named in the path by its
 * id or its alias. Managing templates needs a full_access key; any key may send with a published
 * one (`template` in POST /emails, see src/http/send-template.ts).
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { requireFullAccess } from "../../auth/keys.ts";
import { NotFoundError, ValidationError } from "../../errors.ts";
import type { PageRequest } from "../../template-library.ts";
import {
  CreateTemplateSchema,
  templateListItem,
  templateView,
  UpdateTemplateSchema,
} from "../../templates/template.ts";
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
import { stored } from "./resource.ts";

/** A template's JSON body: its HTML and text within the record limit, plus field overhead. */
const BODY_LIMIT = 256 * 1024;

/** The id or alias the path names; anything longer than either can be is simply not found. */
function templateRef(c: Context): string {
  const ref = c.req.param("id") ?? "";
  if (ref.length === 0 || ref.length > 64) throw new NotFoundError("Template");
  return ref;
}

function pageOf(c: Context): PageRequest {
  const raw = c.req.query("limit");
  const limit = raw === undefined ? 20 : Number(raw);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100)
    throw new ValidationError("must be a whole number from 1 to 100", "limit");
  const after = c.req.query("after");
  const before = c.req.query("before");
  if (after !== undefined && before !== undefined)
    throw new ValidationError("cannot be used together with after", "before");
  return { limit, after, before };
}

const json = (schema: z.ZodType) => ({ "application/json": { schema } });
const Ref = z.object({ id: z.string().openapi({ description: "The template's id or alias" }) });
const TemplateIdSchema = z
  .object({ object: z.literal("template"), id: z.string() })
  .openapi("TemplateId");
const noTemplate = notFound("template (by id or alias)");
const done = (description: string) => ({ description, content: json(TemplateIdSchema) });

const createTemplate = createRoute({
  method: "post",
  path: "/",
  summary: "Create a template (a draft: publish it to send with it)",
  security: bearer,
  request: { body: { content: json(CreateTemplateSchema) } },
  responses: {
    201: done("Created"),
    ...authErrors,
    ...bodyErrors,
    409: conflict("the alias is taken, or the relay holds its most templates"),
  },
});

const listTemplates = createRoute({
  method: "get",
  path: "/",
  summary: "List templates, newest first (limit, after, before)",
  security: bearer,
  request: {
    query: z.object({
      limit: z.string().optional().openapi({ description: "1 to 100; 20" }),
      after: z.string().optional().openapi({ description: "A template id: the page after it" }),
      before: z.string().optional().openapi({ description: "A template id: the page before it" }),
    }),
  },
  responses: {
    200: { description: "{ object: 'list', has_more, data: TemplateListItem[] }" },
    ...authErrors,
    422: bodyErrors[422],
  },
});

const getTemplate = createRoute({
  method: "get",
  path: "/{id}",
  summary: "Retrieve a template (its draft, its status and its variables)",
  security: bearer,
  request: { params: Ref },
  responses: { 200: { description: "The template" }, ...authErrors, 404: noTemplate },
});

const updateTemplate = createRoute({
  method: "patch",
  path: "/{id}",
  summary: "Change a template's draft (the published version sends until the next publish)",
  security: bearer,
  request: { params: Ref, body: { content: json(UpdateTemplateSchema) } },
  responses: {
    200: done("Updated"),
    ...authErrors,
    ...bodyErrors,
    404: noTemplate,
    409: conflict("the alias is taken"),
  },
});

const deleteTemplate = createRoute({
  method: "delete",
  path: "/{id}",
  summary: "Remove a template",
  security: bearer,
  request: { params: Ref },
  responses: {
    200: { description: "{ object: 'template', id, deleted: true }" },
    ...authErrors,
    404: noTemplate,
  },
});

const publishTemplate = createRoute({
  method: "post",
  path: "/{id}/publish",
  summary: "Publish the draft: sends use this version from now on",
  security: bearer,
  request: { params: Ref },
  responses: { 200: done("Published"), ...authErrors, 404: noTemplate, 413: bodyErrors[413] },
});

const duplicateTemplate = createRoute({
  method: "post",
  path: "/{id}/duplicate",
  summary: "Copy a template's draft into a new draft template (without the alias)",
  security: bearer,
  request: { params: Ref },
  responses: {
    201: done("Created"),
    ...authErrors,
    404: noTemplate,
    409: conflict("the relay holds its most templates"),
  },
});

/** Mounted at /templates. */
export function templateRoutes(): OpenAPIHono<AppEnv> {
  const app = resourceApp();
  app.use("*", authenticate);
  app.use("*", async (c, next) => {
    requireFullAccess(c.get("principal"));
    await next();
  });
  const by = (c: Context<AppEnv>) => c.get("principal").keyId;

  route(app, createTemplate, async (c) => {
    const relay = c.get("relay");
    const body = validate(CreateTemplateSchema, await readJson(c, BODY_LIMIT));
    const record = await stored(relay, "template.create", () =>
      relay.templates.create(body, by(c)),
    );
    return c.json({ object: "template", id: record.id }, 201);
  });

  route(app, listTemplates, async (c) => {
    const relay = c.get("relay");
    const request = pageOf(c);
    const page = await stored(relay, "template.list", () => relay.templates.list(request));
    return c.json({
      object: "list",
      has_more: page.has_more,
      data: page.data.map(templateListItem),
    });
  });

  route(app, getTemplate, async (c) => {
    const relay = c.get("relay");
    const ref = templateRef(c);
    const record = await stored(relay, "template.get", () => relay.templates.get(ref));
    return c.json(templateView(record));
  });

  route(app, updateTemplate, async (c) => {
    const relay = c.get("relay");
    const ref = templateRef(c);
    const body = validate(UpdateTemplateSchema, await readJson(c, BODY_LIMIT));
    const record = await stored(relay, "template.update", () =>
      relay.templates.update(ref, body, by(c)),
    );
    return c.json({ object: "template", id: record.id });
  });

  route(app, deleteTemplate, async (c) => {
    const relay = c.get("relay");
    const ref = templateRef(c);
    const record = await stored(relay, "template.delete", () => relay.templates.remove(ref, by(c)));
    return c.json({ object: "template", id: record.id, deleted: true });
  });

  route(app, publishTemplate, async (c) => {
    const relay = c.get("relay");
    const ref = templateRef(c);
    const record = await stored(relay, "template.publish", () =>
      relay.templates.publish(ref, by(c)),
    );
    return c.json({ object: "template", id: record.id });
  });

  route(app, duplicateTemplate, async (c) => {
    const relay = c.get("relay");
    const ref = templateRef(c);
    const record = await stored(relay, "template.duplicate", () =>
      relay.templates.duplicate(ref, by(c)),
    );
    return c.json({ object: "template", id: record.id }, 201);
  });

  return app;
}
