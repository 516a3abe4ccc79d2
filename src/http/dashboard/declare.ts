/**
 * How a dashboard route is declared and answers alike on every page module: `page()` makes the
 * createRoute declaration (an HTML page in /openapi.json, tagged "dashboard"), `idParam` reads a
 * path id, `back` answers an action with 303 to the page it leads to.
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
    },
  });
}

/** The path's `:id`; anything that is not a UUID is a page that does not exist. */
export function idParam(c: Context): string {
  const id = c.req.param("id") ?? "";
  if (!UUID.test(id)) throw new ValidationError("is not an id", "id", 404);
  return id.toLowerCase();
}

export const back = (c: Context, path: string) => c.body(null, 303, { location: path });
