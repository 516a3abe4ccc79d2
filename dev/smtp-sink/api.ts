/**
 * The sink's JSON control API under /api/: list or wait for messages, clear and reset, go down and
 * up, refuse recipients or DATA, and set or read the fault plan. Tests inside workerd reach the sink
 * only over fetch, so everything the sink object can do is here.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { FaultPlan } from "./faults.ts";
import type { Inbox } from "./page.ts";
import { DEFAULT_WAIT_MS } from "./server.ts";
import { filterMessages, type MessageFilter, type SmtpSink } from "./types.ts";

export class HttpError extends Error {
  status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("error", reject);
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      if (!text) return resolve({});
      try {
        const value = JSON.parse(text) as unknown;
        if (typeof value !== "object" || value === null || Array.isArray(value)) {
          return reject(new HttpError(400, "expected a JSON object"));
        }
        resolve(value as Record<string, unknown>);
      } catch {
        reject(new HttpError(400, "body is not JSON"));
      }
    });
  });
}

function field<T extends "string" | "number">(
  body: Record<string, unknown>,
  name: string,
  type: T,
  required: boolean,
): (T extends "string" ? string : number) | undefined {
  const value = body[name];
  if (value === undefined || value === null) {
    if (required) throw new HttpError(400, `missing "${name}"`);
    return undefined;
  }
  if (typeof value !== type) throw new HttpError(400, `"${name}" must be a ${type}`);
  return value as T extends "string" ? string : number;
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
  });
  res.end(text);
}

// The page shows mail that anyone can send to the sink: no scripts at all, remote content blocked,

type Handler = (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<void> | void;

/** The API's routes, keyed by "METHOD /path". */
export function apiRoutes(sink: SmtpSink, inbox: Inbox): Record<string, Handler> {
  const ok = (res: ServerResponse) => sendJson(res, 200, { ok: true });
  /** Runs a sink call whose error means the request was wrong (a bad code, plan or address). */
  const badRequest = (run: () => void) => {
    try {
      run();
    } catch (error) {
      throw new HttpError(400, (error as Error).message);
    }
  };
  return {
    "GET /api/messages": (_req, res, url) => listMessages(sink, res, url),
    "DELETE /api/messages": (_req, res) => {
      sink.clear();
      inbox.forget();
      ok(res);
    },
    "POST /api/reset": async (req, res) => {
      req.resume();
      await sink.reset();
      inbox.forget();
      ok(res);
    },
    "POST /api/down": async (req, res) => {
      req.resume();
      await sink.down();
      ok(res);
    },
    "POST /api/up": async (req, res) => {
      req.resume();
      await sink.up();
      ok(res);
    },
    "POST /api/reject-recipient": async (req, res) => {
      const body = await readJson(req);
      const address = field(body, "address", "string", true) as string;
      const code = field(body, "code", "number", true) as number;
      badRequest(() => sink.rejectRecipient(address, code, field(body, "text", "string", false)));
      ok(res);
    },
    "POST /api/fail-data": async (req, res) => {
      const body = await readJson(req);
      const code = field(body, "code", "number", true) as number;
      badRequest(() =>
        sink.failData(
          code,
          field(body, "text", "string", false),
          field(body, "times", "number", false),
        ),
      );
      ok(res);
    },
    "GET /api/faults": (_req, res) => sendJson(res, 200, sink.faults()),
    "POST /api/faults": async (req, res) => {
      const body = await readJson(req);
      badRequest(() => sink.setFaults(body as unknown as FaultPlan));
      ok(res);
    },
    "DELETE /api/faults": (req, res) => {
      req.resume();
      sink.clearFaults();
      ok(res);
    },
  };
}

/** GET /api/messages[?to=][&wait=N[&timeout=ms]]: now, or once N matching messages arrived (408 if not). */
async function listMessages(sink: SmtpSink, res: ServerResponse, url: URL): Promise<void> {
  const to = url.searchParams.get("to");
  const filter: MessageFilter = to === null ? {} : { to };
  const wait = url.searchParams.get("wait");
  if (wait === null) return sendJson(res, 200, filterMessages(sink.messages, filter));
  const count = Number(wait);
  const timeout = Number(url.searchParams.get("timeout") ?? DEFAULT_WAIT_MS);
  if (!Number.isInteger(count) || count < 0 || !Number.isFinite(timeout) || timeout < 0) {
    throw new HttpError(400, "wait and timeout must be non-negative numbers");
  }
  try {
    sendJson(res, 200, await sink.waitFor(count, timeout, filter));
  } catch (error) {
    sendJson(res, 408, {
      error: (error as Error).message,
      messages: filterMessages(sink.messages, filter),
    });
  }
}
