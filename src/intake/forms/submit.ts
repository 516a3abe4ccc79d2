/**
 * Reading a submission the three ways a page sends one (application/x-www-form-urlencoded and
 * multipart/form-data from a plain `<form>` or a FormData fetch, application/json from fetch), and
 * checking it against the form's fields. What comes out is the data the templates see, the files
 * as attachments, and the Reply-To address: nothing else of the visitor's reaches the message.
 *
 * Fields the form does not list are ignored (pages carry submit buttons, CSRF tokens of other
 * tools, analytics fields); the request's size and its number of entries are bounded instead.
 */
import { Buffer } from "node:buffer";
import { MalformedBodyError } from "../../errors.ts";
import { parseJson } from "../../json.ts";
import { isMailboxAddress } from "../../mail/address.ts";
import { MAX_FILE_NAME_CHARS, MAX_SUBMISSION_ENTRIES } from "../limits.ts";
import { ok, type Rejection, type Result, reject } from "../result.ts";
import type { FieldSpec, FormRecord } from "./forms.ts";

export interface Submission {
  values: Map<string, string[]>;
  files: Map<string, File[]>;
}

export interface FormAttachment {
  filename: string;
  content: string;
  content_type: string;
}

export interface CheckedSubmission {
  /** What the templates see: each listed field's value (a list for `multiple`); file names for files. */
  data: Record<string, string | string[]>;
  attachments: FormAttachment[];
  replyTo: string | null;
}

function add<T>(map: Map<string, T[]>, name: string, value: T): void {
  const list = map.get(name);
  if (list) list.push(value);
  else map.set(name, [value]);
}

/** Counts entries as they are read; the one past the limit is the refusal. */
function entryCounter(): () => Rejection | undefined {
  let entries = 0;
  return () =>
    ++entries > MAX_SUBMISSION_ENTRIES
      ? reject("too_large", `a submission may hold at most ${MAX_SUBMISSION_ENTRIES} entries`)
      : undefined;
}

const empty = (): Submission => ({ values: new Map(), files: new Map() });

function parseUrlencoded(bytes: Uint8Array<ArrayBuffer>): Result<Submission> {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    return reject(
      "invalid_body",
      'the form data is not valid UTF-8 (give the form accept-charset="utf-8")',
    );
  }
  const out = empty();
  const count = entryCounter();
  for (const [name, value] of new URLSearchParams(text)) {
    const over = count();
    if (over) return over;
    add(out.values, name, value);
  }
  return ok(out);
}

async function parseMultipart(
  bytes: Uint8Array<ArrayBuffer>,
  contentType: string,
): Promise<Result<Submission>> {
  let data: FormData;
  try {
    // The platform's own multipart parser (workerd, Deno), over a body already within limits.
    data = await new Response(bytes, { headers: { "content-type": contentType } }).formData();
  } catch {
    return reject("invalid_body", "the multipart form data could not be parsed");
  }
  const out = empty();
  const count = entryCounter();
  for (const [name, value] of data) {
    const over = count();
    if (over) return over;
    if (typeof value === "string") add(out.values, name, value);
    // A file input left empty still sends a part: no name, no bytes.
    else if (value.size > 0 || value.name !== "") add(out.files, name, value);
  }
  return ok(out);
}

/** One JSON member's values: scalars as text, nulls skipped, objects refused. */
function jsonValues(name: string, value: unknown): Result<string[]> {
  const out: string[] = [];
  for (const item of Array.isArray(value) ? value : [value]) {
    if (item === null || item === undefined) continue;
    if (typeof item === "object")
      return reject("invalid_field", "must be a string, a number, a boolean or a list of them", {
        field: name,
      });
    out.push(String(item));
  }
  return ok(out);
}

function parseJsonSubmission(bytes: Uint8Array<ArrayBuffer>): Result<Submission> {
  let json: unknown;
  try {
    json = parseJson(bytes);
  } catch (err) {
    if (err instanceof MalformedBodyError) return reject("invalid_body", err.message);
    throw err;
  }
  if (json === null || typeof json !== "object" || Array.isArray(json))
    return reject("invalid_payload", "the JSON body must be an object of field names and values");
  const out = empty();
  const count = entryCounter();
  for (const [name, value] of Object.entries(json)) {
    const over = count();
    if (over) return over;
    const values = jsonValues(name, value);
    if (!values.ok) return values;
    for (const v of values.value) add(out.values, name, v);
  }
  return ok(out);
}

