/**
 * What the routes that manage records (forms, hooks) share: their ids, their store calls, the
 * sending policy a record keeps from the key that saved it, and the relay's own origin.
 */
import type { Context } from "hono";
import type { KeyPolicy } from "../auth/policy.ts";
import { NotFoundError, RelayError, StoreUnavailableError } from "../errors.ts";
import type { Relay } from "../relay.ts";

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
