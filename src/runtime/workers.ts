/**
 * Cloudflare Workers entry: HTTP requests go to the Hono app, cron ticks run delivery. This file
 * only adapts the runtime (env bindings, ctx.waitUntil); the relay itself lives in src/relay.ts.
 */
import { createApp } from "../app.ts";
import { type Env, loadConfig } from "../config.ts";
import { ConfigError, RelayError } from "../errors.ts";
import { createRelay, type Relay } from "../relay.ts";

// One relay per isolate (its key cache and script hashes live as long as the isolate), rebuilt
// if the configuration changes, as it does in tests that hand in different bindings.
let cached: { fingerprint: string; relay: Relay } | undefined;

function fingerprint(env: Env): string {
  return JSON.stringify(
    Object.entries(env)
      .filter(([, v]) => typeof v === "string")
      .sort(),
  );
}

export function relayFor(env: Env): Relay {
  const fp = fingerprint(env);
  if (cached?.fingerprint !== fp) cached = { fingerprint: fp, relay: createRelay(loadConfig(env)) };
  return cached.relay;
}

const app = createApp({
  relay: (c) => relayFor(c.env as Env),
  background: (c, promise) => c.executionCtx.waitUntil(promise),
});

function configErrorResponse(err: ConfigError): Response {
  console.error(
    JSON.stringify({
      level: "error",
      event: "config.invalid",
      variable: err.variable,
      error: err.message,
    }),
  );
  return new RelayError(
    500,
    "application_error",
    `The relay is misconfigured: ${err.message}`,
  ).toResponse();
}

export default {
  async fetch(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    try {
      relayFor(env);
    } catch (err) {
      if (err instanceof ConfigError) return configErrorResponse(err);
      throw err;
    }
    return app.fetch(request, env, ctx);
  },

  async scheduled(
    _controller: ScheduledController,
    env: Env,
    ctx: ExecutionContext,
  ): Promise<void> {
    let relay: Relay;
    try {
      relay = relayFor(env);
    } catch (err) {
      if (err instanceof ConfigError) {
        console.error(
          JSON.stringify({
            level: "error",
            event: "config.invalid",
            variable: err.variable,
            error: err.message,
          }),
        );
        return;
      }
      throw err;
    }
    ctx.waitUntil(relay.runScheduled());
  },
} satisfies ExportedHandler<Env>;