/** Parses the body by its Content-Type; anything else is refused as unsupported. */
export async function parseSubmission(
  bytes: Uint8Array<ArrayBuffer>,
  contentType: string | undefined,
): Promise<Result<Submission>> {
  const type = (contentType ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
  if (type === "application/x-www-form-urlencoded") return parseUrlencoded(bytes);
  if (type === "multipart/form-data") return parseMultipart(bytes, contentType ?? "");
  if (type === "application/json") return parseJsonSubmission(bytes);
  return reject(
    "unsupported_type",
    `Content-Type ${JSON.stringify(type || "(none)")} is not supported: send application/x-www-form-urlencoded, multipart/form-data or application/json`,
  );
}

/** The first value of a name (the relay's own fields: start token, Turnstile, honeypot). */
export function firstValue(s: Submission, name: string): string {
  return s.values.get(name)?.[0] ?? "";
}

// Text may hold line breaks and tabs; any other control character has no place in a message.
const TEXT_CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;
// File names end up in a header: no controls, no bidirectional tricks, no path.
const NAME_UNSAFE =
  /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069/\\]/g;

function typeAccepted(type: string, accepted: string[]): boolean {
  return accepted.some((a) => (a.endsWith("/*") ? type.startsWith(a.slice(0, -1)) : type === a));
}

const fieldError = (field: string, message: string): Rejection =>
  reject("invalid_field", message, { field });
const missing = (field: string): Rejection => reject("missing_field", "is required", { field });

async function checkFile(spec: FieldSpec, file: File): Promise<Result<FormAttachment>> {
  const field = spec.name;
  if (file.size > spec.max_bytes)
    return reject(
      "too_large",
      `the file is ${file.size} bytes, over this field's limit of ${spec.max_bytes}`,
      { field },
    );
  const type = (file.type || "application/octet-stream").split(";")[0]?.trim().toLowerCase() ?? "";
  if (!typeAccepted(type, spec.content_types))
    return fieldError(
      field,
      `files of type ${type} are not accepted (accepted: ${spec.content_types.join(", ")})`,
    );
  const filename = (file.name || "attachment")
    .replace(NAME_UNSAFE, "_")
    .slice(0, MAX_FILE_NAME_CHARS);
  const bytes = new Uint8Array(await file.arrayBuffer());
  return ok({ filename, content: Buffer.from(bytes).toString("base64"), content_type: type });
}

/** A file field: its files checked and made attachments; the template sees their names. */
async function checkFileField(
  spec: FieldSpec,
  s: Submission,
): Promise<Result<{ shown: string | string[]; attachments: FormAttachment[] }>> {
  const name = spec.name;
  if (s.values.get(name)?.some((v) => v !== ""))
    return fieldError(name, 'expects a file: give the form enctype="multipart/form-data"');
  const files = s.files.get(name) ?? [];
  if (files.length === 0 && spec.required) return missing(name);
  if (files.length > 1 && !spec.multiple) return fieldError(name, "takes one file");
  const attachments: FormAttachment[] = [];
  for (const file of files) {
    const checked = await checkFile(spec, file);
    if (!checked.ok) return checked;
    attachments.push(checked.value);
  }
  const names = attachments.map((a) => a.filename);
  return ok({ shown: spec.multiple ? names : (names[0] ?? ""), attachments });
}

/** The first problem with one text or email value, if any. */
function valueProblem(spec: FieldSpec, v: string): string | undefined {
  if (v.length > spec.max_length) return `is longer than ${spec.max_length} characters`;
  if (TEXT_CONTROL.test(v)) return "must not contain control characters";
  if (spec.type === "email" && !isMailboxAddress(v))
    return `${JSON.stringify(v.slice(0, 80))} is not an email address`;
  return undefined;
}

/** A text or email field: its values normalised and checked. */
function checkTextField(spec: FieldSpec, s: Submission): Result<string | string[]> {
  const name = spec.name;
  if (s.files.has(name)) return fieldError(name, "expects text, not a file");
  let values = (s.values.get(name) ?? []).map((v) => v.replace(/\r\n?/g, "\n"));
  if (spec.type === "email") values = values.map((v) => v.trim());
  values = values.filter((v) => v.trim() !== "");
  if (values.length === 0 && spec.required) return missing(name);
  if (values.length > 1 && !spec.multiple) return fieldError(name, "was sent more than once");
  for (const v of values) {
    const problem = valueProblem(spec, v);
    if (problem) return fieldError(name, problem);
  }
  return ok(spec.multiple ? values : (values[0] ?? ""));
}

/** Checks every listed field; the first problem is the answer, naming its field. */
export async function checkSubmission(
  form: FormRecord,
  s: Submission,
): Promise<Result<CheckedSubmission>> {
  const data: Record<string, string | string[]> = {};
  const attachments: FormAttachment[] = [];
  for (const spec of form.fields) {
    if (spec.type === "file") {
      const checked = await checkFileField(spec, s);
      if (!checked.ok) return checked;
      attachments.push(...checked.value.attachments);
      data[spec.name] = checked.value.shown;
    } else {
      const checked = checkTextField(spec, s);
      if (!checked.ok) return checked;
      data[spec.name] = checked.value;
    }
  }
  const replyTo = form.reply_to_field ? data[form.reply_to_field] : undefined;
  return ok({
    data,
    attachments,
    replyTo: typeof replyTo === "string" && replyTo !== "" ? replyTo : null,
  });
}
