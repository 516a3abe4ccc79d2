/**
 * Idempotency as Resend defines it, over HTTP: an `Idempotency-Key` header (1 to 256 characters)
 * makes a send safe to retry for 24 hours. The same key with the same body answers the first
 * response without sending again; with a different body, 409 invalid_idempotent_request; while
 * the first request is still running, 409 concurrent_idempotent_requests. Keys are scoped to the
 * API key that sent them. This module reads the header, hashes the request and answers; the claim
 * on the key, and what happens when a write's outcome is unknown, is src/idempotency.ts.
 */
import type { Context } from "hono";
import { sha256Hex } from "../auth/keys.ts";
import {
  ConcurrentIdempotentRequestError,
  IdempotentRequestMismatchError,
  InvalidIdempotencyKeyError,
} from "../errors.ts";
import { KeyClaim, retryAfterSeconds, type Seal } from "../idempotency.ts";
import type { StoredResponse } from "../store/store.ts";
import type { AppEnv } from "./env.ts";

export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
export const MAX_IDEMPOTENCY_KEY = 256;

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
  const claim = new KeyClaim(relay, key, hash, IDEMPOTENCY_TTL_MS);
  const held = await claim.begin("idempotency");
  if (held.kind !== "new") {
    if (held.hash !== hash) throw new IdempotentRequestMismatchError();
    if (held.kind === "in_flight")
      throw new ConcurrentIdempotentRequestError(retryAfterSeconds(held.until, relay.now()));
    return respond(c, held.response);
  }
  try {
    let sealed = false;
    const response = await run((answer) => {
      sealed = true;
      return claim.seal(answer);
    });
    if (!sealed) await claim.release();
    return respond(c, response);
  } catch (err) {
    return respond(c, await claim.failed(err));
  }
}

/**
 * The request's identity: method, path, content type, a permissive batch's mode (which changes
 * the answer; strict is the default, so the SDK's explicit "strict" hashes as before), and the
 * exact body bytes.
 */
async function requestHash(c: Context, body: Uint8Array): Promise<string> {
  const mode = c.req.header("x-batch-validation")?.trim().toLowerCase();
  const head = new TextEncoder().encode(
    `${c.req.method} ${new URL(c.req.url).pathname} ${c.req.header("content-type") ?? ""}${mode && mode !== "strict" ? ` ${mode}` : ""}\n`,
  );
  const all = new Uint8Array(head.byteLength + body.byteLength);
  all.set(head);
  all.set(body, head.byteLength);
  return sha256Hex(all);
}

function respond(c: Context, response: StoredResponse): Response {
  return c.json(response.body as object, response.status as 200);
}
