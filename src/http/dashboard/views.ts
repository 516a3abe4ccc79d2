/**
 * The dashboard's pages as HTML, from what the use cases answer. Pure functions of their data;
 * every value is interpolated (escaped) by hono/html.
 */
import { html } from "hono/html";
import type { Endpoint } from "../../events/manage.ts";
import type { MetricsAnswer } from "../../listing/metrics.ts";
import type { EndpointEvent } from "../../store/store.ts";
import type { ApiKeyRecord } from "../../store/types.ts";
import { LAST_EVENTS } from "../routes/email-list.ts";
import type { emailView } from "../view.ts";
import { csrfField, type Html, iso, page, postButton, replyLine } from "./layout.ts";
import type { Session } from "./session.ts";
import { emailEventsSection } from "./webhook-views.ts";

export function signInPage(message?: string): Html {
  return page(
    "Sign in",
    html`${message ? html`<p class="error" role="alert">${message}</p>` : ""}
<form class="stack" method="post" action="/dashboard/sign-in">
<label for="token">ADMIN_TOKEN or a full_access API key
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus></label>
<button type="submit">Sign in</button>
</form>
<p class="muted">The token is sent once, in this form's body; the session lasts 12 hours.</p>`,
  );
}

const ROWS = [
  ["sent", "Sent"],
  ["delivered", "Delivered"],
  ["delivery_delayed", "Deferred"],
  ["bounced", "Bounced"],
  ["complained", "Complained"],
  ["failed", "Failed"],
  ["canceled", "Canceled"],
  ["suppressed", "Suppressed"],
  ["scheduled", "Scheduled"],
] as const;

/** Daily bars of one count: an inline SVG (no script, no image fetch). */
function bars(week: MetricsAnswer, metric: string, label: string): Html {
  const days = week.periods ?? [];
  const max = Math.max(1, ...days.map((d) => d.counts[metric] ?? 0));
  const w = 40;
  return html`<figure><svg class="bars" role="img" aria-label="${label} per day" width="${days.length * w}" height="120" viewBox="0 0 ${days.length * w} 120">${days.map(
    (d, i) => {
      const n = d.counts[metric] ?? 0;
      const h = Math.round((n / max) * 90);
      return html`<rect x="${i * w + 6}" y="${100 - h}" width="${w - 12}" height="${h}"><title>${iso(d.start).slice(0, 10)}: ${n}</title></rect><text x="${i * w + 6}" y="114">${iso(d.start).slice(5, 10)}</text>`;
    },
  )}</svg><figcaption>${label} per day (UTC), last 7 days</figcaption></figure>`;
}

export function overviewPage(
  session: Session,
  day: MetricsAnswer,
  week: MetricsAnswer,
  status: Html,
): Html {
  return page(
    "Overview",
    html`${status}
<table>
<thead><tr><th scope="col">Event</th><th scope="col" class="n">Last 24 h</th><th scope="col" class="n">Last 7 days</th></tr></thead>
<tbody>${ROWS.map(
      ([key, label]) =>
        html`<tr><th scope="row">${(LAST_EVENTS as readonly string[]).includes(key) ? html`<a href="/dashboard/emails?last_event=${key}">${label}</a>` : label}</th><td class="n">${day.totals[key] ?? 0}</td><td class="n">${week.totals[key] ?? 0}</td></tr>`,
    )}</tbody></table>
${bars(week, "sent", "Sent")}
${bars(week, "bounced", "Bounced")}`,
    session,
  );
}

type EmailView = Awaited<ReturnType<typeof emailView>>;
export interface ListedRow {
  id: string;
  created: number;
  from: string;
  to: string[];
  subject: string;
  lastEvent: string;
}

function filterForm(q: Record<string, string>): Html {
  const text = (name: string, label: string, type = "text") =>
    html`<label for="f-${name}">${label}<input id="f-${name}" name="${name}" type="${type}" value="${q[name] ?? ""}"></label>`;
  return html`<form class="filters" method="get" action="/dashboard/emails">
<label for="f-last_event">Last event<select id="f-last_event" name="last_event"><option value="">any</option>${LAST_EVENTS.map(
    (e) => html`<option value="${e}"${q.last_event === e ? html` selected` : ""}>${e}</option>`,
  )}</select></label>
${text("to", "Recipient", "email")}${text("key_id", "Key id")}${text("tag", "Tag (name:value)")}
${text("since", "Since (ISO date)")}${text("until", "Until (ISO date)")}
<button type="submit">Filter</button>
</form>`;
}

