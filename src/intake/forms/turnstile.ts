/**
 * Cloudflare Turnstile: the widget on the page puts a token in the `cf-turnstile-response` field,
 * and the relay asks siteverify whether it is valid, with the form's secret key (a form-encoded
 * POST of `secret`, `response` and `remoteip`, answered `{ success, "error-codes" }`). The URL is
 * TURNSTILE_VERIFY_URL, so tests use a local stand-in (dev/turnstile-stub.ts).
 *
 * The secret is sent nowhere else: never logged, never in an answer.
 */

import { TURNSTILE_TIMEOUT_MS } from "../limits.ts";

export type TurnstileVerdict =
  | { ok: true }
  /** The token was refused; `codes` are siteverify's error codes. */
  | { ok: false; reason: "refused"; codes: string[] }
  /** siteverify could not be asked or answered nonsense: nothing is known about the token. */
  | { ok: false; reason: "unavailable"; detail: string };

export async function verifyTurnstile(
  url: string,
  secret: string,
  token: string,
  remoteIp: string | undefined,
): Promise<TurnstileVerdict> {
  const body = new URLSearchParams({ secret, response: token });
  if (remoteIp) body.set("remoteip", remoteIp);
  let res: Response;
  try {
    res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: body.toString(),
      signal: AbortSignal.timeout(TURNSTILE_TIMEOUT_MS),
    });
  } catch (err) {
    return {
      ok: false,
      reason: "unavailable",
      detail: err instanceof Error ? err.name : "fetch failed",
    };
  }
  let answer: unknown;
  try {
    answer = await res.json();
  } catch {
    return {
      ok: false,
      reason: "unavailable",
      detail: `siteverify answered ${res.status} without JSON`,
    };
  }
  const { success, "error-codes": codes } = (answer ?? {}) as {
    success?: unknown;
    "error-codes"?: unknown;
  };
  if (success === true) return { ok: true };
  if (success === false)
    return {
      ok: false,
      reason: "refused",
      codes: Array.isArray(codes) ? codes.filter((c): c is string => typeof c === "string") : [],
    };
  return {
    ok: false,
    reason: "unavailable",
    detail: `siteverify answered ${res.status} without a verdict`,
  };
}
