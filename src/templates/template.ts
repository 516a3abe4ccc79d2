/**
 * Email templates as Resend defines them: a name, an optional alias, default `from`, `subject`
 * and `reply_to`, an HTML body (and a text one) with `{{{NAME}}}` variables, each declared with
 * a type (string or number) and an optional fallback. A template has a draft, which every change
 * edits, and a published version, a copy of the draft at the last publish: only the published
 * version sends. The request schemas, the record, the checks a template passes before it is
 * saved, its Resend-shaped views, and rendering a published version for a send request. No store
 * access here: the use cases are src/template-library.ts.
 */
import { z } from "@hono/zod-openapi";
import { TooLargeError, ValidationError } from "../errors.ts";
import { MAX_SUBJECT_CHARS, noControl } from "../mail/request.ts";
import { renderVariables, templateVariables, VARIABLE_NAME } from "./render.ts";

/**
 * Every template limit, in one place. Templates are records read whole: listing reads all of
 * them in one command (HGETALL, answered base64, a third larger), which must stay well inside
 * Upstash's 10 MB response limit: 50 records of 96 KiB are 4.7 MiB stored, 6.3 MiB answered.
 */
export const TEMPLATE_LIMITS = {
  /** One template as stored (UTF-8 JSON, its draft and its published version together). */
  maxRecordBytes: 96 * 1024,
  /** Templates per relay. */
  maxTemplates: 50,
  /** Variables per template (Resend's limit). */
  maxVariables: 50,
  /** A name, or a string fallback value. */
  maxNameChars: 256,
  maxFallbackChars: 2000,
} as const;

/** Names Resend reserves for its contacts and broadcasts. */
const RESERVED = new Set([
  "FIRST_NAME",
  "LAST_NAME",
  "EMAIL",
  "UNSUBSCRIBE_URL",
  "contact",
  "this",
]);

/** An alias: what a send may name instead of the id. Never UUID-shaped, so the two never clash. */
const ALIAS = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const UUID_SHAPE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

// ---- Requests (the SDK's snake_case bodies) ---------------------------------------------------

const VariableInputSchema = z
  .object({
    key: z.string({ error: "is required" }).regex(VARIABLE_NAME, {
      error: "must be letters, digits and _, starting with a letter or _ (up to 64)",
    }),
    type: z.enum(["string", "number"], { error: "must be string or number" }),
    fallback_value: z
      .union([z.string().max(TEMPLATE_LIMITS.maxFallbackChars), z.number()])
      .nullable()
      .optional(),
  })
  .openapi("TemplateVariableInput");

const addressList = z.union([noControl("address"), z.array(noControl("address")).max(50)]);
const NOT_AN_OBJECT = { error: "must be a JSON object" };

const templateFields = {
  name: z.string({ error: "is required" }).min(1).max(TEMPLATE_LIMITS.maxNameChars),
  alias: z
    .string()
    .regex(ALIAS, { error: "must be 1 to 64 letters, digits, ., _ or -" })
    .refine((a) => !UUID_SHAPE.test(a), { error: "must not look like a template id (a UUID)" })
    .nullable()
    .optional(),
  from: noControl("from").max(998).nullable().optional(),
  subject: z.string().max(MAX_SUBJECT_CHARS).nullable().optional(),
  reply_to: addressList.nullable().optional(),
  html: z.string({ error: "is required" }),
  text: z.string().nullable().optional(),
  variables: z.array(VariableInputSchema).max(TEMPLATE_LIMITS.maxVariables).optional(),
};

export const CreateTemplateSchema = z
  .object(templateFields, NOT_AN_OBJECT)
  .openapi("CreateTemplateRequest");
export const UpdateTemplateSchema = z
  .object(
    { ...templateFields, name: templateFields.name.optional(), html: z.string().optional() },
    NOT_AN_OBJECT,
  )
  .openapi("UpdateTemplateRequest");

export type CreateTemplateInput = z.infer<typeof CreateTemplateSchema>;
export type UpdateTemplateInput = z.infer<typeof UpdateTemplateSchema>;

/** `template` in a send request: the template's id or alias, and the variables' values. */
export const TemplateRefSchema = z
  .object(
    {
      id: z.string({ error: "is required" }).min(1).max(256),
      variables: z
        .record(z.string(), z.union([z.string(), z.number()]), {
          error: "must be an object of strings and numbers",
        })
        .optional(),
    },
    NOT_AN_OBJECT,
  )
  .openapi("TemplateRef");
export type TemplateRef = z.infer<typeof TemplateRefSchema>;

