/**
 * `npm start`: the relay on your machine with nothing else installed.
 *
 * - Runs the Worker with `wrangler dev` (workerd, the same runtime as production).
 * - Without SMTP_URL, starts a development inbox (an SMTP server on 127.0.0.1 and a web page that
 *   shows what it received) and points the relay at it.
 * - Without UPSTASH_REDIS_REST_URL/_TOKEN, the relay uses its in-memory queue.
 * - Without ADMIN_TOKEN, makes one up for this run.
 * - Fires the cron trigger every minute (wrangler dev never does), so retries happen as deployed.
 * - Opens the SMTP submission listener (src/submission/) on 127.0.0.1:2587 in this process, in
 *   front of the Worker's HTTP API: workerd cannot listen on a socket, and this is how a Worker
 *   deployment takes SMTP too (the listener beside it, pointed at its URL).
 *
 * Settings come from the environment or `.dev.vars`, as with wrangler; ports from flags or the
 * environment (dev/start-options.ts: `npm start -- --port 8788`, `PORT=0 npm start`).
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { loadSubmissionConfig } from "../src/config/submission.ts";
import { ConfigError } from "../src/errors.ts";
import { jsonLogger } from "../src/log.ts";
import { startSubmission } from "../src/submission/listener.ts";
import { networkRelay } from "../src/submission/relay-client.ts";
import { startSinkHttp, startSmtpSink } from "./smtp-sink/index.ts";
import { portInUse, START_USAGE, StartUsageError, startPorts } from "./start-options.ts";

const CRON_MS = 60_000;

/** .dev.vars uses dotenv syntax: KEY=value, optional quotes, # comments. */
function readDevVars(path = ".dev.vars"): Record<string, string> {
  if (!existsSync(path)) return {};
  const out: Record<string, string> = {};
  for (const line of readFileSync(path, "utf8").split(/\r?\n/)) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (!m?.[1] || line.trim().startsWith("#")) continue;
    out[m[1]] = (m[2] ?? "").replace(/^(["'])(.*)\1$/, "$2");
  }
  return out;
}

const fileVars = readDevVars();
const setting = (name: string): string | undefined =>
  process.env[name] || fileVars[name] || undefined;

async function main(): Promise<void> {
  const { ports, help } = startPorts(process.argv.slice(2), (name) => process.env[name]);
  if (help) {
    console.log(
      `npm start -- [options]: the relay in wrangler dev with a development inbox\n${START_USAGE}`,
    );
    return;
  }
  const vars: Record<string, string> = {};
  const cleanups: (() => Promise<void>)[] = [];
  let inboxUrl: string | undefined;

  if (!setting("SMTP_URL")) {
    const sink = await startSmtpSink({
      port: ports.inboxSmtp,
      tls: "none",
      name: "dev-inbox.localhost",
      log: (line) => console.log(`[inbox] ${line}`),
    }).catch((err) => {
      throw portInUse(err, "The inbox's SMTP server", "--inbox-smtp-port", ports.inboxSmtp);
    });
    cleanups.push(() => sink.close());
    const web = await startSinkHttp(sink, {
      port: ports.inboxHttp,
      title: "edge-smtp-relay development inbox",
    }).catch(async (err) => {
      await sink.close();
      throw portInUse(err, "The inbox's web page", "--inbox-port", ports.inboxHttp);
    });
    cleanups.unshift(() => web.close());
    vars.SMTP_URL = `smtp+insecure://127.0.0.1:${sink.port}`;
    inboxUrl = web.url;
  }
  const adminToken = setting("ADMIN_TOKEN") ?? `dev_${randomBytes(24).toString("hex")}`;
  if (!setting("ADMIN_TOKEN")) vars.ADMIN_TOKEN = adminToken;
  // In development the app receiving webhook events usually runs on this machine too.
  if (!setting("WEBHOOK_ALLOW_LOOPBACK")) vars.WEBHOOK_ALLOW_LOOPBACK = "true";
  // Variables from the environment reach the Worker only when passed on; .dev.vars wrangler reads itself.
  for (const name of [
    "SMTP_URL",
    "UPSTASH_REDIS_REST_URL",
    "UPSTASH_REDIS_REST_TOKEN",
    "SMTP_EHLO_NAME",
  ]) {
    if (process.env[name]) vars[name] = process.env[name] as string;
  }

  const require = createRequire(import.meta.url);
  // wrangler's package exports hide bin/, so resolve it next to its package.json.
  const wranglerBin = join(dirname(require.resolve("wrangler/package.json")), "bin", "wrangler.js");
  // Without a port wrangler dev takes 8787 or the next free one; with 0, any free one.
  const args = [wranglerBin, "dev", "--ip", "127.0.0.1", "--show-interactive-dev-session=false"];
  if (ports.relay !== undefined) args.push("--port", String(ports.relay));
  for (const [k, v] of Object.entries(vars)) args.push("--var", `${k}:${v}`);
  const wrangler = spawn(process.execPath, args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { WRANGLER_SEND_METRICS: "false", ...process.env },
  });
  // The port wrangler chose is known from its "Ready on http://127.0.0.1:PORT" line (the tail
  // of the output is kept in case a chunk ends inside that line).
  let ready: (url: string) => void = () => {};
  const readyUrl = new Promise<string>((resolve) => {
    ready = resolve;
  });
  let tail = "";
  // wrangler's own output shows requests and the relay's JSON logs; pass it through, minus the
  // one harmless line about Request.cf it prints offline.
  const relay = (chunk: Buffer) => {
    tail = (tail + chunk.toString()).replace(/\x1b\[[0-9;]*m/g, "").slice(-2000);
    const url = /Ready on (http:\/\/[^\s/]+)/.exec(tail)?.[1];
    if (url) ready(url);
    for (const line of chunk.toString().split("\n")) {
      if (line.trim() && !/Request\.cf|workers\.cloudflare\.com|GetAddrInfoReqWrap/.test(line))
        console.log(`[relay] ${line}`);
    }
  };
  wrangler.stdout.on("data", relay);
  wrangler.stderr.on("data", relay);

  const stop = async (code = 0) => {
    wrangler.kill("SIGINT");
    await Promise.allSettled(cleanups.map((c) => c()));
    process.exit(code);
  };
  process.on("SIGINT", () => void stop());
  process.on("SIGTERM", () => void stop());
  wrangler.on("exit", (code) => {
    console.error(`wrangler dev exited (${code ?? "signal"})`);
    void stop(code ?? 1);
  });

  let relayUrl: string;
  try {
    relayUrl = ports.relay
      ? `http://127.0.0.1:${ports.relay}`
      : await Promise.race([
          readyUrl,
          new Promise<string>((_, reject) =>
            setTimeout(
              () => reject(new Error("wrangler dev did not say where it listens within 90 s")),
              90_000,
            ).unref(),
          ),
        ]);
    await waitForHealth(relayUrl);
    const health = (await (await fetch(`${relayUrl}/health`)).json()) as { store: string };
    const submission = await openSubmission(relayUrl, ports.submission);
    cleanups.unshift(() => submission.close());
    printBanner({
      smtpPort: submission.port as number,
      relayUrl,
      inboxUrl,
      adminToken,
      store: health.store,
      smtp: vars.SMTP_URL ?? "from SMTP_URL",
    });
  } catch (err) {
    // Not left running without the banner that says how to use it.
    console.error(err instanceof Error ? err.message : err);
    return stop(1);
  }

  setInterval(() => {
    fetch(`${relayUrl}/cdn-cgi/handler/scheduled?cron=*+*+*+*+*`).catch(() => {});
  }, CRON_MS).unref();
}

async function waitForHealth(url: string): Promise<void> {
  const deadline = Date.now() + 90_000;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(`${url}/health`)).ok) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`the relay did not answer on ${url}/health within 90 s`);
}

