/**
 * A local stand-in for Upstash Redis: an HTTP server that speaks the Upstash REST protocol in front
 * of a real redis-server, so `@upstash/redis` runs unmodified in tests and in local development.
 *
 * What it copies from Upstash, because the relay depends on it:
 * - `POST /` with a JSON array command, `POST /pipeline` and `POST /multi-exec` with an array of
 *   them (multi-exec is a real MULTI/EXEC, so atomicity is Redis's own), and the path form
 *   `POST /set/k/v` (a request body becomes the last argument).
 * - `Authorization: Bearer <token>` (or `?_token=`); a wrong token is 401 `{"error":"Unauthorized"}`.
 * - `Upstash-Encoding: base64`, which @upstash/redis sends by default: every string in the result,
 *   nested arrays included, is base64 of the raw bytes, except a top-level "OK". The client's
 *   decoder (decode/base64decode in @upstash/redis) keeps a top-level "OK" as is and base64-decodes
 *   every other string, inside arrays without exception, so binary and UTF-8 values survive JSON.
 * - Redis errors are HTTP 400 `{"error":"<Redis error text>"}`; inside a pipeline they are entries
 *   `{"error": ...}` next to the `{"result": ...}` of the commands that worked.
 * - Refusals: blocking commands, WATCH, pub/sub and MONITOR do not exist over REST; request
 *   bodies over 10 MB are 413, and an answer over 10 MB is replaced by an error (the command has
 *   run by then: a script's writes stay).
 * - Billing: every command counts, each one inside a pipeline or transaction too, EVAL/EVALSHA as
 *   one. `commands()` is that count, so tests can pin what a code path costs.
 *
 * `down()`/`up()` close and reopen the listening socket, so clients see connection refused, as
 * when Upstash cannot be reached. `startGatewayHttp` exposes these controls over HTTP for tests that
 * run inside workerd and can only use fetch.
 *
 * Run `node dev/upstash-gateway.ts` for a development gateway (GATEWAY_PORT, GATEWAY_TOKEN,
 * REDIS_URL, GATEWAY_LOG=1 to print each command).
 */
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { pathToFileURL } from "node:url";
import { Redis } from "ioredis";

export interface UpstashGatewayOptions {
  /** Default redis://127.0.0.1:6379. */
  redisUrl?: string;
  token: string;
  /** 0 (the default) picks a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Receives one line per request, for the development CLI. */
  log?: (line: string) => void;
}

export interface UpstashGateway {
  url: string;
  token: string;
  port: number;
  /** Billed commands since start or the last resetCounters(). */
  commands: () => number;
  /** Commands seen (upper-cased name, then arguments), oldest first; see LOG_LIMIT. */
  commandLog: () => string[][];
  resetCounters(): void;
  /**
   * Adds a request fault (see `RequestFault`); faults apply in the order added, each until its
   * `times` are used up.
   */
  addFault(fault: RequestFault): void;
  /** Removes every request fault, returning how often each one struck. */
  clearFaults(): { fault: RequestFault; struck: number }[];
  /** Stop listening and drop open connections: clients get connection refused. */
  down(): Promise<void>;
  /** Listen again on the same port. */
  up(): Promise<void>;
  close(): Promise<void>;
}

/**
 * A fault for requests whose commands match: some command is named `command` (when given) and has
 * an argument containing `contains` (a key prefix, a message id, a script's SHA-1).
 * - `drop`: the connection is dropped before Redis sees the request (the client cannot tell this
 *   from a lost reply).
 * - `lose-reply`: Redis runs the request, then the connection is dropped without an answer: the
 *   client does not know that its write happened (a reply lost on the way back).
 * Either way @upstash/redis sees a network error and retries; `times` counts matching requests.
 */
export interface RequestFault {
  contains: string;
  command?: string;
  mode: "drop" | "lose-reply";
  /** How many matching requests it strikes; default 1. */
  times?: number;
}

/**
 * Upstash's size limit for one request and for one response. Its docs state "max request size
 * which is 10MB" (https://upstash.com/docs/redis/troubleshooting/max_request_size_exceeded); we read "10MB" as 10,000,000 bytes, the
 * stricter of the two readings, and apply it to responses as well, so that a client that fits
 * here fits there.
 */
