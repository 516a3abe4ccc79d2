/**
 * Authentication middleware: resolves the bearer key to a principal, checks the client address
 * against the key's ranges and the key's rate limit, before a route runs. Invalid keys are
 * limited per client network in the isolate (auth/abuse.ts), at no store cost. Every answer to an
 * authenticated request carries the rate limit headers, as Resend's do.
 */
import type { MiddlewareHandler } from "hono";
import type { Principal } from "../auth/keys.ts";
import { checkClient } from "../auth/policy.ts";
import {
  parseRateLimit,
  type RateLimit,
  RateLimitError,
  type RateLimitResult,
  rateLimitHeaders,
} from "../auth/rate-limit.ts";
import { RelayError, StoreUnavailableError } from "../errors.ts";
import type { AppEnv } from "./env.ts";

/** Which rate limit bucket a request counts against, and its limit (the key's or the relay's). */
type Bucket = (
  principal: Principal,
  limit: RateLimit,
  relay: AppEnv["Variables"]["relay"],
) => { bucket: string; limit: RateLimit };

function authenticating(bucketOf: Bucket): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
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
      const { bucket, limit } = bucketOf(principal, own ?? relay.config.rateLimit, relay);
      limited = await relay.limiter.check(bucket, limit);
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
}

export const authenticate = authenticating((principal, limit) => ({
  bucket: principal.keyId,
  limit,
}));

/**
 * For the SMTP listener's check of each RCPT (routes/submission.ts): a bucket of its own, so the
 * recipients of one message do not spend the key's requests, allowing as many lookups as the
 * messages the key may send could have recipients. A key that asks for nothing else still gets
 * no more reads than that.
 */
export const authenticateRecipientLookup = authenticating((principal, limit, relay) => ({
  bucket: `${principal.keyId}:rcpt`,
  limit: { ...limit, requests: limit.requests * relay.config.limits.maxRecipients },
}));
