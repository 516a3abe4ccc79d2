/**
 * The dashboard's inbound hook pages (src/intake/hooks): the list, one hook with its proof
 * method, templates and rejection counters, and delete. A hook's secret is never shown, only that
 * one is set: the views start from hookView, which has no secret, and say how to replace it.
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import { html } from "hono/html";
import { type HookRecord, hookView } from "../../intake/hooks/hooks.ts";
import { hookCounters } from "../../intake/hooks/records.ts";
import { hookCache } from "../../intake/hooks/source.ts";
import type { AppEnv } from "../env.ts";
import { type Html, iso, page, postButton } from "./layout.ts";
import { counterTable, facts, joined, noticeLine, recordPages, source } from "./record-pages.ts";
import type { Session } from "./session.ts";

/** How a request proves it comes from the sender, in words; the secret itself stays out. */
function proofLine(verify: HookRecord["verify"]): string {
  switch (verify.type) {
    case "url_secret":
      return "a secret as the last segment of the URL";
    case "header":
      return `a secret in the ${verify.header} header${verify.prefix ? ` after "${verify.prefix}"` : ""}`;
    case "hmac_sha256":
      return `HMAC-SHA256 of the body (${verify.encoding}) in the ${verify.header} header${verify.prefix ? ` after "${verify.prefix}"` : ""}`;
    case "standard_webhooks":
      return "a Standard Webhooks signature";
  }
}

function hooksPage(session: Session, hooks: HookRecord[], origin: string, notice?: string): Html {
  return page(
    "Inbound hooks",
    html`${noticeLine(notice)}
<table class="list"><thead><tr><th scope="col">Name</th><th scope="col">Sends from → to</th><th scope="col">Proof</th><th scope="col">URL</th><th scope="col">Created</th></tr></thead>
<tbody>${hooks.length === 0 ? html`<tr><td colspan="5" class="muted">No inbound hooks (POST /hooks adds one).</td></tr>` : ""}${hooks.map(
      (h) =>
        html`<tr><td><a href="/dashboard/hooks/${h.id}">${h.name ?? h.id}</a></td><td>${h.from} → ${h.to.join(", ")}</td><td>${h.verify.type} (secret set)</td><td><code>${origin}/hooks/${h.id}</code></td><td>${iso(h.created_at)}</td></tr>`,
    )}</tbody></table>
<p class="muted">Rejected requests are counted on each hook's page.</p>`,
    session,
  );
}

function hookPage(
  session: Session,
  hook: HookRecord,
  counters: Record<string, number>,
  origin: string,
): Html {
  const view = hookView(hook, origin);
  const counted = hookCounters(counters);
  return page(
    view.name ?? "Inbound hook",
    html`${facts([
      ["Id", view.id],
      ["URL", html`<code>${view.url}${view.verify.type === "url_secret" ? "/…" : ""}</code>`],
      ["Proof", proofLine(view.verify)],
      [
        "Secret",
        "set; shown once when made. POST /hooks/:id/rotate replaces it (the new one is shown once).",
      ],
      ["From", view.from],
      ["To", joined(view.to)],
      ["Cc", joined(view.cc)],
      ["Reply-To", joined(view.reply_to)],
      ["Rate limit", view.rate_limit ?? "the relay's default (HOOK_RATE_LIMIT)"],
      ["Allowed IPs", joined(view.allowed_ips) ?? "anywhere"],
      ["Created", `${view.created_at} by ${view.created_by}`],
      ["Updated", `${view.updated_at} by ${view.updated_by}`],
    ])}
<h2>Message</h2>
${source("Subject", view.subject)}${source("Text", view.text)}${source("HTML", view.html)}
<h2>Rejected requests</h2>
${counterTable("Rejected requests by reason", counted.rejected)}
<p>Duplicate deliveries (a Standard Webhooks id seen before): ${counted.duplicates}</p>
<h2>Actions</h2>
${postButton(session, `/dashboard/hooks/${view.id}/delete`, "Delete this hook", true)}`,
    session,
  );
}

/** Registers the inbound hook pages on the dashboard's app. */
export function hookPages(app: OpenAPIHono<AppEnv>): void {
  recordPages<HookRecord>(app, {
    kind: "hook",
    name: "Hook",
    path: "/hooks",
    cache: hookCache,
    list: hooksPage,
    one: hookPage,
  });
}
