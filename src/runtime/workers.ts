/**
 * Cloudflare Workers entry: HTTP requests go to the Hono app, cron ticks run delivery, mail that
 * Email Routing hands the Worker (reports to the VERP return path) goes to bounce intake, and the
 * DeliveryHelper entrypoint is what a scheduled run fans out to (src/delivery/fanout.ts) through
 * the DELIVERY_HELPER service binding to this Worker itself. This file only adapts the runtime
 * (env bindings, ctx.waitUntil); the relay itself lives in src/relay.ts, built by compose.ts.
 */

import { WorkerEntrypoint } from "cloudflare:workers";
import { receiveEmail } from "../bounces/intake.ts";
import type { Env } from "../config.ts";
import type { HelperReport, HelperRequest, StartHelper } from "../delivery/fanout.ts";
import { createApp } from "../http/app.ts";
import { relayFor, relayOrConfigError } from "./isolate.ts";

const app = createApp({
  relay: (c) => relayFor(c.env as Env),
  background: (c, promise) => c.executionCtx.waitUntil(promise),
  // Cloudflare sets this header on every request from the internet and strips any client copy.
  clientIp: (c) => c.req.header("cf-connecting-ip"),
});

export default {
  async fetch(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    const resolved = relayOrConfigError(env);
    if ("response" in resolved) return resolved.response;
    return app.fetch(request, env, ctx);
  },

  async scheduled(
    _controller: ScheduledController,
    env: Env,
    ctx: ExecutionContext,
  ): Promise<void> {
    const resolved = relayOrConfigError(env);
    if ("relay" in resolved)
      ctx.waitUntil(resolved.relay.runScheduled({ startHelper: helperBinding(env) }));
  },

  /**
   * Cloudflare Email Routing's delivery of a message to the bounce domain: message.to is the
   * return path it was sent to. It never throws (a throw is only an error in Cloudflare's log,
   * and bad mail is normal here): every refusal is dropped and counted by bounce intake.
   */
  async email(message: ForwardableEmailMessage, env: Env, ctx: ExecutionContext): Promise<void> {
    try {
      const resolved = relayOrConfigError(env);
      if (!("relay" in resolved)) return;
      const { relay } = resolved;
      const outcome = await receiveEmail(relay, message);
      if (outcome.outcome === "applied" && outcome.events.length > 0)
        ctx.waitUntil(relay.dispatchSoon());
    } catch (err) {
      // receiveEmail does not throw; this is for a bug, logged instead of failing the delivery.
      console.error(
        JSON.stringify({ level: "error", event: "bounce.email_failed", error: String(err) }),
      );
    }
  },
} satisfies ExportedHandler<Env>;

/** The service binding a run fans out through (wrangler.toml [[services]] DELIVERY_HELPER). */
function helperBinding(env: Env): StartHelper | undefined {
  const binding = env.DELIVERY_HELPER as
    | { deliver?: (request: HelperRequest) => Promise<HelperReport> }
    | undefined;
  // An RPC stub answers every property with a callable stub, so its methods are called on it
  // directly (`deliver.call` would be an RPC call of a method named "call").
  if (!binding || typeof binding.deliver !== "function") return undefined;
  return (request) => (binding.deliver as (r: HelperRequest) => Promise<HelperReport>)(request);
}

/** A helper must stop claiming within a cron run's longest life (15 minutes). */
const HELPER_MAX_MS = 15 * 60_000;

/**
 * What a scheduled run's helper runs in (src/delivery/fanout.ts). RPC methods of a named
 * entrypoint are reachable only through a service binding, never from the internet, so this
 * needs no token; the request is still checked, as anything crossing an invocation boundary.
 */
export class DeliveryHelper extends WorkerEntrypoint<Env> {
  async deliver(request: HelperRequest): Promise<HelperReport> {
    const { holder, until } = request ?? {};
    if (typeof holder !== "string" || !/^[\w.-]{1,100}$/.test(holder))
      throw new TypeError("deliver: holder must be a slot holder name");
    if (typeof until !== "number" || !Number.isFinite(until) || until > Date.now() + HELPER_MAX_MS)
      throw new TypeError("deliver: until must be a time within 15 minutes");
    return relayFor(this.env).runHelper({ holder, until });
  }
}
