/**
 * The HTTP API (Hono), independent of the runtime. Routes speak Resend's API; errors are mapped
 * to Resend's shape here, in one place. A runtime entry supplies the relay for a request and a
 * way to keep work running after the response (Workers' waitUntil).
 */
import { createRoute, OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import {
  internalErrorResponse,
  MethodNotAllowedError,
  NotFoundError,
  RelayError,
} from "../errors.ts";
import type { Relay } from "../relay.ts";
import { dashboardRoutes } from "./dashboard/routes.ts";
import type { AppEnv } from "./env.ts";
import { requestLogging } from "./request-log.ts";
import { route } from "./route.ts";
import { apiKeyRoutes } from "./routes/api-keys.ts";
import { attachmentRoutes, downloadRoutes } from "./routes/attachments.ts";
import { bounceRoutes } from "./routes/bounces.ts";
import { domainRoutes } from "./routes/domains.ts";
import { emailListRoutes } from "./routes/email-list.ts";
import { emailRoutes } from "./routes/emails.ts";
import { formRoutes, publicFormRoutes } from "./routes/forms.ts";
import { hookRoutes, publicHookRoutes } from "./routes/hooks.ts";
import { logRoutes } from "./routes/logs.ts";
import { submissionRoutes } from "./routes/submission.ts";
import { suppressionRoutes } from "./routes/suppressions.ts";
import { templateRoutes } from "./routes/templates.ts";
import { webhookRoutes } from "./routes/webhooks.ts";

export interface AppOptions {
  /** The relay for this request (built once per isolate by the runtime entry). */
  relay: (c: Context) => Relay;
  /** Keeps `promise` running after the response is sent. */
  background: (c: Context, promise: Promise<unknown>) => void;
  /** The client's address (CF-Connecting-IP on Workers, the socket's peer on Deno). */
  clientIp: (c: Context) => string | undefined;
}

const health = createRoute({
  method: "get",
  path: "/health",
  summary: "Liveness, the store kind and whether SMTP is configured (no API key)",
  responses: { 200: { description: "{ status: 'ok', store, smtp }" } },
});

export function createApp(options: AppOptions) {
  const app = new OpenAPIHono<AppEnv>();

  app.use("*", async (c, next) => {
    c.set("relay", options.relay(c));
    c.set("clientIp", options.clientIp(c));
    c.set("background", (promise) => options.background(c, promise));
    await next();
  });
  app.use("*", requestLogging);

  route(app, health, (c) => {
    const relay = c.get("relay");
    return c.json({
      status: "ok",
      store: relay.storeKind,
      smtp: relay.smtpConfigured ? "configured" : "not configured",
    });
  });

  // Behind an API key (or ADMIN_TOKEN): the Resend API and the resources it manages.
  // The list and metrics first: GET /emails/metrics is not an email id.
  app.route("/emails", emailListRoutes());
  app.route("/emails", emailRoutes());
  app.route("/emails", attachmentRoutes());
  app.route("/api-keys", apiKeyRoutes());
  app.route("/forms", formRoutes());
  app.route("/webhooks", webhookRoutes());
  app.route("/hooks", hookRoutes());
  app.route("/templates", templateRoutes());
  app.route("/domains", domainRoutes());
  app.route("/suppressions", suppressionRoutes());
  app.route("/logs", logRoutes());
  app.route("/bounces", bounceRoutes());
  app.route("/submission", submissionRoutes());
  // Public, each behind its resource's own gate: form posts (origin, Turnstile, start token),
  // hooks' deliveries (their proof; after hookRoutes: see there for why the order matters) and
  // attachment downloads (the signed, expiring link).
  app.route("/f", publicFormRoutes());
  app.route("/hooks", publicHookRoutes());
  app.route("/attachments", downloadRoutes());
  app.route("/dashboard", dashboardRoutes());

  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "edge-smtp-relay",
      version: "0.1.0",
      description:
        "A Resend-compatible HTTP-to-SMTP relay. Authenticate with `Authorization: Bearer <key>`.",
    },
  });
  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", {
    type: "http",
    scheme: "bearer",
  });

  app.notFound(() => new NotFoundError("Route").toResponse());

  app.onError((err, c) => {
    if (err instanceof RelayError) return err.toResponse();
    if (err instanceof HTTPException && err.status === 405)
      return new MethodNotAllowedError().toResponse();
    // Anything else is a bug: log it with the request id, answer without internals.
    try {
      c.get("relay")?.log.error("request.failed", {
        method: c.req.method,
        path: new URL(c.req.url).pathname,
        error: err instanceof Error ? `${err.name}: ${err.message}` : String(err),
      });
    } catch {
      console.error(err);
    }
    return internalErrorResponse();
  });

  return app;
}

export type App = ReturnType<typeof createApp>;
