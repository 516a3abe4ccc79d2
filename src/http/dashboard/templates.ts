/**
 * The dashboard's template pages, on the template use cases (src/template-library.ts) the API's
 * /templates calls: the list (name, alias, draft or published, updated), one template's draft
 * with its variables and its HTML and text as escaped source (never rendered into the page),
 * and the actions publish, duplicate and delete.
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { html } from "hono/html";
import { requireFullAccess } from "../../auth/keys.ts";
import {
  TEMPLATE_LIMITS,
  type TemplateRecord,
  templateListItem,
  templateView,
} from "../../templates/template.ts";
import type { AppEnv } from "../env.ts";
import { route } from "../route.ts";
import { stored } from "../routes/resource.ts";
import { sessionOf } from "./guard.ts";
import { type Html, iso, page, postButton } from "./layout.ts";
import { back, page as declare, idParam } from "./page-route.ts";
import { facts, joined, noticeLine, source } from "./record-pages.ts";
import type { Session } from "./session.ts";

const DONE: Record<string, string> = {
  published: "Published: sends use this version from now on.",
  duplicated: "Duplicated: this is the new draft copy.",
  deleted: "Template deleted.",
};

function templatesPage(session: Session, records: TemplateRecord[], notice?: string): Html {
  return page(
    "Templates",
    html`${noticeLine(notice)}
<table class="list"><thead><tr><th scope="col">Name</th><th scope="col">Alias</th><th scope="col">Status</th><th scope="col">Updated</th></tr></thead>
<tbody>${records.length === 0 ? html`<tr><td colspan="4" class="muted">No templates (POST /templates adds one).</td></tr>` : ""}${records.map(
      (r) => {
        const item = templateListItem(r);
        return html`<tr><td><a href="/dashboard/templates/${item.id}">${item.name}</a></td><td>${item.alias ?? "—"}</td><td>${item.status}</td><td>${iso(r.updated_at)}</td></tr>`;
      },
    )}</tbody></table>`,
    session,
  );
}

function templatePage(session: Session, record: TemplateRecord, notice?: string): Html {
  const view = templateView(record);
  const base = `/dashboard/templates/${view.id}`;
  const status =
    view.status === "draft"
      ? "draft (never published: it cannot send yet)"
      : view.has_unpublished_versions
        ? `published ${view.published_at}; the draft below has changes not yet published`
        : `published ${view.published_at}; the draft below is what sends`;
  return page(
    view.name,
    html`${noticeLine(notice)}
${facts([
  ["Id", view.id],
  ["Alias", view.alias],
  ["Status", html`<span id="template-status">${status}</span>`],
  ["Subject", view.subject],
  ["From", view.from],
  ["Reply-To", joined(view.reply_to)],
  ["Created", view.created_at],
  ["Updated", view.updated_at],
])}
<h2>Actions</h2>
<div class="pager">${view.has_unpublished_versions ? postButton(session, `${base}/publish`, "Publish the draft") : ""}
${postButton(session, `${base}/duplicate`, "Duplicate")}
${postButton(session, `${base}/delete`, "Delete this template", true)}</div>
<h2>Variables</h2>
${
  view.variables.length === 0
    ? html`<p class="muted">No variables.</p>`
    : html`<table class="list"><thead><tr><th scope="col">Name</th><th scope="col">Type</th><th scope="col">Fallback</th></tr></thead>
<tbody>${view.variables.map(
        (v) =>
          html`<tr><td><code>{{{${v.key}}}}</code></td><td>${v.type}</td><td>${v.fallback_value === null ? html`<span class="muted">none: required</span>` : String(v.fallback_value)}</td></tr>`,
      )}</tbody></table>`
}
<h2>Draft</h2>
${source("HTML", view.html)}${source("Text", view.text)}`,
    session,
  );
}

const byOf = (c: Context) => {
  const { principal } = sessionOf(c);
  requireFullAccess(principal);
  return principal.keyId;
};

/** Registers the template pages on the dashboard's app. */
export function templatePages(app: OpenAPIHono<AppEnv>): void {
  // One command: a relay holds at most TEMPLATE_LIMITS.maxTemplates, so one page is all of them.
  route(app, declare("get", "/templates", "templates"), async (c) => {
    const relay = c.get("relay");
    byOf(c);
    const list = await stored(relay, "dashboard.template.list", () =>
      relay.templates.list({ limit: TEMPLATE_LIMITS.maxTemplates }),
    );
    return c.html(templatesPage(sessionOf(c), list.data, DONE[c.req.query("done") ?? ""]));
  });

  route(app, declare("get", "/templates/{id}", "one template"), async (c) => {
    const relay = c.get("relay");
    byOf(c);
    const id = idParam(c);
    const record = await stored(relay, "dashboard.template.get", () => relay.templates.get(id));
    return c.html(templatePage(sessionOf(c), record, DONE[c.req.query("done") ?? ""]));
  });

  route(app, declare("post", "/templates/{id}/publish", "publish a template", 303), async (c) => {
    const relay = c.get("relay");
    const id = idParam(c);
    const by = byOf(c);
    await stored(relay, "dashboard.template.publish", () => relay.templates.publish(id, by));
    return back(c, `/dashboard/templates/${id}?done=published`);
  });

  route(
    app,
    declare("post", "/templates/{id}/duplicate", "duplicate a template", 303),
    async (c) => {
      const relay = c.get("relay");
      const id = idParam(c);
      const by = byOf(c);
      const copy = await stored(relay, "dashboard.template.duplicate", () =>
        relay.templates.duplicate(id, by),
      );
      return back(c, `/dashboard/templates/${copy.id}?done=duplicated`);
    },
  );

  route(app, declare("post", "/templates/{id}/delete", "delete a template", 303), async (c) => {
    const relay = c.get("relay");
    const id = idParam(c);
    const by = byOf(c);
    await stored(relay, "dashboard.template.delete", () => relay.templates.remove(id, by));
    return back(c, "/dashboard/templates?done=deleted");
  });
}
