/**
 * Claims on idempotency keys (an `Idempotency-Key` of a send, a `webhook-id` of an inbound hook):
 * the use-case under both, independent of HTTP. Claiming costs one store command; the replay
 * record is written by the same script that stores the messages, so a successful send costs
 * nothing more.
 *
 * A claim (`KeyClaim`) is an in-flight marker that lives only as long as a request can. It is
 * freed at once only when the store was never asked to write; when the write failed without
 * saying whether it happened (a lost reply), the key stays claimed and the relay asks the store
 * what it holds: the done record (written atomically with the messages) means they were stored,
 * and the first response is answered; otherwise the client is told to retry after the claim
 * lapses, and its retry finds the done record or a free key, never a second copy.
 */
import { IdempotencyDeadlineError, OutcomeUnknownError, StoreUnavailableError } from "./errors.ts";
import type { Logger } from "./log.ts";
import type {
  IdempotencyRecord,
  IdempotencyState,
  RelayStore,
  StoredResponse,
} from "./store/store.ts";

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

/** What a claim needs: the store's idempotency calls, a log and the clock (a Relay has them). */
export interface ClaimDeps {
  store: Pick<RelayStore, "beginIdempotent" | "peekIdempotent" | "abandonIdempotent">;
  log: Logger;
  now: () => number;
}

/** One request's claim on an idempotency key (an Idempotency-Key or a webhook-id). */
export class KeyClaim {
  readonly #relay: ClaimDeps;
  readonly #key: string;
  readonly #hash: string;
  readonly #doneTtlMs: number;
  readonly #token = crypto.randomUUID();
  #claimedAt = 0;
  /** Set once the store may have been asked to write: from then on the outcome can be unknown. */
  #asked = false;

  constructor(relay: ClaimDeps, key: string, hash: string, doneTtlMs: number) {
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
   * After a request that answered without storing anything (a permissive batch with no valid
   * email): frees the key, as there is nothing to replay; a retry computes the same answer again.
   */
  async release(): Promise<void> {
    if (this.#asked) return;
    await this.#relay.store
      .abandonIdempotent(this.#key, this.#token)
      .catch((e) => this.#relay.log.warn("idempotency.release_failed", { error: String(e) }));
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
