/**
 * The sink's "development inbox": an HTML list of what arrived and a page per message (summary,
 * HTML and text parts, attachments, headers, source). Mail anyone can send is shown here, so the
 * page runs no scripts and loads nothing remote.
 */
import type { ServerResponse } from "node:http";
import PostalMime, { type Address, type Attachment, type Email } from "postal-mime";
import type { ReceivedMessage, SmtpSink } from "./types.ts";

function escapeHtml(value: string): string {
  return value
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;")
    .replaceAll("'", "&#39;");
}

const PAGE_POLICY =
  "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'";

export function sendHtml(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, {
    "content-type": "text/html; charset=utf-8",
    "content-length": Buffer.byteLength(html),
    "content-security-policy": PAGE_POLICY,
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
  });
  res.end(html);
}

const STYLE = `
  :root { color-scheme: light; --ink: #1d2330; --muted: #667085; --line: #e4e7ec; --accent: #2f5bea; --bg: #f7f8fa; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); background: var(--bg); }
  header { background: #fff; border-bottom: 1px solid var(--line); padding: 14px 24px; display: flex; gap: 16px; align-items: center; flex-wrap: wrap; }
  header h1 { font-size: 18px; margin: 0; }
  header .meta { color: var(--muted); font-size: 13px; }
  header form { margin-left: auto; }
  main { max-width: 1100px; margin: 20px auto; padding: 0 24px; }
  a { color: var(--accent); text-decoration: none; }
  a:hover { text-decoration: underline; }
  code, pre { font: 13px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
  table { width: 100%; border-collapse: collapse; background: #fff; border: 1px solid var(--line); border-radius: 8px; overflow: hidden; }
  th, td { text-align: left; padding: 9px 12px; border-bottom: 1px solid var(--line); vertical-align: top; }
  th { font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); background: #fbfbfc; }
  tr:last-child td { border-bottom: 0; }
  td.time { white-space: nowrap; color: var(--muted); font-variant-numeric: tabular-nums; }
  td.subject a { display: block; }
  .empty { background: #fff; border: 1px dashed var(--line); border-radius: 8px; padding: 40px; text-align: center; color: var(--muted); }
  .badge { display: inline-block; font-size: 11px; padding: 1px 7px; border-radius: 10px; background: #e8f0fe; color: #1a4fd6; margin-left: 6px; }
  .badge.plain { background: #fdecea; color: #b42318; }
  section { margin: 18px 0; }
  section h2 { font-size: 14px; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); margin: 0 0 8px; }
  dl { display: grid; grid-template-columns: max-content 1fr; gap: 6px 18px; background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; margin: 0; }
  dt { color: var(--muted); }
  dd { margin: 0; word-break: break-word; }
  pre { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; overflow: auto; white-space: pre-wrap; word-break: break-word; margin: 0; max-height: 480px; }
  iframe { width: 100%; height: 420px; border: 1px solid var(--line); border-radius: 8px; background: #fff; }
  button { font: inherit; padding: 5px 12px; border: 1px solid var(--line); border-radius: 6px; background: #fff; cursor: pointer; }
  button:hover { border-color: var(--accent); color: var(--accent); }
  p.back { margin: 0 0 12px; }
  td.headers-key { white-space: nowrap; color: var(--muted); width: 1%; }
`;

