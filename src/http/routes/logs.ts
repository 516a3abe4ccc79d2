/**
 * /logs: recent API requests, as Resend's Logs API shows them (`resend.logs.list/get`): method,
 * endpoint, status, user agent, time, plus the key that made each and the emails it created.
 * Bodies are never stored, so `request_body` and `response_body` are always null. A
 * full_access key sees every request; a sending_access key only its own (others look absent).
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { ValidationError } from "../../errors.ts";
import type { RequestLogEntry } from "../../store/store.ts";
import { authenticate } from "../auth.ts";
import type { AppEnv } from "../env.ts";
import { authErrors, bearer, errorResponse, notFound, resourceApp, route } from "../route.ts";
import { resourceId, stored, UUID } from "./resource.ts";

const LogSchema = z
  .object({
    object: z.literal("log").optional(),
    id: z.string().openapi({ example: "019ade5c-3f10-7a2e-9c41-2b1f0e7d4a55" }),
    created_at: z.string().openapi({ example: "2026-12-02T15:40:33.120Z" }),
    endpoint: z.string().openapi({ example: "/emails" }),
    method: z.string().openapi({ example: "POST" }),
    response_status: z.number().int().openapi({ example: 200 }),
    user_agent: z.string().nullable().openapi({ example: "resend-node:6.38.0" }),
    api_key_id: z.string().nullable(),
    email_ids: z.array(z.string()),
    duration_ms: z.number().int(),
    request_body: z.null(),
    response_body: z.null(),
  })
  .openapi("Log");

const query = z.object({
  limit: z.string().optional().openapi({ description: "1 to 100, default 20" }),
  after: z.string().optional().openapi({ description: "A log id: the entries older than it" }),
  before: z.string().optional().openapi({ description: "A log id: the entries newer than it" }),
});

const common = { security: bearer, middleware: authenticate } as const;

const listLogs = createRoute({
  ...common,
  method: "get",
  path: "/",
  summary: "Recent API requests, newest first (a sending_access key: its own)",
  request: { query },
  responses: {
    200: {
      description: "{ object: 'list', has_more, data: Log[] }",
      content: { "application/json": { schema: z.object({ data: z.array(LogSchema) }) } },
    },
    ...authErrors,
    422: errorResponse("limit, after or before is invalid (the message names it)"),
  },
});

const getLog = createRoute({
  ...common,
  method: "get",
  path: "/{id}",
  summary: "One API request; 404 when unknown, expired or another key's",
  responses: {
    200: { description: "The log", content: { "application/json": { schema: LogSchema } } },
    ...authErrors,
    404: notFound("log"),
  },
});

function view(e: RequestLogEntry) {
  return {
    id: e.id,
    created_at: new Date(e.at).toISOString(),
    endpoint: e.endpoint,
    method: e.method,
    response_status: e.status,
    user_agent: e.userAgent,
    api_key_id: e.keyId,
    email_ids: e.emailIds,
    duration_ms: e.ms,
    // Never stored: a body may hold addresses, content and secrets.
    request_body: null,
    response_body: null,
  };
}

function pageOf(c: Context<AppEnv>): { limit: number; after?: string; before?: string } {
  const raw = c.req.query("limit");
  const limit = raw === undefined ? 20 : Number(raw);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
    throw new ValidationError("must be a whole number from 1 to 100", "limit");
  }
  const after = c.req.query("after");
  const before = c.req.query("before");
  if (after !== undefined && before !== undefined) {
    throw new ValidationError("cannot be used together with before", "after");
  }
  for (const [name, value] of [
    ["after", after],
    ["before", before],
  ] as const) {
    if (value !== undefined && !UUID.test(value))
      throw new ValidationError("must be a log id", name);
  }
  return {
    limit,
    ...(after !== undefined ? { after: after.toLowerCase() } : {}),
    ...(before !== undefined ? { before: before.toLowerCase() } : {}),
  };
}

/** Mounted at /logs. */
export function logRoutes(): OpenAPIHono<AppEnv> {
  const app = resourceApp();

  route(app, listLogs, async (c) => {
    const relay = c.get("relay");
    const page = pageOf(c);
    const { entries, hasMore } = await stored(relay, "logs.list", () =>
      relay.requestLog.list(c.get("principal"), page),
    );
    return c.json({ object: "list", has_more: hasMore, data: entries.map(view) });
  });

  route(app, getLog, async (c) => {
    const relay = c.get("relay");
    const id = resourceId(c, "Log");
    const entry = await stored(relay, "logs.get", () =>
      relay.requestLog.get(c.get("principal"), id),
    );
    return c.json({ object: "log", ...view(entry) });
  });

  return app;
}
