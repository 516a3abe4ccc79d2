/**
 * /emails/:id/attachments (resend.emails.attachments.list/get), mounted on /emails, and the
 * signed download links they hand out, served at /attachments/download without an API key (the
 * link is the credential). A sending key sees only its own emails' attachments: another email's
 * are not found, as the email itself is.
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import {
  type AttachmentInfo,
  DOWNLOAD_URL_TTL_SECONDS,
  downloadAttachment,
  getAttachment,
  listAttachments,
} from "../../attachments.ts";
import { ValidationError } from "../../errors.ts";
import { authenticate } from "../auth.ts";
import type { AppEnv } from "../env.ts";
import { authErrors, bearer, errorResponse, notFound, resourceApp, route } from "../route.ts";
import { requestOrigin, UUID } from "./resource.ts";

const AttachmentSchema = z
  .object({
    id: z.string(),
    filename: z.string().optional(),
    size: z.number(),
    content_type: z.string(),
    content_disposition: z.enum(["inline", "attachment"]),
    content_id: z.string().optional(),
    download_url: z.string(),
    expires_at: z.string(),
  })
  .openapi("Attachment");

const DOWNLOAD_PATH = "/attachments/download";

const byId = { 404: notFound("email (for this key) or attachment") };

const listRoute = createRoute({
  method: "get",
  path: "/{id}/attachments",
  summary: `An email's attachments, each with a download_url that works for ${DOWNLOAD_URL_TTL_SECONDS / 60} minutes`,
  security: bearer,
  request: {
    params: z.object({ id: z.string() }),
    query: z.object({
      limit: z.string().optional(),
      after: z.string().optional(),
      before: z.string().optional(),
    }),
  },
  responses: {
    200: {
      description: "{ object: 'list', has_more, data: Attachment[] }",
      content: { "application/json": { schema: z.object({ data: z.array(AttachmentSchema) }) } },
    },
    ...authErrors,
    ...byId,
    422: errorResponse("limit, after or before invalid (the message names it)"),
  },
});

const getRoute = createRoute({
  method: "get",
  path: "/{id}/attachments/{attachment_id}",
  summary: "One attachment of an email, with a fresh download_url",
  security: bearer,
  request: { params: z.object({ id: z.string(), attachment_id: z.string() }) },
  responses: {
    200: {
      description: "{ object: 'attachment', ...Attachment }",
      content: { "application/json": { schema: AttachmentSchema } },
    },
    ...authErrors,
    ...byId,
  },
});

const downloadRoute = createRoute({
  method: "get",
  path: "/download",
  summary:
    "The file a download_url names (no API key: the signed link is the credential), always as a download",
  request: {
    query: z.object({
      email: z.string(),
      attachment: z.string(),
      expires: z.string(),
      signature: z.string(),
    }),
  },
  responses: {
    200: { description: "The attachment's bytes, Content-Disposition: attachment" },
    403: errorResponse("The link is not one the relay signed, or it has expired"),
    404: notFound("email or attachment (deleted since the link was made)"),
    503: errorResponse("Store unavailable: retry after Retry-After"),
  },
});

function view(c: Context, a: AttachmentInfo) {
  return {
    id: a.id,
    ...(a.filename !== null ? { filename: a.filename } : {}),
    size: a.size,
    content_type: a.contentType,
    content_disposition: a.disposition,
    ...(a.contentId !== null ? { content_id: a.contentId } : {}),
    download_url: `${requestOrigin(c)}${DOWNLOAD_PATH}?${a.download}`,
    expires_at: new Date(a.expiresAt).toISOString(),
  };
}

/** Anything not a UUID names no email, and no attachment: not found, as the email route does. */
function uuidParam(c: Context, name: string): string {
  return UUID.test(c.req.param(name) ?? "") ? (c.req.param(name) ?? "").toLowerCase() : "";
}

/** Resend's pagination over one email's (few) attachments: limit 1-100 (20), after or before. */
function page<T extends { id: string }>(c: Context, all: T[]) {
  const limitText = c.req.query("limit");
  const limit = limitText === undefined ? 20 : Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100)
    throw new ValidationError("must be an integer from 1 to 100", "limit");
  const after = c.req.query("after");
  const before = c.req.query("before");
  if (after !== undefined && before !== undefined)
    throw new ValidationError("cannot be used with after", "before");
  const cursor = after ?? before;
  const at = cursor === undefined ? -1 : all.findIndex((a) => a.id === cursor);
  if (cursor !== undefined && at < 0)
    throw new ValidationError("is not an attachment of this email", after ? "after" : "before");
  const [start, end] =
    before !== undefined ? [Math.max(0, at - limit), at] : [at + 1, at + 1 + limit];
  const has_more = before !== undefined ? start > 0 : end < all.length;
  return { object: "list", has_more, data: all.slice(start, end) };
}

/** Mounted at /emails, next to emailRoutes(). */
export function attachmentRoutes(): OpenAPIHono<AppEnv> {
  const app = resourceApp();
  app.use("*", authenticate);

  route(app, listRoute, async (c) => {
    const relay = c.get("relay");
    const id = uuidParam(c, "id");
    const all = await listAttachments(relay, id, c.get("principal"));
    const listed = page(c, all);
    return c.json({ ...listed, data: listed.data.map((a) => view(c, a)) });
  });

  route(app, getRoute, async (c) => {
    const relay = c.get("relay");
    const found = await getAttachment(
      relay,
      uuidParam(c, "id"),
      uuidParam(c, "attachment_id"),
      c.get("principal"),
    );
    return c.json({ object: "attachment", ...view(c, found) });
  });

  return app;
}

/** `filename="..."` for old clients (ASCII, no quotes) and RFC 5987 `filename*` for the rest. */
function contentDisposition(filename: string | null): string {
  if (!filename) return "attachment";
  const ascii = filename.replace(/[^\x20-\x7e]|["\\]/g, "_");
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(filename)}`;
}

/** Mounted at /attachments: public, behind each link's signature. */
export function downloadRoutes(): OpenAPIHono<AppEnv> {
  const app = resourceApp();
  route(app, downloadRoute, async (c) => {
    const file = await downloadAttachment(c.get("relay"), new URL(c.req.url).searchParams);
    // Always a download, never rendered: an attachment is whatever its sender made it (HTML
    // with script, an SVG), and this is the relay's origin.
    return new Response(file.content, {
      headers: {
        "content-type": file.contentType,
        "content-disposition": contentDisposition(file.filename),
        "x-content-type-options": "nosniff",
        "content-security-policy": "default-src 'none'; sandbox",
        "cache-control": "private, no-store",
        "referrer-policy": "no-referrer",
      },
    });
  });
  return app;
}
