/**
 * The dashboard's form pages: the forms web pages post to (src/intake/forms), listed with where
 * they send and which origins may post; one form with its fields, templates and rejection
 * counters; delete. Never the Turnstile secret or the start-token key: the views start from
 * formView, which leaves them out.
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import { html } from "hono/html";
import { type FormRecord, formView } from "../../intake/forms/forms.ts";
import { formCounters } from "../../intake/forms/records.ts";
import { formCache } from "../../intake/forms/source.ts";
import type { AppEnv } from "../env.ts";
import { type Html, iso, page, postButton } from "./layout.ts";
import { counterTable, facts, joined, noticeLine, recordPages, source } from "./record-pages.ts";
import type { Session } from "./session.ts";

function formsPage(session: Session, forms: FormRecord[], origin: string, notice?: string): Html {
  return page(
    "Forms",
    html`${noticeLine(notice)}
<table class="list"><thead><tr><th scope="col">Name</th><th scope="col">Sends from → to</th><th scope="col">Allowed origins</th><th scope="col">Action URL</th><th scope="col">Created</th></tr></thead>
<tbody>${forms.length === 0 ? html`<tr><td colspan="5" class="muted">No forms (POST /forms adds one).</td></tr>` : ""}${forms.map(
      (f) =>
        html`<tr><td><a href="/dashboard/forms/${f.id}">${f.name ?? f.id}</a></td><td>${f.from} → ${f.to.join(", ")}</td><td>${joined(f.allowed_origins) ?? "—"}</td><td><code>${origin}/f/${f.id}</code></td><td>${iso(f.created_at)}</td></tr>`,
    )}</tbody></table>
<p class="muted">Rejected submissions are counted on each form's page.</p>`,
    session,
  );
}

function formPage(
  session: Session,
  form: FormRecord,
  counters: Record<string, number>,
  origin: string,
): Html {
  const view = formView(form, origin);
  return page(
    view.name ?? "Form",
    html`${facts([
      ["Id", view.id],
      ["Action URL", html`<code>${view.action_url}</code>`],
      ["Start token URL", html`<code>${view.start_url}</code>`],
      ["From", view.from],
      ["To", joined(view.to)],
      ["Reply-To field", view.reply_to_field],
      ["Allowed origins", joined(view.allowed_origins)],
      ["Success URL", view.success_url],
      ["Error URL", view.error_url],
      ["Honeypot field", view.honeypot],
      ["Start token", `${view.start_token}, at least ${view.min_fill_seconds} s to fill`],
      ["Rate limits", `${view.ip_rate_limit} per client, ${view.rate_limit} for the form`],
      ["Largest body", `${view.max_body_bytes} bytes`],
      ["Turnstile", view.turnstile ? "on (its secret is set)" : "off"],
      ["Created", `${view.created_at} by ${view.created_by}`],
      ["Updated", `${view.updated_at} by ${view.updated_by}`],
    ])}
<h2>Fields</h2>
<table class="list"><thead><tr><th scope="col">Name</th><th scope="col">Type</th><th scope="col">Required</th><th scope="col">Multiple</th><th scope="col">Limit</th></tr></thead>
<tbody>${view.fields.map(
      (f) =>
        html`<tr><td>${f.name}</td><td>${f.type}</td><td>${f.required ? "yes" : "no"}</td><td>${f.multiple ? "yes" : "no"}</td><td>${f.type === "file" ? `${f.max_bytes} bytes, ${f.content_types.join(", ") || "any type"}` : `${f.max_length} characters`}</td></tr>`,
    )}</tbody></table>
<h2>Message</h2>
${source("Subject", view.subject)}${source("Text", view.text)}${source("HTML", view.html)}
<h2>Rejected submissions</h2>
${counterTable("Rejected submissions by reason", formCounters(counters).rejected)}
<h2>Actions</h2>
${postButton(session, `/dashboard/forms/${view.id}/delete`, "Delete this form", true)}`,
    session,
  );
}

/** Registers the form pages on the dashboard's app. */
export function formPages(app: OpenAPIHono<AppEnv>): void {
  recordPages<FormRecord>(app, {
    kind: "form",
    name: "Form",
    path: "/forms",
    cache: formCache,
    list: formsPage,
    one: formPage,
  });
}
