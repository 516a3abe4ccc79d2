/**
 * /openapi.json against the app itself: every documented operation is a route the app has, every
 * route the app has is documented, error answers are documented with the error schema, and a
 * sample of documented error statuses is what a request provoking them gets.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";
import { createApp } from "../../src/http/app.ts";
import { silentLogger } from "../../src/log.ts";
import { createRelay } from "../../src/runtime/compose.ts";
import { MemoryStore } from "../../src/store/memory/store.ts";
import { ADMIN, email } from "../support/worker.ts";

const METHODS = ["get", "post", "put", "patch", "delete", "options"] as const;
/** Served by the document generator itself, so it cannot document itself. */
const UNDOCUMENTED = new Set(["GET /openapi.json"]);

type Operation = { responses: Record<string, { description: string; content?: unknown }> };
type Doc = { paths: Record<string, Record<string, Operation>> };

const relay = createRelay(loadConfig({ ADMIN_TOKEN: ADMIN, RATE_LIMIT: "10000/1s" }), {
  store: new MemoryStore(),
  log: silentLogger,
});
const app = createApp({ relay: () => relay, background: () => {}, clientIp: () => "192.0.2.80" });
let doc: Doc;

function request(method: string, path: string, init: { token?: string | null } & RequestInit = {}) {
  const { token = ADMIN, headers, ...rest } = init;
  return app.request(`https://relay.test${path}`, {
    method,
    headers: { ...(token === null ? {} : { authorization: `Bearer ${token}` }), ...headers },
    ...rest,
  });
}

function documentedOperations(): { method: string; path: string; op: Operation }[] {
  return Object.entries(doc.paths).flatMap(([path, item]) =>
    METHODS.filter((m) => item[m]).map((m) => ({ method: m, path, op: item[m] as Operation })),
  );
}

/** "/emails/{id}" with a value for each parameter. */
function concrete(path: string): string {
  return path.replace(/\{([^}]+)\}/g, (_, name) =>
    name === "secret" ? "not-the-secret" : crypto.randomUUID(),
  );
}

beforeAll(async () => {
  doc = (await (await request("GET", "/openapi.json", { token: null })).json()) as Doc;
});

describe("the OpenAPI document and the routes", () => {
  it("documents every route the app has", () => {
    const routes = new Set(
      app.routes
        .filter((r) => r.method !== "ALL")
        .map((r) => `${r.method} ${r.path.replace(/:([^/]+)/g, "{$1}")}`)
        .filter((r) => !UNDOCUMENTED.has(r)),
    );
    const documented = new Set(
      documentedOperations().map(({ method, path }) => `${method.toUpperCase()} ${path}`),
    );
    expect([...routes].filter((r) => !documented.has(r))).toEqual([]);
    expect(routes.size).toBeGreaterThanOrEqual(30);
  });

  it("has a route for every documented path and method (no 'Route not found', no 405)", async () => {
    for (const { method, path } of documentedOperations()) {
      const res = await request(method.toUpperCase(), concrete(path), { token: null });
      // The app's own 404 for an unknown route; a resource's 404 names the resource.
      expect(await res.text(), `${method} ${path}`).not.toContain("Route not found");
      expect(res.status, `${method} ${path}`).not.toBe(405);
    }
  });

  it("documents error answers with the error schema, 404s as not found and 409s as conflicts", () => {
    for (const { method, path, op } of documentedOperations()) {
      for (const [status, response] of Object.entries(op.responses)) {
        const where = `${method} ${path} ${status}`;
        if (Number(status) >= 400 && response.content !== undefined) {
          expect(response.content, where).toMatchObject({
            "application/json": { schema: { $ref: "#/components/schemas/Error" } },
          });
        }
        if (status === "404") expect(response.description, where).toMatch(/^No such /);
        if (status === "409") expect(response.description, where).toMatch(/^Conflict: /);
      }
    }
  });

  it("answers a sample of documented error statuses with those statuses", async () => {
    const json = (body: unknown, headers: Record<string, string> = {}) => ({
      body: JSON.stringify(body),
      headers: { "content-type": "application/json", ...headers },
    });
    const idem = { "idempotency-key": `openapi-${crypto.randomUUID()}` };
    const to = `openapi-${crypto.randomUUID()}@example.com`;
    const first = await request("POST", "/emails", json(email({ to }), idem));
    expect(first.status).toBe(200);
    const cases: [string, string, string, RequestInit & { token?: string | null }, number][] = [
      ["get", "/emails/{id}", `/emails/${crypto.randomUUID()}`, {}, 404],
      ["get", "/emails/{id}", `/emails/${crypto.randomUUID()}`, { token: null }, 401],
      ["get", "/emails/{id}", `/emails/${crypto.randomUUID()}`, { token: "re_wrong" }, 403],
      ["post", "/emails", "/emails", json({ to, subject: "no sender" }), 422],
      [
        "post",
        "/emails",
        "/emails",
        { body: "{", headers: { "content-type": "application/json" } },
        400,
      ],
      ["post", "/emails", "/emails", { body: "x", headers: { "content-type": "text/plain" } }, 415],
      ["post", "/emails", "/emails", json(email({ to, subject: "another" }), idem), 409],
      ["post", "/emails/{id}/cancel", `/emails/${crypto.randomUUID()}/cancel`, {}, 404],
      ["get", "/webhooks/{id}", `/webhooks/${crypto.randomUUID()}`, {}, 404],
      ["post", "/hooks/{id}", `/hooks/${crypto.randomUUID()}`, { token: null }, 404],
    ];
    for (const [method, template, path, init, status] of cases) {
      const where = `${method} ${path} -> ${status}`;
      expect(doc.paths[template]?.[method]?.responses[status], where).toBeDefined();
      const res = await request(method.toUpperCase(), path, init);
      expect(res.status, where).toBe(status);
      expect(await res.json(), where).toMatchObject({ statusCode: status });
    }
  });
});