function pageLink(q: Record<string, string>, cursor: Record<string, string>, label: string): Html {
  const { after: _a, before: _b, ...rest } = q;
  const query = new URLSearchParams({ ...rest, ...cursor });
  return html`<a href="/dashboard/emails?${query.toString()}">${label}</a>`;
}

export function emailsPage(
  session: Session,
  q: Record<string, string>,
  rows: ListedRow[],
  more: { older: string | null; newer: string | null },
  error?: string,
): Html {
  return page(
    "Emails",
    html`${filterForm(q)}${error ? html`<p class="error" role="alert">${error}</p>` : ""}
<table class="list"><thead><tr><th scope="col">Created</th><th scope="col">From</th><th scope="col">To</th><th scope="col">Subject</th><th scope="col">Last event</th></tr></thead>
<tbody>${rows.length === 0 ? html`<tr><td colspan="5" class="muted">No emails match.</td></tr>` : ""}${rows.map(
      (r) =>
        html`<tr><td>${iso(r.created)}</td><td>${r.from}</td><td>${r.to.join(", ")}</td><td><a href="/dashboard/emails/${r.id}">${r.subject || "(no subject)"}</a></td><td>${r.lastEvent}</td></tr>`,
    )}</tbody></table>
<nav class="pager" aria-label="Pages">${more.newer ? pageLink(q, { before: more.newer }, "← Newer") : ""}${more.older ? pageLink(q, { after: more.older }, "Older →") : ""}</nav>`,
    session,
  );
}

const submittedVia = (view: EmailView) =>
  view.submitted_via === "smtp" ? "by SMTP" : "by the HTTP API";

export function emailPage(
  session: Session,
  view: EmailView,
  actions: { cancel: boolean; reschedule: boolean; retryNow: boolean },
  events: EndpointEvent[],
  notice?: string,
): Html {
  const base = `/dashboard/emails/${view.id}`;
  return page(
    view.subject || "(no subject)",
    html`${notice ? html`<p class="notice" role="status">${notice}</p>` : ""}
<table><tbody>
<tr><th scope="row">Id</th><td>${view.id}</td></tr>
<tr><th scope="row">From</th><td>${view.from}</td></tr>
<tr><th scope="row">To</th><td>${view.to.join(", ")}</td></tr>
${view.cc ? html`<tr><th scope="row">Cc</th><td>${view.cc.join(", ")}</td></tr>` : ""}
<tr><th scope="row">Created</th><td>${view.created_at}</td></tr>
<tr><th scope="row">Scheduled</th><td>${view.scheduled_at ?? "—"}</td></tr>
<tr><th scope="row">Last event</th><td id="last-event">${view.last_event}</td></tr>
<tr><th scope="row">Attempts</th><td>${view.delivery.attempts}${view.delivery.next_attempt_at ? ` (next ${view.delivery.next_attempt_at})` : ""}</td></tr>
<tr><th scope="row">Message-ID</th><td>${view.message_id}</td></tr>
<tr><th scope="row">Submitted</th><td id="submitted-via">${submittedVia(view)}</td></tr>
<tr><th scope="row">Tags</th><td>${view.tags.map((t) => `${t.name}:${t.value}`).join(", ") || "—"}</td></tr>
</tbody></table>
${
  actions.cancel || actions.reschedule || actions.retryNow
    ? html`<h2>Actions</h2><div class="pager">${actions.retryNow ? postButton(session, `${base}/retry`, "Retry now") : ""}
${actions.cancel ? postButton(session, `${base}/cancel`, "Cancel this email", true) : ""}
${actions.reschedule ? html`<form class="inline" method="post" action="${base}/reschedule">${csrfField(session)}<label for="scheduled_at">New time (ISO with zone, or "in 2 hours")<input id="scheduled_at" name="scheduled_at" required></label> <button type="submit">Reschedule</button></form>` : ""}</div>`
    : ""
}
<h2>Recipients</h2>
<table class="list"><thead><tr><th scope="col">Address</th><th scope="col">Status</th><th scope="col">SMTP reply</th><th scope="col">At</th></tr></thead>
<tbody>${view.delivery.recipients.map(
      (r) =>
        html`<tr><td>${r.email}</td><td>${r.status}</td><td>${replyLine(r.reply)}</td><td>${r.at ?? ""}</td></tr>`,
    )}</tbody></table>
<h2>Attempts</h2>
${
  view.delivery.history.length === 0
    ? html`<p class="muted">No delivery attempt yet.</p>`
    : html`<table class="list"><thead><tr><th scope="col">At</th><th scope="col" class="n">Tried</th><th scope="col" class="n">Delivered</th><th scope="col" class="n">Deferred</th><th scope="col" class="n">Failed</th><th scope="col">Smart host</th><th scope="col">Reply</th></tr></thead>
<tbody>${view.delivery.history.map(
        (h) =>
          html`<tr><td>${h.at}</td><td class="n">${h.tried}</td><td class="n">${h.delivered}</td><td class="n">${h.deferred}</td><td class="n">${h.failed}</td><td>${h.host ?? "—"}</td><td>${replyLine(h.reply)}</td></tr>`,
      )}</tbody></table>`
}
${emailEventsSection(events)}`,
    session,
  );
}

