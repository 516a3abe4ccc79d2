/**
 * Forms: what a form is (fixed sender and recipients, templates over the submitted fields, the
 * fields it takes with their limits, the origins that may post to it, where to send the visitor
 * afterwards, and its abuse settings), the request schemas, and the checks run when one is saved.
 *
 * A form's id is public: it goes into a web page. Everything a visitor controls is a field value,
 * and a field value only ever fills a template (escaped for where it lands) or, for the one field
 * named by `reply_to_field`, becomes the Reply-To after being checked as a single mailbox. The
 * recipients, the sender and the headers are the operator's, fixed when the form is saved.
 */
import { z } from "@hono/zod-openapi";
import type { KeyPolicy } from "../../auth/policy.ts";
import { rateLimitField } from "../../auth/rate-limit.ts";
import { ValidationError } from "../../errors.ts";
import { checkTemplate } from "../../templates/render.ts";
import {
  MAX_FIELD_LENGTH,
  MAX_FIELDS,
  MAX_FORM_TEMPLATE_CHARS,
  MAX_MIN_FILL_SECONDS,
  MAX_ORIGINS,
} from "../limits.ts";

export type FieldType = "text" | "email" | "file";

export interface FieldSpec {
  name: string;
  type: FieldType;
  required: boolean;
  /** Several values under one name (checkbox groups, multi-selects, several files). */
  multiple: boolean;
  /** text and email: longest value in characters. */
  max_length: number;
  /** file: largest file in bytes. */
  max_bytes: number;
  /** file: accepted media types ("image/png", or "image/*"). */
  content_types: string[];
}

export interface FormRecord {
  id: string;
  name: string | null;
  from: string;
  to: string[];
  /** The submitted field whose value becomes the Reply-To; it must be an email field. */
  reply_to_field: string | null;
  subject: string;
  text: string | null;
  html: string | null;
  fields: FieldSpec[];
  /** Exact origins (scheme://host[:port]) whose pages may post to the form. */
  allowed_origins: string[];
  /** Where a plain HTML form post is sent (303) after success / after an error. */
  success_url: string | null;
  error_url: string | null;
  /** A field real visitors never fill (hidden by the page); a filled one marks a bot. */
  honeypot: string | null;
  /** A submission sooner than this after its start token was issued is refused. */
  min_fill_seconds: number;
  /** "required": a submission without a start token is refused (pages that run JavaScript). */
  start_token: "optional" | "required";
  /** Submissions per window from one client address, and for the whole form. */
  ip_rate_limit: string;
  rate_limit: string;
  /** Largest request body (all fields and files together). */
  max_body_bytes: number;
  /** Cloudflare Turnstile secret key; never shown in an answer. */
  turnstile_secret: string | null;
  /** HMAC key that signs start tokens; never shown. */
  token_key: string;
  /** The saving key's sending policy, applied to every message the form sends. */
  policy: KeyPolicy | null;
  /** The key that created it, and the key that last saved it (whose policy it sends under). */
  created_by: string;
  updated_by?: string;
  created_at: number;
  updated_at: number;
}

/** Field names the relay reads itself; a form's own fields may not use them. */
export const START_FIELD = "_start";
export const TURNSTILE_FIELD = "cf-turnstile-response";

export const DEFAULTS = {
  honeypot: "_gotcha",
  min_fill_seconds: 3,
  ip_rate_limit: "10/10m",
  rate_limit: "100/1h",
  max_body_bytes: 1024 * 1024,
  text_max_length: 5000,
  email_max_length: 254,
  file_max_bytes: 1024 * 1024,
  content_types: [
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
  ],
  subject: "New form submission",
} as const;