function page(title: string, header: string, body: string, refresh = false): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
${refresh ? '<meta http-equiv="refresh" content="2">' : ""}
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<header>${header}</header>
<main>${body}</main>
</body>
</html>`;
}

function formatAddresses(list: Address[] | undefined): string {
  return (list ?? [])
    .flatMap((a) => (a.group ? a.group : [a]))
    .map((a) => (a.name ? `${a.name} <${a.address}>` : (a.address ?? "")))
    .join(", ");
}

function formatTime(iso: string): string {
  // The sink and the person reading it are on the same machine: local time, to the second.
  const d = new Date(iso);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function attachmentSize(content: Attachment["content"]): number {
  return typeof content === "string" ? Buffer.byteLength(content) : content.byteLength;
}

/** Hides the password of an SMTP URL shown on the page. */
function displayUrl(url: string): string {
  return url.replace(/^([a-z+]+:\/\/[^:@/]+:)[^@/]*@/i, "$1***@");
}

export interface Inbox {
  list(): Promise<string>;
  message(m: ReceivedMessage): Promise<string>;
  /** A 404 page with this text. */
  notFound(text: string): string;
  /** Forget parsed messages (after the sink forgot them). */
  forget(): void;
}

export function createInbox(sink: SmtpSink, title: string): Inbox {
  // Parsing is the slow part of the auto-refreshing list, so each message is parsed once.
  const parsed = new Map<number, Promise<Email>>();
  const parse = (message: ReceivedMessage) => {
    let result = parsed.get(message.id);
    if (!result) {
      result = PostalMime.parse(sink.bytes(message.id) ?? message.raw).catch(
        (): Email => ({ headers: [], headerLines: [], attachments: [] }),
      );
      parsed.set(message.id, result);
    }
    return result;
  };

  const headerBar = () =>
    `<h1><a href="/">${escapeHtml(title)}</a></h1>
     <span class="meta">SMTP <code>${escapeHtml(displayUrl(sink.url))}</code> · ${sink.messages.length} message${sink.messages.length === 1 ? "" : "s"}</span>
     <form method="post" action="/clear"><button type="submit">Clear all</button></form>`;

  const list = async () => {
    const rows = await Promise.all(
      [...sink.messages].reverse().map(async (m) => {
        const email = await parse(m);
        const subject = email.subject?.trim() || "(no subject)";
        const from = email.from ? formatAddresses([email.from]) : m.mailFrom || "<>";
        return `<tr>
          <td class="time">${escapeHtml(formatTime(m.receivedAt))}</td>
          <td>${escapeHtml(from)}</td>
          <td>${escapeHtml(m.rcptTo.join(", "))}</td>
          <td class="subject"><a href="/messages/${m.id}">${escapeHtml(subject)}</a></td>
          <td>${formatBytes(m.size)}${m.secure ? '<span class="badge">TLS</span>' : '<span class="badge plain">plain</span>'}</td>
        </tr>`;
      }),
    );
    const body = rows.length
      ? `<table><thead><tr><th>Received</th><th>From</th><th>To (envelope)</th><th>Subject</th><th>Size</th></tr></thead><tbody>${rows.join("")}</tbody></table>`
      : `<div class="empty">No messages yet. Mail sent to <code>${escapeHtml(displayUrl(sink.url))}</code> shows up here; this page refreshes every 2 seconds.</div>`;
    return page(`${title} (${sink.messages.length})`, headerBar(), body, true);
  };

  const message = async (m: ReceivedMessage) => {
    const email = await parse(m);
    const subject = email.subject?.trim() || "(no subject)";
    const sections = [
      `<p class="back"><a href="/">&larr; All messages</a></p>`,
      summarySection(m, email, subject),
      ...partSections(email),
      headersSection(email),
      `<section><h2>Source <a href="/messages/${m.id}/raw">(raw)</a></h2><pre>${escapeHtml(m.raw)}</pre></section>`,
    ];
    return page(`${subject} · ${title}`, headerBar(), sections.join("\n"));
  };

  return {
    list,
    message,
    notFound: (text) =>
      page("Not found", headerBar(), `<div class="empty">${escapeHtml(text)}</div>`),
    forget: () => parsed.clear(),
  };
}

function summarySection(m: ReceivedMessage, email: Email, subject: string): string {
  const summary: [string, string][] = [
    ["Subject", subject],
    ["From", email.from ? formatAddresses([email.from]) : ""],
    ["To", formatAddresses(email.to)],
    ["Cc", formatAddresses(email.cc)],
    ["Envelope from", m.mailFrom || "<>"],
    ["Envelope to", m.rcptTo.join(", ")],
    ["Received", `${formatTime(m.receivedAt)} (${m.receivedAt})`],
    ["Connection", `${m.secure ? "TLS" : "plain text"}, session ${m.sessionId}`],
    ["Authenticated", m.authUser ? `${m.authUser} (${m.authMethod})` : "no"],
    ["Size", formatBytes(m.size)],
  ];
  return `<section><dl>${summary
    .filter(([, v]) => v !== "")
    .map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd>`)
    .join("")}</dl></section>`;
}

/** The HTML part, the text part and the attachment list, those the message has. */
function partSections(email: Email): string[] {
  const sections: string[] = [];
  if (email.html !== undefined) {
    // sandbox with no allowances: no scripts, no forms, no navigation of this page.
    sections.push(
      `<section><h2>HTML part</h2><iframe sandbox srcdoc="${escapeHtml(email.html)}" title="HTML part"></iframe></section>`,
    );
  }
  if (email.text !== undefined) {
    sections.push(`<section><h2>Text part</h2><pre>${escapeHtml(email.text)}</pre></section>`);
  }
  if (email.attachments.length) {
    sections.push(
      `<section><h2>Attachments</h2><table><thead><tr><th>Name</th><th>Type</th><th>Disposition</th><th>Size</th></tr></thead><tbody>${email.attachments
        .map(
          (a) =>
            `<tr><td>${escapeHtml(a.filename ?? "(unnamed)")}</td><td>${escapeHtml(a.mimeType)}</td><td>${escapeHtml(a.disposition ?? "")}</td><td>${formatBytes(attachmentSize(a.content))}</td></tr>`,
        )
        .join("")}</tbody></table></section>`,
    );
  }
  return sections;
}

function headersSection(email: Email): string {
  return `<section><h2>Headers</h2><table><tbody>${email.headers
    .map(
      (h) =>
        `<tr><td class="headers-key">${escapeHtml(h.originalKey)}</td><td>${escapeHtml(h.value)}</td></tr>`,
    )
    .join("")}</tbody></table></section>`;
}