export const MAX_REQUEST_BYTES = 10_000_000;
export const MAX_RESPONSE_BYTES = 10_000_000;

// The log is for assertions on small commands; keep memory bounded when a long development session
// or a test stores megabyte bodies.
const LOG_LIMIT = 20_000;
const LOG_ARG_LIMIT = 1024;

// Not available over Upstash REST: blocking commands (a REST call cannot wait on a key), WATCH
// (there is no connection to hold the watch), pub/sub and MONITOR (streams, not replies). The
// connection-state commands are refused too, because all requests share one connection to Redis
// and one request must not change it for the others.
const REFUSED = new Set([
  "BLPOP",
  "BRPOP",
  "BRPOPLPUSH",
  "BLMOVE",
  "BLMPOP",
  "BZPOPMIN",
  "BZPOPMAX",
  "BZMPOP",
  "WAIT",
  "WAITAOF",
  "WATCH",
  "UNWATCH",
  "MULTI",
  "EXEC",
  "DISCARD",
  "SUBSCRIBE",
  "PSUBSCRIBE",
  "SSUBSCRIBE",
  "UNSUBSCRIBE",
  "PUNSUBSCRIBE",
  "SUNSUBSCRIBE",
  "MONITOR",
  "SYNC",
  "PSYNC",
  "SELECT",
  "HELLO",
  "AUTH",
  "CLIENT",
  "QUIT",
  "RESET",
  "SHUTDOWN",
]);

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** An error answered to the client with an HTTP status and `{"error": message}`. */
class HttpError extends Error {
  status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

function refusal(command: string[]): string | undefined {
  const name = command[0] ?? "";
  if (REFUSED.has(name)) return name;
  if (name === "XREAD" || name === "XREADGROUP") {
    // XREAD is fine unless it asks to block; BLOCK comes before the STREAMS keyword.
    for (const arg of command.slice(1)) {
      const word = arg.toUpperCase();
      if (word === "STREAMS") break;
      if (word === "BLOCK") return `${name} with BLOCK`;
    }
  }
  return undefined;
}

/** A command from JSON: strings as they are, numbers and booleans as the client meant them. */
function parseCommand(value: unknown): string[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw new HttpError(400, "ERR failed to parse command: expected a non-empty JSON array");
  }
  const command = value.map((arg) => {
    if (typeof arg === "string") return arg;
    if (typeof arg === "number" || typeof arg === "boolean") return String(arg);
    throw new HttpError(
      400,
      `ERR failed to parse command: unsupported argument ${JSON.stringify(arg)}`,
    );
  });
  command[0] = (command[0] as string).toUpperCase();
  return command;
}

function parseCommandList(value: unknown): string[][] {
  if (!Array.isArray(value) || value.length === 0) {
    throw new HttpError(400, "ERR failed to parse pipeline request: expected an array of commands");
  }
  return value.map(parseCommand);
}

/**
 * A reply as JSON: bulk and status strings as base64 (or UTF-8 text), integers as numbers, nil as
 * null. Only a top-level "OK" stays unencoded: the client's decoder exempts "OK" at the top level
 * but base64-decodes every string inside an array, so an "OK" there must be encoded too.
 */
function encodeReply(value: unknown, base64: boolean, topLevel = true): Json {
  if (value === null || value === undefined) return null;
  if (typeof value === "number") return value;
  if (typeof value === "bigint") return Number(value);
  if (Buffer.isBuffer(value) || typeof value === "string") {
    const bytes = typeof value === "string" ? Buffer.from(value) : value;
    if (!base64) return bytes.toString("utf8");
    // callBuffer gives status replies as bytes too, so a bulk "OK" is sent as "OK" as well; the
    // client decodes both forms to the same string.
    if (topLevel && bytes.length === 2 && bytes.toString("latin1") === "OK") return "OK";
    return bytes.toString("base64");
  }
  if (Array.isArray(value)) return value.map((item) => encodeReply(item, base64, false));
  // An error reply nested in an array (a script can return one) is reported by its text.
  if (value instanceof Error) return value.message;
  return String(value);
}

