/**
 * Managing inbound hooks: a hook built from a create request, changed by an update or given a new
 * secret, the checks a hook passes before it is saved (so receiving cannot fail on the hook
 * itself), and the store operations the routes call. Store failures are thrown as they come; the
 * route turns them into its 503.
 */
import { checkMessage, isValidCidr, type KeyPolicy } from "../../auth/policy.ts";
import { rateLimitField } from "../../auth/rate-limit.ts";
import { ValidationError } from "../../errors.ts";
import { composeMessage } from "../../mail/compose.ts";
import type { Relay } from "../../relay.ts";
import { checkTemplate } from "../../templates/render.ts";
import {
  type CreateHookInput,
  checkSuppliedSecret,
  type HookRecord,
  list,
  newSecret,
  REJECTION_REASONS,
  storedSecret,
  type UpdateHookInput,
  type VerifyInput,
  verifySpec,
} from "./hooks.ts";
import { renderHookMessage } from "./render.ts";
import { hookCache } from "./source.ts";

/** Who saves a hook: the key's id, and the part of its policy the hook sends under. */
export interface Saver {
  keyId: string;
  policy: KeyPolicy | null;
}

/** A proof method with its secret: shown once, stored as `stored`. */
export interface Proof {
  verify: HookRecord["verify"];
  secret: string;
  stored: HookRecord["secret"];
}

/** The spec and secret for a `verify` object: the caller's secret if given, else a new one. */
export async function proofOf(input: VerifyInput): Promise<Proof> {
  const verify = verifySpec(input);
  const supplied = "secret" in input ? input.secret : undefined;
  if (supplied !== undefined) checkSuppliedSecret(verify.type, supplied);
  const secret = supplied ?? newSecret(verify.type);
  return { verify, secret, stored: await storedSecret(verify.type, secret) };
}

export function newHook(
  body: CreateHookInput,
  proof: Proof,
  saver: Saver,
  now: number,
): HookRecord {
  return {
    id: crypto.randomUUID(),
    name: body.name ?? null,
    from: body.from,
    to: list(body.to),
    cc: body.cc === undefined ? null : list(body.cc),
    reply_to: body.reply_to === undefined ? null : list(body.reply_to),
    subject: body.subject,
    text: body.text ?? null,
    html: body.html ?? null,
    verify: proof.verify,
    secret: proof.stored,
    rate_limit: body.rate_limit ?? null,
    allowed_ips: body.allowed_ips ?? null,
    policy: saver.policy,
    created_by: saver.keyId,
    created_at: now,
    updated_at: now,
  };
}

/** `undefined` keeps what was there; `null` clears it. */
const keep = <T>(value: T | undefined, was: T): T => (value === undefined ? was : value);
const optionalList = (v: string | string[] | null | undefined, was: string[] | null) =>
  v === undefined ? was : v === null ? null : list(v);

/** The hook after a validated update; a new `proof` replaces its verify method and secret. */
export function changedHook(
  old: HookRecord,
  body: UpdateHookInput,
  proof: Proof | undefined,
  saver: Saver,
  now: number,
): HookRecord {
  return {
    ...old,
    name: keep(body.name, old.name),
    from: keep(body.from, old.from),
    to: body.to === undefined ? old.to : list(body.to),
    cc: optionalList(body.cc, old.cc),
    reply_to: optionalList(body.reply_to, old.reply_to),
    subject: keep(body.subject, old.subject),
    text: keep(body.text, old.text),
    html: keep(body.html, old.html),
    rate_limit: keep(body.rate_limit, old.rate_limit),
    allowed_ips: keep(body.allowed_ips, old.allowed_ips ?? null),
    ...(proof ? { verify: proof.verify, secret: proof.stored } : {}),
    // A hook sends under the policy of the key that last saved it: a narrower key cannot
    // widen where an existing hook sends by editing it.
    policy: saver.policy,
    updated_by: saver.keyId,
    updated_at: now,
  };
}

/** The same hook with a new secret for its proof method; the secret is shown once. */
export async function rotatedHook(
  old: HookRecord,
  now: number,
): Promise<{ hook: HookRecord; secret: string }> {
  const secret = newSecret(old.verify.type);
  const hook = { ...old, secret: await storedSecret(old.verify.type, secret), updated_at: now };
  return { hook, secret };
}

function checkAllowedIps(ranges: string[] | null | undefined): void {
  ranges?.forEach((range, i) => {
    if (!isValidCidr(range))
      throw new ValidationError(
        `${JSON.stringify(range)} is not an IP address or CIDR range`,
        `allowed_ips[${i}]`,
      );
  });
}

/**
 * Checks a hook before it is saved, so receiving cannot fail on the hook itself: the templates
 * parse and use only escaped forms, and a message rendered from an empty payload composes and
 * passes the saving key's policy (which checks sender and recipients as a send would).
 */
export async function checkHook(relay: Relay, hook: HookRecord): Promise<void> {
  checkTemplate(hook.subject, "subject");
  if (hook.text !== null) checkTemplate(hook.text, "text");
  if (hook.html !== null) checkTemplate(hook.html, "html");
  if (hook.text === null && hook.html === null)
    throw new ValidationError("give a text or an html template (or both)", "text");
  if (hook.rate_limit !== null) rateLimitField(hook.rate_limit, "rate_limit");
  checkAllowedIps(hook.allowed_ips);
  const composed = await composeMessage(renderHookMessage(hook, {}), {
    id: crypto.randomUUID(),
    keyId: hook.id,
    now: relay.now(),
    limits: relay.config.limits,
  });
  checkMessage(hook.policy ?? undefined, composed);
}

export function saveHook(relay: Relay, hook: HookRecord): Promise<void> {
  return hookCache.save(relay.store, hook);
}

/** The stored hook, past the isolate's cache (a change starts from what is stored). */
export function storedHook(relay: Relay, id: string): Promise<HookRecord | null> {
  return relay.store.getRecord<HookRecord>("hook", id);
}

/** What `GET /hooks/:id` adds from the hook's counters. */
export function hookCounters(counters: Record<string, number>) {
  return {
    rejected: Object.fromEntries(REJECTION_REASONS.map((r) => [r, counters[r] ?? 0])),
    duplicates: counters.duplicate ?? 0,
  };
}
