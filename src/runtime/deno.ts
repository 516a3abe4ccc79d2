/**
 * Deno entry: the same Hono app under `Deno.serve`, delivery runs from `Deno.cron`. Like the
 * Workers entry, it only adapts the runtime (environment, connection info, background work); the
 * relay itself lives in src/relay.ts.
 *
 * Run it with `deno task serve` (deno.json holds the permissions; README.md's "Run on Deno" says why
 * each is needed).
 */
import type { Context } from "hono";
import { loadSubmissionConfig, type SubmissionConfig } from "../config/submission.ts";
import type { Env } from "../config.ts";
import { ConfigError } from "../errors.ts";
import { setEndpointFetch } from "../events/dispatch.ts";
import { pinnedFetch } from "../events/pinned-fetch.ts";
import { createApp } from "../http/app.ts";
import type { Relay } from "../relay.ts";
import { type SubmissionListener, startSubmission } from "../submission/listener.ts";
import { logConfigError, relayFor } from "./isolate.ts";

// Unlike a Worker, this process can reach its own network: webhook POSTs resolve the endpoint's
// name themselves and connect only to public addresses (DNS rebinding included).
setEndpointFetch((url, init, allowLoopback) => pinnedFetch(url, init, allowLoopback));

// The environment of a process cannot change under it, so it is read and checked once, at start.
// A wrong value stops the process (naming the variable) instead of answering 500 to every request
// for as long as it runs, which is the most a Worker can do.
const env: Env = Deno.env.toObject();

function startupSettings(): {
  relay: Relay;
  port: number;
  hostname: string;
  proxyHeader: string | undefined;
  submission: SubmissionConfig | undefined;
} {
  const relay = relayFor(env);
  const rawPort = Deno.env.get("PORT")?.trim() || "8787";
  // 0 asks the system for a free port (tests); the address is logged once listening.
  if (!/^\d+$/.test(rawPort) || Number(rawPort) > 65535) {
    throw new ConfigError(
      "PORT",
      `must be a port number (0 to 65535), got ${JSON.stringify(rawPort)}`,
    );
  }
  const proxyHeader = Deno.env.get("TRUST_PROXY_HEADER")?.trim() || undefined;
  if (proxyHeader !== undefined && !/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(proxyHeader)) {
    throw new ConfigError("TRUST_PROXY_HEADER", "must be a header name such as X-Forwarded-For");
  }
  // The SMTP listener is off unless a port for it is set (deno task start sets one).
  const submission = loadSubmissionConfig(env);
  return {
    relay,
    port: Number(rawPort),
    hostname: Deno.env.get("HOST")?.trim() || "127.0.0.1",
    proxyHeader,
    submission:
      submission.port !== undefined || submission.tlsPort !== undefined ? submission : undefined,
  };
}

let settings: ReturnType<typeof startupSettings>;
try {
  settings = startupSettings();
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  logConfigError(err);
  Deno.exit(1);
}
const { relay, port, hostname, proxyHeader, submission } = settings;

/**
 * The client's address for key policies (`allowed_ips`). By default the TCP peer: a header is
 * trusted only when TRUST_PROXY_HEADER names it, because any client can send any header. With a
 * list such as X-Forwarded-For, the last entry is the one the nearest proxy appended; earlier
 * entries came from the client and prove nothing.
 */
function clientIp(c: Context): string | undefined {
  if (proxyHeader !== undefined) {
    const value = c.req.header(proxyHeader);
    const last = value?.split(",").at(-1)?.trim();
    return last || undefined;
  }
  const addr = (c.env as Deno.ServeHandlerInfo<Deno.NetAddr> | undefined)?.remoteAddr;
  return addr?.hostname;
}

// Work that outlives its response (the immediate delivery attempt) and cron runs. A process keeps
// running them anyway; the set lets a shutdown wait for them, so a stop does not leave messages
// leased for minutes to an attempt that was cut off.
const running = new Set<Promise<unknown>>();
function track(promise: Promise<unknown>, event: string): Promise<void> {
  const tracked = promise.then(
    () => {},
    (err) => relay.log.error(event, { error: String(err) }),
  );
  running.add(tracked);
  void tracked.finally(() => running.delete(tracked));
  return tracked;
}

const app = createApp({
  relay: () => relay,
  background: (_c, promise) => void track(promise, "background.failed"),
  clientIp,
});

// At the top level and before Deno.serve: Deno Deploy finds cron jobs by running the module's top
// level when it deploys.
// Errors are logged, not thrown: a failed run needs no retry of its own, the next tick is one.
Deno.cron("deliver", "* * * * *", () => track(relay.runScheduled(), "delivery.run_failed"));

const server = Deno.serve(
  {
    port,
    hostname,
    onListen: (addr) => {
      const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
      relay.log.info("http.listening", { url: `http://${host}:${addr.port}` });
    },
  },
  // Deno passes the connection info as the second argument; Hono hands it on as `c.env`.
  (request, info) => app.fetch(request, info),
);

/**
 * The SMTP listener calls the app in this process: no network hop, and the relay sees the SMTP
 * client's own address, so a key's allowed_ips apply to it exactly as to an HTTP client (through
 * the TRUST_PROXY_HEADER header when one is configured, since clientIp then reads only that).
 */
let listener: SubmissionListener | undefined;
if (submission) {
  try {
    listener = await startSubmission({
      config: submission,
      log: relay.log,
      relay: (path, init, ip) => {
        const headers = new Headers(init.headers);
        if (proxyHeader !== undefined && ip) headers.set(proxyHeader, ip);
        const request = new Request(`http://${hostname}:${port}${path}`, { ...init, headers });
        const info = { remoteAddr: { hostname: ip ?? "", port: 0, transport: "tcp" as const } };
        return Promise.resolve(app.fetch(request, info));
      },
    });
  } catch (err) {
    relay.log.error("submission.listen_failed", { error: String(err) });
    Deno.exit(1);
  }
}
export const submissionPort = listener?.port;

/**
 * Stops taking requests, then gives running deliveries up to 8 s to write their outcome (inside
 * the 10 s Docker waits before it kills). What is still running after that is left to its lease.
 */
async function shutdown(signal: string): Promise<void> {
  relay.log.info("http.stopping", { signal, running: running.size });
  await Promise.all([server.shutdown(), listener?.close()]);
  const grace = new Promise((resolve) => setTimeout(resolve, 8_000));
  await Promise.race([Promise.allSettled([...running]), grace]);
  Deno.exit(0);
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  try {
    Deno.addSignalListener(signal, () => void shutdown(signal));
  } catch {
    // Not every platform delivers every signal (Windows has no SIGTERM; Deploy manages the
    // process itself): there the runtime's own handling applies.
  }
}
