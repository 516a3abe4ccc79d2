/**
 * How the Upstash driver writes idempotency keys: an in-flight marker is JSON whose start (kind
 * and token) identifies the request that set it, so scripts can recognise "still mine" with a
 * prefix match and no JSON parsing in Lua.
 */
import type { IdempotencyState } from "../ports.ts";

/** An in-flight marker's JSON; without hash and until, the prefix that identifies it. */
export function inFlightMarker(token: string, hash?: string, until?: number): string {
  const head = `{"kind":"in_flight","token":${JSON.stringify(token)}`;
  return hash === undefined ? head : `${head},"hash":${JSON.stringify(hash)},"until":${until}}`;
}

/** A stored idempotency value as a state; the marker of `own` (a token) counts as new. */
export function idempotencyState(held: string | null | undefined, own?: string): IdempotencyState {
  if (held === null || held === undefined) return { kind: "new" };
  const state = JSON.parse(String(held)) as IdempotencyState & { token?: string };
  if (state.kind !== "in_flight") return state;
  if (own !== undefined && state.token === own) return { kind: "new" };
  return { kind: "in_flight", hash: state.hash, until: Number(state.until) || 0 };
}
