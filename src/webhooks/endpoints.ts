/**
 * Webhook endpoints: the record the API keeps, its signing secret, and the checks on what an app
 * may register (an https URL on a public host, the events the relay emits).
 */
import { ValidationError } from "../errors.ts";
import { EVENT_TYPES, type EventType } from "./events.ts";

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

/** IPv4 literals no public endpoint has: private, loopback, link-local, CGNAT, "this network". */
function internalIpv4(host: string): boolean {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  if (!m) return false;
  const [a, b] = [Number(m[1]), Number(m[2])];
  return (
    a === 0 ||
    a === 10 ||
    a === 127 ||
    (a === 100 && b >= 64 && b <= 127) ||
    (a === 169 && b === 254) ||
    (a === 172 && b >= 16 && b <= 31) ||
    (a === 192 && b === 168) ||
    a >= 224
  );
}

function loopback(host: string): boolean {
  return (
    host === "localhost" || host.endsWith(".localhost") || /^127\./.test(host) || host === "[::1]"
  );
}

/**
 * Checks an endpoint URL. It must be https on a public host name or address: names such as
 * `localhost`, `*.internal` or `*.local` and private, loopback or link-local address literals are
 * refused, so the relay cannot be pointed at its own network. A name that resolves to a private
 * address is not caught here (the runtime's fetch decides; Workers cannot reach private ranges).
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
  const host = url.hostname.toLowerCase();
  if (allowLoopback && loopback(host) && (url.protocol === "http:" || url.protocol === "https:")) {
    return url.toString();
  }
  if (url.protocol !== "https:") throw new ValidationError("must be an https URL", field);
  if (
    loopback(host) ||
    host.endsWith(".local") ||
    host.endsWith(".internal") ||
    host.endsWith(".localdomain") ||
    !host.includes(".") ||
    internalIpv4(host) ||
    (host.startsWith("[") && /^\[(::|f[cd]|fe[89ab]|::ffff:)/i.test(host))
  ) {
    throw new ValidationError("must be a public host, not a local or private address", field);
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
