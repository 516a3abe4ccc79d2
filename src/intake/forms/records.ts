/**
 * Managing forms: a form built from a create request or changed by an update, the checks a form
 * passes before it is saved (a message rendered from sample values must compose and pass the
 * saving key's policy), and the store operations the routes call. Store failures are thrown as
 * they come; the route turns them into its 503.
 */
import { checkMessage, type KeyPolicy } from "../../auth/policy.ts";
import { ValidationError } from "../../errors.ts";
import { composeMessage } from "../../mail/compose.ts";
import type { Relay } from "../../relay.ts";
import {
  type CreateFormInput,
  checkForm,
  DEFAULTS,
  defaultText,
  type FieldSpec,
  type FormRecord,
  fieldSpec,
  list,
  REJECTION_REASONS,
  type UpdateFormInput,
} from "./forms.ts";
import { formCache, renderFormMessage } from "./source.ts";
import { newTokenKey } from "./start-token.ts";

/** Who saves a form: the key's id, and the part of its policy the form sends under. */
export interface Saver {
  keyId: string;
  policy: KeyPolicy | null;
}

function fieldsOf(input: CreateFormInput["fields"], maxBodyBytes: number): FieldSpec[] {
  return input.map((f, i) => fieldSpec(f, i, maxBodyBytes));
}

/** A new form from a validated create request, with every default filled in. */
export function newForm(body: CreateFormInput, saver: Saver, now: number): FormRecord {
  const maxBody = body.max_body_bytes ?? DEFAULTS.max_body_bytes;
  const fields = fieldsOf(body.fields, maxBody);
  return {
    id: crypto.randomUUID(),
    name: body.name ?? null,
    from: body.from,
    to: list(body.to),
    reply_to_field: body.reply_to_field ?? null,
    subject: body.subject ?? DEFAULTS.subject,
    text: body.text ?? (body.html === undefined ? defaultText(fields) : null),
    html: body.html ?? null,
    fields,
    allowed_origins: body.allowed_origins,
    success_url: body.success_url ?? null,
    error_url: body.error_url ?? null,
    honeypot: body.honeypot ?? DEFAULTS.honeypot,
    min_fill_seconds: body.min_fill_seconds ?? DEFAULTS.min_fill_seconds,
    start_token: body.start_token ?? "optional",
    ip_rate_limit: body.ip_rate_limit ?? DEFAULTS.ip_rate_limit,
    rate_limit: body.rate_limit ?? DEFAULTS.rate_limit,
    max_body_bytes: maxBody,
    turnstile_secret: body.turnstile_secret ?? null,
    token_key: newTokenKey(),
    policy: saver.policy,
    created_by: saver.keyId,
    created_at: now,
    updated_at: now,
  };
}

/** `undefined` keeps what was there; `null` clears it. */
const keep = <T>(value: T | undefined, was: T): T => (value === undefined ? was : value);

/** The settings an update may change, over the old form (fields checked by the caller). */
function changedSettings(old: FormRecord, body: UpdateFormInput) {
  return {
    name: keep(body.name, old.name),
    from: keep(body.from, old.from),
    to: body.to === undefined ? old.to : list(body.to),
    reply_to_field: keep(body.reply_to_field, old.reply_to_field),
    subject: keep(body.subject, old.subject),
    text: keep(body.text, old.text),
    html: keep(body.html, old.html),
    allowed_origins: keep(body.allowed_origins, old.allowed_origins),
    success_url: keep(body.success_url, old.success_url),
    error_url: keep(body.error_url, old.error_url),
    honeypot: keep(body.honeypot, old.honeypot),
    min_fill_seconds: keep(body.min_fill_seconds, old.min_fill_seconds),
    start_token: keep(body.start_token, old.start_token),
    ip_rate_limit: keep(body.ip_rate_limit, old.ip_rate_limit),
    rate_limit: keep(body.rate_limit, old.rate_limit),
    turnstile_secret: keep(body.turnstile_secret, old.turnstile_secret),
  };
}

/** The form after a validated update; what the update leaves must still make a whole form. */
export function changedForm(
  old: FormRecord,
  body: UpdateFormInput,
  saver: Saver,
  now: number,
): FormRecord {
  const maxBody = body.max_body_bytes ?? old.max_body_bytes;
  const form: FormRecord = {
    ...old,
    ...changedSettings(old, body),
    fields: body.fields ? fieldsOf(body.fields, maxBody) : old.fields,
    max_body_bytes: maxBody,
    // A form sends under the policy of the key that last saved it: a narrower key cannot widen
    // where an existing form sends by editing it.
    policy: saver.policy,
    updated_by: saver.keyId,
    updated_at: now,
  };
  if (form.text === null && form.html === null)
    throw new ValidationError("give a text or an html template (or both)", "text");
  form.fields.forEach((f, i) => {
    if (f.type === "file" && f.max_bytes > form.max_body_bytes)
      throw new ValidationError(
        `is larger than the form's max_body_bytes (${form.max_body_bytes})`,
        `fields[${i}].max_bytes`,
      );
  });
  return form;
}

/**
 * Checks a form before it is saved: everything `checkForm` checks, and that a message rendered
 * from sample values composes and passes the saving key's policy (sender and recipients).
 */
export async function checkWholeForm(relay: Relay, form: FormRecord): Promise<void> {
  checkForm(form, relay.config.limits.maxMessageBytes);
  const sample: Record<string, string> = {};
  for (const f of form.fields) sample[f.name] = f.type === "email" ? "visitor@example.com" : "x";
  // compose names the request's fields ("to[0]", "from"), which are the form's fields too.
  const composed = await composeMessage(
    renderFormMessage(form, sample, form.reply_to_field ? "visitor@example.com" : null, []),
    { id: crypto.randomUUID(), keyId: form.id, now: relay.now(), limits: relay.config.limits },
  );
  checkMessage(form.policy ?? undefined, composed);
}

export function saveForm(relay: Relay, form: FormRecord): Promise<void> {
  return formCache.save(relay.store, form);
}

/** The stored form, past the isolate's cache (an update starts from what is stored). */
export function storedForm(relay: Relay, id: string): Promise<FormRecord | null> {
  return relay.store.getRecord<FormRecord>("form", id);
}

/** What `GET /forms/:id` adds from the form's counters: every reason, counted or 0. */
export function formCounters(counters: Record<string, number>) {
  return { rejected: Object.fromEntries(REJECTION_REASONS.map((r) => [r, counters[r] ?? 0])) };
}
