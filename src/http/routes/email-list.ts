/**
 * `GET /emails` (resend.emails.list) and `GET /emails/metrics` (resend.emails.metrics), mounted
 * on /emails before the send and by-id routes (so "metrics" is not taken for an id). Resend's
 * query parameters and answers, plus the operator's filters; the use cases are src/listing/.
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { type LastEvent, lastEvent } from "../../delivery/state.ts";
import { ValidationError } from "../../errors.ts";
import type { EmailFilters } from "../../listing/emails.ts";
import {
  EMAIL_METRICS,
  type EmailMetricName,
  GRANULARITIES,
  type Granularity,
} from "../../listing/metrics.ts";
import { authenticate } from "../auth.ts";
import { validate } from "../body.ts";
import type { AppEnv } from "../env.ts";
import { authErrors, bearer, errorResponse, resourceApp, route } from "../route.ts";
import { emailListItem } from "../view.ts";
import { stored, UUID } from "./resource.ts";

export const LAST_EVENTS = [
  "scheduled",
  "queued",
  "delivery_delayed",
  "delivered",
  "bounced",
  "complained",
  "canceled",
  "suppressed",
] as const satisfies readonly LastEvent[];

/** An ISO 8601 date (2026-07-01) or date and time with a zone (2026-07-01T08:00:00Z). */
const ISO = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?$/;
const time = (description: string) =>
  z
    .string()
    .regex(ISO, "must be an ISO 8601 date or date-time with a zone")
    .refine((s) => !Number.isNaN(Date.parse(s)), "is not a valid date")
    .optional()
    .openapi({ description });
const cursor = (description: string) =>
  z.string().regex(UUID, "must be an email id (a UUID)").optional().openapi({ description });

/** A key's id ("admin" for ADMIN_TOKEN); it names a Redis key, so only id characters. */
const keyId = (description: string) =>
  z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/, "must be an API key id")
    .optional()
    .openapi({ description });

export const ListEmailsQuery = z
  .object({
    limit: z
      .string()
      .regex(/^\d{1,3}$/, "must be a whole number from 1 to 100")
      .refine((s) => Number(s) >= 1 && Number(s) <= 100, "must be a whole number from 1 to 100")
      .optional()
      .openapi({ description: "1 to 100 (default 20)" }),
    after: cursor("An email id: the page of older emails after it"),
    before: cursor("An email id: the page of newer emails before it"),
    last_event: z.enum(LAST_EVENTS).optional().openapi({ description: "Relay filter" }),
    to: z.string().min(1).max(254).optional().openapi({ description: "Relay filter: a recipient" }),
    key_id: keyId("Relay filter: the sending key's id"),
    tag: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,256}:[^\r\n]{0,256}$/, "must be name:value")
      .optional()
      .openapi({ description: "Relay filter: name:value" }),
    since: time("Relay filter: created at or after"),
    until: time("Relay filter: created at or before"),
  })
  .openapi("ListEmailsQuery");

const ListEmailSchema = z.object({
  id: z.string(),
  from: z.string(),
  to: z.array(z.string()),
  cc: z.array(z.string()).nullable(),
  bcc: z.array(z.string()).nullable(),
  reply_to: z.array(z.string()).nullable(),
  subject: z.string(),
  created_at: z.string(),
  scheduled_at: z.string().nullable(),
  last_event: z.string(),
  message_id: z.string(),
});

const ListEmailsResponse = z
  .object({
    object: z.literal("list"),
    has_more: z.boolean(),
    data: z.array(ListEmailSchema),
    cursor: z.string().optional().openapi({
      description: "Set when a filtered scan stopped at its bound: pass it as after (or before)",
    }),
  })
  .openapi("ListEmailsResponse");

const csv = (description: string) => z.string().max(1000).optional().openapi({ description });

export const MetricsQuery = z
  .object({
    start_date: time("Default: 6 days before end_date; clamped to the last 31 days"),
    end_date: time("Default: now (a date alone means the end of that day)"),
    granularity: z.enum(GRANULARITIES).optional().openapi({ description: "Default daily" }),
    metrics: csv(`Comma-separated, of: ${EMAIL_METRICS.join(", ")} (default all)`),
    dimensions: csv("Comma-separated; only period is supported"),
    timezone: z.string().optional().openapi({ description: "Only UTC" }),
    key_id: keyId("Relay: one key's counters (full_access)"),
  })
  .openapi("EmailMetricsQuery");

const MetricsResponse = z
  .object({
    object: z.literal("metrics"),
    start_date: z.string(),
    end_date: z.string(),
    metrics: z.array(z.string()),
    dimensions: z.array(z.string()),
    granularity: z.enum(GRANULARITIES),
    totals: z.record(z.string(), z.number()),
    data: z.array(z.record(z.string(), z.union([z.string(), z.number()]))).optional(),
  })
  .openapi("EmailMetricsResponse");

