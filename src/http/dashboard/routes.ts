/**
 * /dashboard: the operator's pages, server-rendered, working without JavaScript. Each route is
 * declared once (createRoute, documented as an HTML page in /openapi.json) and calls the same use
 * cases the API does, as the signed-in principal. Sign-in takes ADMIN_TOKEN or a full_access key
 * in a POST body only; failures count against the client network's failure limit.
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { ADMIN_KEY_ID, requireFullAccess, sha256Hex, touchableBy } from "../../auth/keys.ts";
import { boundedPolicy, checkClient } from "../../auth/policy.ts";
import { canRetryNow, lastEvent } from "../../delivery/state.ts";
import { RelayError, ValidationError } from "../../errors.ts";
import { EMAIL_METRICS } from "../../listing/metrics.ts";
import { relaySecret } from "../../relay-secrets.ts";
import { validate } from "../body.ts";
import type { AppEnv } from "../env.ts";
import { resourceApp, route } from "../route.ts";
import { filtersOf, ListEmailsQuery } from "../routes/email-list.ts";
import { stored } from "../routes/resource.ts";
import { parseScheduledAt } from "../schedule.ts";
import { UpdateApiKeySchema } from "../schemas.ts";
import { emailView } from "../view.ts";
import { registerDomainPages } from "./domains.ts";
import { formPages } from "./forms.ts";
import { dashboardError, dashboardGuard, formOf, sessionOf } from "./guard.ts";
import { hookPages } from "./hooks.ts";
import { STYLESHEET } from "./layout.ts";
import { overviewStatus } from "./overview-view.ts";
import { back, idParam, page } from "./page-route.ts";
import { SESSION_SECRET_NAME, sessionCookie, signSession } from "./session.ts";
import { registerSuppressionPages } from "./suppressions.ts";
import { templatePages } from "./templates.ts";
import {
  emailPage,
  emailsPage,
  keysPage,
  overviewPage,
  signInPage,
  webhooksPage,
} from "./views.ts";
import { webhookPages } from "./webhook-pages.ts";

const DAY_MS = 86_400_000;

/** The notice an email page shows after an action (?done=...). */
const DONE: Record<string, string> = {
  canceled: "Canceled.",
  rescheduled: "Rescheduled.",
  retried: "Due now: the next delivery run (within a minute) tries it again.",
};

/** Its origin was checked before (dashboardGuard). */
async function signIn(c: Context<AppEnv>): Promise<Response> {
  const relay = c.get("relay");
  const token = (await formOf(c)).get("token")?.trim() ?? "";
  if (!/^\S{1,512}$/.test(token)) return c.html(signInPage("Enter a token."), 422);
  let principal: Awaited<ReturnType<typeof relay.keys.authenticate>>;
  try {
    principal = await stored(relay, "dashboard.sign_in", () =>
      relay.keys.authenticate(`Bearer ${token}`, relay.failureGuard(c.get("clientIp"))),
    );
    requireFullAccess(principal);
    checkClient(principal.policy, c.get("clientIp"));
  } catch (err) {
    if (!(err instanceof RelayError) || err.status >= 500) throw err;
    const message =
      err.status === 401
        ? "A sending_access key cannot sign in: use ADMIN_TOKEN or a full_access key."
        : err.status === 429
          ? err.message
          : "That token is not valid here.";
    relay.log.info("dashboard.sign_in_refused", { status: err.status });
    return c.html(signInPage(message), err.status === 401 ? 403 : (err.status as 403), err.headers);
  }
  const secret = await relaySecret(relay, SESSION_SECRET_NAME);
  const value = await signSession(
    secret,
    principal.keyId,
    await sha256Hex(token),
    Math.floor(relay.now() / 1000),
  );
  relay.log.info("dashboard.signed_in", { key_id: principal.keyId });
  return c.body(null, 303, { location: "/dashboard", "set-cookie": sessionCookie(value) });
}