export function keysPage(
  session: Session,
  keys: ApiKeyRecord[],
  created?: { id: string; token: string; name: string; rotatedFrom?: string },
): Html {
  const made = created?.rotatedFrom
    ? html`Key <strong>${created.name}</strong> rotated: the new key is ${created.id}; the old one (${created.rotatedFrom}) keeps working until you delete it.`
    : html`Key <strong>${created?.name}</strong> created.`;
  return page(
    "API keys",
    html`${created ? html`<div class="notice" role="status"><p>${made} Copy its token now: it is not shown again.</p><code class="token" id="new-token">${created.token}</code></div>` : ""}
<h2>Create a key</h2>
<form class="stack" method="post" action="/dashboard/keys">${csrfField(session)}
<label for="k-name">Name<input id="k-name" name="name" required maxlength="50"></label>
<label for="k-permission">Permission<select id="k-permission" name="permission"><option value="sending_access">sending_access</option><option value="full_access">full_access</option></select></label>
<button type="submit">Create key</button>
</form>
<h2>Keys</h2>
<table class="list"><thead><tr><th scope="col">Name</th><th scope="col">Id</th><th scope="col">Permission</th><th scope="col">Created</th><th scope="col">Last used</th><th scope="col">Actions</th></tr></thead>
<tbody>${keys.map(
      (k) =>
        html`<tr><td>${k.name}</td><td>${k.id}</td><td>${k.permission}</td><td>${iso(k.createdAt)}</td><td>${iso(k.lastUsedAt) || "never"}</td><td>
<form class="inline" method="post" action="/dashboard/keys/${k.id}/rename">${csrfField(session)}<label for="r-${k.id}">New name<input id="r-${k.id}" name="name" required maxlength="50" value="${k.name}"></label> <button type="submit">Rename</button></form>
${postButton(session, `/dashboard/keys/${k.id}/rotate`, `Rotate ${k.name}`)}
${postButton(session, `/dashboard/keys/${k.id}/delete`, `Delete ${k.name}`, true)}</td></tr>`,
    )}</tbody></table>`,
    session,
  );
}

export function webhooksPage(session: Session, endpoints: Endpoint[]): Html {
  return page(
    "Webhooks",
    html`<table class="list"><thead><tr><th scope="col">Endpoint</th><th scope="col">Events</th><th scope="col">Status</th><th scope="col">Created</th></tr></thead>
<tbody>${endpoints.length === 0 ? html`<tr><td colspan="4" class="muted">No webhook endpoints (POST /webhooks adds one).</td></tr>` : ""}${endpoints.map(
      (e) =>
        html`<tr><td><a href="/dashboard/webhooks/${e.record.id}">${e.record.endpoint}</a></td><td>${e.record.events.join(", ")}</td><td>${e.enabled ? "enabled" : "disabled"}</td><td>${iso(e.record.createdAt)}</td></tr>`,
    )}</tbody></table>`,
    session,
  );
}
