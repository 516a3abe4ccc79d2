/**
 * Cloudflare Workers entry: HTTP requests go to the Hono app, cron ticks run delivery. This file
 * only adapts the runtime (env bindings, ctx.waitUntil); the relay itself lives in src/relay.ts,
 * built by compose.ts.
 */

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
} satisfies ExportedHandler<Env>;
