/**
 * The SMTP submission listener on its own, beside a relay that runs elsewhere: a Worker (which
 * cannot listen on a socket) or another process. It hands each message to the relay's HTTP API
 * at SMTP_SUBMISSION_RELAY_URL, so it holds no queue and needs no store settings: the relay
 * stores, and "250" comes only from the relay's 200.
 *
 *   node src/runtime/smtp-listener.ts          (Node 24: `npm run smtp`)
 *   deno task smtp                             (Deno 2)
 *
 * Settings from the environment (README "Send by SMTP"); a wrong one stops it naming the variable.
 */
import process from "node:process";
import { loadSubmissionConfig } from "../config/submission.ts";
import { ConfigError } from "../errors.ts";
import { jsonLogger, type LogLevel } from "../log.ts";
import { startSubmission } from "../submission/listener.ts";
import { networkRelay } from "../submission/relay-client.ts";

const env = process.env as Record<string, string>;
const log = jsonLogger((env.LOG_LEVEL as LogLevel | undefined) ?? "info");

function settings() {
  const config = loadSubmissionConfig(env);
  if (!config.relayUrl)
    throw new ConfigError(
      "SMTP_SUBMISSION_RELAY_URL",
      "must be set: the relay's URL, e.g. https://relay.example.workers.dev",
    );
  if (config.port === undefined && config.tlsPort === undefined)
    throw new ConfigError(
      "SMTP_SUBMISSION_PORT",
      "or SMTP_SUBMISSION_TLS_PORT must be set: the port to listen on",
    );
  return { config, relayUrl: config.relayUrl };
}

let parsed: ReturnType<typeof settings>;
try {
  parsed = settings();
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  log.error("config.invalid", { variable: err.variable, error: err.message });
  process.exit(1);
}

const listener = await startSubmission({
  config: parsed.config,
  relay: networkRelay(parsed.relayUrl),
  log,
});
log.info("submission.relay", { url: parsed.relayUrl });

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    void listener.close().then(() => process.exit(0));
  });
}