// ---- The record -------------------------------------------------------------------------------

export interface TemplateVariable {
  key: string;
  type: "string" | "number";
  fallback_value: string | number | null;
  created_at: number;
  updated_at: number;
}

export interface TemplateVersion {
  version_id: string;
  subject: string | null;
  from: string | null;
  reply_to: string[] | null;
  html: string;
  text: string | null;
  variables: TemplateVariable[];
}

export interface TemplateRecord {
  id: string;
  name: string;
  alias: string | null;
  draft: TemplateVersion;
  published: (TemplateVersion & { published_at: number }) | null;
  created_by: string;
  created_at: number;
  updated_at: number;
}

const list = (v: string | string[] | null | undefined): string[] | null =>
  v === undefined || v === null ? null : Array.isArray(v) ? v : [v];

function variablesOf(
  input: CreateTemplateInput["variables"],
  old: TemplateVariable[],
  now: number,
): TemplateVariable[] {
  const seen = new Set<string>();
  return (input ?? []).map((v, i) => {
    const field = `variables[${i}]`;
    if (seen.has(v.key)) throw new ValidationError(`declares ${v.key} twice`, `${field}.key`);
    seen.add(v.key);
    // Names starting "__" are refused too: no `__proto__` among a template's values.
    if (RESERVED.has(v.key) || v.key.startsWith("__"))
      throw new ValidationError(`${v.key} is reserved`, `${field}.key`);
    const fallback = v.fallback_value ?? null;
    if (fallback !== null && typeof fallback !== v.type)
      throw new ValidationError(`must be a ${v.type}, as the type says`, `${field}.fallback_value`);
    const was = old.find((o) => o.key === v.key);
    const same = was && was.type === v.type && was.fallback_value === fallback;
    return {
      key: v.key,
      type: v.type,
      fallback_value: fallback,
      created_at: was?.created_at ?? now,
      updated_at: same ? was.updated_at : now,
    };
  });
}

/** Every variable the subject, HTML and text use must be declared (Resend refuses it too). */
function checkVersion(version: TemplateVersion): void {
  const declared = new Set(version.variables.map((v) => v.key));
  const parts: [string, string | null][] = [
    ["subject", version.subject],
    ["html", version.html],
    ["text", version.text],
  ];
  for (const [field, template] of parts) {
    if (template === null) continue;
    for (const name of templateVariables(template, field)) {
      if (!declared.has(name))
        throw new ValidationError(`uses {{{${name}}}}, which is not declared in variables`, field);
    }
  }
}

/** The record's size as stored, which `TEMPLATE_LIMITS.maxRecordBytes` bounds. */
function checkSize(record: TemplateRecord): void {
  const bytes = new TextEncoder().encode(JSON.stringify(record)).length;
  if (bytes > TEMPLATE_LIMITS.maxRecordBytes)
    throw new TooLargeError(
      `The template is ${bytes} bytes as stored (draft and published version together), over the limit of ${TEMPLATE_LIMITS.maxRecordBytes}`,
    );
}

/** A new template (a draft) from a validated create request. */
export function newTemplate(input: CreateTemplateInput, by: string, now: number): TemplateRecord {
  const draft: TemplateVersion = {
    version_id: crypto.randomUUID(),
    subject: input.subject ?? null,
    from: input.from ?? null,
    reply_to: list(input.reply_to),
    html: input.html,
    text: input.text ?? null,
    variables: variablesOf(input.variables, [], now),
  };
  checkVersion(draft);
  const record: TemplateRecord = {
    id: crypto.randomUUID(),
    name: input.name,
    alias: input.alias ?? null,
    draft,
    published: null,
    created_by: by,
    created_at: now,
    updated_at: now,
  };
  checkSize(record);
  return record;
}

/** `undefined` keeps what was there; `null` clears it. */
const keep = <T>(value: T | undefined, was: T): T => (value === undefined ? was : value);

/** The template with its draft changed by a validated update (a new draft version). */
export function updatedTemplate(
  old: TemplateRecord,
  input: UpdateTemplateInput,
  now: number,
): TemplateRecord {
  const was = old.draft;
  const draft: TemplateVersion = {
    version_id: crypto.randomUUID(),
    subject: keep(input.subject, was.subject),
    from: keep(input.from, was.from),
    reply_to: input.reply_to === undefined ? was.reply_to : list(input.reply_to),
    html: input.html ?? was.html,
    text: keep(input.text, was.text),
    variables:
      input.variables === undefined
        ? was.variables
        : variablesOf(input.variables, was.variables, now),
  };
  checkVersion(draft);
  const record: TemplateRecord = {
    ...old,
    name: input.name ?? old.name,
    alias: keep(input.alias, old.alias),
    draft,
    updated_at: now,
  };
  checkSize(record);
  return record;
}