function isRedisReplyError(error: unknown): boolean {
  return error instanceof Error && error.name === "ReplyError";
}

function send(res: ServerResponse, status: number, body: Json): void {
  sendText(res, status, JSON.stringify(body));
}

function sendText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

/** Reads the body, but at most `limit` bytes are kept; a larger one is drained and reported. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | "too-large"> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
    });
    req.on("end", () => resolve(size > limit ? "too-large" : Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function tokenOf(req: IncomingMessage, url: URL): string | undefined {
  const header = req.headers.authorization;
  if (header?.startsWith("Bearer ")) return header.slice("Bearer ".length).trim();
  return url.searchParams.get("_token") ?? undefined;
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function stopListening(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
    // close() alone waits for keep-alive connections; a real outage drops them.
    server.closeAllConnections();
  });
}

function urlHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

/** Where a command carries a Lua script: EVAL's first argument, SCRIPT LOAD's second; -1: none. */
function scriptArgument(upper: string, args: string[]): number {
  if (upper === "EVAL" || upper === "EVAL_RO") return 0;
  if (upper === "SCRIPT" && args[0]?.toUpperCase() === "LOAD") return 1;
  return -1;
}

/** The script with Upstash's `allow-key-locking` flag removed, or undefined if it has none. */
function withoutKeyLocking(script: string): string | undefined {
  const m = /^#!lua([^\n]*)\n/.exec(script);
  if (!m || !/allow-key-locking/.test(m[1] ?? "")) return undefined;
  const flags = (/flags=(\S*)/.exec(m[1] ?? "")?.[1] ?? "")
    .split(",")
    .filter((f) => f && f !== "allow-key-locking");
  return `#!lua${flags.length ? ` flags=${flags.join(",")}` : ""}\n${script.slice(m[0].length)}`;
}

/** The path form: /set/key/value, with a request body (if any) as the last argument. */
function pathCommand(path: string, body: Buffer): string[] {
  const parts = path.slice(1).split("/").map(decodeURIComponent);
  if (body.length > 0) parts.push(body.toString("utf8"));
  return parseCommand(parts);
}

