/**
 * Middleware that records each API request in the request log (src/request-log.ts) after it
 * has been answered: the entry is written with the request's background work, so neither its
 * cost nor a store failure ever reaches the answer.
 *
 * What is logged: requests made with a key (whatever their status, but 429), and inbound hooks'
 * deliveries to a hook that exists. Not logged, so that nobody without a key can make the
 * operator pay a command per request: requests without a valid key, routes that need none
 * (/health, /openapi.json, the public form posts /f/:id, which count their rejections on the form
 * instead), unknown hooks (404), and answers over a rate limit (429: a flood costs nothing).
 */
import type { Context, MiddlewareHandler } from "hono";
import type { AppEnv } from "./env.ts";

/** Most ids read from one answer: a batch has at most 100. */
const MAX_IDS = 100;

/** `POST /hooks/:id[/:secret]`, a delivery (`/hooks/:id/rotate` is a key holder's route). */
function isHookDelivery(c: Context<AppEnv>, path: string): boolean {
  return (
    c.req.method === "POST" && /^\/hooks\/[^/]+(\/[^/]+)?$/.test(path) && !/\/rotate$/.test(path)
  );
}

/** Answers that create emails, and so whose ids the entry keeps: POST /emails[/batch], a hook. */
function createsEmails(c: Context<AppEnv>, path: string): boolean {
  const status = c.res.status;
  if (status < 200 || status >= 300 || c.req.method !== "POST") return false;
  return path === "/emails" || path === "/emails/batch" || isHookDelivery(c, path);
}

/**
 * The SMTP listener's check of each RCPT (routes/submission.ts): plumbing between the listener and
 * the relay, one per recipient, that would crowd out the requests an operator looks for. The
 * session request (AUTH) and the message's POST /emails are logged as usual.
 */
const UNLOGGED_PATHS = new Set(["/submission/recipient"]);

function logged(c: Context<AppEnv>, path: string): boolean {
  const status = c.res.status;
  if (status === 429 || UNLOGGED_PATHS.has(path)) return false;
  if (c.get("principal")) return true;
  return isHookDelivery(c, path) && status !== 404;
}

/** The ids of the emails an answer created ({ id } or { data: [{ id }] }); none on any doubt. */
async function emailIds(res: Response): Promise<string[]> {
  if (!res.headers.get("content-type")?.includes("application/json")) return [];
  try {
    const body = (await res.json()) as { id?: unknown; data?: unknown };
    const items = Array.isArray(body.data) ? body.data : [body];
    return items
      .map((item) => (item as { id?: unknown } | null)?.id)
      .filter((id): id is string => typeof id === "string")
      .slice(0, MAX_IDS);
  } catch {
    return [];
  }
}

export const requestLogging: MiddlewareHandler<AppEnv> = async (c, next) => {
  const relay = c.get("relay");
  if (!relay.requestLog.enabled) return next();
  const at = relay.now();
  await next();
  const path = c.req.path;
  if (!logged(c, path)) return;
  const created = createsEmails(c, path) ? c.res.clone() : null;
  const facts = {
    at,
    method: c.req.method,
    path,
    status: c.res.status,
    keyId: c.get("principal")?.keyId ?? null,
    userAgent: c.req.header("user-agent") ?? null,
    ms: relay.now() - at,
  };
  c.get("background")(
    (async () => {
      const ids = created ? await emailIds(created) : [];
      await relay.requestLog.record({ ...facts, emailIds: ids });
    })(),
  );
};
