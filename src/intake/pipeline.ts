/**
 * The one pipeline for mail that arrives without a send request. A source (forms, inbound hooks;
 * SMTP submission and bounces later) supplies what is its own: the cheap gate, what runs before
 * the body is read, the proof and the parsing, and the send request its record renders. The
 * pipeline owns the rest, in this order: load the record (cached, unknown ids charged to the
 * client's failure limit), gate, admit, read the body within the source's limit, verify, render
 * and compose, check the record's sending policy, claim a replay key when there is one, queue
 * (relay.accept, then the first attempt in the background), and count the rejection.
 *
 * Every step returns a Result; a rejection is logged and counted here (`counterOf`), and the
 * caller maps it to its answer. What is thrown is what no step answers for: the store
 * unreachable (through `ctx.stored`, which makes it a 503), a bug.
 */

import type { FailureGuard } from "../auth/abuse.ts";
import { sha256Hex } from "../auth/keys.ts";
import { checkMessage, type KeyPolicy } from "../auth/policy.ts";
import { acceptAndDeliver, type Background } from "../delivery/accept.ts";
import { MalformedBodyError, RelayError, TooLargeError } from "../errors.ts";
import { type Composed, composeMessage } from "../mail/compose.ts";
import type { SendEmailRequest } from "../mail/request.ts";
import { readWithin } from "../read-within.ts";
import type { Relay } from "../relay.ts";
import type { RecordCache } from "../store/record-cache.ts";
import type { IdempotencyRecord, StoredResponse } from "../store/store.ts";
import { counterOf, type IntakeKind, ok, type Rejection, type Result, reject } from "./result.ts";

/** What the pipeline needs of a request, whatever carried it. */
export interface IntakeRequest {
  clientIp: string | undefined;
  header(name: string): string | undefined;
  body: ReadableStream<Uint8Array> | null;
}

/** What every intake record has: its id, and the sending policy of the key that saved it. */
export interface IntakeRecord {
  id: string;
  policy: KeyPolicy | null;
}

/** A claim on a replay key (a Standard Webhooks id), kept by the idempotency machinery. */
export interface ReplayClaim {
  begin(
    op: string,
  ): Promise<
    | { kind: "new" }
    | { kind: "in_flight"; retryAfterSeconds: number }
    | { kind: "done"; response: StoredResponse }
  >;
  /** The record written with the messages; call it right before that write. */
  seal(response: StoredResponse): IdempotencyRecord | undefined;
  /** After a failed write: the answer when it was stored after all; otherwise throws. */
  failed(err: unknown): Promise<StoredResponse>;
}

/** One request's dependencies, handed in by whoever received it. */
export interface IntakeContext {
  relay: Relay;
  request: IntakeRequest;
  background: Background;
  /** The client's failure limit: unknown ids and unproven refusals are charged to it. */
  guard: FailureGuard;
  /** Runs a store call; an unreachable store becomes a 503 that names `op` in the log. */
  stored: <T>(op: string, run: () => Promise<T>) => Promise<T>;
  /** Opens a claim on a replay key; needed only by sources with `replay`. */
  claim?: (key: string, hash: string, ttlMs: number) => ReplayClaim;
}

export type RefusalStage = "compose" | "policy";

/** What a source supplies: its own checks, as steps that answer a Result. */
export interface IntakeSource<R extends IntakeRecord, V> {
  kind: IntakeKind;
  cache: RecordCache<R>;
  /** The proof travels with the body (a signature): refusals until it is checked are unproven. */
  proofInBody: boolean;
  /** Checks that cost nothing (origin, client address). */
  gate(ctx: IntakeContext, record: R): Result<void>;
  /** Before the body is read, so a flood costs a rate-limit check per request and nothing more. */
  admit(ctx: IntakeContext, record: R): Promise<Result<void>>;
  maxBodyBytes(ctx: IntakeContext, record: R): number;
  /** The proof, the challenges, the parsing: what the request carries, checked. */
  verify(ctx: IntakeContext, record: R, body: Uint8Array<ArrayBuffer>): Promise<Result<V>>;
  /** The send request: the record's fixed sender and recipients, its templates filled. */
  render(record: R, verified: V, body: Uint8Array<ArrayBuffer>): SendEmailRequest;
  /** The composer's or the policy's refusal as a rejection; undefined lets it be thrown. */
  refused(err: RelayError, record: R, verified: V, stage: RefusalStage): Rejection | undefined;
  /** Replays: the key a request carries (a Standard Webhooks id), and how long it is kept. */
  replay?: { key(record: R, verified: V): string | undefined; ttlMs: number };
  /** Logged (info) once the message is queued. */
  acceptedEvent?: string;
}

