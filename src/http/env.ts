/**
 * What every route sees on its context: the relay, the caller (once authenticated), the client's
 * address and a way to keep work running after the response. Its own module so that the route
 * modules and app.ts both import it, and nothing below the runtime entries imports app.ts.
 */
import type { Principal } from "../auth/keys.ts";
import type { Relay } from "../relay.ts";

export type AppEnv = {
  Variables: {
    relay: Relay;
    principal: Principal;
    clientIp: string | undefined;
    /** Keeps a promise running after the response (Workers' waitUntil). */
    background: (promise: Promise<unknown>) => void;
  };
};
