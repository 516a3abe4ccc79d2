/**
 * Idempotency as Resend defines it: an `Idempotency-Key` header (1 to 256 characters) makes a
 * send safe to retry for 24 hours. The same key with the same body answers the first response
 * without sending again; with a different body, 409 invalid_idempotent_request; while the first
 * request is still running, 409 concurrent_idempotent_requests. Keys are scoped to the API key
 * that sent them. Claiming costs one store command; the replay record is written by the same
 * script that stores the messages, so a successful send costs nothing more.
 */
import type { Context } from "hono";
import type { AppEnv } from "../app.ts";
import { sha256Hex } from "../auth/keys.ts";
import {
  ConcurrentIdempotentRequestError,
  IdempotentRequestMismatchError,
  InvalidIdempotencyKeyError,
  StoreUnavailableError,
} from "../errors.ts";
import type { IdempotencyRecord, IdempotencyState, StoredResponse } from "../store/store.ts";

export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
export const MAX_IDEMPOTENCY_KEY = 256;

/** Seals a successful response into the record stored with the messages (undefined: no key). */
export type Seal = (response: StoredResponse) => IdempotencyRecord | undefined;

export async function idempotent(
  c: Context<AppEnv>,
  body: Uint8Array,
  run: (seal: Seal) => Promise<StoredResponse>,
): Promise<Response> {
  const header = c.req.header("idempotency-key");
  if (header === undefined) return respond(c, await run(() => undefined));
  if (header.length < 1 || header.length > MAX_IDEMPOTENCY_KEY)
    throw new InvalidIdempotencyKeyError();

  const relay = c.get("relay");
  const key = `${c.get("principal").keyId}:${header}`;
  const hash = await requestHash(c, body);

  let held: IdempotencyState;
  try {
    held = await relay.store.beginIdempotent(key, hash, IDEMPOTENCY_TTL_MS);
  } catch (err) {
    relay.log.error("store.unavailable", { op: "idempotency", error: String(err) });
    throw new StoreUnavailableError(err);
  }
  if (held.kind !== "new") {
    if (held.hash !== hash) throw new IdempotentRequestMismatchError();
    if (held.kind === "in_flight") throw new ConcurrentIdempotentRequestError();
    return respond(c, held.response);
  }
  try {
    return respond(
      c,
      await run((response) => ({ key, hash, response, ttlMs: IDEMPOTENCY_TTL_MS })),
    );
  } catch (err) {
    // Nothing was stored: free the key so the client can retry (with a corrected body) at once.
    await relay.store
      .abandonIdempotent(key)
      .catch((e) => relay.log.warn("idempotency.release_failed", { error: String(e) }));
    throw err;
  }
}

/** The request's identity: method, path, content type and the exact body bytes. */
async function requestHash(c: Context, body: Uint8Array): Promise<string> {
  const head = new TextEncoder().encode(
    `${c.req.method} ${new URL(c.req.url).pathname} ${c.req.header("content-type") ?? ""}\n`,
  );
  const all = new Uint8Array(head.byteLength + body.byteLength);
  all.set(head);
  all.set(body, head.byteLength);
  return sha256Hex(all);
}

function respond(c: Context, response: StoredResponse): Response {
  return c.json(response.body as object, response.status as 200);
}
