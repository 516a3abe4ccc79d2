/**
 * The dashboard's frame: the page around each view, its one stylesheet, and the headers every
 * dashboard answer carries. hono/html escapes every interpolated value; nothing here marks data
 * as raw HTML.
 */
import { html } from "hono/html";
import type { HtmlEscapedString } from "hono/utils/html";
import type { Session } from "./session.ts";

export type Html = HtmlEscapedString | Promise<HtmlEscapedString>;

/** On every dashboard answer: nothing loads but the relay's own stylesheet; never framed or cached. */
export const SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy":
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
};

export const STYLESHEET = `
:root { color-scheme: light dark; --fg: #1b1f24; --muted: #5b6470; --bg: #fff; --line: #d7dce2;
  --accent: #0b5cad; --bad: #b3261e; --good: #1e7b34; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6e9ee; --muted: #9aa4b1; --bg: #14171b;
  --line: #2c323a; --accent: #6cb2ff; --bad: #ff8a80; --good: #7bd88f; } }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; flex-wrap: wrap; gap: .5rem 1.25rem; align-items: center;
  padding: .75rem 1rem; border-bottom: 1px solid var(--line); }
header nav { display: flex; flex-wrap: wrap; gap: .25rem 1rem; }
header .who { margin-left: auto; color: var(--muted); display: flex; gap: .5rem; align-items: center; }
main { padding: 1rem; max-width: 72rem; }
a { color: var(--accent); }
a:focus-visible, button:focus-visible, input:focus-visible, select:focus-visible {
  outline: 3px solid var(--accent); outline-offset: 2px; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1.5rem; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line);
  vertical-align: top; overflow-wrap: anywhere; }
th { color: var(--muted); font-weight: 600; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
form.inline { display: inline; }
form.filters, form.stack { display: grid; grid-template-columns: repeat(auto-fill, minmax(12rem, 1fr));
  gap: .5rem 1rem; align-items: end; margin-bottom: 1rem; }
label { display: flex; flex-direction: column; gap: .15rem; color: var(--muted); font-size: .9rem; }
input, select, button { font: inherit; padding: .35rem .5rem; border: 1px solid var(--line);
  border-radius: 4px; background: var(--bg); color: var(--fg); }
button { cursor: pointer; border-color: var(--accent); }
button.danger { border-color: var(--bad); color: var(--bad); }
code.wrap { word-break: break-all; }
.notice { padding: .5rem .75rem; border-left: 4px solid var(--good); margin: 0 0 1rem; }
.error { padding: .5rem .75rem; border-left: 4px solid var(--bad); margin: 0 0 1rem; }
.token { font-family: ui-monospace, monospace; font-size: 1.05rem; padding: .5rem;
  border: 1px dashed var(--line); display: block; overflow-wrap: anywhere; }
.pager { display: flex; flex-wrap: wrap; gap: 1rem; }
pre.source { margin: .25rem 0 1rem; padding: .5rem; border: 1px solid var(--line); max-height: 24rem;
  overflow: auto; white-space: pre-wrap; overflow-wrap: anywhere; font-size: .9rem; }
pre.source:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
table caption { text-align: left; color: var(--muted); }
.muted { color: var(--muted); }
ul.attempts { margin: 0; padding-left: 1rem; }
svg.bars rect { fill: var(--accent); }
svg.bars text { fill: var(--muted); font-size: 10px; }
@media (max-width: 600px) {
  header .who { margin-left: 0; }
  form.filters, form.stack { grid-template-columns: 1fr; }
  table.list thead { display: none; }
  table.list tr { display: block; border-bottom: 1px solid var(--line); padding: .4rem 0; }
  table.list td { display: block; border: 0; padding: .1rem 0; }
}
`;

const NAV = [
  ["/dashboard", "Overview"],
  ["/dashboard/emails", "Emails"],
  ["/dashboard/keys", "API keys"],
  ["/dashboard/webhooks", "Webhooks"],
  ["/dashboard/forms", "Forms"],
  ["/dashboard/hooks", "Hooks"],
  ["/dashboard/templates", "Templates"],
  ["/dashboard/domains", "Domains"],
  ["/dashboard/suppressions", "Suppressions"],
] as const;

/** A hidden field with the session's form token: in every form that posts. */
export const csrfField = (session: Session) =>
  html`<input type="hidden" name="_csrf" value="${session.csrf}">`;

/** A POST form that is one button (cancel, delete, sign out). */
export function postButton(session: Session, action: string, label: string, danger = false): Html {
  return html`<form class="inline" method="post" action="${action}">${csrfField(session)}<button type="submit"${danger ? html` class="danger"` : ""}>${label}</button></form>`;
}

export function page(title: string, body: Html, session?: Session): Html {
  const who = session
    ? session.principal.keyId === "admin"
      ? "ADMIN_TOKEN"
      : `key ${session.principal.keyId}`
    : null;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · edge-smtp-relay</title>
<link rel="stylesheet" href="/dashboard/style.css">
</head>
<body>
<header>
<strong>edge-smtp-relay</strong>
${
  session
    ? html`<nav aria-label="Dashboard">${NAV.map(([href, label]) => html`<a href="${href}">${label}</a>`)}</nav>
<span class="who">Signed in as ${who} ${postButton(session, "/dashboard/sign-out", "Sign out")}</span>`
    : ""
}
</header>
<main>
<h1>${title}</h1>
${body}
</main>
</body>
</html>`;
}

export const iso = (ms: number | null | undefined) =>
  ms == null ? "" : new Date(ms).toISOString().replace(".000Z", "Z");

/**
 * An SMTP reply as one line. The stored text is the server's whole reply line ("550 5.1.1 No
 * such user"), so the code is added only when the text does not already start with it (a
 * network error: "no answer: connection reset").
 */
export function replyLine(
  r: { code: number | null; enhanced?: string; text: string } | null,
): string {
  if (!r) return "—";
  if (r.code !== null && r.text.startsWith(String(r.code))) return r.text;
  return [r.code ?? "no answer", r.enhanced, r.text]
    .filter((p) => p !== undefined && p !== "")
    .join(" ");
}
