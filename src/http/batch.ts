/**
 * POST /emails/batch, composed: every email checked as a single send would be (schema, compose,
 * the key's policy), then the batch's stored total. Resend's two modes, chosen by the
 * `x-batch-validation` header the SDK sends: `strict` (the default) accepts all or none, the first
 * failure answering for the request; `permissive` queues the valid emails and reports each invalid
 * one as `{ index, message }`.
 */
import type { Context } from "hono";
import { checkMessage } from "../auth/policy.ts";
import { RelayError, TooLargeError, ValidationError } from "../errors.ts";
import { type Composed, composeMessage } from "../mail/compose.ts";
import { SendEmailSchema } from "../mail/request.ts";
import { validate } from "./body.ts";
import type { AppEnv } from "./env.ts";
import { parseScheduledAt } from "./schedule.ts";
import { BatchSchema } from "./schemas.ts";
import { applyTemplates, LEFT_OUT } from "./send-template.ts";

export type BatchValidation = "strict" | "permissive";

export interface BatchItem {
  composed: Composed;
  scheduledAt: number | null;
}

export interface ComposedBatch {
  items: BatchItem[];
  /** Permissive mode only: the emails left out, by their index in the request. */
  errors: { index: number; message: string }[];
}

/** The mode the request asks for; anything but the two names is 422 naming the header. */
export function batchValidation(c: Context): BatchValidation {
  const value = (c.req.header("x-batch-validation") ?? "strict").trim().toLowerCase();
  if (value === "strict" || value === "permissive") return value;
  throw new ValidationError("must be strict or permissive", "x-batch-validation");
}

/** What the request's answer (and its idempotent replay) is. */
export function batchAnswer(batch: ComposedBatch, mode: BatchValidation) {
  const data = batch.items.map((i) => ({ id: i.composed.message.id }));
  return mode === "permissive" ? { data, errors: batch.errors } : { data };
}

/**
 * The request's emails: a list of 1 to the batch limit (in strict mode each one valid), with
 * templates applied first, since a templated email takes its from and subject from its template.
 * In permissive mode an email whose template fails is reported in `errors` and stands as LEFT_OUT.
 */
async function batchBodies(
  c: Context<AppEnv>,
  raw: unknown,
  maxBatch: number,
  mode: BatchValidation,
  errors: ComposedBatch["errors"],
): Promise<unknown[]> {
  if (Array.isArray(raw) && raw.length > maxBatch) {
    throw new ValidationError(
      `a batch holds at most ${maxBatch} emails, got ${raw.length}`,
      "body",
    );
  }
  const bodies = await applyTemplates(
    c,
    raw,
    mode === "permissive"
      ? (index, err) => errors.push({ index, message: err.message })
      : undefined,
  );
  // Strict: every email's fields first, as before there were modes.
  if (mode === "strict" || !Array.isArray(bodies) || bodies.length === 0) {
    validate(BatchSchema, bodies);
  }
  return bodies as unknown[];
}

/**
 * One email's failure, named by its index ("[3].to: ..." as the batch's schema validation names
 * it): thrown again in strict mode or when it is not the email's fault (a 5xx, a bug), else
 * returned to be reported in `errors`.
 */
function reportable(err: unknown, index: number, mode: BatchValidation): RelayError {
  const named =
    err instanceof ValidationError && !err.field?.startsWith(`[${index}]`)
      ? err.within(`[${index}]`)
      : err;
  if (mode === "strict" || !(named instanceof RelayError) || named.status >= 500) throw named;
  return named;
}

/**
 * Composes each email of a batch. In strict mode the first failure throws, named by its index
 * ("[3].to: ..."); in permissive mode a 4xx failure of one email becomes its entry in `errors`
 * (with the same message), and an email that would take the batch over the stored-size limit is
 * left out the same way. A body that is not a list of 1 to the batch limit fails in both modes.
 */
export async function composeBatch(
  c: Context<AppEnv>,
  raw: unknown,
  mode: BatchValidation,
): Promise<ComposedBatch> {
  const relay = c.get("relay");
  const principal = c.get("principal");
  const limits = relay.config.limits;
  const now = relay.now();
  const batch: ComposedBatch = { items: [], errors: [] };
  const bodies = await batchBodies(c, raw, limits.maxBatch, mode, batch.errors);
  let total = 0;
  for (const [index, item] of bodies.entries()) {
    if (item === LEFT_OUT) continue;
    try {
      const body = validate(SendEmailSchema, item, `[${index}]`);
      const ctx = { id: crypto.randomUUID(), keyId: principal.keyId, now, limits };
      const scheduledAt = parseScheduledAt(body.scheduled_at, now);
      const composed = await composeMessage(body, ctx);
      checkMessage(principal.policy, composed);
      // The batch is stored in one request, so it must fit where one message fits: a permissive
      // batch leaves out the emails that would take it over.
      if (mode === "permissive" && total + composed.storedBytes > limits.maxMessageBytes) {
        throw new TooLargeError(
          `the batch would be over ${limits.maxMessageBytes} bytes in total as stored with this email; send it in another batch`,
        );
      }
      total += composed.storedBytes;
      batch.items.push({ composed, scheduledAt });
    } catch (err) {
      batch.errors.push({ index, message: reportable(err, index, mode).message });
    }
  }
  // Template failures were reported before the others: answer them all in the request's order.
  batch.errors.sort((a, b) => a.index - b.index);
  if (total > limits.maxMessageBytes) {
    throw new TooLargeError(
      `the batch is ${total} bytes in total as stored, over the limit of ${limits.maxMessageBytes}; split it`,
    );
  }
  return batch;
}
