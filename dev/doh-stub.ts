/**
 * A local stand-in for a DNS-over-HTTPS JSON resolver (Cloudflare's https://cloudflare-dns.com/
 * dns-query answers the same shape), for tests: the relay's DOH_URL points here, and a test
 * publishes the TXT records it wants through the control API.
 * - `GET /dns-query?name=…&type=TXT` with `accept: application/dns-json` answers
 *   `{ Status, Answer: [{ name, type: 16, TTL, data }] }`; each TXT value is split into quoted
 *   strings of at most 255 characters, as a real resolver writes a long DKIM key. A name with
 *   no records answers NXDOMAIN (Status 3). Another accept header answers 415.
 * - `PUT /api/records` `{ name, values: string[] }` sets a name's TXT records (an empty list
 *   removes them); `DELETE /api/records` removes all.
 * - `PUT /api/mode` `{ mode }`: "normal", "servfail" (Status 2), "http500", "slow" (answers
 *   after 30 s), "huge" (an endless answer), for the relay's bounded lookups.
 * - `GET /api/requests` lists the names asked, oldest first.
 */
import { createServer, type ServerResponse } from "node:http";

export type DohMode = "normal" | "servfail" | "http500" | "slow" | "huge";

export interface DohStub {
  /** DOH_URL for the relay. */
  url: string;
  /** Base URL of the control API. */
  api: string;
  close(): Promise<void>;
}

function quoted(value: string): string {
  const parts: string[] = [];
  for (let i = 0; i < value.length; i += 255) parts.push(value.slice(i, i + 255));
  return parts.map((p) => `"${p.replace(/["\\]/g, (c) => `\\${c}`)}"`).join(" ");
}

async function readJsonBody(req: import("node:http").IncomingMessage): Promise<unknown> {
  let text = "";
  for await (const chunk of req) {
    text += chunk;
    if (text.length > 256 * 1024) throw new Error("body too large");
  }
  return text ? JSON.parse(text) : {};
}

export async function startDohStub(opts: { host?: string } = {}): Promise<DohStub> {
  const host = opts.host ?? "127.0.0.1";
  const records = new Map<string, string[]>();
  const requests: string[] = [];
  let mode: DohMode = "normal";
  const open = new Set<ServerResponse>();
  const send = (res: ServerResponse, status: number, body: unknown, type = "application/json") => {
    res.writeHead(status, { "content-type": type });
    res.end(JSON.stringify(body));
  };

  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://stub");
    try {
      if (url.pathname === "/api/records" && req.method === "PUT") {
        const body = (await readJsonBody(req)) as { name?: string; values?: string[] };
        if (typeof body.name !== "string" || !Array.isArray(body.values))
          return send(res, 400, { error: "give name and values" });
        const name = body.name.toLowerCase().replace(/\.$/, "");
        if (body.values.length === 0) records.delete(name);
        else records.set(name, body.values.map(String));
        return send(res, 200, { ok: true });
      }
      if (url.pathname === "/api/records" && req.method === "DELETE") {
        records.clear();
        return send(res, 200, { ok: true });
      }
      if (url.pathname === "/api/mode" && req.method === "PUT") {
        mode = ((await readJsonBody(req)) as { mode: DohMode }).mode ?? "normal";
        return send(res, 200, { mode });
      }
      if (url.pathname === "/api/requests") return send(res, 200, requests);
      if (url.pathname !== "/dns-query" || req.method !== "GET") return send(res, 404, {});
      if (req.headers.accept !== "application/dns-json") return send(res, 415, {});
      const name = (url.searchParams.get("name") ?? "").toLowerCase().replace(/\.$/, "");
      requests.push(name);
      if (mode === "http500") return send(res, 500, {});
      if (mode === "servfail") return send(res, 200, { Status: 2 }, "application/dns-json");
      if (mode === "slow") {
        open.add(res);
        setTimeout(() => {
          open.delete(res);
          if (!res.writableEnded) send(res, 200, { Status: 3 }, "application/dns-json");
        }, 30_000).unref();
        return;
      }
      if (mode === "huge") {
        res.writeHead(200, { "content-type": "application/dns-json" });
        const chunk = `"${"x".repeat(16 * 1024)}",`;
        open.add(res);
        const pump = () => {
          while (!res.destroyed && res.write(chunk)) {}
          if (!res.destroyed) res.once("drain", pump);
        };
        res.on("close", () => open.delete(res));
        pump();
        return;
      }
      const values = records.get(name) ?? [];
      const type = Number(
        url.searchParams.get("type") === "TXT" ? 16 : url.searchParams.get("type"),
      );
      send(
        res,
        200,
        values.length === 0 || type !== 16
          ? { Status: values.length === 0 ? 3 : 0, Answer: [] }
          : {
              Status: 0,
              Answer: values.map((v) => ({
                name: `${name}.`,
                type: 16,
                TTL: 300,
                data: quoted(v),
              })),
            },
        "application/dns-json",
      );
    } catch (err) {
      if (!res.headersSent) send(res, 400, { error: String(err) });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as { port: number };
  const base = `http://${host}:${port}`;
  return {
    url: `${base}/dns-query`,
    api: base,
    close: () =>
      new Promise<void>((resolve) => {
        for (const res of open) res.destroy();
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}
