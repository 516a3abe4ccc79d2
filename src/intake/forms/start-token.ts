/**
 * Start tokens, for the minimum fill time: `GET /f/:id/start` issues `<issued ms>.<signature>`
 * when the page loads, the page posts it back in the `_start` field, and a submission that comes
 * sooner than the form's `min_fill_seconds` after the token was issued is refused. The signature
 * (HMAC-SHA256 with the form's own key, over the form id and the time) means a bot cannot simply
 * claim it loaded the page long ago; it has to fetch a token and wait like a person.
 *
 * A static page cannot know when it was loaded without running a script, so a page without
 * JavaScript sends no token. The form's `start_token` setting says what that means: "optional"
 * lets such a submission through (the other checks still apply), "required" refuses it.
 */

import { base64url, fromBase64url } from "../../base64url.ts";
import { START_TOKEN_MAX_AGE_MS, START_TOKEN_MAX_SKEW_MS } from "../limits.ts";

const encoder = new TextEncoder();

/** A new signing key for a form (32 random bytes, base64url). */
export function newTokenKey(): string {
  return base64url(crypto.getRandomValues(new Uint8Array(32)));
}

async function hmacKey(key: string): Promise<CryptoKey> {
  return crypto.subtle.importKey(
    "raw",
    fromBase64url(key) ?? new Uint8Array(32),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign", "verify"],
  );
}

export async function issueStartToken(formId: string, key: string, now: number): Promise<string> {
  const signature = await crypto.subtle.sign(
    "HMAC",
    await hmacKey(key),
    encoder.encode(`${formId}.${now}`),
  );
  return `${now}.${base64url(new Uint8Array(signature))}`;
}

export type StartCheck =
  | { ok: true; ageMs: number }
  | { ok: false; reason: "malformed" | "bad_signature" | "expired" };

/** Checks a posted token; `ageMs` is how long ago it was issued. */
export async function checkStartToken(
  formId: string,
  key: string,
  token: string,
  now: number,
): Promise<StartCheck> {
  const m = /^(\d{1,15})\.([A-Za-z0-9_-]{43})$/.exec(token);
  const signature = m?.[2] ? fromBase64url(m[2]) : null;
  if (!m?.[1] || !signature) return { ok: false, reason: "malformed" };
  const issued = Number(m[1]);
  // crypto.subtle.verify compares in constant time.
  const valid = await crypto.subtle.verify(
    "HMAC",
    await hmacKey(key),
    signature,
    encoder.encode(`${formId}.${issued}`),
  );
  if (!valid) return { ok: false, reason: "bad_signature" };
  const ageMs = now - issued;
  if (ageMs > START_TOKEN_MAX_AGE_MS || ageMs < -START_TOKEN_MAX_SKEW_MS)
    return { ok: false, reason: "expired" };
  return { ok: true, ageMs: Math.max(0, ageMs) };
}