async function emailsList(c: Context<AppEnv>): Promise<Response> {
  const relay = c.get("relay");
  const session = sessionOf(c);
  const raw = Object.fromEntries(Object.entries(c.req.query()).filter(([, v]) => v !== ""));
  let rows: Parameters<typeof emailsPage>[2] = [];
  let more = { older: null as string | null, newer: null as string | null };
  try {
    const q = validate(ListEmailsQuery, raw);
    if (q.after !== undefined && q.before !== undefined)
      throw new ValidationError("cannot be combined with after", "before");
    const page = await stored(relay, "dashboard.emails", () =>
      relay.emailList.list(session.principal, {
        limit: 25,
        after: q.after?.toLowerCase(),
        before: q.before?.toLowerCase(),
        filters: filtersOf(q),
      }),
    );
    const now = relay.now();
    rows = page.entries.map((e) => ({
      id: e.message.id,
      created: e.message.createdAt,
      from: e.message.view.from,
      to: e.message.view.to,
      subject: e.message.view.subject,
      lastEvent: lastEvent(e.state, now),
    }));
    const first = rows[0]?.id ?? null;
    const last = page.cursor ?? rows.at(-1)?.id ?? null;
    const paged = q.after !== undefined || q.before !== undefined;
    more = {
      older: q.before !== undefined || page.hasMore ? last : null,
      newer: paged && (q.after !== undefined || page.hasMore) ? first : null,
    };
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    return c.html(emailsPage(session, raw, [], more, err.message), 422);
  }
  return c.html(emailsPage(session, raw, rows, more));
}

async function emailDetail(c: Context<AppEnv>, notice?: string): Promise<Response> {
  const relay = c.get("relay");
  const session = sessionOf(c);
  const entry = await relay.get(idParam(c), session.principal);
  const now = relay.now();
  const [view, events] = await Promise.all([
    emailView(entry, now),
    relay.webhooks.ofEmail(entry.message.id, entry.state.attempts, entry.message.envelope.to),
  ]);
  const actions = {
    retryNow: canRetryNow(entry.state, entry.leasedUntil, now),
    cancel:
      entry.state.canceledAt === null && entry.state.recipients.some((r) => r.status === "pending"),
    reschedule:
      entry.state.canceledAt === null &&
      entry.state.attempts === 0 &&
      lastEvent(entry.state, now) === "scheduled",
  };
  return c.html(emailPage(session, view, actions, events, notice));
}

