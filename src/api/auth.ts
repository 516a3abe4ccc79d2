/** Authentication middleware: resolves the bearer key to a principal before a route runs. */
import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../app.ts";
import { checkClient } from "../auth/policy.ts";
import { RelayError, StoreUnavailableError } from "../errors.ts";

export const authenticate: MiddlewareHandler<AppEnv> = async (c, next) => {
  const relay = c.get("relay");
  try {
    const principal = await relay.keys.authenticate(c.req.header("authorization"));
    checkClient(principal.policy, c.get("clientIp"));
    c.set("principal", principal);
  } catch (err) {
    if (err instanceof RelayError) throw err;
    relay.log.error("store.unavailable", { op: "authenticate", error: String(err) });
    throw new StoreUnavailableError(err);
  }
  await next();
};
