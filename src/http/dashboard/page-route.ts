/**
 * How a dashboard route is declared: an HTML page (or a 303 after an action) in /openapi.json,
 * and the small helpers every page module shares (the id in the path, the redirect after a post).
 */
import { createRoute } from "@hono/zod-openapi";
import type { Context } from "hono";
import { ValidationError } from "../../errors.ts";
import { UUID } from "../routes/resource.ts";

const htmlPage = (description: string) => ({
  description,
  content: { "text/html": { schema: { type: "string" as const } } },
});
const seeOther = { description: "See Other: to the page the action leads to (or to sign-in)" };
const refused = { description: "Cross-site post, or a missing or wrong form token" };
const limited = { description: "Too many requests from this sign-in (DASHBOARD_RATE_LIMIT)" };

export function page(method: "get" | "post", path: string, summary: string, ok = 200) {
  return createRoute({
    method,
    path,
    summary: `Dashboard: ${summary}`,
    tags: ["dashboard"],
    responses: {
      [ok]: ok === 303 ? seeOther : htmlPage(summary),
      ...(ok === 303 ? {} : { 303: seeOther }),
      ...(method === "post" ? { 403: refused } : {}),
      429: limited,
    },
  });
}

/** A path parameter that must be an id; anything else is simply not found. */
export function idParam(c: Context, name = "id"): string {
  const id = c.req.param(name) ?? "";
  if (!UUID.test(id)) throw new ValidationError("is not an id", name, 404);
  return id.toLowerCase();
}

/** After an action: to the page it leads to. */
export const back = (c: Context, path: string) => c.body(null, 303, { location: path });