/** Mounted at /dashboard. */
export function dashboardRoutes(): OpenAPIHono<AppEnv> {
  const app = resourceApp();
  app.use("*", dashboardGuard);
  app.onError(dashboardError);

  route(app, page("get", "/style.css", "the stylesheet"), (c) =>
    c.body(STYLESHEET, 200, { "content-type": "text/css; charset=utf-8" }),
  );
  route(app, page("get", "/sign-in", "sign in"), (c) => c.html(signInPage()));
  route(app, page("post", "/sign-in", "sign in with a token (form field token)", 303), signIn);
  route(app, page("post", "/sign-out", "sign out", 303), (c) =>
    c.body(null, 303, { location: "/dashboard/sign-in", "set-cookie": sessionCookie("") }),
  );

  route(
    app,
    page("get", "/", "overview: counts over 24 h and 7 days, the queue, the smart host"),
    async (c) => {
      const relay = c.get("relay");
      const { principal } = sessionOf(c);
      const now = relay.now();
      const read = (start: number, granularity: "hourly" | "daily") =>
        stored(relay, "dashboard.metrics", () =>
          relay.emailMetrics.read(principal, {
            start,
            end: now,
            granularity,
            metrics: EMAIL_METRICS,
            byPeriod: true,
          }),
        );
      const [day, week, overview] = await Promise.all([
        read(now - DAY_MS, "hourly"),
        read(now - 6 * DAY_MS, "daily"),
        stored(relay, "dashboard.overview", () => relay.overview.read(now)),
      ]);
      return c.html(overviewPage(sessionOf(c), day, week, overviewStatus(overview, now)));
    },
  );

  route(app, page("get", "/emails", "emails, with filters and pages"), emailsList);
  route(app, page("get", "/emails/{id}", "one email"), (c) => {
    const done = c.req.query("done");
    return emailDetail(c, done === undefined ? undefined : DONE[done]);
  });
  route(app, page("post", "/emails/{id}/retry", "retry a deferred email now", 303), async (c) => {
    const id = idParam(c);
    await c.get("relay").retryNow(id, sessionOf(c).principal);
    return back(c, `/dashboard/emails/${id}?done=retried`);
  });
  route(app, page("post", "/emails/{id}/cancel", "cancel an email", 303), async (c) => {
    const id = idParam(c);
    await c.get("relay").cancel(id, sessionOf(c).principal);
    return back(c, `/dashboard/emails/${id}?done=canceled`);
  });
  route(app, page("post", "/emails/{id}/reschedule", "reschedule an email", 303), async (c) => {
    const relay = c.get("relay");
    const id = idParam(c);
    const at = parseScheduledAt((await formOf(c)).get("scheduled_at") ?? undefined, relay.now());
    if (at === null) throw new ValidationError("is required", "scheduled_at");
    await relay.reschedule(id, sessionOf(c).principal, at);
    return back(c, `/dashboard/emails/${id}?done=rescheduled`);
  });

  route(app, page("get", "/keys", "API keys"), async (c) => {
    const relay = c.get("relay");
    const keys = await stored(relay, "dashboard.keys", () => relay.keys.list());
    return c.html(keysPage(sessionOf(c), keys));
  });
  // The new token is in this page's body only (no redirect, so never in a URL); no-store.
  route(app, page("post", "/keys", "create an API key (its token shown once)", 201), async (c) => {
    const relay = c.get("relay");
    const { principal } = sessionOf(c);
    const form = await formOf(c);
    const body = validate(UpdateApiKeySchema, {
      name: form.get("name") ?? "",
      permission: form.get("permission") ?? "sending_access",
    });
    const policy =
      principal.keyId === ADMIN_KEY_ID
        ? {}
        : boundedPolicy(principal.policy, {}, relay.config.rateLimit);
    const name = body.name ?? "";
    const created = await stored(relay, "dashboard.key_create", () =>
      relay.keys.create(
        name,
        body.permission ?? "sending_access",
        Object.keys(policy).length ? policy : undefined,
      ),
    );
    relay.log.info("api_key.created", { key_id: created.id, by: principal.keyId });
    const keys = await relay.keys.list();
    return c.html(keysPage(sessionOf(c), keys, { ...created, name }), 201);
  });
  // Like create: the new token only in this page's body. A key other than ADMIN_TOKEN may rotate
  // only keys whose policy lies within its own (the new token keeps the rotated key's policy).
  route(
    app,
    page("post", "/keys/{id}/rotate", "rotate an API key (new token shown once)", 201),
    async (c) => {
      const relay = c.get("relay");
      const { principal } = sessionOf(c);
      const id = c.req.param("id") ?? "";
      const rotated = await stored(relay, "dashboard.key_rotate", () =>
        relay.keys.rotate(id, touchableBy(principal, relay.config.rateLimit)),
      );
      relay.log.info("api_key.rotated", {
        key_id: id,
        new_key_id: rotated.id,
        by: principal.keyId,
      });
      const keys = await relay.keys.list();
      const name = keys.find((k) => k.id === rotated.id)?.name ?? "";
      return c.html(keysPage(sessionOf(c), keys, { ...rotated, name, rotatedFrom: id }), 201);
    },
  );
  route(app, page("post", "/keys/{id}/rename", "rename an API key", 303), async (c) => {
    const relay = c.get("relay");
    const body = validate(UpdateApiKeySchema, { name: (await formOf(c)).get("name") ?? "" });
    const id = c.req.param("id") ?? "";
    const allow = touchableBy(sessionOf(c).principal, relay.config.rateLimit);
    await relay.keys.update(id, (old) => {
      allow(old.policy);
      return { ...old, name: body.name ?? old.name };
    });
    relay.log.info("api_key.updated", { key_id: id, by: sessionOf(c).principal.keyId });
    return back(c, "/dashboard/keys");
  });
  route(app, page("post", "/keys/{id}/delete", "delete an API key", 303), async (c) => {
    const relay = c.get("relay");
    const id = c.req.param("id") ?? "";
    await relay.keys.remove(id, touchableBy(sessionOf(c).principal, relay.config.rateLimit));
    relay.log.info("api_key.deleted", { key_id: id, by: sessionOf(c).principal.keyId });
    return back(c, "/dashboard/keys");
  });

  route(app, page("get", "/webhooks", "webhook endpoints"), async (c) => {
    const endpoints = await c.get("relay").webhooks.list();
    return c.html(webhooksPage(sessionOf(c), endpoints));
  });
  webhookPages(app);

  formPages(app);
  hookPages(app);
  templatePages(app);
  registerDomainPages(app);
  registerSuppressionPages(app);

  return app;
}
