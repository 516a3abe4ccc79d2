/**
 * What every runtime entry shares: one relay per isolate (its key cache and script hashes live as
 * long as the isolate), rebuilt when the configuration changes, and the answer to a configuration
 * error, which names the variable but never its value.
 */
import { type Env, loadConfig } from "../config.ts";
import { ConfigError, RelayError } from "../errors.ts";
import type { Relay } from "../relay.ts";
import { createRelay } from "./compose.ts";

let cached: { env: Env; fingerprint: string; relay: Relay } | undefined;

function fingerprint(env: Env): string {
  return JSON.stringify(
    Object.entries(env)
      .filter(([, v]) => typeof v === "string")
      .sort(),
  );
}

/** The relay for this environment; throws ConfigError when a variable is wrong. */
export function relayFor(env: Env): Relay {
  // The same env object (every request of an isolate, and twice per request: the entry and the
  // app's middleware) skips the fingerprint; a new object with the same values keeps the relay.
  if (cached?.env === env) return cached.relay;
  const fp = fingerprint(env);
  cached =
    cached?.fingerprint === fp
      ? { ...cached, env }
      : { env, fingerprint: fp, relay: createRelay(loadConfig(env)) };
  return cached.relay;
}

export function logConfigError(err: ConfigError): void {
  console.error(
    JSON.stringify({
      level: "error",
      event: "config.invalid",
      variable: err.variable,
      error: err.message,
    }),
  );
}

/**
 * Resolves the relay, or the response a request gets when the configuration is wrong (the
 * variable's name and what is wrong with it; values are never echoed).
 */
export function relayOrConfigError(env: Env): { relay: Relay } | { response: Response } {
  try {
    return { relay: relayFor(env) };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    logConfigError(err);
    return {
      response: new RelayError(
        500,
        "application_error",
        `The relay is misconfigured: ${err.message}`,
      ).toResponse(),
    };
  }
}
