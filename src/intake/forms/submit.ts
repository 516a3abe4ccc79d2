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
import type { FieldSpec, FormRecord } from "./forms.ts";
import { FormRejection } from "./rejection.ts";

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

function invalidBody(message: string, status = 400): FormRejection {
  return new FormRejection("invalid_body", status, message);
}

/** Parses the body by its Content-Type; anything else is a 415. */
export async function parseSubmission(
  bytes: Uint8Array<ArrayBuffer>,
  contentType: string | undefined,
): Promise<Submission> {
  const type = (contentType ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
  const out: Submission = { values: new Map(), files: new Map() };
  let entries = 0;
  const count = () => {
    if (++entries > MAX_SUBMISSION_ENTRIES)
      throw new FormRejection(
        "too_large",
        413,
        `a submission may hold at most ${MAX_SUBMISSION_ENTRIES} entries`,
      );
  };

  if (type === "application/x-www-form-urlencoded") {
    let text: string;
    try {
      text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
    } catch {
      throw invalidBody('the form data is not valid UTF-8 (give the form accept-charset="utf-8")');
    }
    for (const [name, value] of new URLSearchParams(text)) {
      count();
      add(out.values, name, value);
    }
    return out;
  }

  if (type === "multipart/form-data") {
    let data: FormData;
    try {
      // The platform's own multipart parser (workerd, Deno), over a body already within limits.
      data = await new Response(bytes, {
        headers: { "content-type": contentType ?? "" },
      }).formData();
    } catch {
      throw invalidBody("the multipart form data could not be parsed");
    }
    for (const [name, value] of data) {
      count();
      if (typeof value === "string") add(out.values, name, value);
      // A file input left empty still sends a part: no name, no bytes.
      else if (value.size > 0 || value.name !== "") add(out.files, name, value);
    }
    return out;
  }

  if (type === "application/json") {
    let json: unknown;
    try {
      json = parseJson(bytes);
    } catch (err) {
      if (err instanceof MalformedBodyError) throw invalidBody(err.message);
      throw err;
    }
    if (json === null || typeof json !== "object" || Array.isArray(json))
      throw invalidBody("the JSON body must be an object of field names and values", 422);
    for (const [name, value] of Object.entries(json)) {
      count();
      const items = Array.isArray(value) ? value : [value];
      for (const item of items) {
        if (item === null || item === undefined) continue;
        if (typeof item === "object")
          throw new FormRejection(
            "invalid_field",
            422,
            "must be a string, a number, a boolean or a list of them",
            {
              field: name,
            },
          );
        add(out.values, name, String(item));
      }
    }
    return out;
  }

  throw new FormRejection(
    "invalid_body",
    415,
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

function fieldError(field: string, message: string, status = 422): FormRejection {
  return new FormRejection(status === 413 ? "too_large" : "invalid_field", status, message, {
    field,
  });
}

async function checkFile(spec: FieldSpec, file: File): Promise<FormAttachment> {
  const field = spec.name;
  if (file.size > spec.max_bytes)
    throw fieldError(
      field,
      `the file is ${file.size} bytes, over this field's limit of ${spec.max_bytes}`,
      413,
    );
  const type = (file.type || "application/octet-stream").split(";")[0]?.trim().toLowerCase() ?? "";
  if (!typeAccepted(type, spec.content_types))
    throw fieldError(
      field,
      `files of type ${type} are not accepted (accepted: ${spec.content_types.join(", ")})`,
    );
  const filename = (file.name || "attachment")
    .replace(NAME_UNSAFE, "_")
    .slice(0, MAX_FILE_NAME_CHARS);
  const bytes = new Uint8Array(await file.arrayBuffer());
  return { filename, content: Buffer.from(bytes).toString("base64"), content_type: type };
}

/** Checks every listed field; the first problem is the answer, naming its field. */
export async function checkSubmission(form: FormRecord, s: Submission): Promise<CheckedSubmission> {
  const data: Record<string, string | string[]> = {};
  const attachments: FormAttachment[] = [];
  for (const spec of form.fields) {
    const name = spec.name;
    if (spec.type === "file") {
      if (s.values.get(name)?.some((v) => v !== ""))
        throw fieldError(name, 'expects a file: give the form enctype="multipart/form-data"');
      const files = s.files.get(name) ?? [];
      if (files.length === 0 && spec.required)
        throw new FormRejection("invalid_field", 422, "is required", {
          field: name,
          code: "missing_required_field",
        });
      if (files.length > 1 && !spec.multiple) throw fieldError(name, "takes one file");
      const checked = [];
      for (const file of files) checked.push(await checkFile(spec, file));
      attachments.push(...checked);
      data[name] = spec.multiple ? checked.map((a) => a.filename) : (checked[0]?.filename ?? "");
      continue;
    }
    if (s.files.has(name)) throw fieldError(name, "expects text, not a file");
    let values = (s.values.get(name) ?? []).map((v) => v.replace(/\r\n?/g, "\n"));
    if (spec.type === "email") values = values.map((v) => v.trim());
    values = values.filter((v) => v.trim() !== "");
    if (values.length === 0 && spec.required)
      throw new FormRejection("invalid_field", 422, "is required", {
        field: name,
        code: "missing_required_field",
      });
    if (values.length > 1 && !spec.multiple) throw fieldError(name, "was sent more than once");
    for (const v of values) {
      if (v.length > spec.max_length)
        throw fieldError(name, `is longer than ${spec.max_length} characters`);
      if (TEXT_CONTROL.test(v)) throw fieldError(name, "must not contain control characters");
      if (spec.type === "email" && !isMailboxAddress(v))
        throw fieldError(name, `${JSON.stringify(v.slice(0, 80))} is not an email address`);
    }
    data[name] = spec.multiple ? values : (values[0] ?? "");
  }
  const replyTo = form.reply_to_field ? data[form.reply_to_field] : undefined;
  return {
    data,
    attachments,
    replyTo: typeof replyTo === "string" && replyTo !== "" ? replyTo : null,
  };
}