const listEmails = createRoute({
  method: "get",
  path: "/",
  summary: "List emails, newest first (a sending_access key sees only its own)",
  security: bearer,
  middleware: authenticate,
  request: { query: ListEmailsQuery },
  responses: {
    200: { description: "A page", content: { "application/json": { schema: ListEmailsResponse } } },
    ...authErrors,
    403: errorResponse("Invalid API key, or key_id of another key for a sending_access key"),
    422: errorResponse("A query parameter is invalid (the message names it)"),
  },
});

const emailMetrics = createRoute({
  method: "get",
  path: "/metrics",
  summary: "Counts per event over a time range (a sending_access key: its own)",
  security: bearer,
  middleware: authenticate,
  request: { query: MetricsQuery },
  responses: {
    200: { description: "Metrics", content: { "application/json": { schema: MetricsResponse } } },
    ...authErrors,
    403: errorResponse("Invalid API key, or key_id of another key for a sending_access key"),
    422: errorResponse("A query parameter is invalid or not supported (the message names it)"),
  },
});

/** The query's own parameters only (a repeated one: its first value). */
function queryOf(c: Context): Record<string, string> {
  return c.req.query();
}

/** ms since epoch; a date alone at `end` means the last millisecond of that day (UTC). */
function parseTime(value: string | undefined, end = false): number | undefined {
  if (value === undefined) return undefined;
  const at = Date.parse(value.length === 10 ? `${value}T00:00:00Z` : value);
  return end && value.length === 10 ? at + 86_400_000 - 1 : at;
}

export function filtersOf(q: z.infer<typeof ListEmailsQuery>): EmailFilters {
  const sep = q.tag?.indexOf(":") ?? -1;
  return {
    lastEvent: q.last_event,
    to: q.to,
    keyId: q.key_id,
    tag: q.tag ? { name: q.tag.slice(0, sep), value: q.tag.slice(sep + 1) } : undefined,
    since: parseTime(q.since),
    until: parseTime(q.until, true),
  };
}

function listOf<T extends string>(
  value: string | undefined,
  allowed: readonly T[],
  field: string,
  why: string,
): T[] | undefined {
  if (value === undefined) return undefined;
  const items = value
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  for (const item of items) {
    if (!(allowed as readonly string[]).includes(item)) {
      throw new ValidationError(`${JSON.stringify(item).slice(0, 80)} ${why}`, field);
    }
  }
  return [...new Set(items)] as T[];
}

/** Mounted at /emails, before emailRoutes. */
export function emailListRoutes(): OpenAPIHono<AppEnv> {
  const app = resourceApp();

  route(app, listEmails, async (c) => {
    const relay = c.get("relay");
    const q = validate(ListEmailsQuery, queryOf(c));
    if (q.after !== undefined && q.before !== undefined) {
      throw new ValidationError("cannot be combined with after", "before");
    }
    const request = {
      limit: q.limit === undefined ? 20 : Number(q.limit),
      after: q.after?.toLowerCase(),
      before: q.before?.toLowerCase(),
      filters: filtersOf(q),
    };
    const page = await stored(relay, "email.list", () =>
      relay.emailList.list(c.get("principal"), request),
    );
    const now = relay.now();
    return c.json({
      object: "list",
      has_more: page.hasMore,
      data: page.entries.map((e) => emailListItem(e, lastEvent(e.state, now))),
      ...(page.cursor ? { cursor: page.cursor } : {}),
    });
  });

  route(app, emailMetrics, async (c) => {
    const relay = c.get("relay");
    const q = validate(MetricsQuery, queryOf(c));
    for (const field of ["domain_id", "email_id", "broadcast_id"]) {
      if (c.req.query(field) !== undefined) throw new ValidationError("is not supported", field);
    }
    if (q.timezone !== undefined && q.timezone !== "UTC" && q.timezone !== "Etc/UTC") {
      throw new ValidationError("only UTC is supported", "timezone");
    }
    const dimensions =
      listOf(q.dimensions, ["period"], "dimensions", "is not supported (only period)") ?? [];
    const metrics: readonly EmailMetricName[] =
      listOf(
        q.metrics,
        EMAIL_METRICS,
        "metrics",
        `is not counted by the relay (${EMAIL_METRICS.join(", ")})`,
      ) ?? EMAIL_METRICS;
    if (metrics.length === 0) throw new ValidationError("names no metric", "metrics");
    const granularity: Granularity = q.granularity ?? "daily";
    const answer = await stored(relay, "email.metrics", () =>
      relay.emailMetrics.read(c.get("principal"), {
        start: parseTime(q.start_date),
        end: parseTime(q.end_date, true),
        granularity,
        metrics,
        byPeriod: dimensions.includes("period"),
        keyId: q.key_id,
      }),
    );
    return c.json({
      object: "metrics",
      start_date: new Date(answer.start).toISOString(),
      end_date: new Date(answer.end).toISOString(),
      metrics,
      dimensions,
      granularity,
      totals: answer.totals,
      ...(answer.periods
        ? {
            data: answer.periods.map((p) => ({
              period: new Date(p.start).toISOString(),
              ...p.counts,
            })),
          }
        : {}),
    });
  });

  return app;
}
