/**
 * The dashboard's webhook pages as HTML: one endpoint (never its signing secret) with its recent
 * events, their attempts and the replay action, and the events section of an email's page.
 */
import { html } from "hono/html";
import type { Endpoint } from "../../events/manage.ts";
import type { EndpointEvent, EventAttempt } from "../../store/store.ts";
import { type Html, iso, page, postButton } from "./layout.ts";
import type { Session } from "./session.ts";

/** How much of a receiver's answer a page shows (the store keeps up to 500 characters). */
const RESPONSE_SHOWN = 200;

function attemptLine(a: EventAttempt): Html {
  const outcome = a.status === null ? `no answer: ${a.error ?? "error"}` : `HTTP ${a.status}`;
  const answer = (a.response ?? "").slice(0, RESPONSE_SHOWN);
  return html`<li>${iso(a.at)} · ${outcome} · ${a.ms} ms${answer ? html` · <code>${answer}</code>` : ""}</li>`;
}

function attemptList(e: EndpointEvent): Html {
  const next = e.nextAttemptAt
    ? html`<li class="muted">next attempt ${iso(e.nextAttemptAt)}</li>`
    : "";
  if (e.attempts.length === 0)
    return html`<ul class="attempts"><li class="muted">not sent yet</li>${next}</ul>`;
  return html`<ul class="attempts">${e.attempts.map(attemptLine)}${next}</ul>`;
}

export function endpointPage(
  session: Session,
  found: Endpoint,
  events: EndpointEvent[],
  notice?: string,
): Html {
  const { record, enabled } = found;
  const base = `/dashboard/webhooks/${record.id}`;
  return page(
    "Webhook endpoint",
    html`${notice ? html`<p class="notice" role="status">${notice}</p>` : ""}
<table><tbody>
<tr><th scope="row">Endpoint</th><td>${record.endpoint}</td></tr>
<tr><th scope="row">Id</th><td>${record.id}</td></tr>
<tr><th scope="row">Status</th><td id="endpoint-status">${enabled ? "enabled" : "disabled"}${!enabled && record.disabledReason ? ` (${record.disabledReason}${record.disabledAt ? `, ${iso(record.disabledAt)}` : ""})` : ""}</td></tr>
<tr><th scope="row">Events</th><td>${record.events.join(", ")}</td></tr>
<tr><th scope="row">Created</th><td>${iso(record.createdAt)}</td></tr>
</tbody></table>
<p class="muted">The signing secret is shown only when the endpoint is made or its secret rotated (API).</p>
<h2>Recent events</h2>
${enabled ? "" : html`<p class="muted">Replaying is off while the endpoint is disabled: enable it first (PATCH /webhooks/:id).</p>`}
<table class="list" id="events"><thead><tr><th scope="col">Created</th><th scope="col">Type</th><th scope="col">Email</th><th scope="col">Status</th><th scope="col">Attempts</th><th scope="col">Actions</th></tr></thead>
<tbody>${events.length === 0 ? html`<tr><td colspan="6" class="muted">No events queued for this endpoint yet.</td></tr>` : ""}${events.map(
      (e) =>
        html`<tr data-event="${e.id}"><td>${iso(e.createdAt)}</td><td>${e.type}${e.replayOf ? html`<br><span class="muted">replay of ${e.replayOf}</span>` : ""}</td><td><a href="/dashboard/emails/${e.emailId}">${e.emailId}</a></td><td class="status">${e.status}</td><td>${attemptList(e)}</td><td>${enabled ? postButton(session, `${base}/events/${e.id}/replay`, `Replay ${e.type}`) : ""}</td></tr>`,
    )}</tbody></table>`,
    session,
  );
}

/** An email's events, per endpoint, with their attempts (the email page's last section). */
export function emailEventsSection(events: EndpointEvent[]): Html {
  if (events.length === 0)
    return html`<h2>Webhook events</h2><p class="muted">No webhook endpoint has an event of this email.</p>`;
  const sorted = [...events].sort((a, b) => a.createdAt - b.createdAt);
  return html`<h2>Webhook events</h2>
<table class="list" id="email-events"><thead><tr><th scope="col">Created</th><th scope="col">Type</th><th scope="col">Endpoint</th><th scope="col">Status</th><th scope="col">Attempts</th></tr></thead>
<tbody>${sorted.map(
    (e) =>
      html`<tr><td>${iso(e.createdAt)}</td><td>${e.type}${e.replayOf ? html` <span class="muted">(replay)</span>` : ""}</td><td><a href="/dashboard/webhooks/${e.endpointId}">${e.endpointId}</a></td><td>${e.status}</td><td>${attemptList(e)}</td></tr>`,
  )}</tbody></table>`;
}
