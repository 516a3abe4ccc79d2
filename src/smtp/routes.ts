/**
 * Routes (`SMTP_ROUTES`): mail from a sender domain, or sent with one API key, goes to a smart host
 * of its own (a provider per customer domain, a dedicated relay for one app), each with its own
 * connection limit; everything else goes to SMTP_URL.
 *
 * Syntax: routes separated by `;`, each `MATCH=URLS` where MATCH is a sender domain
 * (`acme.test`, matched exactly, case-insensitive, on the envelope sender as accepted) or
 * `key:KEY_ID`, and URLS is one smart host or a failover list, as in SMTP_URL. A URL may end in
 * `?connections=N` (1 to 6) for that route's limit; without it the route takes
 * SMTP_MAX_CONNECTIONS. A key route wins over a domain route. A `;` or `=` inside a password is
 * percent-encoded, as any special character there.
 */
import { ConfigError } from "../errors.ts";
import type { Envelope, RecipientOutcome, SendContext, SmtpTransport } from "./transport.ts";
import { parseSmtpUrls, type SmtpTarget } from "./url.ts";

export interface SmtpRoute {
  /** `key:ID` or a lower-case domain. */
  match: { keyId: string } | { domain: string };
  hosts: SmtpTarget[];
  /** The route's own connection limit; undefined: SMTP_MAX_CONNECTIONS. */
  maxConnections: number | undefined;
}

const MAX_ROUTES = 50;
const DOMAIN = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/;

/** Reads SMTP_ROUTES; every error names the variable and the route by position, never a password. */
export function parseSmtpRoutes(value: string | undefined): SmtpRoute[] {
  if (value === undefined) return [];
  const entries = value
    .split(";")
    .map((e) => e.trim())
    .filter((e) => e !== "");
  if (entries.length > MAX_ROUTES) {
    throw new ConfigError("SMTP_ROUTES", `has ${entries.length} routes; at most ${MAX_ROUTES}`);
  }
  const seen = new Set<string>();
  return entries.map((entry, i) => {
    const where = `route ${i + 1}: `;
    const eq = entry.indexOf("=");
    const name = eq < 0 ? "" : entry.slice(0, eq).trim().toLowerCase();
    if (eq < 0 || name === "") {
      throw new ConfigError(
        "SMTP_ROUTES",
        `${where}must look like acme.test=smtps://user:pass@host:465 or key:KEY_ID=smtp://host:587`,
      );
    }
    let match: SmtpRoute["match"];
    if (name.startsWith("key:")) {
      const keyId = entry.slice(4, eq).trim();
      if (!/^[A-Za-z0-9_-]{1,64}$/.test(keyId)) {
        throw new ConfigError("SMTP_ROUTES", `${where}key:${keyId} is not an API key id`);
      }
      match = { keyId };
    } else {
      if (!DOMAIN.test(name)) {
        throw new ConfigError(
          "SMTP_ROUTES",
          `${where}${JSON.stringify(name)} is not a domain name (or key:KEY_ID)`,
        );
      }
      match = { domain: name };
    }
    if (seen.has(name)) throw new ConfigError("SMTP_ROUTES", `${where}${name} is routed twice`);
    seen.add(name);
    let maxConnections: number | undefined;
    // The limit rides on the URLs as ?connections=N; taken off before each URL is read.
    const urls = entry.slice(eq + 1).replace(/\?connections=([^\s,]*)/g, (_, n: string) => {
      if (!/^[1-6]$/.test(n)) {
        throw new ConfigError("SMTP_ROUTES", `${where}connections must be 1 to 6, got ${n}`);
      }
      maxConnections = Number(n);
      return "";
    });
    return { match, hosts: parseSmtpUrls(urls, "SMTP_ROUTES", where), maxConnections };
  });
}

export interface RoutedTransport {
  route: SmtpRoute;
  transport: SmtpTransport;
}

/**
 * Sends each message through the transport its route names (key first, then sender domain), or
 * `fallback` (SMTP_URL). Closing closes them all.
 */
export function createRoutingTransport(
  fallback: SmtpTransport,
  routes: readonly RoutedTransport[],
): SmtpTransport {
  const byKey = new Map<string, SmtpTransport>();
  const byDomain = new Map<string, SmtpTransport>();
  for (const { route, transport } of routes) {
    if ("keyId" in route.match) byKey.set(route.match.keyId, transport);
    else byDomain.set(route.match.domain, transport);
  }
  const pick = (envelope: Envelope, context: SendContext | undefined): SmtpTransport => {
    const sender = context?.sender ?? envelope.from;
    const domain = sender.slice(sender.lastIndexOf("@") + 1).toLowerCase();
    return (
      (context?.keyId === undefined ? undefined : byKey.get(context.keyId)) ??
      byDomain.get(domain) ??
      fallback
    );
  };
  return {
    send(envelope: Envelope, raw: Uint8Array, context?: SendContext): Promise<RecipientOutcome[]> {
      return pick(envelope, context).send(envelope, raw, context);
    },
    async close(): Promise<void> {
      await Promise.all([fallback, ...routes.map((r) => r.transport)].map((t) => t.close()));
    },
  };
}
