/**
 * Turns a caller's payload into the send request a hook stands for: the hook's fixed sender and
 * recipients, with subject and body rendered from the payload by the escaped templates of
 * src/templates/render.ts. The result goes through the same composer and policy check as
 * `POST /emails`.
 */

import { parseJson } from "../../json.ts";
import type { SendEmailRequest } from "../../mail/request.ts";
import { renderTemplate } from "../../templates/render.ts";
import { MAX_SUBJECT_CHARS } from "../limits.ts";
import type { HookRecord } from "./hooks.ts";

/**
 * The payload as template data. JSON whatever the content type says (senders label JSON in many
 * ways), except a form body: GitHub's `application/x-www-form-urlencoded` deliveries carry the JSON
 * in a `payload` field; any other form becomes an object of its fields (a repeated field, a list).
 * An empty body is an empty object: a bare ping still sends its mail.
 */
export function payloadOf(body: Uint8Array, contentType: string | undefined): unknown {
  const type = (contentType ?? "").split(";")[0]?.trim().toLowerCase();
  if (type === "application/x-www-form-urlencoded") {
    const form = new URLSearchParams(new TextDecoder().decode(body));
    const payload = form.get("payload");
    if (payload !== null && [...form.keys()].length === 1)
      return parseJson(new TextEncoder().encode(payload));
    const out: Record<string, string | string[]> = Object.create(null);
    for (const key of new Set(form.keys())) {
      const all = form.getAll(key);
      out[key] = all.length === 1 ? (all[0] ?? "") : all;
    }
    return out;
  }
  if (body.byteLength === 0) return {};
  return parseJson(body);
}

/** Cuts at a code point boundary, never inside a surrogate pair. */
function cut(text: string, max: number): string {
  if (text.length <= max) return text;
  const end = /[\uD800-\uDBFF]/.test(text.charAt(max - 1)) ? max - 1 : max;
  return text.slice(0, end);
}

export function renderHookMessage(hook: HookRecord, payload: unknown): SendEmailRequest {
  // Mustache cannot look a name up in a null view (it throws); an empty list renders every name
  // and section empty, which is what a `null` payload should give.
  const data = payload ?? [];
  return {
    from: hook.from,
    to: hook.to,
    ...(hook.cc ? { cc: hook.cc } : {}),
    ...(hook.reply_to ? { reply_to: hook.reply_to } : {}),
    subject: cut(renderTemplate(hook.subject, data, "header"), MAX_SUBJECT_CHARS),
    ...(hook.text !== null ? { text: renderTemplate(hook.text, data, "text") } : {}),
    ...(hook.html !== null ? { html: renderTemplate(hook.html, data, "html") } : {}),
  };
}
