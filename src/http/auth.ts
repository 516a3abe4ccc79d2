/**
 * Authentication middleware: resolves the bearer key to a principal, checks the client address
 * against the key's ranges and the key's rate limit, before a route runs. Invalid keys are
 * limited per client network in the isolate (auth/abuse.ts), at no store cost. Every answer to an
 * authenticated request carries the rate limit headers, as Resend's do.
 */
import type { MiddlewareHandler } from "hono";
import { checkClient } from "../auth/policy.ts";
import {
  parseRateLimit,
  RateLimitError,
  type RateLimitResult,
  rateLimitHeaders,
} from "../auth/rate-limit.ts";
import { RelayError, StoreUnavailableError } from "../errors.ts";
import type { AppEnv } from "./env.ts";

export const authenticate: MiddlewareHandler<AppEnv> = async (c, next) => {
  // Routes register this for "/x" and "/x/*", and Hono's "/x/*" matches "/x" too: run once.
  if (c.get("principal")) return next();
  const relay = c.get("relay");
  let limited: RateLimitResult;
  try {
    const principal = await relay.keys.authenticate(
      c.req.header("authorization"),
      relay.failureGuard(c.get("clientIp")),
    );
    checkClient(principal.policy, c.get("clientIp"));
    const own = principal.policy?.rate_limit ? parseRateLimit(principal.policy.rate_limit) : null;
    limited = await relay.limiter.check(principal.keyId, own ?? relay.config.rateLimit);
    c.set("principal", principal);
  } catch (err) {
    if (err instanceof RelayError) throw err;
    relay.log.error("store.unavailable", { op: "authenticate", error: String(err) });
    throw new StoreUnavailableError(err);
  }
  if (!limited.allowed) throw new RateLimitError(limited, relay.now());
  await next();
  for (const [name, value] of Object.entries(rateLimitHeaders(limited, relay.now())))
    c.header(name, value);
};
