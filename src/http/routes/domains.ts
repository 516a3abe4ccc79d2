/**
 * /domains: sending domains in Resend's shape, so the `resend` SDK's `domains.create/list/get/
 * update/remove/verify` work unchanged. Full-access keys only. Creating a domain makes its DKIM
 * key and answers the records to publish; `verify` checks them through DNS over HTTPS; PATCH
 * with `rotate_key: true` makes a new key and selector (the relay's own field). No answer ever
 * carries a private key (src/dkim/domain.ts builds every view).
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { requireFullAccess } from "../../auth/keys.ts";
import {
  CreateDomainSchema,
  domainListItem,
  domainView,
  UpdateDomainSchema,
} from "../../dkim/domain.ts";
import type { DomainPage } from "../../domains.ts";
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
import { resourceId, stored } from "./resource.ts";

const BODY_LIMIT = 16 * 1024;

function pageOf(c: Context): DomainPage {
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
const Id = z.object({ id: z.string().openapi({ description: "The domain's id" }) });
const noDomain = notFound("domain");
const noSecret = errorResponse(
  "DKIM keys cannot be sealed: neither DKIM_ENCRYPTION_KEY nor ADMIN_TOKEN is set",
);
const idOnly = { description: "{ object: 'domain', id }" };

const createDomain = createRoute({
  method: "post",
  path: "/",
  summary: "Add a sending domain: makes its DKIM key and answers the DNS records to publish",
  security: bearer,
  request: { body: { content: json(CreateDomainSchema) } },
  responses: {
    201: { description: "The domain with its records" },
    ...authErrors,
    ...bodyErrors,
    409: conflict("the domain is already there, or the relay holds its most domains"),
    503: noSecret,
  },
});

const listDomains = createRoute({
  method: "get",
  path: "/",
  summary: "List domains, newest first (limit, after, before)",
  security: bearer,
  request: {
    query: z.object({
      limit: z.string().optional().openapi({ description: "1 to 100; 20" }),
      after: z.string().optional().openapi({ description: "A domain id: the page after it" }),
      before: z.string().optional().openapi({ description: "A domain id: the page before it" }),
    }),
  },
  responses: {
    200: { description: "{ object: 'list', has_more, data: Domain[] }" },
    ...authErrors,
    422: bodyErrors[422],
  },
});

const getDomain = createRoute({
  method: "get",
  path: "/{id}",
  summary: "Retrieve a domain with its records and their status",
  security: bearer,
  request: { params: Id },
  responses: { 200: { description: "The domain" }, ...authErrors, 404: noDomain },
});

const updateDomain = createRoute({
  method: "patch",
  path: "/{id}",
  summary: "Rotate the DKIM key (rotate_key: true, optional dkim_algorithm)",
  security: bearer,
  request: { params: Id, body: { content: json(UpdateDomainSchema) } },
  responses: { 200: idOnly, ...authErrors, ...bodyErrors, 404: noDomain, 503: noSecret },
});

const deleteDomain = createRoute({
  method: "delete",
  path: "/{id}",
  summary: "Remove a domain: its messages are no longer signed",
  security: bearer,
  request: { params: Id },
  responses: {
    200: { description: "{ object: 'domain', id, deleted: true }" },
    ...authErrors,
    404: noDomain,
  },
});

const verifyDomain = createRoute({
  method: "post",
  path: "/{id}/verify",
  summary: "Check the DKIM records through DNS over HTTPS (DOH_URL) now",
  security: bearer,
  request: { params: Id },
  responses: { 200: idOnly, ...authErrors, 404: noDomain },
});

/** Mounted at /domains. */
export function domainRoutes(): OpenAPIHono<AppEnv> {
  const app = resourceApp();
  app.use("*", authenticate);
  app.use("*", async (c, next) => {
    requireFullAccess(c.get("principal"));
    await next();
  });
  const by = (c: Context<AppEnv>) => c.get("principal").keyId;

  route(app, createDomain, async (c) => {
    const relay = c.get("relay");
    const body = validate(CreateDomainSchema, await readJson(c, BODY_LIMIT));
    const record = await stored(relay, "domain.create", () => relay.domains.create(body, by(c)));
    const { object: _, ...view } = domainView(record, relay.domains.publishContext) as {
      object: string;
    };
    return c.json(view, 201);
  });

  route(app, listDomains, async (c) => {
    const relay = c.get("relay");
    const request = pageOf(c);
    const page = await stored(relay, "domain.list", () => relay.domains.list(request));
    return c.json({ object: "list", has_more: page.has_more, data: page.data.map(domainListItem) });
  });

  route(app, getDomain, async (c) => {
    const relay = c.get("relay");
    const id = resourceId(c, "Domain");
    const record = await stored(relay, "domain.get", () => relay.domains.get(id));
    return c.json(domainView(record, relay.domains.publishContext));
  });

  route(app, updateDomain, async (c) => {
    const relay = c.get("relay");
    const id = resourceId(c, "Domain");
    const body = validate(UpdateDomainSchema, await readJson(c, BODY_LIMIT));
    const record = await stored(relay, "domain.update", () =>
      relay.domains.update(id, body, by(c)),
    );
    return c.json({ object: "domain", id: record.id });
  });

  route(app, deleteDomain, async (c) => {
    const relay = c.get("relay");
    const id = resourceId(c, "Domain");
    const record = await stored(relay, "domain.delete", () => relay.domains.remove(id, by(c)));
    return c.json({ object: "domain", id: record.id, deleted: true });
  });

  route(app, verifyDomain, async (c) => {
    const relay = c.get("relay");
    const id = resourceId(c, "Domain");
    const record = await stored(relay, "domain.verify", () => relay.domains.verify(id, by(c)));
    return c.json({ object: "domain", id: record.id });
  });

  return app;
}