const FIELD_NAME = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;
const CONTENT_TYPE_PATTERN =
  /^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}\/(\*|[a-z0-9][a-z0-9!#$&^_.+-]{0,126})$/;

const FieldSchema = z
  .object({
    name: z.string().regex(FIELD_NAME, "must start with a letter and hold only A-Z a-z 0-9 _ -"),
    type: z.enum(["text", "email", "file"]).optional(),
    required: z.boolean().optional(),
    multiple: z.boolean().optional(),
    max_length: z.number().int().min(1).max(MAX_FIELD_LENGTH).optional(),
    max_bytes: z.number().int().min(1).optional(),
    content_types: z.array(z.string().max(255)).min(1).max(50).optional(),
  })
  .strict()
  .openapi("FormField");

const template = (what: string) =>
  z
    .string()
    .max(MAX_FORM_TEMPLATE_CHARS, `${what} template is over ${MAX_FORM_TEMPLATE_CHARS} characters`);
const urlField = z.string().max(2048);
const addressList = z.union([z.string().max(320), z.array(z.string().max(320)).min(1).max(50)]);

const FormFields = {
  name: z.string().max(100).optional(),
  from: z.string().max(320).openapi({ example: "Contact form <forms@example.com>" }),
  to: addressList.openapi({ example: ["team@example.com"] }),
  reply_to_field: z.string().max(64).optional().openapi({
    description: "The submitted field (type email) that becomes the message's Reply-To.",
    example: "email",
  }),
  subject: template("subject").optional().openapi({ example: "Contact: {{name}}" }),
  text: template("text").optional(),
  html: template("html").optional(),
  fields: z.array(FieldSchema).min(1).max(MAX_FIELDS),
  allowed_origins: z
    .array(z.string().max(300))
    .min(1)
    .max(MAX_ORIGINS)
    .openapi({ example: ["https://www.example.com"] }),
  success_url: urlField.optional(),
  error_url: urlField.optional(),
  honeypot: z.string().max(64).optional(),
  min_fill_seconds: z.number().int().min(0).max(MAX_MIN_FILL_SECONDS).optional(),
  start_token: z.enum(["optional", "required"]).optional(),
  ip_rate_limit: z.string().max(32).optional(),
  rate_limit: z.string().max(32).optional(),
  max_body_bytes: z.number().int().min(1024).optional(),
  turnstile_secret: z.string().min(1).max(256).optional(),
};

export const CreateFormSchema = z.object(FormFields).strict().openapi("CreateFormRequest");
export type CreateFormInput = z.infer<typeof CreateFormSchema>;

/** PATCH: any field; null clears an optional one. */
export const UpdateFormSchema = z
  .object({
    ...FormFields,
    name: FormFields.name.nullable(),
    from: FormFields.from.optional(),
    to: FormFields.to.optional(),
    fields: FormFields.fields.optional(),
    allowed_origins: FormFields.allowed_origins.optional(),
    reply_to_field: FormFields.reply_to_field.nullable(),
    text: FormFields.text.nullable(),
    html: FormFields.html.nullable(),
    success_url: FormFields.success_url.nullable(),
    error_url: FormFields.error_url.nullable(),
    honeypot: FormFields.honeypot.nullable(),
    turnstile_secret: FormFields.turnstile_secret.nullable(),
  })
  .strict()
  .openapi("UpdateFormRequest");
export type UpdateFormInput = z.infer<typeof UpdateFormSchema>;

export const list = (value: string | string[]): string[] =>
  typeof value === "string" ? [value] : value;

/** An exact origin, as a browser sends it in the Origin header: scheme://host[:port], nothing more. */
export function checkOrigin(value: string, field: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ValidationError("is not an origin such as https://www.example.com", field);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:")
    throw new ValidationError("must be an http or https origin", field);
  // URL normalises (lower-case host, default port dropped); the value must already be that form,
  // since the browser's Origin header is compared with it exactly.
  if (url.origin !== value)
    throw new ValidationError(
      `must be exactly an origin (scheme://host[:port], no path or trailing slash), such as ${JSON.stringify(url.origin)}`,
      field,
    );
  return value;
}

/** An absolute http(s) URL to send the visitor to. */
export function checkRedirectUrl(value: string, field: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ValidationError("must be an absolute http or https URL", field);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:")
    throw new ValidationError("must be an absolute http or https URL", field);
  if (/[\u0000-\u0020\u007f]/.test(value))
    throw new ValidationError("must not contain spaces or control characters", field);
  return url.href;
}

/** Fills in a field's defaults and checks its limits against the form's and the relay's. */
export function fieldSpec(
  input: z.infer<typeof FieldSchema>,
  index: number,
  maxBodyBytes: number,
): FieldSpec {
  const at = `fields[${index}]`;
  const type = input.type ?? "text";
  if (type !== "file" && (input.max_bytes !== undefined || input.content_types !== undefined))
    throw new ValidationError("max_bytes and content_types apply to file fields only", at);
  if (type === "file" && input.max_length !== undefined)
    throw new ValidationError("max_length applies to text and email fields only", at);
  const maxBytes = input.max_bytes ?? Math.min(DEFAULTS.file_max_bytes, maxBodyBytes);
  if (maxBytes > maxBodyBytes)
    throw new ValidationError(
      `is larger than the form's max_body_bytes (${maxBodyBytes})`,
      `${at}.max_bytes`,
    );
  const contentTypes = (input.content_types ?? [...DEFAULTS.content_types]).map((t, i) => {
    const lower = t.toLowerCase();
    if (!CONTENT_TYPE_PATTERN.test(lower) || /^(multipart|message)\//.test(lower))
      throw new ValidationError(
        "must be a single-part media type (image/png) or a type with any subtype (image/*)",
        `${at}.content_types[${i}]`,
      );
    return lower;
  });
  return {
    name: input.name,
    type,
    required: input.required ?? false,
    multiple: input.multiple ?? false,
    max_length:
      input.max_length ?? (type === "email" ? DEFAULTS.email_max_length : DEFAULTS.text_max_length),
    max_bytes: type === "file" ? maxBytes : 0,
    content_types: type === "file" ? contentTypes : [],
  };
}

/** A text body listing every text and email field, for a form saved without text or html. */
export function defaultText(fields: FieldSpec[]): string {
  return fields
    .filter((f) => f.type !== "file")
    .map((f) => `${f.name}: {{${f.name}}}`)
    .join("\n");
}

/**
 * Checks what a saved form must satisfy beyond the schema: names unique and not reserved, the
 * reply-to field an email field, templates valid, URLs and origins exact, limits within the
 * relay's. Errors name the field.
 */
export function checkForm(form: FormRecord, relayMaxMessageBytes: number): void {
  const seen = new Set<string>();
  const reserved = new Set([START_FIELD, TURNSTILE_FIELD, form.honeypot ?? ""]);
  form.fields.forEach((f, i) => {
    if (seen.has(f.name))
      throw new ValidationError(`${JSON.stringify(f.name)} is listed twice`, `fields[${i}].name`);
    if (reserved.has(f.name))
      throw new ValidationError(
        `${JSON.stringify(f.name)} is reserved (the start token, Turnstile or the honeypot)`,
        `fields[${i}].name`,
      );
    seen.add(f.name);
  });
  if (form.honeypot !== null && !/^[A-Za-z_][A-Za-z0-9_-]{0,63}$/.test(form.honeypot))
    throw new ValidationError("must be a field name (A-Z a-z 0-9 _ -)", "honeypot");
  if (form.reply_to_field !== null) {
    const f = form.fields.find((x) => x.name === form.reply_to_field);
    if (!f) throw new ValidationError("names no field of this form", "reply_to_field");
    if (f.type !== "email" || f.multiple)
      throw new ValidationError(
        "must name a single-valued field of type email: only a checked address may become the Reply-To",
        "reply_to_field",
      );
  }
  checkTemplate(form.subject, "subject");
  if (form.text !== null) checkTemplate(form.text, "text");
  if (form.html !== null) checkTemplate(form.html, "html");
  form.allowed_origins.forEach((o, i) => {
    checkOrigin(o, `allowed_origins[${i}]`);
  });
  if (form.success_url !== null) checkRedirectUrl(form.success_url, "success_url");
  if (form.error_url !== null) checkRedirectUrl(form.error_url, "error_url");
  rateLimitField(form.ip_rate_limit, "ip_rate_limit");
  rateLimitField(form.rate_limit, "rate_limit");
  if (form.max_body_bytes > relayMaxMessageBytes)
    throw new ValidationError(
      `must be at most the relay's MAX_MESSAGE_BYTES (${relayMaxMessageBytes})`,
      "max_body_bytes",
    );
}

/** Why submissions are refused; each is counted per form and shown by `GET /forms/:id`. */
export const REJECTION_REASONS = [
  "origin",
  "rate_limited",
  "too_large",
  "invalid_body",
  "invalid_field",
  "honeypot",
  "too_fast",
  "start_token",
  "turnstile",
] as const;
export type RejectionReason = (typeof REJECTION_REASONS)[number];

/** What an answer shows of a form: never the Turnstile secret or the token key. */
export function formView(form: FormRecord, origin: string) {
  const {
    turnstile_secret: _secret,
    token_key: _key,
    policy: _policy,
    created_at,
    updated_at,
    ...shown
  } = form;
  return {
    object: "form" as const,
    ...shown,
    updated_by: form.updated_by ?? form.created_by,
    turnstile: form.turnstile_secret !== null,
    action_url: `${origin}/f/${form.id}`,
    start_url: `${origin}/f/${form.id}/start`,
    created_at: new Date(created_at).toISOString(),
    updated_at: new Date(updated_at).toISOString(),
  };
}