export type Accepted =
  /** `id`: the queued email; `body`: the answer to store with a replay key, or recovered. */
  | { kind: "queued"; id: string; body: object }
  /** The replay key was seen before: the first answer, nothing queued. */
  | { kind: "duplicate"; body: object };

export interface Outcome<R> {
  /** Null when no record has that id. */
  record: R | null;
  result: Result<Accepted>;
}

/** Loads the record and runs every step; a rejection is counted before it is returned. */
export async function receive<R extends IntakeRecord, V>(
  source: IntakeSource<R, V>,
  ctx: IntakeContext,
  id: string,
): Promise<Outcome<R>> {
  const record = await loadRecord(source, ctx, id);
  if (!record) return { record, result: reject("not_found", "not found") };
  return { record, result: await runOn(source, ctx, record) };
}

/** The record, cached in the isolate; an unknown id is charged to the client's failure limit. */
export function loadRecord<R extends IntakeRecord>(
  source: Pick<IntakeSource<R, unknown>, "kind" | "cache">,
  ctx: IntakeContext,
  id: string,
): Promise<R | null> {
  const { relay } = ctx;
  return ctx.stored(`${source.kind}.get`, () =>
    source.cache.load(relay.store, id, relay.now(), relay.config.keyCacheMs, ctx.guard),
  );
}

/** Every step after loading, on a record the caller already holds. */
export async function runOn<R extends IntakeRecord, V>(
  source: IntakeSource<R, V>,
  ctx: IntakeContext,
  record: R,
): Promise<Result<Accepted>> {
  const result = await steps(source, ctx, record);
  if (!result.ok) settle(source.kind, ctx, record.id, result);
  return result;
}

async function steps<R extends IntakeRecord, V>(
  source: IntakeSource<R, V>,
  ctx: IntakeContext,
  record: R,
): Promise<Result<Accepted>> {
  const gated = source.gate(ctx, record);
  if (!gated.ok) return gated;
  const admitted = await source.admit(ctx, record);
  if (!admitted.ok) return admitted;
  const body = await readBody(ctx, source.maxBodyBytes(ctx, record), source.proofInBody);
  if (!body.ok) return body;
  const verified = await source.verify(ctx, record, body.value);
  if (!verified.ok) return verified;
  const composed = await compose(source, ctx, record, verified.value, body.value);
  if (!composed.ok) return composed;
  const replayKey = source.replay?.key(record, verified.value);
  if (!source.replay || replayKey === undefined) return queue(source, ctx, record, composed.value);
  const key = { key: replayKey, ttlMs: source.replay.ttlMs };
  return queueOnce(source.kind, ctx, record.id, composed.value, key, body.value);
}

async function readBody(
  ctx: IntakeContext,
  maxBytes: number,
  unproven: boolean,
): Promise<Result<Uint8Array<ArrayBuffer>>> {
  const { request } = ctx;
  try {
    return ok(await readWithin(request.body, request.header("content-length"), maxBytes));
  } catch (err) {
    if (err instanceof TooLargeError) return reject("too_large", err.message, { unproven });
    if (err instanceof MalformedBodyError) return reject("invalid_body", err.message, { unproven });
    throw err;
  }
}

