/**
 * Idempotency as Resend defines it: an `Idempotency-Key` header (1 to 256 characters) makes a
 * send safe to retry for 24 hours. The same key with the same body answers the first response
 * without sending again; with a different body, 409 invalid_idempotent_request; while the first
 * request is still running, 409 concurrent_idempotent_requests. Keys are scoped to the API key
 * that sent them. Claiming costs one store command; the replay record is written by the same
 * script that stores the messages, so a successful send costs nothing more.
 *
 * A claim (`KeyClaim`, shared with the webhook-id guard of inbound hooks) is an in-flight marker
 * that lives only as long as a request can. It is freed at once only when the store was never
 * asked to write; when the write failed without saying whether it happened (a lost reply), the
 * key stays claimed and the relay asks the store what it holds: the done record (written
 * atomically with the messages) means they were stored, and the first response is answered;
 * otherwise the client is told to retry after the claim lapses, and its retry finds the done
 * record or a free key, never a second copy.
 */
import type { Context } from "hono";
import { sha256Hex } from "../auth/keys.ts";
import {
  ConcurrentIdempotentRequestError,
  IdempotencyDeadlineError,
  IdempotentRequestMismatchError,
  InvalidIdempotencyKeyError,
  OutcomeUnknownError,
  StoreUnavailableError,
} from "../errors.ts";
import type { AppEnv } from "../http/env.ts";
import type { Relay } from "../relay.ts";
import type { IdempotencyRecord, IdempotencyState, StoredResponse } from "../store/store.ts";

export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
export const MAX_IDEMPOTENCY_KEY = 256;

/**
 * The store write must start within this of the claim (`seal` refuses later): composing is
 * CPU-bound and Workers end a request after 30 s of CPU by default, so a request this slow is
 * starved or stuck, and the write still needs time to land before the marker lapses.
 */
export const SEAL_DEADLINE_MS = 30_000;

/**
 * How long an in-flight marker lives: as long as a request can hold it. The write starts within
 * SEAL_DEADLINE_MS and the store gives up on a call after STORE_REQUEST_TIMEOUT_MS (20 s, all
 * attempts), which leaves it inside the other 30 s. Past that the request is gone, and its key
 * must not stay blocked (it was 24 h). A write that still reaches Redis after the marker lapsed
 * stores nothing: the enqueue script checks that the key holds this request's marker.
 */
export const IN_FLIGHT_TTL_MS = 60_000;

/** Seals a successful response into the record stored with the messages (undefined: no key). */
export type Seal = (response: StoredResponse) => IdempotencyRecord | undefined;

/** Seconds until `until` (ms since epoch), at least 1: a Retry-After that outlasts a claim. */
export function retryAfterSeconds(until: number, now: number): number {
  return Math.max(1, Math.ceil((until - now) / 1000));
}

/** One request's claim on an idempotency key (an Idempotency-Key or a webhook-id). */
export class KeyClaim {
  readonly #relay: Relay;
  readonly #key: string;
  readonly #hash: string;
  readonly #doneTtlMs: number;
  readonly #token = crypto.randomUUID();
  #claimedAt = 0;
  /** Set once the store may have been asked to write: from then on the outcome can be unknown. */
  #asked = false;

  constructor(relay: Relay, key: string, hash: string, doneTtlMs: number) {
    this.#relay = relay;
    this.#key = key;
    this.#hash = hash;
    this.#doneTtlMs = doneTtlMs;
  }

  /** Claims the key (one command); what it held, or `new` when this request now holds it. */
  async begin(op: string): Promise<IdempotencyState> {
    this.#claimedAt = this.#relay.now();
    try {
      return await this.#relay.store.beginIdempotent(
        this.#key,
        this.#hash,
        this.#token,
        IN_FLIGHT_TTL_MS,
      );
    } catch (err) {
      // Nothing was written but perhaps the marker: it lapses on its own, and a retry meanwhile
      // answers 409 with a Retry-After.
      this.#relay.log.error("store.unavailable", { op, error: String(err) });
      throw new StoreUnavailableError(err);
    }
  }

  /** The record the store writes with the messages; call it right before that write. */
  seal(response: StoredResponse): IdempotencyRecord {
    if (this.#relay.now() - this.#claimedAt > SEAL_DEADLINE_MS)
      throw new IdempotencyDeadlineError();
    this.#asked = true;
    return {
      key: this.#key,
      hash: this.#hash,
      response,
      ttlMs: this.#doneTtlMs,
      token: this.#token,
    };
  }

  /**
   * After the request failed with `err`. Before any write, frees the key (so a corrected retry
   * goes through at once) and rethrows. After a write was asked for, keeps the key and asks the
   * store what it holds: the response when the messages were stored after all (answer it), else
   * throws, telling the client to retry once the claim has lapsed. Costs one command either way.
   */
  async failed(err: unknown): Promise<StoredResponse> {
    const { log, store } = this.#relay;
    if (!this.#asked) {
      await store
        .abandonIdempotent(this.#key, this.#token)
        .catch((e) => log.warn("idempotency.release_failed", { error: String(e) }));
      throw err;
    }
    let held: IdempotencyState | undefined;
    try {
      held = await store.peekIdempotent(this.#key);
    } catch (e) {
      log.warn("idempotency.check_failed", { error: String(e) });
    }
    if (held?.kind === "done" && held.hash === this.#hash) {
      log.warn("idempotency.recovered", { op: "enqueue" });
      return held.response;
    }
    // A free key: the marker is gone and no done record came, so nothing was stored.
    if (held?.kind === "new") throw err;
    const until = held?.kind === "in_flight" ? held.until : this.#claimedAt + IN_FLIGHT_TTL_MS;
    throw new OutcomeUnknownError(err, retryAfterSeconds(until, this.#relay.now()));
  }
}

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
    return respond(c, await run((response) => claim.seal(response)));
  } catch (err) {
    return respond(c, await claim.failed(err));
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
