/**
 * The dashboard's Suppressions page: the list newest first with an origin filter and pages, a
 * form to add an address, and a remove button per entry (each form carries the session's CSRF
 * token). It calls the same use cases as /suppressions, as the signed-in principal, so the same
 * rules hold (allowed_recipients bounds what a key may add or remove).
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { html } from "hono/html";
import { ValidationError } from "../../errors.ts";
import type { SuppressionPage } from "../../store/store.ts";
import { suppressionAddress } from "../../suppressions.ts";
import type { AppEnv } from "../env.ts";
import { route } from "../route.ts";
import { stored, UUID } from "../routes/resource.ts";
import { suppressionPage } from "../routes/suppressions.ts";
import { formOf, sessionOf } from "./guard.ts";
import { csrfField, type Html, iso, page, postButton } from "./layout.ts";
import { page as pageRoute } from "./page-route.ts";
import type { Session } from "./session.ts";

const ORIGINS = ["bounce", "complaint", "manual"] as const;

export function suppressionsPage(
  session: Session,
  list: SuppressionPage,
  origin: string | undefined,
  notice?: string,
): Html {
  const q = (cursor: string) =>
    `/dashboard/suppressions?${origin ? `origin=${origin}&` : ""}${cursor}`;
  const first = list.data[0];
  const last = list.data.at(-1);
  return page(
    "Suppressions",
    html`${notice ? html`<p class="notice" role="status">${notice}</p>` : ""}
<p class="muted">The relay does not send to these addresses: such a recipient ends <code>suppressed</code>. Bounces with 5.1.1, 5.1.2, 5.1.3, 5.1.6, 5.1.10 or 5.2.1 are added on their own.</p>
<form class="stack" method="post" action="/dashboard/suppressions">${csrfField(session)}
<label for="email">Address <input id="email" name="email" type="email" required placeholder="someone@example.com"></label>
<button type="submit">Suppress</button>
</form>
<form class="inline" method="get" action="/dashboard/suppressions">
<label for="f-origin">Origin <select id="f-origin" name="origin"><option value="">any</option>${ORIGINS.map(
      (o) => html`<option value="${o}"${origin === o ? html` selected` : ""}>${o}</option>`,
    )}</select></label>
<button type="submit">Filter</button>
</form>
${
  list.data.length === 0
    ? html`<p class="muted">No suppressed addresses.</p>`
    : html`<table class="list"><thead><tr><th scope="col">Address</th><th scope="col">Origin</th><th scope="col">Source</th><th scope="col">Added</th><th scope="col">Expires</th><th scope="col"></th></tr></thead>
<tbody>${list.data.map(
        (s) =>
          html`<tr><td>${s.email}</td><td>${s.origin}</td><td>${s.source_id ? html`<a href="/dashboard/emails/${s.source_id}">${s.source_id}</a>` : "—"}</td><td>${iso(s.created_at)}</td><td>${s.expires_at === null ? "never" : iso(s.expires_at)}</td><td>${postButton(session, `/dashboard/suppressions/${s.id}/remove`, `Remove ${s.email}`, true)}</td></tr>`,
      )}</tbody></table>`
}
<nav class="pages">${first ? html`<a href="${q(`before=${first.id}`)}">Newer</a> ` : ""}${list.hasMore && last ? html`<a href="${q(`after=${last.id}`)}">Older</a>` : ""}</nav>`,
    session,
  );
}

async function show(c: Context<AppEnv>, notice?: string, status: 200 | 201 = 200) {
  const relay = c.get("relay");
  const request = suppressionPage((n) => {
    const v = c.req.query(n);
    return v === "" ? undefined : v;
  });
  const principal = sessionOf(c).principal;
  const list = await stored(relay, "dashboard.suppressions", () =>
    relay.suppressions.list(principal, request),
  );
  return c.html(suppressionsPage(sessionOf(c), list, request.origin, notice), status);
}

/** Adds the Suppressions pages to the dashboard's app (one line in routes.ts). */
export function registerSuppressionPages(app: OpenAPIHono<AppEnv>): void {
  route(
    app,
    pageRoute("get", "/suppressions", "the suppression list (origin, after, before)"),
    (c) => show(c, c.req.query("done") === "removed" ? "Removed." : undefined),
  );
  route(
    app,
    pageRoute("post", "/suppressions", "suppress an address (origin manual)", 201),
    async (c) => {
      const relay = c.get("relay");
      const form = await formOf(c);
      const email = suppressionAddress(form.get("email") ?? "", "email");
      const principal = sessionOf(c).principal;
      const [added] = await stored(relay, "dashboard.suppression_add", () =>
        relay.suppressions.add(principal, [email]),
      );
      const notice = added?.created ? `Suppressed ${email}.` : `${email} was already suppressed.`;
      return show(c, notice, 201);
    },
  );
  route(
    app,
    pageRoute("post", "/suppressions/{id}/remove", "remove a suppression", 303),
    async (c) => {
      const relay = c.get("relay");
      const id = c.req.param("id") ?? "";
      if (!UUID.test(id)) throw new ValidationError("is not an id", "id", 404);
      const principal = sessionOf(c).principal;
      await stored(relay, "dashboard.suppression_remove", () =>
        relay.suppressions.removeOne(principal, id.toLowerCase()),
      );
      return c.body(null, 303, { location: "/dashboard/suppressions?done=removed" });
    },
  );
}
