/**
 * The SMTP submission listener's settings (src/submission/). Read apart from the relay's Config:
 * the listener runs where a socket can be listened on (Deno, `npm start`, or a process beside a
 * Worker deployment), and a Worker never reads these. Every error names the variable; no error
 * repeats an API key from SMTP_TRUSTED_NETWORKS.
 */
import ipaddr from "ipaddr.js";
import { isValidCidr } from "../auth/policy.ts";
import { ConfigError } from "../errors.ts";
import { type Env, int, str } from "./read.ts";

export interface TrustedNetwork {
  /** A CIDR range or a single address. */
  range: string;
  /** The API key (the token) whose policy mail from this range is sent under. */
  apiKey: string;
}

export interface SubmissionConfig {
  /** SMTP_SUBMISSION_PORT: plain SMTP with STARTTLS when a certificate is set (587, 2587). */
  port: number | undefined;
  /** SMTP_SUBMISSION_TLS_PORT: implicit TLS (465, 2465); needs the certificate. */
  tlsPort: number | undefined;
  /** SMTP_SUBMISSION_HOST: the address to listen on. */
  host: string;
  /** SMTP_SUBMISSION_NAME: the name in the greeting and in Received headers. */
  name: string;
  tls: { cert: string; key: string } | undefined;
  trustedNetworks: TrustedNetwork[];
  /** SMTP_SUBMISSION_RELAY_URL: the relay to hand messages to, when it runs in another process. */
  relayUrl: string | undefined;
  /** What SIZE advertises before any key is known: MAX_MESSAGE_BYTES, as the relay reads it. */
  maxMessageBytes: number;
}

function port(env: Env, name: string): number | undefined {
  return str(env, name) === undefined ? undefined : int(env, name, 0, 0, 65535);
}

function pem(env: Env, name: string, kind: RegExp): string | undefined {
  const value = str(env, name);
  if (value === undefined) return undefined;
  if (!kind.test(value))
    throw new ConfigError(
      name,
      'must hold the PEM text itself (starting "-----BEGIN"), e.g. SMTP_SUBMISSION_TLS_CERT="$(cat fullchain.pem)"',
    );
  return value;
}

/**
 * SMTP_TRUSTED_NETWORKS: "CIDR=API_KEY" pairs separated by commas or white space, as Postfix's
 * mynetworks names the clients that may relay without AUTH. The key, not a key id: the listener
 * hands mail to the relay over its HTTP API, which takes a key. A range of every address (/0) is
 * refused: that is an open relay.
 */
export function parseTrustedNetworks(raw: string | undefined): TrustedNetwork[] {
  if (raw === undefined) return [];
  const name = "SMTP_TRUSTED_NETWORKS";
  return raw
    .split(/[\s,]+/)
    .filter(Boolean)
    .map((entry, i) => {
      const eq = entry.indexOf("=");
      const range = eq < 0 ? entry : entry.slice(0, eq);
      const apiKey = eq < 0 ? "" : entry.slice(eq + 1);
      if (!isValidCidr(range))
        throw new ConfigError(
          name,
          `entry ${i + 1}: ${JSON.stringify(range)} is not an IP address or CIDR range (write CIDR=API_KEY, e.g. 10.0.0.0/8=re_...)`,
        );
      if (range.includes("/") && ipaddr.parseCIDR(range)[1] === 0)
        throw new ConfigError(
          name,
          `entry ${i + 1}: ${range} trusts every address (an open relay)`,
        );
      if (apiKey === "")
        throw new ConfigError(
          name,
          `entry ${i + 1}: ${range} names no API key (write ${range}=re_...)`,
        );
      return { range, apiKey };
    });
}

export function loadSubmissionConfig(env: Env): SubmissionConfig {
  const cert = pem(env, "SMTP_SUBMISSION_TLS_CERT", /^-----BEGIN [A-Z ]*CERTIFICATE-----/);
  const key = pem(env, "SMTP_SUBMISSION_TLS_KEY", /^-----BEGIN [A-Z ]*PRIVATE KEY-----/);
  if ((cert === undefined) !== (key === undefined))
    throw new ConfigError(
      cert === undefined ? "SMTP_SUBMISSION_TLS_CERT" : "SMTP_SUBMISSION_TLS_KEY",
      "is not set, but the other one is: set the certificate and its key together",
    );
  const tls = cert && key ? { cert, key } : undefined;
  const tlsPort = port(env, "SMTP_SUBMISSION_TLS_PORT");
  if (tlsPort !== undefined && !tls)
    throw new ConfigError(
      "SMTP_SUBMISSION_TLS_PORT",
      "needs SMTP_SUBMISSION_TLS_CERT and SMTP_SUBMISSION_TLS_KEY (implicit TLS has no plain fallback)",
    );
  const relayUrl = str(env, "SMTP_SUBMISSION_RELAY_URL");
  if (relayUrl !== undefined && !/^https?:\/\/[^\s/]+(\/\S*)?$/.test(relayUrl))
    throw new ConfigError(
      "SMTP_SUBMISSION_RELAY_URL",
      "must be the relay's http(s) URL, e.g. https://relay.example.workers.dev",
    );
  const name = str(env, "SMTP_SUBMISSION_NAME") ?? str(env, "SMTP_EHLO_NAME") ?? "localhost";
  if (!/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(name))
    throw new ConfigError("SMTP_SUBMISSION_NAME", "must be a host name such as smtp.example.com");
  return {
    port: port(env, "SMTP_SUBMISSION_PORT"),
    tlsPort,
    host: str(env, "SMTP_SUBMISSION_HOST") ?? "127.0.0.1",
    name,
    tls,
    trustedNetworks: parseTrustedNetworks(str(env, "SMTP_TRUSTED_NETWORKS")),
    relayUrl: relayUrl?.replace(/\/+$/, ""),
    maxMessageBytes: int(env, "MAX_MESSAGE_BYTES", 7 * 1024 * 1024, 1024, 100 * 1024 * 1024),
  };
}
