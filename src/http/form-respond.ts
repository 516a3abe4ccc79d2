/**
 * How a submission is answered, which depends on who sent it:
 * - a plain HTML `<form method="post">` (a browser navigation) gets a 303 to the form's
 *   success_url or error_url (the error one with `?error=<code>&field=<name>`), or, when the form
 *   has no such URL, a small HTML page;
 * - fetch() and other programs get JSON: `{ id }`, or Resend's error shape naming the field.
 *
 * A navigation is recognised by `Sec-Fetch-Mode: navigate`, which every current browser sends
 * with a form post; without Sec-Fetch headers (older browsers, curl), a form-encoded body that
 * does not ask for JSON in Accept is taken for a navigation too.
 *
 * CORS headers are added only for an origin the form allows, to every answer including errors,
 * so the page's script can read why a submission was refused.
 */
import type { Context } from "hono";
import type { FormRecord } from "../intake/forms/forms.ts";

export type Mode = "html" | "json";

export function modeOf(c: Context): Mode {
  const fetchMode = c.req.header("sec-fetch-mode");
  if (fetchMode) return fetchMode === "navigate" ? "html" : "json";
  const accept = c.req.header("accept") ?? "";
  const type = c.req.header("content-type") ?? "";
  if (/application\/json/i.test(accept) || /^\s*application\/json/i.test(type)) return "json";
  return "html";
}

/** Headers that let the allowed origin's script read the answer. */
export function corsHeaders(origin: string | undefined): Record<string, string> {
  if (!origin) return { vary: "Origin" };
  return {
    "access-control-allow-origin": origin,
    "access-control-expose-headers":
      "Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset",
    vary: "Origin",
  };
}

/** The preflight answer for an allowed origin. */
export function preflightHeaders(origin: string, methods: string): Record<string, string> {
  return {
    ...corsHeaders(origin),
    "access-control-allow-methods": methods,
    // Content-Type for JSON bodies; Accept is safelisted but some clients list it anyway.
    "access-control-allow-headers": "Content-Type, Accept",
    "access-control-max-age": "600",
  };
}

const ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};
const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (ch) => ESCAPES[ch] ?? ch);

/** A small page for forms without redirect URLs; `back` only when it is on an allowed origin. */
export function htmlPage(
  status: number,
  title: string,
  message: string,
  back: string | null,
  headers: Record<string, string> = {},
): Response {
  const link = back ? `<p><a href="${escapeHtml(back)}">Back to the form</a></p>` : "";
  const body = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>${escapeHtml(title)}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem}</style></head>
<body><h1>${escapeHtml(title)}</h1><p>${escapeHtml(message)}</p>${link}</body></html>
`;
  return new Response(body, {
    status,
    headers: {
      "content-type": "text/html; charset=utf-8",
      "cache-control": "no-store",
      // The page shows text only: no script, frame or form of anyone's may run in it.
      "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'",
      ...headers,
    },
  });
}

export function redirect(url: string, params: Record<string, string> = {}): Response {
  const target = new URL(url);
  for (const [k, v] of Object.entries(params)) target.searchParams.set(k, v);
  return new Response(null, {
    status: 303,
    headers: { location: target.href, "cache-control": "no-store" },
  });
}

/** The Referer, when it is a page on one of the form's origins (the "back" link). */
export function backLink(c: Context, form: FormRecord | null): string | null {
  const referer = c.req.header("referer");
  if (!referer || !form) return null;
  try {
    const url = new URL(referer);
    return form.allowed_origins.includes(url.origin) ? url.href : null;
  } catch {
    return null;
  }
}

/** A visitor-facing sentence for a plain-form error page. */
export function errorTitle(status: number): string {
  if (status === 429) return "Too many submissions";
  if (status === 503) return "Please try again";
  if (status === 404) return "Form not found";
  if (status === 403) return "Not allowed";
  return "The form could not be sent";
}