/** The draft becomes the published version. Publishing an unchanged draft changes nothing. */
export function publishedTemplate(record: TemplateRecord, now: number): TemplateRecord {
  if (record.published?.version_id === record.draft.version_id) return record;
  const out = { ...record, published: { ...record.draft, published_at: now }, updated_at: now };
  checkSize(out);
  return out;
}

/** A copy of the template's draft as a new draft template, without the alias. */
export function duplicateTemplate(record: TemplateRecord, by: string, now: number): TemplateRecord {
  return {
    id: crypto.randomUUID(),
    name: `${record.name} (Copy)`.slice(0, TEMPLATE_LIMITS.maxNameChars),
    alias: null,
    draft: { ...record.draft, version_id: crypto.randomUUID() },
    published: null,
    created_by: by,
    created_at: now,
    updated_at: now,
  };
}

// ---- Views (Resend's shapes) ------------------------------------------------------------------

const iso = (ms: number) => new Date(ms).toISOString();

/** What `templates.list` shows of a template. */
export function templateListItem(record: TemplateRecord) {
  return {
    id: record.id,
    name: record.name,
    alias: record.alias,
    status: record.published ? ("published" as const) : ("draft" as const),
    published_at: record.published ? iso(record.published.published_at) : null,
    created_at: iso(record.created_at),
    updated_at: iso(record.updated_at),
  };
}

/** What `templates.get` shows: the draft (what the next publish sends) and the status. */
export function templateView(record: TemplateRecord) {
  const { draft } = record;
  return {
    object: "template" as const,
    ...templateListItem(record),
    subject: draft.subject,
    from: draft.from,
    reply_to: draft.reply_to,
    html: draft.html,
    text: draft.text,
    variables: draft.variables.map((v) => ({
      key: v.key,
      type: v.type,
      fallback_value: v.fallback_value,
      created_at: iso(v.created_at),
      updated_at: iso(v.updated_at),
    })),
    has_unpublished_versions: record.published?.version_id !== draft.version_id,
    current_version_id: draft.version_id,
  };
}

// ---- Sending ----------------------------------------------------------------------------------

/** What a published version contributes to a send request, rendered with its variables. */
export interface RenderedTemplate {
  from: string | null;
  subject: string | null;
  reply_to: string[] | null;
  html: string;
  text: string | null;
}

/**
 * The values to render with: each declared variable's value from the request, else its
 * fallback. A variable with neither, or a value of the wrong type, is a ValidationError naming
 * `template.variables.<KEY>`. Values for undeclared names are ignored, as nothing uses them.
 */
function valuesFor(
  version: TemplateVersion,
  given: Readonly<Record<string, string | number>>,
): Record<string, string | number> {
  const values: Record<string, string | number> = Object.create(null);
  for (const v of version.variables) {
    const field = `template.variables.${v.key}`;
    const value = Object.hasOwn(given, v.key) ? given[v.key] : undefined;
    if (value === undefined) {
      if (v.fallback_value === null)
        throw new ValidationError("is required: the template has no fallback value for it", field);
      values[v.key] = v.fallback_value;
    } else if (typeof value !== v.type || (v.type === "number" && !Number.isFinite(value))) {
      throw new ValidationError(`must be a ${v.type}`, field);
    } else values[v.key] = value;
  }
  return values;
}

/**
 * Renders the published version: HTML-escaped values in the HTML, plain values in the text, and
 * in the subject values stripped of line breaks and control characters (no header injection).
 */
export function renderPublished(
  record: TemplateRecord,
  given: Readonly<Record<string, string | number>>,
): RenderedTemplate {
  const version = record.published;
  if (!version)
    throw new ValidationError(
      "is not published: publish the template to send with it",
      "template.id",
    );
  const values = valuesFor(version, given);
  return {
    from: version.from,
    subject: version.subject === null ? null : renderVariables(version.subject, values, "header"),
    reply_to: version.reply_to,
    html: renderVariables(version.html, values, "html"),
    text: version.text === null ? null : renderVariables(version.text, values, "text"),
  };
}

/** Whether a path's identifier names a template by id (a UUID) rather than by alias. */
export const isTemplateId = (ref: string) => UUID_SHAPE.test(ref);
