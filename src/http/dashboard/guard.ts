/**
 * What runs before every dashboard route: the security headers, the session (re-checked against
 * the key store), and for every POST the same-origin check and the session's form token. A
 * request without a valid session is sent to the sign-in page; a cross-site or token-less POST is
 * refused with 403 before anything reads or changes state.
 */
import type { Context, MiddlewareHandler } from "hono";
import { getCookie } from "hono/cookie";
import { html } from "hono/html";
import { checkClient } from "../../auth/policy.ts";
import {
  type RateLimitResult,
  rateLimitHeaders,
  retryAfterForReset,
} from "../../auth/rate-limit.ts";
import { RelayError, StoreUnavailableError } from "../../errors.ts";
import { relaySecret } from "../../relay-secrets.ts";
import { readBodyBytes } from "../body.ts";
import type { AppEnv } from "../env.ts";
import { page, SECURITY_HEADERS } from "./layout.ts";
import {
  csrfValid,
  SESSION_COOKIE,
  SESSION_SECRET_NAME,
  type Session,
  sessionCookie,
  verifySession,
} from "./session.ts";

/** A form's body: a few short fields. */
const FORM_LIMIT = 16 * 1024;
/** Paths that need no session: the sign-in page and its post, and the stylesheet. */
const OPEN = new Set(["/dashboard/sign-in", "/dashboard/style.css"]);

const sessions = new WeakMap<Request, Session>();
const forms = new WeakMap<Request, URLSearchParams>();

/** The request's session (set by `dashboardGuard` on every route but the open ones). */
export function sessionOf(c: Context): Session {
  const session = sessions.get(c.req.raw);
  if (!session) throw new Error("dashboard route without a session");
  return session;
}

/** A POST's form fields, read once within FORM_LIMIT. */
export async function formOf(c: Context): Promise<URLSearchParams> {
  let form = forms.get(c.req.raw);
  if (!form) {
    const bytes = await readBodyBytes(c, FORM_LIMIT);
    form = new URLSearchParams(new TextDecoder().decode(bytes));
    forms.set(c.req.raw, form);
  }
  return form;
}

export class ForbiddenError extends RelayError {
  constructor(message: string) {
    super(403, "invalid_access", message);
    this.name = "ForbiddenError";
  }
}

/**
 * A cross-site POST is refused. Sec-Fetch-Site, which only the browser sets, decides when it is
 * there (every current browser sends it); the Origin header is checked only without it, since
 * with Referrer-Policy no-referrer a browser sends `Origin: null` even for its own forms. A
 * client that sends neither is not a browser, so not a CSRF victim; it still needs the form token.
 */
export function checkSameOrigin(c: Context): void {
  const site = c.req.header("sec-fetch-site");
  if (site !== undefined) {
    if (site !== "same-origin") throw new ForbiddenError("A cross-site form post is refused");
    return;
  }
  const origin = c.req.header("origin");
  if (origin !== undefined && origin !== new URL(c.req.url).origin)
    throw new ForbiddenError("A form post from another origin is refused");
}

/** A session over DASHBOARD_RATE_LIMIT: answered as a page, with Retry-After. */
export class DashboardRateLimitError extends RelayError {
  constructor(r: RateLimitResult, windowSeconds: number, now: number) {
    const headers = rateLimitHeaders(r, now);
    const retry = retryAfterForReset(Number(headers["ratelimit-reset"]));
    super(
      429,
      "rate_limit_exceeded",
      `Too many dashboard requests from this sign-in: at most ${r.limit} per ${windowSeconds} s. Try again in ${retry} s.`,
      { headers: { ...headers, "retry-after": String(retry) } },
    );
    this.name = "DashboardRateLimitError";
  }
}

/**
 * Every signed-in page and action counts against the session's key (one limiter command per
 * request; a key already over its limit is refused from the isolate's cache at no cost). Its
 * own identifier, so browsing the dashboard does not spend the key's API budget.
 */
async function checkRate(c: Context<AppEnv>, session: Session): Promise<void> {
  const relay = c.get("relay");
  const limit = relay.config.dashboard.rateLimit;
  let r: RateLimitResult;
  try {
    r = await relay.limiter.check(`dash:${session.principal.keyId}`, limit);
  } catch (err) {
    relay.log.error("store.unavailable", { op: "dashboard_rate_limit", error: String(err) });
    throw new StoreUnavailableError(err);
  }
  if (!r.allowed) {
    relay.log.warn("dashboard.rate_limited", { key_id: session.principal.keyId });
    throw new DashboardRateLimitError(r, limit.windowSeconds, relay.now());
  }
}

function toSignIn(c: Context, hadCookie: boolean): Response {
  const headers: Record<string, string> = { location: "/dashboard/sign-in" };
  if (hadCookie) headers["set-cookie"] = sessionCookie("");
  return c.body(null, 303, headers);
}

export const dashboardGuard: MiddlewareHandler<AppEnv> = async (c, next) => {
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) c.header(name, value);
  // Before the session: a cross-site post is refused as such, with or without a cookie.
  if (c.req.method === "POST") checkSameOrigin(c);
  if (OPEN.has(c.req.path)) return next();
  const relay = c.get("relay");
  const cookie = getCookie(c, SESSION_COOKIE);
  const secret = await relaySecret(relay, SESSION_SECRET_NAME);
  const session = cookie
    ? await verifySession(secret, cookie, relay.keys, Math.floor(relay.now() / 1000))
    : null;
  if (!session) return toSignIn(c, cookie !== undefined);
  checkClient(session.principal.policy, c.get("clientIp"));
  await checkRate(c, session);
  if (c.req.method === "POST") {
    if (!csrfValid(session, (await formOf(c)).get("_csrf")))
      throw new ForbiddenError("The form token is missing or wrong: reload the page and try again");
  }
  sessions.set(c.req.raw, session);
  // The API's own use cases and the request log see the dashboard's caller as its principal.
  c.set("principal", session.principal);
  await next();
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) c.header(name, value);
};

/** Errors on dashboard routes answer as a page (the API answers them as JSON). */
export function dashboardError(err: Error, c: Context<AppEnv>): Response | Promise<Response> {
  const status = err instanceof RelayError ? err.status : 500;
  if (!(err instanceof RelayError)) {
    c.get("relay")?.log.error("request.failed", {
      method: c.req.method,
      path: c.req.path,
      error: `${err.name}: ${err.message}`,
    });
  }
  const message = err instanceof RelayError ? err.message : "Something went wrong on the relay.";
  const headers = { ...SECURITY_HEADERS, ...(err instanceof RelayError ? err.headers : {}) };
  const session = sessions.get(c.req.raw);
  return c.html(
    page(
      status === 403 ? "Refused" : status === 429 ? "Too many requests" : "Error",
      html`<p class="error" role="alert">${message}</p><p><a href="/dashboard">Back to the dashboard</a></p>`,
      session,
    ),
    status as 400,
    headers,
  );
}
