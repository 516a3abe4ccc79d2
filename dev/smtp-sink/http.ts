/**
 * `startSinkHttp`: the HTTP server next to an SMTP sink, serving the JSON control API (api.ts)
 * under /api/ and the development inbox (page.ts) everywhere else.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { apiRoutes, HttpError, sendJson } from "./api.ts";
import { createInbox, type Inbox, sendHtml } from "./page.ts";
import { urlHost } from "./server.ts";
import type { SmtpSink } from "./types.ts";

export interface SinkHttp {
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function startSinkHttp(
  sink: SmtpSink,
  opts: { port?: number; host?: string; title?: string } = {},
): Promise<SinkHttp> {
  const host = opts.host ?? "127.0.0.1";
  const inbox = createInbox(sink, opts.title ?? "Development inbox");
  const api = new Map(Object.entries(apiRoutes(sink, inbox)));

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://sink");
    const route = `${req.method} ${url.pathname}`;
    const detail = /^\/messages\/(\d+)(\/raw)?$/.exec(url.pathname);
    if (req.method === "GET" && detail) {
      return showMessage(sink, inbox, res, detail[1] as string, detail[2] !== undefined);
    }
    const handler = api.get(route);
    if (handler) return handler(req, res, url);
    switch (route) {
      case "GET /":
        return sendHtml(res, 200, await inbox.list());
      case "POST /clear":
        req.resume();
        sink.clear();
        inbox.forget();
        res.writeHead(303, { location: "/" });
        return res.end();
      default:
        if (url.pathname.startsWith("/api/")) throw new HttpError(404, `no route ${route}`);
        return sendHtml(res, 404, inbox.notFound("Not found."));
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      const status = error instanceof HttpError ? error.status : 500;
      if (!res.headersSent) sendJson(res, status, { error: (error as Error).message });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${urlHost(host)}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** GET /messages/:id (the page) and /messages/:id/raw (the exact bytes). */
async function showMessage(
  sink: SmtpSink,
  inbox: Inbox,
  res: ServerResponse,
  id: string,
  raw: boolean,
): Promise<void> {
  const m = sink.messages.find((message) => String(message.id) === id);
  if (!m) return sendHtml(res, 404, inbox.notFound("No such message."));
  if (!raw) return sendHtml(res, 200, await inbox.message(m));
  const bytes = sink.bytes(m.id) ?? Buffer.from(m.raw);
  res.writeHead(200, {
    "content-type": "text/plain; charset=utf-8",
    "content-length": bytes.length,
    "x-content-type-options": "nosniff",
  });
  res.end(bytes);
}
