/**
 * The Upstash driver's plain reads (one HMGET each, no script): a message with its state and
 * lease, one queued webhook event, and the smart host's latest outcomes. Kept apart from the class so store.ts stays a list of the
 * ports' operations.
 */
import type { Redis } from "@upstash/redis";
import type { HostOutcome, SmartHostOutcomes } from "../insight-ports.ts";
import type { EventAttempt, EventDelivery } from "../ports.ts";
import type { DeliveryState, QueuedMessage, StoredEntry } from "../types.ts";
import type { KeyLayout } from "./keys.ts";
import { summaryStatus } from "./scripts/event-log.ts";

/** A message, its state and its lease; null when unknown or expired. */
export async function readEntry(
  redis: Redis,
  keys: KeyLayout,
  id: string,
): Promise<StoredEntry | null> {
  // Without automatic deserialisation the client returns HMGET as a plain array.
  const fields = (await redis.hmget(keys.message(id), "m", "r", "s", "v", "l", "lu")) as unknown as
    | (string | null)[]
    | null;
  const [meta, raw, state, version, lease, leaseUntil] = fields ?? [];
  if (!meta || raw == null || !state) return null;
  const until = Number(leaseUntil ?? 0);
  return {
    message: JSON.parse(meta) as QueuedMessage,
    raw,
    state: JSON.parse(state) as DeliveryState,
    version: Number(version),
    leasedUntil: lease && until > 0 ? until : null,
  };
}

/** One event as queued for an endpoint, its status judged at `now`; null when unknown. */
export async function readEventDelivery(
  redis: Redis,
  keys: KeyLayout,
  endpointId: string,
  eventId: string,
  now: number,
): Promise<EventDelivery | null> {
  const fields = (await redis.hmget(
    keys.event(endpointId, eventId),
    "p",
    "t",
    "e",
    "c",
    "s",
    "a",
    "na",
    "l",
    "lu",
    "r",
  )) as unknown as (string | null)[] | null;
  const [payload, type, emailId, created, status, attempts, next, lease, until, replayOf] =
    fields ?? [];
  if (!payload || !type) return null;
  const s = summaryStatus(String(status), String(lease ?? ""), Number(until ?? 0), now);
  return {
    id: eventId,
    type,
    emailId: String(emailId),
    createdAt: Number(created),
    status: s,
    payload,
    attempts: JSON.parse(attempts ?? "[]") as EventAttempt[],
    nextAttemptAt: s === "pending" && next ? Number(next) : null,
    ...(replayOf ? { replayOf } : {}),
  };
}

/** The smart host's latest success and refusal, as the commit script keeps them. */
export async function readSmartHost(redis: Redis, keys: KeyLayout): Promise<SmartHostOutcomes> {
  // Without automatic deserialisation the client returns HMGET as a plain array.
  const h = (await redis.hmget(keys.smartHost, "ok", "no")) as unknown as (string | null)[] | null;
  const [ok, no] = h ?? [];
  const parse = (v: string | null | undefined) => (v ? (JSON.parse(v) as HostOutcome) : null);
  return { lastSuccess: parse(ok), lastRefusal: parse(no) };
}
