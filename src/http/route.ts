/**
 * One declaration per route: `route(app, def, handler)` registers the handler under the path and
 * method of a `createRoute()` object and documents that same object in /openapi.json, so the two
 * cannot drift. Also the error answers the document names, defined once.
 *
 * zod-openapi would validate a declared request (a zValidator per body, param and query schema),
 * and its body validator reads the whole body without a limit, refuses other media types with
 * its own 415 and answers failures in its own shape. The relay reads every body itself (within
 * a limit, as exact bytes for idempotency hashes and raw MIME) and answers Resend-shaped errors
 * that name the field. So the document gets the full declaration, and Hono gets it without
 * `request`: no validator runs, the handlers validate as they always did.
 */
import { OpenAPIHono, type RouteConfig } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { AppEnv } from "./env.ts";
import { ErrorSchema } from "./schemas.ts";

/** A sub-app for one resource, mounted with `app.route()`. */
export function resourceApp(): OpenAPIHono<AppEnv> {
  return new OpenAPIHono<AppEnv>();
}

export type RouteHandler = (c: Context<AppEnv>) => Response | Promise<Response>;

export function route(app: OpenAPIHono<AppEnv>, def: RouteConfig, handler: RouteHandler): void {
  const { middleware: _middleware, hide: _hide, ...documented } = def;
  app.openAPIRegistry.registerPath(documented);
  const { request: _request, ...routed } = def;
  // The handler's typed answers are not zod-checked either: it returns plain Responses.
  app.openapi({ ...routed, hide: true }, handler as never);
}

/** An error answer in the document: Resend's error shape, with what it means here. */
export function errorResponse(description: string) {
  return { description, content: { "application/json": { schema: ErrorSchema } } };
}

export const notFound = (what: string) => errorResponse(`No such ${what}`);
export const conflict = (what: string) => errorResponse(`Conflict: ${what}`);

/** What `authenticate` can answer before any route runs. */
export const authErrors = {
  401: errorResponse("Missing API key, or a sending_access key on a full_access route"),
  403: errorResponse("Invalid API key, or a client address outside the key's allowed_ips"),
  429: errorResponse("Over the key's rate limit, or too many failed requests from this network"),
  503: errorResponse("Store unavailable: nothing was stored, retry after Retry-After"),
};

/** What reading and checking a JSON body can answer. */
export const bodyErrors = {
  400: errorResponse("Malformed body (not UTF-8, not JSON, nested too deep, cut off)"),
  413: errorResponse("Over a size limit"),
  422: errorResponse("A field is invalid or missing (the message names it)"),
};

export const bearer = [{ bearer: [] }];