async function compose<R extends IntakeRecord, V>(
  source: IntakeSource<R, V>,
  ctx: IntakeContext,
  record: R,
  verified: V,
  body: Uint8Array<ArrayBuffer>,
): Promise<Result<Composed>> {
  const { relay } = ctx;
  let composed: Composed;
  try {
    composed = await composeMessage(source.render(record, verified, body), {
      id: crypto.randomUUID(),
      keyId: record.id,
      now: relay.now(),
      limits: relay.config.limits,
    });
  } catch (err) {
    return refusal(source, err, record, verified, "compose");
  }
  try {
    checkMessage(record.policy ?? undefined, composed);
  } catch (err) {
    return refusal(source, err, record, verified, "policy");
  }
  return ok(composed);
}

function refusal<R extends IntakeRecord, V>(
  source: IntakeSource<R, V>,
  err: unknown,
  record: R,
  verified: V,
  stage: RefusalStage,
): Rejection {
  const rejection = err instanceof RelayError && source.refused(err, record, verified, stage);
  if (!rejection) throw err;
  return rejection;
}

async function queue<R extends IntakeRecord, V>(
  source: IntakeSource<R, V>,
  ctx: IntakeContext,
  record: R,
  composed: Composed,
): Promise<Result<Accepted>> {
  const { relay } = ctx;
  const [id] = await acceptAndDeliver(relay, ctx.background, [{ composed, scheduledAt: null }]);
  if (source.acceptedEvent)
    relay.log.info(source.acceptedEvent, { [`${source.kind}_id`]: record.id, email_id: id });
  const messageId = composed.message.id;
  return ok({ kind: "queued", id: id ?? messageId, body: { id: messageId } });
}

/**
 * Queues under a replay key: the key is claimed with the idempotency machinery, and the claim
 * becomes "done" in the same store write that queues the message. A replay answers the first
 * answer without queueing. A write whose outcome is unknown keeps the key claimed: the sender's
 * retry then finds the message queued (a duplicate) or, once the claim lapsed, queues it.
 */
async function queueOnce(
  kind: IntakeKind,
  ctx: IntakeContext,
  recordId: string,
  composed: Composed,
  replay: { key: string; ttlMs: number },
  body: Uint8Array<ArrayBuffer>,
): Promise<Result<Accepted>> {
  if (!ctx.claim) throw new Error(`a ${kind} with a replay key needs ctx.claim`);
  const claim = ctx.claim(replay.key, await sha256Hex(body), replay.ttlMs);
  const held = await claim.begin(`${kind}.replay_guard`);
  if (held.kind === "in_flight")
    return reject("in_flight", "the first request with this key is still being queued", {
      retryAfterSeconds: held.retryAfterSeconds,
    });
  const id = composed.message.id;
  if (held.kind === "done") {
    ctx.relay.log.warn(`${kind}.duplicate`, { [`${kind}_id`]: recordId, reason: "duplicate" });
    count(kind, ctx, recordId, "duplicate");
    return ok({ kind: "duplicate", body: held.response.body as object });
  }
  const response = { status: 202, body: { id } };
  try {
    await acceptAndDeliver(
      ctx.relay,
      ctx.background,
      [{ composed, scheduledAt: null }],
      claim.seal(response),
    );
  } catch (err) {
    // Stored after all (the reply was lost): the answer this request would have given.
    return ok({ kind: "queued", id, body: (await claim.failed(err)).body as object });
  }
  return ok({ kind: "queued", id, body: response.body });
}

/**
 * Logs and counts a rejection. One not yet proven to come from the sender is first charged to the
 * client's failure limit (which may refuse it outright, uncounted, as a lookup would be).
 */
function settle(kind: IntakeKind, ctx: IntakeContext, id: string, rejection: Rejection): void {
  if (rejection.unproven) {
    ctx.guard.check();
    ctx.guard.fail();
  }
  const counter = counterOf(kind, rejection.reason);
  if (counter === null) return;
  ctx.relay.log.warn(`${kind}.rejected`, {
    [`${kind}_id`]: id,
    reason: counter,
    ...(rejection.field ? { field: rejection.field } : {}),
  });
  count(kind, ctx, id, counter);
}

function count(kind: IntakeKind, ctx: IntakeContext, id: string, counter: string): void {
  const { relay } = ctx;
  ctx.background(
    relay.store
      .count(kind, id, counter)
      .catch((err) => relay.log.warn(`${kind}.count_failed`, { error: String(err) })),
  );
}