export async function startUpstashGateway(opts: UpstashGatewayOptions): Promise<UpstashGateway> {
  const host = opts.host ?? "127.0.0.1";
  const redis = new Redis(opts.redisUrl ?? "redis://127.0.0.1:6379", {
    // Upstash REST answers in RESP2 shapes. ioredis 6 speaks RESP3 by default, whose map replies
    // (XREAD, CONFIG GET, ...) it flattens into shapes RESP2 never had.
    protocol: 2,
    // Fail a request fast when Redis is gone instead of queueing it until Redis returns; the
    // connection keeps retrying in the background and later requests work again.
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
  });
  // Without a listener ioredis prints every reconnection error; requests report them instead.
  redis.on("error", () => {});

  let billed = 0;
  let log: string[][] = [];
  let faults: { fault: RequestFault; left: number; struck: number }[] = [];

  /** The fault that strikes this request, if any (and counts the strike). */
  const strike = (commands: string[][]): RequestFault["mode"] | undefined => {
    const hit = faults.find(
      (f) =>
        f.left > 0 &&
        commands.some(
          ([name = "", ...args]) =>
            (f.fault.command === undefined ||
              name.toUpperCase() === f.fault.command.toUpperCase()) &&
            args.some((arg) => arg.includes(f.fault.contains)),
        ),
    );
    if (!hit) return undefined;
    hit.left--;
    hit.struck++;
    return hit.fault.mode;
  };

  const record = (commands: string[][]) => {
    billed += commands.length;
    for (const command of commands) {
      log.push(
        command.map((arg) =>
          arg.length > LOG_ARG_LIMIT
            ? `${arg.slice(0, LOG_ARG_LIMIT)}…[+${arg.length - LOG_ARG_LIMIT} chars]`
            : arg,
        ),
      );
    }
    if (log.length > LOG_LIMIT) log = log.slice(log.length - LOG_LIMIT);
    if (opts.log) {
      for (const command of commands) opts.log(JSON.stringify(command).slice(0, 200));
    }
  };

  const checkAllowed = (commands: string[][]) => {
    for (const command of commands) {
      const refused = refusal(command);
      if (refused) throw new HttpError(400, `ERR Command is not available: '${refused}'`);
    }
  };

  // Upstash accepts a script flag of its own, `#!lua flags=allow-key-locking` (lock only the keys
  // in KEYS), which @upstash/ratelimit sends. Redis refuses unknown flags, so the gateway drops it
  // before Redis sees the script and maps the client's SHA-1 of the original to the one Redis
  // knows, so EVALSHA keeps working as on Upstash.
  const shaOf = (script: string) => createHash("sha1").update(script).digest("hex");
  const shaMap = new Map<string, string>();
  const adapt = (command: string[]): string[] => {
    const [name = "", ...args] = command;
    const upper = name.toUpperCase();
    const scriptAt = scriptArgument(upper, args);
    const script = scriptAt >= 0 ? (args[scriptAt] ?? "") : undefined;
    const rewritten = script === undefined ? undefined : withoutKeyLocking(script);
    if (script !== undefined && rewritten !== undefined) {
      shaMap.set(shaOf(script), shaOf(rewritten));
      const out = [...args];
      out[scriptAt] = rewritten;
      return [name, ...out];
    }
    if (
      (upper === "EVALSHA" || upper === "EVALSHA_RO") &&
      args[0] &&
      shaMap.has(args[0].toLowerCase())
    ) {
      return [name, shaMap.get(args[0].toLowerCase()) as string, ...args.slice(1)];
    }
    return command;
  };

  const runOne = (command: string[]) => {
    const [name, ...args] = adapt(command);
    return redis.callBuffer(name as string, ...args);
  };

  const single = async (command: string[], base64: boolean) => {
    checkAllowed([command]);
    record([command]);
    try {
      return { result: encodeReply(await runOne(command), base64) };
    } catch (error) {
      if (isRedisReplyError(error)) throw new HttpError(400, (error as Error).message);
      throw new HttpError(502, `ERR Redis is not reachable: ${(error as Error).message}`);
    }
  };

  const pipeline = async (commands: string[][], base64: boolean) => {
    checkAllowed(commands);
    record(commands);
    // ioredis writes these back to back on one connection: a pipeline, in order, not atomic.
    const settled = await Promise.allSettled(commands.map(runOne));
    return settled.map((outcome): Json => {
      if (outcome.status === "fulfilled") return { result: encodeReply(outcome.value, base64) };
      const error = outcome.reason as Error;
      if (!isRedisReplyError(error)) {
        throw new HttpError(502, `ERR Redis is not reachable: ${error.message}`);
      }
      return { error: error.message };
    });
  };

  const multiExec = async (commands: string[][], base64: boolean) => {
    checkAllowed(commands);
    record(commands);
    const tx = redis.multi();
    for (const [name, ...args] of commands.map(adapt)) tx.callBuffer(name as string, ...args);
    let replies: [Error | null, unknown][] | null;
    try {
      replies = await tx.exec();
    } catch (error) {
      // A command Redis refused while queueing aborts the whole transaction (EXECABORT).
      const e = error as Error & { previousErrors?: Error[] };
      if (!isRedisReplyError(e))
        throw new HttpError(502, `ERR Redis is not reachable: ${e.message}`);
      const cause = e.previousErrors?.[0]?.message;
      throw new HttpError(400, cause ? `${e.message} ${cause}` : e.message);
    }
    if (!replies) throw new HttpError(400, "EXECABORT Transaction discarded");
    return replies.map(
      ([error, value]): Json =>
        error ? { error: error.message } : { result: encodeReply(value, base64) },
    );
  };

  /** The commands of a request and how to run them: one, a pipeline or a transaction. */
  const commandsOf = (
    method: string,
    pathname: string,
    body: Buffer,
    json: () => unknown,
    base64: boolean,
  ): { commands: string[][]; run: (commands: string[][]) => Promise<Json> } => {
    const path = pathname.replace(/\/+$/, "");
    const runSingle = ([command]: string[][]) => single(command ?? [], base64);
    if (method === "POST" && path === "")
      return { commands: [parseCommand(json())], run: runSingle };
    if (method === "POST" && path === "/pipeline") {
      return { commands: parseCommandList(json()), run: (list) => pipeline(list, base64) };
    }
    if (method === "POST" && path === "/multi-exec") {
      return { commands: parseCommandList(json()), run: (list) => multiExec(list, base64) };
    }
    if (path !== "" && (method === "POST" || method === "GET")) {
      return { commands: [pathCommand(path, body)], run: runSingle };
    }
    throw new HttpError(405, `ERR ${method} ${pathname} is not supported`);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://gateway");
    if (tokenOf(req, url) !== opts.token) {
      await readBody(req, 0); // let the client finish sending, so it reads the answer
      return send(res, 401, { error: "Unauthorized" });
    }
    const body = await readBody(req, MAX_REQUEST_BYTES);
    if (body === "too-large") {
      return send(res, 413, {
        error: `ERR max request size exceeded. Limit: ${MAX_REQUEST_BYTES} bytes`,
      });
    }
    const base64 = String(req.headers["upstash-encoding"] ?? "").toLowerCase() === "base64";
    const json = () => {
      try {
        return JSON.parse(body.toString("utf8")) as unknown;
      } catch {
        throw new HttpError(400, "ERR failed to parse request body as JSON");
      }
    };
    const { commands, run } = commandsOf(req.method ?? "", url.pathname, body, json, base64);
    const fault = strike(commands);
    if (fault === "drop") return void res.destroy();
    const answer = await run(commands);
    if (fault === "lose-reply") return void res.destroy();
    const text = JSON.stringify(answer);
    if (Buffer.byteLength(text) > MAX_RESPONSE_BYTES) {
      // The text is our guess: Upstash documents the limit, not the answer that enforces it. An
      // HTTP 400 with an error is what it answers for every other refused request.
      return send(res, 400, {
        error: `ERR max response size exceeded. Limit: ${MAX_RESPONSE_BYTES} bytes, response: ${Buffer.byteLength(text)} bytes`,
      });
    }
    sendText(res, 200, text);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      const status = error instanceof HttpError ? error.status : 500;
      const message = error instanceof Error ? error.message : String(error);
      opts.log?.(`${req.method} ${req.url} -> ${status} ${message}`);
      if (!res.headersSent) send(res, status, { error: message });
      else res.destroy();
    });
  });
  // The client keeps connections alive; match that so a pipeline burst reuses sockets.
  server.keepAliveTimeout = 30_000;

  const port = await listen(server, opts.port ?? 0, host);
  const url = `http://${urlHost(host)}:${port}`;

  return {
    url,
    token: opts.token,
    port,
    commands: () => billed,
    commandLog: () => log.map((command) => [...command]),
    resetCounters() {
      billed = 0;
      log = [];
    },
    addFault(fault) {
      faults.push({ fault, left: fault.times ?? 1, struck: 0 });
    },
    clearFaults() {
      const was = faults.map(({ fault, struck }) => ({ fault, struck }));
      faults = [];
      return was;
    },
    down: () => stopListening(server),
    async up() {
      if (!server.listening) await listen(server, port, host);
    },
    async close() {
      await stopListening(server);
      redis.disconnect();
    },
  };
}

