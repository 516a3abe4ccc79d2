/**
 * The overview's status lines: the queue, the smart host's latest success and refusal, and the
 * failing webhook endpoints, each as one plain sentence. Every value is escaped by hono/html.
 */
import { html } from "hono/html";
import type { Overview } from "../../listing/overview.ts";
import type { HostOutcome } from "../../store/store.ts";
import { type Html, iso, replyLine } from "./layout.ts";

/** "just now", "4 min ago", "3 h ago", "2 days ago". */
export function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return s < 5 ? "just now" : `${s} s ago`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min ago`;
  const h = Math.round(m / 60);
  return h < 48 ? `${h} h ago` : `${Math.round(h / 24)} days ago`;
}

const reply = (o: HostOutcome) => replyLine(o);

const when = (at: number, now: number) => html`<time datetime="${iso(at)}">${ago(now - at)}</time>`;

const email = (id: string) => html`<a href="/dashboard/emails/${id}">${id}</a>`;

function queueLine(o: Overview, now: number): Html {
  const q = o.queue;
  const leased = `${q.leased}${q.leasedCapped ? "+" : ""}`;
  const oldest = q.oldestDue
    ? html` The oldest due message, ${email(q.oldestDue.id)}, has been due since ${iso(q.oldestDue.dueAt)} (${ago(now - q.oldestDue.dueAt).replace(" ago", "")}).`
    : " Nothing is waiting.";
  return html`<p id="queue">Queue: ${q.due} due now, ${q.scheduled} scheduled later, ${leased} being delivered.${oldest}</p>`;
}

function hostLines(o: Overview, now: number): Html {
  const { lastSuccess: ok, lastRefusal: no } = o.host;
  return html`<p id="host-success">${
    ok
      ? html`Smart host last accepted mail ${when(ok.at, now)}: ${reply(ok)} (${email(ok.emailId)}).`
      : "The smart host has not accepted mail yet."
  }</p>
<p id="host-refusal">${
    no
      ? html`Smart host last refused ${when(no.at, now)}: ${reply(no)} (${email(no.emailId)}).`
      : "The smart host has not refused mail."
  }</p>`;
}

function webhookLines(o: Overview): Html {
  const unread = o.endpointsUnread
    ? html` <span class="muted">${o.endpointsUnread} more enabled endpoints not checked.</span>`
    : "";
  if (o.failing.length === 0) {
    return html`<p id="webhooks-failing">No webhook endpoint is failing.${unread}</p>`;
  }
  return html`<p id="webhooks-failing">${o.failing.length} webhook ${o.failing.length === 1 ? "endpoint is" : "endpoints are"} failing (<a href="/dashboard/webhooks">webhooks</a>):${unread}</p>
<ul>${o.failing.map(
    (e) =>
      html`<li>${e.url}: ${e.enabled ? `${e.failed} of its last ${e.of} events failed` : "disabled"}</li>`,
  )}</ul>`;
}

export function overviewStatus(o: Overview, now: number): Html {
  return html`<section aria-labelledby="status-h"><h2 id="status-h">Now</h2>
${queueLine(o, now)}
${hostLines(o, now)}
${webhookLines(o)}</section>`;
}
