/**
 * Cloudflare Workers entry: HTTP requests go to the Hono app, cron ticks run delivery, mail that
 * Email Routing hands the Worker (reports to the VERP return path) goes to bounce intake. This file
 * only adapts the runtime (env bindings, ctx.waitUntil); the relay itself lives in src/relay.ts,
 * built by compose.ts.
 */

import { receiveEmail } from "../bounces/intake.ts";
import type { Env } from "../config.ts";
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
    if ("relay" in resolved) ctx.waitUntil(resolved.relay.runScheduled());
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