/** Null when Redis answers PING within the timeout, otherwise why not (for skip messages). */
export async function probeRedis(
  redisUrl = "redis://127.0.0.1:6379",
  timeoutMs = 2_000,
): Promise<string | null> {
  const redis = new Redis(redisUrl, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  // The socket error (ECONNREFUSED, ...) says more than the "Connection is closed." that
  // connect() rejects with afterwards.
  let cause: Error | undefined;
  redis.on("error", (error: Error) => {
    cause ??= error;
  });
  try {
    await redis.connect();
    const pong = await redis.ping();
    return pong === "PONG"
      ? null
      : `unexpected PING reply ${JSON.stringify(pong)} from ${redisUrl}`;
  } catch (error) {
    return `Redis at ${redisUrl} cannot be reached (${(cause ?? (error as Error)).message})`;
  } finally {
    redis.disconnect();
  }
}

export interface GatewayControl {
  url: string;
  port: number;
  close(): Promise<void>;
}

/**
 * A JSON control API for a gateway, on its own port so that it stays reachable while the gateway
 * itself is down:
 * `GET /api/commands[?contains=s]` → `{commands, matching?}` (matching: logged commands with an
 * argument containing s, to count one test's commands by its key prefix), `GET /api/command-log`,
 * `POST /api/reset-counters`, `POST /api/down`, `POST /api/up`, `POST /api/faults` (body: one
 * `RequestFault`), `DELETE /api/faults` → `{faults: [{fault, struck}]}`.
 */
export async function startGatewayHttp(
  gateway: UpstashGateway,
  opts: { port?: number; host?: string } = {},
): Promise<GatewayControl> {
  const host = opts.host ?? "127.0.0.1";
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://control");
    const route = `${req.method} ${url.pathname}`;
    const run = async (): Promise<Json> => {
      switch (route) {
        case "GET /api/commands": {
          const contains = url.searchParams.get("contains");
          if (contains === null) return { commands: gateway.commands() };
          const matching = gateway
            .commandLog()
            .filter((command) => command.some((arg) => arg.includes(contains))).length;
          return { commands: gateway.commands(), matching };
        }
        case "GET /api/command-log":
          return { log: gateway.commandLog() };
        case "POST /api/reset-counters":
          gateway.resetCounters();
          return { ok: true };
        case "POST /api/down":
          await gateway.down();
          return { ok: true };
        case "POST /api/up":
          await gateway.up();
          return { ok: true };
        case "POST /api/faults":
          gateway.addFault(parseFault(await readJsonBody(req)));
          return { ok: true };
        case "DELETE /api/faults":
          return { faults: gateway.clearFaults() as unknown as Json };
        default:
          throw new HttpError(404, `no route ${route}`);
      }
    };
    if (route !== "POST /api/faults") req.resume();
    run().then(
      (body) => send(res, 200, body),
      (error: Error) =>
        send(res, error instanceof HttpError ? error.status : 500, { error: error.message }),
    );
  });
  const port = await listen(server, opts.port ?? 0, host);
  return {
    url: `http://${urlHost(host)}:${port}`,
    port,
    close: () => stopListening(server),
  };
}

