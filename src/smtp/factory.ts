/**
 * Picks the SMTP client named by SMTP_CLIENT. Each client is one file behind the SmtpTransport
 * interface; this is the only place that knows them all.
 *
 * - nodemailer (default): runs on Workers (nodejs_compat) and Deno (node:net/node:tls).
 * - worker-mailer: on `cloudflare:sockets`, so Workers, and Deno through the socket shim; never
 *   Node. Its known defects are listed in src/smtp/worker-mailer/transport.ts.
 */
import { createNodemailerTransport } from "./nodemailer.ts";
import type { SmtpTransport } from "./transport.ts";
import type { SmtpTarget } from "./url.ts";
import { createWorkerMailerTransport } from "./worker-mailer/transport.ts";

export type SmtpClientName = "nodemailer" | "worker-mailer";

export const SMTP_CLIENTS: readonly SmtpClientName[] = ["nodemailer", "worker-mailer"];

export interface TransportOptions {
  target: SmtpTarget;
  ehloName: string;
  /** Connect + greeting, then the longest silence for any other reply. */
  timeoutMs: number;
  /** The wait for the reply to the final "." of DATA (RFC 5321 4.5.3.2.6 suggests 10 min). */
  dataTimeoutMs?: number | undefined;
  maxConnections: number;
  /** Force an AUTH mechanism (tests; smart hosts that mis-advertise one). */
  authMethod?: "PLAIN" | "LOGIN" | undefined;
}

export function createTransport(client: SmtpClientName, options: TransportOptions): SmtpTransport {
  switch (client) {
    case "nodemailer":
      return createNodemailerTransport(options);
    case "worker-mailer":
      return createWorkerMailerTransport(options);
  }
}
