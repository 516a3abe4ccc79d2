/**
 * Webhook endpoints: the record the API keeps, its signing secret, and the checks on what an app
 * may register (an https URL on a public host, the events the relay emits).
 */
import { ValidationError } from "../errors.ts";
import { EVENT_TYPES, type EventType } from "./events.ts";
import { checkHost, isLoopbackHost } from "./hosts.ts";

export interface WebhookRecord {
  id: string;
  endpoint: string;
  events: EventType[];
  /** `whsec_` + base64 of 32 random bytes (Standard Webhooks' secret format). */
  secret: string;
  createdAt: number;
  /** Why and when the relay disabled it (cleared when it is enabled again). */
  disabledReason?: string;
  disabledAt?: number;
}

export function newSigningSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return `whsec_${btoa(String.fromCharCode(...bytes))}`;
}

const LONGEST_URL = 2048;

/**
 * Checks an endpoint URL. It must be https on a public host name or address: special-use names
 * (`localhost`, `*.local`, `*.internal`, ... see hosts.ts), single-label names and every
 * special-purpose address (private, loopback, link-local, CGNAT, benchmarking, documentation,
 * IPv4 embedded in IPv6, ...) are refused, so the relay cannot be pointed at its own network.
 * The host is checked as the URL parser normalises it: lower case, numeric spellings such as
 * 2130706433 or 0x7f.1 as dotted quads, IDNs as A-labels, and without one trailing dot.
 *
 * A public name that resolves to a private address is not caught here. On Deno the relay resolves
 * the name itself before each POST and connects only to checked addresses (pinned-fetch.ts). On
 * Workers, fetch() leaves from Cloudflare's network, not the operator's: subrequests resolve names
 * with Cloudflare's DNS and cannot be made to IP addresses at all
 * (developers.cloudflare.com/workers/platform/known-issues, "Fetch to IP addresses"), and
 * sockets cannot reach private or loopback ranges (.../runtime-apis/tcp-sockets). Cloudflare
 * documents no rule for a name that resolves to a private address; such a request cannot reach
 * the operator's own network from there.
 * With `allowLoopback` (development and tests), http and https to loopback are allowed too.
 */
export function checkEndpointUrl(raw: unknown, allowLoopback: boolean, field = "endpoint"): string {
  if (typeof raw !== "string" || raw.trim() === "") throw new ValidationError("is required", field);
  if (raw.length > LONGEST_URL)
    throw new ValidationError(`must be at most ${LONGEST_URL} characters`, field);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ValidationError(
      "must be an absolute URL such as https://app.example/webhooks",
      field,
    );
  }
  if (url.username || url.password)
    throw new ValidationError("must not carry credentials; the relay signs each request", field);
  const web = url.protocol === "http:" || url.protocol === "https:";
  if (allowLoopback && web && isLoopbackHost(url.hostname)) return url.toString();
  if (url.protocol !== "https:") throw new ValidationError("must be an https URL", field);
  const verdict = checkHost(url.hostname);
  if ("refused" in verdict) {
    throw new ValidationError(
      `must be a public host, not a local or private address: ${verdict.refused}`,
      field,
    );
  }
  return url.toString();
}

/** Checks an `events` list: a non-empty list of event types the relay emits, without repeats. */
export function checkEvents(raw: unknown, field = "events"): EventType[] {
  if (!Array.isArray(raw) || raw.length === 0)
    throw new ValidationError("must be a non-empty list of event types", field);
  const out: EventType[] = [];
  for (const [i, value] of raw.entries()) {
    if (typeof value !== "string" || !(EVENT_TYPES as readonly string[]).includes(value)) {
      throw new ValidationError(
        `must be one of ${EVENT_TYPES.join(", ")} (the events the relay emits)`,
        `${field}[${i}]`,
      );
    }
    if (!out.includes(value as EventType)) out.push(value as EventType);
  }
  return out;
}