async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8") || "null");
  } catch {
    throw new HttpError(400, "the body is not JSON");
  }
}

function parseFault(value: unknown): RequestFault {
  const f = value as Partial<RequestFault> | null;
  if (!f || typeof f.contains !== "string" || f.contains === "")
    throw new HttpError(400, "contains: a non-empty string is required");
  if (f.mode !== "drop" && f.mode !== "lose-reply")
    throw new HttpError(400, 'mode: must be "drop" or "lose-reply"');
  if (f.times !== undefined && (!Number.isInteger(f.times) || f.times < 1))
    throw new HttpError(400, "times: must be a positive integer");
  if (f.command !== undefined && typeof f.command !== "string")
    throw new HttpError(400, "command: must be a string");
  return {
    contains: f.contains,
    mode: f.mode,
    ...(f.times !== undefined ? { times: f.times } : {}),
    ...(f.command !== undefined ? { command: f.command } : {}),
  };
}

async function main(): Promise<void> {
  const token = process.env.GATEWAY_TOKEN ?? "dev-token";
  const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
  const problem = await probeRedis(redisUrl);
  if (problem) {
    console.error(`warning: ${problem}; requests will fail until it is up.`);
    console.error(
      '  start it with: redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no',
    );
  }
  const gateway = await startUpstashGateway({
    token,
    redisUrl,
    port: Number(process.env.GATEWAY_PORT ?? 8079),
    host: process.env.GATEWAY_HOST ?? "127.0.0.1",
    log: process.env.GATEWAY_LOG === "1" ? (line) => console.error(line) : undefined,
  });
  console.log(`UPSTASH_REDIS_REST_URL=${gateway.url}`);
  console.log(`UPSTASH_REDIS_REST_TOKEN=${gateway.token}`);
  const stop = () => {
    gateway.close().then(() => process.exit(0));
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
