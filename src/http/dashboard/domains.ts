/**
 * The dashboard's Domains page: the sending domains with their status, a form to add one (RSA or
 * Ed25519), and per domain the DNS records to publish and a button that verifies them now. It
 * calls the same use cases as /domains, as the signed-in principal (full access, checked by the
 * dashboard's guard). Private keys are never in it: it renders the public views of
 * src/dkim/domain.ts only.
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { html } from "hono/html";
import { type DomainRecord, domainRecords, type PublishContext } from "../../dkim/domain.ts";
import { ValidationError } from "../../errors.ts";
import type { AppEnv } from "../env.ts";
import { route } from "../route.ts";
import { stored, UUID } from "../routes/resource.ts";
import { formOf, sessionOf } from "./guard.ts";
import { csrfField, type Html, iso, page, postButton } from "./layout.ts";
import { page as pageRoute } from "./page-route.ts";
import type { Session } from "./session.ts";

interface ShownRecord {
  record: string;
  name: string;
  type: string;
  value: string;
  status: string;
  priority?: number;
  purpose?: string;
}

function recordsTable(d: DomainRecord, ctx: PublishContext): Html {
  const rows = domainRecords(d, ctx) as ShownRecord[];
  return html`<table class="list"><thead><tr><th scope="col">Type</th><th scope="col">Name</th><th scope="col">Value</th><th scope="col">Status</th></tr></thead>
<tbody>${rows.map(
    (r) =>
      html`<tr><td>${r.type}${r.priority === undefined ? "" : ` ${r.priority}`} (${r.purpose ?? r.record})</td><td><code>${r.name}</code></td><td><code class="wrap">${r.value}</code></td><td>${r.status}</td></tr>`,
  )}</tbody></table>`;
}

export function domainsPage(
  session: Session,
  domains: DomainRecord[],
  ctx: PublishContext,
  notice?: string,
): Html {
  return page(
    "Domains",
    html`${notice ? html`<p class="notice" role="status">${notice}</p>` : ""}
<form class="stack" method="post" action="/dashboard/domains">${csrfField(session)}
<label for="name">Domain <input id="name" name="name" required placeholder="example.com"></label>
<label for="algorithm">DKIM key <select id="algorithm" name="dkim_algorithm"><option value="rsa-sha256">RSA 2048 (rsa-sha256)</option><option value="ed25519-sha256">Ed25519 (ed25519-sha256)</option></select></label>
<button type="submit">Add domain</button>
</form>
${domains.length === 0 ? html`<p class="muted">No domains yet: messages go out unsigned.</p>` : ""}
${domains.map(
  (d) => html`<section aria-labelledby="d-${d.id}">
<h2 id="d-${d.id}">${d.name} <small>${d.status}${d.status === "verified" ? ", signing" : ""}</small></h2>
<p class="muted">Selector ${d.key.selector} (${d.key.algorithm}), added ${iso(d.created_at)}${d.checked_at === null ? "" : `, checked ${iso(d.checked_at)}`}${d.check_error ? `: ${d.check_error}` : ""}</p>
${recordsTable(d, ctx)}
${postButton(session, `/dashboard/domains/${d.id}/verify`, "Verify DNS now")}
</section>`,
)}`,
    session,
  );
}

async function show(c: Context<AppEnv>, notice?: string, status: 200 | 201 = 200) {
  const relay = c.get("relay");
  const page = await stored(relay, "dashboard.domains", () => relay.domains.list({ limit: 100 }));
  return c.html(domainsPage(sessionOf(c), page.data, relay.domains.publishContext, notice), status);
}

/** Adds the Domains pages to the dashboard's app (one line in routes.ts). */
export function registerDomainPages(app: OpenAPIHono<AppEnv>): void {
  route(app, pageRoute("get", "/domains", "sending domains and their DNS records"), (c) => {
    const done = c.req.query("done");
    return show(c, done === "verified" ? "Checked the DNS records." : undefined);
  });
  route(
    app,
    pageRoute("post", "/domains", "add a sending domain (its DKIM key is made)", 201),
    async (c) => {
      const relay = c.get("relay");
      const form = await formOf(c);
      const algorithm = form.get("dkim_algorithm") ?? "rsa-sha256";
      if (algorithm !== "rsa-sha256" && algorithm !== "ed25519-sha256")
        throw new ValidationError("must be rsa-sha256 or ed25519-sha256", "dkim_algorithm");
      const record = await stored(relay, "dashboard.domain_create", () =>
        relay.domains.create(
          { name: form.get("name") ?? "", dkim_algorithm: algorithm },
          sessionOf(c).principal.keyId,
        ),
      );
      return show(c, `Added ${record.name}: publish its DKIM record, then verify.`, 201);
    },
  );
  route(
    app,
    pageRoute("post", "/domains/{id}/verify", "check a domain's DNS records now", 303),
    async (c) => {
      const relay = c.get("relay");
      const id = c.req.param("id") ?? "";
      if (!UUID.test(id)) throw new ValidationError("is not an id", "id", 404);
      await stored(relay, "dashboard.domain_verify", () =>
        relay.domains.verify(id.toLowerCase(), sessionOf(c).principal.keyId),
      );
      return c.body(null, 303, { location: "/dashboard/domains?done=verified" });
    },
  );
}
