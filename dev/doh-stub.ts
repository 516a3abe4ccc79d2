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
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";

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

async function readJsonBody(req: IncomingMessage): Promise<unknown> {
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
    return true;
  };

  const publish = async (req: IncomingMessage, res: ServerResponse) => {
    const body = (await readJsonBody(req)) as { name?: string; values?: string[] };
    if (typeof body.name !== "string" || !Array.isArray(body.values))
      return send(res, 400, { error: "give name and values" });
    const name = body.name.toLowerCase().replace(/\.$/, "");
    if (body.values.length === 0) records.delete(name);
    else records.set(name, body.values.map(String));
    return send(res, 200, { ok: true });
  };

  /** The control API; false when the path is not one of its. */
  const control = async (req: IncomingMessage, res: ServerResponse, path: string) => {
    if (path === "/api/records" && req.method === "PUT") return publish(req, res);
    if (path === "/api/records" && req.method === "DELETE") {
      records.clear();
      return send(res, 200, { ok: true });
    }
    if (path === "/api/mode" && req.method === "PUT") {
      mode = ((await readJsonBody(req)) as { mode?: DohMode }).mode ?? "normal";
      return send(res, 200, { mode });
    }
    if (path === "/api/requests") return send(res, 200, requests);
    return false;
  };

  /** The failure modes: true when one answered. */
  const misbehave = (res: ServerResponse): boolean => {
    if (mode === "http500") send(res, 500, {});
    else if (mode === "servfail") send(res, 200, { Status: 2 }, "application/dns-json");
    else if (mode === "slow") {
      open.add(res);
      setTimeout(() => {
        open.delete(res);
        if (!res.writableEnded) send(res, 200, { Status: 3 }, "application/dns-json");
      }, 30_000).unref();
    } else if (mode === "huge") {
      res.writeHead(200, { "content-type": "application/dns-json" });
      const chunk = `"${"x".repeat(16 * 1024)}",`;
      open.add(res);
      const pump = () => {
        while (!res.destroyed && res.write(chunk)) {}
        if (!res.destroyed) res.once("drain", pump);
      };
      res.on("close", () => open.delete(res));
      pump();
    } else return false;
    return true;
  };

  const query = (url: URL, res: ServerResponse) => {
    const name = (url.searchParams.get("name") ?? "").toLowerCase().replace(/\.$/, "");
    requests.push(name);
    if (misbehave(res)) return;
    const values = records.get(name) ?? [];
    const txt = url.searchParams.get("type") === "TXT" || url.searchParams.get("type") === "16";
    const answer =
      values.length === 0
        ? { Status: 3, Answer: [] }
        : {
            Status: 0,
            Answer: txt
              ? values.map((v) => ({ name: `${name}.`, type: 16, TTL: 300, data: quoted(v) }))
              : [],
          };
    send(res, 200, answer, "application/dns-json");
  };

  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://stub");
    try {
      if ((await control(req, res, url.pathname)) !== false) return;
      if (url.pathname !== "/dns-query" || req.method !== "GET") return send(res, 404, {});
      if (req.headers.accept !== "application/dns-json") return send(res, 415, {});
      query(url, res);
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
