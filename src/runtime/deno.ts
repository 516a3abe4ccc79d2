/**
 * Deno entry: the same Hono app under `Deno.serve`, delivery runs from `Deno.cron`. Like the
 * Workers entry, it only adapts the runtime (environment, connection info, background work); the
 * relay itself lives in src/relay.ts.
 *
 * Run it with `deno task serve` (see deno.json for the permissions and why each is needed).
 */
import type { Context } from "hono";
import { createApp } from "../app.ts";
import type { Env } from "../config.ts";
import { ConfigError } from "../errors.ts";
import type { Relay } from "../relay.ts";
import { logConfigError, relayFor } from "./isolate.ts";

// The environment of a process cannot change under it, so it is read and checked once, at start.
// A wrong value stops the process (naming the variable) instead of answering 500 to every request
// for as long as it runs, which is the most a Worker can do.
const env: Env = Deno.env.toObject();

function startupSettings(): {
  relay: Relay;
  port: number;
  hostname: string;
  proxyHeader: string | undefined;
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
  return {
    relay,
    port: Number(rawPort),
    hostname: Deno.env.get("HOST")?.trim() || "127.0.0.1",
    proxyHeader,
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
const { relay, port, hostname, proxyHeader } = settings;

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

// Work that outlives its response (the immediate delivery attempt). A process keeps running it
// anyway; the set lets a shutdown wait for it, so a stop does not leave messages leased for
// minutes to an attempt that was cut off.
const background = new Set<Promise<unknown>>();

const app = createApp({
  relay: () => relay,
  background: (_c, promise) => {
    const tracked = promise.catch((err) =>
      relay.log.error("background.failed", { error: String(err) }),
    );
    background.add(tracked);
    void tracked.finally(() => background.delete(tracked));
  },
  clientIp,
});

// Registered at the top level: Deno Deploy reads cron schedules from the module's first run.
Deno.cron("deliver", "* * * * *", async () => {
  try {
    await relay.runScheduled();
  } catch (err) {
    relay.log.error("delivery.run_failed", { error: String(err) });
  }
});

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

/** Stops taking requests, then gives running deliveries a moment to write their outcome. */
async function shutdown(signal: string): Promise<void> {
  relay.log.info("http.stopping", { signal, background: background.size });
  await server.shutdown();
  const grace = new Promise((resolve) => setTimeout(resolve, 10_000));
  await Promise.race([Promise.allSettled([...background]), grace]);
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
