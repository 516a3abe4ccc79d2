/**
 * In-memory idempotency keys: in-flight markers with the token of the request that set them, and
 * done records. `settle` is the enqueue's half: it turns the request's marker into the done
 * record, or refuses as the Upstash enqueue script does.
 */
import {
  IdempotencyClaimLapsedError,
  type IdempotencyRecord,
  type IdempotencyState,
  type IdempotencyStore,
} from "../ports.ts";
import { copy } from "./values.ts";

interface Held {
  state: Exclude<IdempotencyState, { kind: "new" }>;
  token?: string;
  expiresAt: number;
}

export class MemoryIdempotency implements IdempotencyStore {
  readonly #held = new Map<string, Held>();
  readonly #now: () => number;

  constructor(now: () => number) {
    this.#now = now;
  }

  async beginIdempotent(
    key: string,
    hash: string,
    token: string,
    ttlMs: number,
  ): Promise<IdempotencyState> {
    const held = await this.peekIdempotent(key);
    if (held.kind === "in_flight" && this.#held.get(key)?.token === token) return { kind: "new" };
    if (held.kind !== "new") return held;
    const until = this.#now() + ttlMs;
    this.#held.set(key, { state: { kind: "in_flight", hash, until }, token, expiresAt: until });
    return { kind: "new" };
  }

  async peekIdempotent(key: string): Promise<IdempotencyState> {
    const held = this.#held.get(key);
    return held && held.expiresAt > this.#now() ? copy(held.state) : { kind: "new" };
  }

  async abandonIdempotent(key: string, token: string): Promise<boolean> {
    if (!this.#holds(key, token)) return false;
    this.#held.delete(key);
    return true;
  }

  /**
   * Stores the done record, only while the key still holds this request's marker; throws
   * IdempotencyClaimLapsedError otherwise, before the caller stores anything.
   */
  settle(record: IdempotencyRecord): void {
    if (!this.#holds(record.key, record.token)) throw new IdempotencyClaimLapsedError();
    this.#held.set(record.key, {
      state: { kind: "done", hash: record.hash, response: copy(record.response) },
      expiresAt: this.#now() + record.ttlMs,
    });
  }

  #holds(key: string, token: string): boolean {
    const held = this.#held.get(key);
    return held?.state.kind === "in_flight" && held.token === token && held.expiresAt > this.#now();
  }
}
