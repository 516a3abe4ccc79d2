/**
 * What the routes that manage records (forms, hooks) share: their ids, the answer to a store
 * that cannot be reached, the sending policy a record keeps from the key that saved it, and the
 * relay's own origin. The record use-cases themselves are src/records.ts.
 */
import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { requireFullAccess } from "../../auth/keys.ts";
import type { KeyPolicy } from "../../auth/policy.ts";
import { NotFoundError, RelayError, StoreUnavailableError } from "../../errors.ts";
import type { Relay } from "../../relay.ts";
import type { RecordCache } from "../../store/record-cache.ts";
import type { RecordKind } from "../../store/store.ts";
import { authenticate } from "../auth.ts";
import type { AppEnv } from "../env.ts";
import { authErrors, bearer, notFound, route } from "../route.ts";

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The `:id` of the path; anything that is not a UUID is simply not found (named `what`). */
export function resourceId(c: Context, what: string): string {
  const id = c.req.param("id") ?? "";
  if (!UUID.test(id)) throw new NotFoundError(what);
  return id.toLowerCase();
}

/** Runs a store call; an unreachable store answers 503 with Retry-After, as sending does. */
export async function stored<T>(relay: Relay, op: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof RelayError) throw err;
    relay.log.error("store.unavailable", { op, error: String(err) });
    throw new StoreUnavailableError(err);
  }
}

/** The relay's origin as the client reached it, for the URLs an answer gives. */
export function requestOrigin(c: Context): string {
  return new URL(c.req.url).origin;
}

/**
 * The parts of a key's policy that bound what a record saved with it may send. A form or hook
 * keeps them, so a narrower key cannot widen what is sent by saving one.
 */
export function sendingPolicy(policy: KeyPolicy | undefined): KeyPolicy | null {
  if (!policy) return null;
  const out: KeyPolicy = {};
  if (policy.allowed_from) out.allowed_from = policy.allowed_from;
  if (policy.allowed_recipients) out.allowed_recipients = policy.allowed_recipients;
  if (policy.max_message_bytes !== undefined) out.max_message_bytes = policy.max_message_bytes;
  return Object.keys(out).length ? out : null;
}

/**
 * The reads and the delete every record kind answers alike, for full-access keys, on the
 * resource's sub-app: `GET /` (oldest first), `GET /:id` with the record's counters,
 * `DELETE /:id`.
 */
export function registerRecordRoutes<T extends { id: string; created_at: number }>(
  app: OpenAPIHono<AppEnv>,
  spec: {
    kind: RecordKind;
    /** The record's name in a not-found answer ("Form"). */
    name: string;
    cache: RecordCache<T>;
    view: (record: T, origin: string) => object;
    /** What `GET /:id` adds from the record's counters. */
    counted: (counters: Record<string, number>) => object;
    /** The summaries in /openapi.json. */
    docs: { list: string; get: string; delete: string };
  },
): void {
  const { kind, name } = spec;
  const missing = notFound(name.toLowerCase());
  const common = { security: bearer, middleware: authenticate } as const;
  const list = createRoute({
    ...common,
    method: "get",
    path: "/",
    summary: spec.docs.list,
    responses: { 200: { description: `{ object: 'list', data: ${name}[] }` }, ...authErrors },
  });
  const get = createRoute({
    ...common,
    method: "get",
    path: "/{id}",
    summary: spec.docs.get,
    responses: { 200: { description: `The ${kind}` }, ...authErrors, 404: missing },
  });
  const remove = createRoute({
    ...common,
    method: "delete",
    path: "/{id}",
    summary: spec.docs.delete,
    responses: { 200: { description: "Deleted" }, ...authErrors, 404: missing },
  });

  route(app, list, async (c) => {
    requireFullAccess(c.get("principal"));
    const relay = c.get("relay");
    const records = await stored(relay, `${kind}.list`, () => relay.records.list<T>(kind));
    const origin = requestOrigin(c);
    return c.json({
      object: "list",
      has_more: false,
      data: records.map((r) => spec.view(r, origin)),
    });
  });

  route(app, get, async (c) => {
    requireFullAccess(c.get("principal"));
    const relay = c.get("relay");
    const id = resourceId(c, name);
    const found = await stored(relay, `${kind}.get`, () => relay.records.get<T>(kind, id));
    if (!found) throw new NotFoundError(name);
    return c.json({
      ...spec.view(found.record, requestOrigin(c)),
      ...spec.counted(found.counters),
    });
  });

  route(app, remove, async (c) => {
    const principal = c.get("principal");
    requireFullAccess(principal);
    const relay = c.get("relay");
    const id = resourceId(c, name);
    const removed = await stored(relay, `${kind}.delete`, () =>
      relay.records.remove(kind, spec.cache, id, principal.keyId),
    );
    if (!removed) throw new NotFoundError(name);
    return c.json({ object: kind, id, deleted: true });
  });
}
