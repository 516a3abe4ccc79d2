/**
 * A local stand-in for Cloudflare Turnstile's siteverify endpoint, for tests (the relay reaches
 * it through TURNSTILE_VERIFY_URL). It enforces what Cloudflare documents for the real one:
 * - only POST, with the fields form-encoded (application/x-www-form-urlencoded) or as JSON;
 * - `secret` and `response` required ("missing-input-secret", "missing-input-response"); a
 *   secret it does not know is "invalid-input-secret";
 * - the published test secret keys: 1x0000000000000000000000000000000AA always passes,
 *   2x0000000000000000000000000000000AA always fails ("invalid-input-response"),
 *   3x0000000000000000000000000000000AA answers "timeout-or-duplicate" (token already spent);
 * - answers `{ success, "error-codes", challenge_ts, hostname }` as JSON.
 * Test secrets take any non-empty token (the widget's test sitekeys hand out the dummy token
 * XXXX.DUMMY.TOKEN.XXXX). `GET /api/requests` lists what it was asked, so a test can check that
 * the relay sent the form's secret, the visitor's token and address.
 */
import { createServer, type IncomingMessage, type Server } from "node:http";

export const TURNSTILE_TEST_SECRETS = {
  pass: "1x0000000000000000000000000000000AA",
  fail: "2x0000000000000000000000000000000AA",
  spent: "3x0000000000000000000000000000000AA",
} as const;
export const TURNSTILE_DUMMY_TOKEN = "XXXX.DUMMY.TOKEN.XXXX";

export interface SiteverifyRequest {
  secret: string;
  response: string;
  remoteip: string;
  contentType: string;
}

export interface TurnstileStub {
  /** The siteverify URL (TURNSTILE_VERIFY_URL). */
  url: string;
  /** Base URL of its control API. */
  api: string;
  requests: SiteverifyRequest[];
  close(): Promise<void>;
}

const MAX_BODY = 64 * 1024;

async function readBody(req: IncomingMessage): Promise<string> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new Error("body too large");
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function verdict(secret: string, response: string): string[] {
  const codes: string[] = [];
  if (!secret) codes.push("missing-input-secret");
  else if (!Object.values(TURNSTILE_TEST_SECRETS).includes(secret as never))
    codes.push("invalid-input-secret");
  if (!response) codes.push("missing-input-response");
  if (codes.length) return codes;
  if (secret === TURNSTILE_TEST_SECRETS.fail) return ["invalid-input-response"];
  if (secret === TURNSTILE_TEST_SECRETS.spent) return ["timeout-or-duplicate"];
  return [];
}

export async function startTurnstileStub(
  opts: { host?: string; port?: number } = {},
): Promise<TurnstileStub> {
  const host = opts.host ?? "127.0.0.1";
  const requests: SiteverifyRequest[] = [];
  const send = (res: import("node:http").ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://stub").pathname;
    if (path === "/api/requests") {
      if (req.method === "DELETE") requests.length = 0;
      send(res, 200, requests);
      return;
    }
    if (path !== "/turnstile/v0/siteverify") {
      send(res, 404, { success: false, "error-codes": ["bad-request"] });
      return;
    }
    if (req.method !== "POST") {
      send(res, 405, { success: false, "error-codes": ["bad-request"] });
      return;
    }
    readBody(req).then(
      (text) => {
        const contentType = (req.headers["content-type"] ?? "").split(";")[0]?.trim() ?? "";
        const fields = formFields(contentType, text);
        if (!fields) {
          send(res, 400, { success: false, "error-codes": ["bad-request"] });
          return;
        }
        const secret = fields.secret ?? "";
        const response = fields.response ?? "";
        requests.push({ secret, response, remoteip: fields.remoteip ?? "", contentType });
        const codes = verdict(secret, response);
        send(
          res,
          200,
          codes.length
            ? { success: false, "error-codes": codes, messages: [] }
            : {
                success: true,
                "error-codes": [],
                challenge_ts: new Date().toISOString(),
                hostname: "localhost",
                action: "",
                cdata: "",
                metadata: {},
              },
        );
      },
      () => send(res, 413, { success: false, "error-codes": ["bad-request"] }),
    );
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, host, () => {
      const address = server.address();
      resolve(typeof address === "object" && address ? address.port : 0);
    });
  });
  const base = `http://${host}:${port}`;
  return {
    url: `${base}/turnstile/v0/siteverify`,
    api: base,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The fields of a form-encoded or JSON body (string values only); undefined when unreadable. */
function formFields(contentType: string, text: string): Record<string, string> | undefined {
  if (contentType === "application/x-www-form-urlencoded") {
    return Object.fromEntries(new URLSearchParams(text));
  }
  if (contentType !== "application/json") return undefined;
  const fields: Record<string, string> = {};
  try {
    const json = JSON.parse(text) as Record<string, unknown>;
    for (const [k, v] of Object.entries(json)) if (typeof v === "string") fields[k] = v;
  } catch {
    return undefined;
  }
  return fields;
}