/** The SMTP listener in this process, with the SMTP_SUBMISSION_* settings; errors name them. */
async function openSubmission(relayUrl: string, port: number) {
  const env: Record<string, string> = { ...fileVars };
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  env.SMTP_SUBMISSION_PORT = String(port);
  let config: ReturnType<typeof loadSubmissionConfig>;
  try {
    config = loadSubmissionConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) throw new StartUsageError(err.message);
    throw err;
  }
  return startSubmission({
    config,
    relay: networkRelay(relayUrl),
    log: jsonLogger("warn"),
  }).catch((err) => {
    throw portInUse(err, "The SMTP submission listener", "--smtp-port", port);
  });
}

function printBanner(o: {
  smtpPort: number;
  relayUrl: string;
  inboxUrl: string | undefined;
  adminToken: string;
  store: string;
  smtp: string;
}) {
  const body = JSON.stringify({
    from: "Dev <dev@example.com>",
    to: ["you@example.com"],
    subject: "Hello from edge-smtp-relay",
    text: "It works!",
  });
  console.log(`
  edge-smtp-relay is running

    Relay      ${o.relayUrl}   (API docs: ${o.relayUrl}/openapi.json)
    Queue      ${o.store === "memory" ? "in memory (set UPSTASH_REDIS_REST_URL/_TOKEN for Upstash)" : "Upstash Redis"}
    Smart host ${o.inboxUrl ? "development inbox" : o.smtp}${o.inboxUrl ? `\n    Inbox      ${o.inboxUrl}` : ""}
    API key    ${o.adminToken}
    Dashboard  ${o.relayUrl}/dashboard   (sign in with the API key)
    SMTP       host 127.0.0.1  port ${o.smtpPort}  user resend  password: the API key
               (no TLS on this local port; set SMTP_SUBMISSION_TLS_CERT/_KEY for STARTTLS)

  Send a message:

    curl -X POST ${o.relayUrl}/emails \\
      -H 'Authorization: Bearer ${o.adminToken}' \\
      -H 'Content-Type: application/json' \\
      -d '${body}'

  Or by SMTP (any app's SMTP settings, or swaks):

    swaks --server 127.0.0.1:${o.smtpPort} --auth-user resend --auth-password '${o.adminToken}' \\
      --from dev@example.com --to you@example.com
${o.inboxUrl ? `\n  Then open ${o.inboxUrl} to read it.\n` : ""}`);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(err instanceof StartUsageError ? 2 : 1);
});
