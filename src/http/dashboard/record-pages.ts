/**
 * The pages every intake record kind (forms, hooks) has alike: the list, one record with its
 * counters, and delete. They call the same record use cases (src/records.ts) as the API's
 * registerRecordRoutes, as the signed-in principal; each kind brings its own two views. Also the
 * small view pieces those views share.
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import { html } from "hono/html";
import { requireFullAccess } from "../../auth/keys.ts";
import { NotFoundError } from "../../errors.ts";
import type { RecordCache } from "../../store/record-cache.ts";
import type { RecordKind } from "../../store/store.ts";
import type { AppEnv } from "../env.ts";
import { route } from "../route.ts";
import { requestOrigin, stored } from "../routes/resource.ts";
import { sessionOf } from "./guard.ts";
import type { Html } from "./layout.ts";
import { back, idParam, page } from "./page-route.ts";
import type { Session } from "./session.ts";

export interface RecordPagesSpec<T extends { id: string }> {
  kind: RecordKind;
  /** The record's name in a not-found page ("Form"). */
  name: string;
  /** The pages' path under /dashboard ("/forms"). */
  path: string;
  cache: RecordCache<T>;
  list: (session: Session, records: T[], origin: string, notice?: string) => Html;
  one: (session: Session, record: T, counters: Record<string, number>, origin: string) => Html;
}

/** `GET path`, `GET path/{id}`, `POST path/{id}/delete`, on the dashboard's app. */
export function recordPages<T extends { id: string; created_at: number }>(
  app: OpenAPIHono<AppEnv>,
  spec: RecordPagesSpec<T>,
): void {
  const { kind, name, path } = spec;
  const plural = `${kind}s`;

  // One command: every record of the kind. The counters are on each record's own page, since
  // reading them for every row would cost one command per row.
  route(app, page("get", path, plural), async (c) => {
    const relay = c.get("relay");
    const session = sessionOf(c);
    requireFullAccess(session.principal);
    const records = await stored(relay, `dashboard.${kind}.list`, () =>
      relay.records.list<T>(kind),
    );
    const notice = c.req.query("done") === "deleted" ? `${name} deleted.` : undefined;
    return c.html(spec.list(session, records, requestOrigin(c), notice));
  });

  route(app, page("get", `${path}/{id}`, `one ${kind}, with its counters`), async (c) => {
    const relay = c.get("relay");
    const session = sessionOf(c);
    requireFullAccess(session.principal);
    const id = idParam(c);
    const found = await stored(relay, `dashboard.${kind}.get`, () =>
      relay.records.get<T>(kind, id),
    );
    if (!found) throw new NotFoundError(name);
    return c.html(spec.one(session, found.record, found.counters, requestOrigin(c)));
  });

  route(app, page("post", `${path}/{id}/delete`, `delete a ${kind}`, 303), async (c) => {
    const relay = c.get("relay");
    const { principal } = sessionOf(c);
    requireFullAccess(principal);
    const id = idParam(c);
    const removed = await stored(relay, `dashboard.${kind}.delete`, () =>
      relay.records.remove(kind, spec.cache, id, principal.keyId),
    );
    if (!removed) throw new NotFoundError(name);
    return back(c, `/dashboard${path}?done=deleted`);
  });
}

// ---- View pieces ------------------------------------------------------------------------------

export const noticeLine = (notice: string | undefined): Html | string =>
  notice ? html`<p class="notice" role="status">${notice}</p>` : "";

/** A two-column table of a record's settings; a null or empty value shows as "—". */
export function facts(rows: [string, string | number | Html | null | undefined][]): Html {
  return html`<table><tbody>${rows.map(
    ([label, value]) =>
      html`<tr><th scope="row">${label}</th><td>${value === null || value === undefined || value === "" ? "—" : value}</td></tr>`,
  )}</tbody></table>`;
}

/** A template or HTML body as escaped source text: shown, never rendered into the page. */
export function source(label: string, text: string | null): Html | string {
  if (text === null) return "";
  return html`<h3>${label}</h3><pre class="source" tabindex="0" aria-label="${label}"><code>${text}</code></pre>`;
}

/** Rejected requests by reason, as the record's counters keep them. */
export function counterTable(caption: string, counts: Record<string, number>): Html {
  return html`<table class="counters"><caption>${caption}</caption><thead><tr><th scope="col">Reason</th><th scope="col" class="n">Count</th></tr></thead>
<tbody>${Object.entries(counts).map(
    ([reason, n]) => html`<tr><td>${reason}</td><td class="n">${n}</td></tr>`,
  )}</tbody></table>`;
}

export const joined = (list: string[] | null | undefined) =>
  list && list.length > 0 ? list.join(", ") : null;
