/**
 * Picks the SMTP client named by SMTP_CLIENT. Each client is one file behind the SmtpTransport
 * interface; this is the only place that knows them all.
 */
import { createNodemailerTransport } from "./nodemailer.ts";
import type { SmtpTransport } from "./transport.ts";
import type { SmtpTarget } from "./url.ts";

export type SmtpClientName = "nodemailer";

export const SMTP_CLIENTS: readonly SmtpClientName[] = ["nodemailer"];

export interface TransportOptions {
  target: SmtpTarget;
  ehloName: string;
  timeoutMs: number;
  maxConnections: number;
}

export function createTransport(client: SmtpClientName, options: TransportOptions): SmtpTransport {
  switch (client) {
    case "nodemailer":
      return createNodemailerTransport(options);
  }
}
