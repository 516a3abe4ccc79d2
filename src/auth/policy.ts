/**
 * What a key may send: sender and recipient patterns, a size cap, and client address ranges. The
 * checks run on the composed message's envelope (what actually reaches SMTP), so no header trick
 * can slip past them. Patterns are an exact address ("alerts@example.org"), any address at a
 * domain ("*@example.com"), or a domain with its subdomains ("*@*.example.com").
 */
import ipaddr from "ipaddr.js";
import { RelayError, ValidationError } from "../errors.ts";
import { rateLimitField } from "./rate-limit.ts";

export interface KeyPolicy {
  /** Envelope sender patterns; empty or absent: any sender. */
  allowed_from?: string[] | undefined;
  /** Recipient patterns; absent: any recipient. */
  allowed_recipients?: string[] | undefined;
  /** Largest message this key may send, in bytes (within the relay's own limit). */
  max_message_bytes?: number | undefined;
  /** Client address ranges in CIDR notation; absent: any address. */
  allowed_ips?: string[] | undefined;
  /** Requests per window ("100/1m"); absent: the relay's RATE_LIMIT. */
  rate_limit?: string | undefined;
}

const PATTERN = /^(\*|[^\s@*]+)@(\*\.)?[^\s@*]+$/;

export function isValidPattern(pattern: string): boolean {
  return PATTERN.test(pattern);
}

export function isValidCidr(range: string): boolean {
  try {
    ipaddr.parseCIDR(range);
    return true;
  } catch {
    return ipaddr.isValid(range);
  }
}

export function matchesPattern(address: string, pattern: string): boolean {
  const a = address.toLowerCase();
  const p = pattern.toLowerCase();
  const at = p.lastIndexOf("@");
  const [local, domain] = [p.slice(0, at), p.slice(at + 1)];
  const aAt = a.lastIndexOf("@");
  const [aLocal, aDomain] = [a.slice(0, aAt), a.slice(aAt + 1)];
  if (local !== "*" && local !== aLocal) return false;
  if (domain.startsWith("*."))
    return aDomain.endsWith(domain.slice(1)) && aDomain.length > domain.length - 1;
  return aDomain === domain;
}

const matchesAny = (address: string, patterns: string[]) =>
  patterns.some((p) => matchesPattern(address, p));

/** A send the key is not allowed to make. */
export class PolicyError extends RelayError {
  constructor(message: string) {
    super(403, "validation_error", message);
    this.name = "PolicyError";
  }
}

export function ipAllowed(ip: string | undefined, ranges: string[]): boolean {
  if (!ip || !ipaddr.isValid(ip)) return false;
  let addr = ipaddr.parse(ip);
  // An IPv4 client seen through an IPv6 socket ("::ffff:192.0.2.1") is still that IPv4 client.
  if (addr.kind() === "ipv6" && (addr as ipaddr.IPv6).isIPv4MappedAddress()) {
    addr = (addr as ipaddr.IPv6).toIPv4Address();
  }
  return ranges.some((range) => {
    const [net, bits] = range.includes("/")
      ? ipaddr.parseCIDR(range)
      : [ipaddr.parse(range), ipaddr.parse(range).kind() === "ipv4" ? 32 : 128];
    return net.kind() === addr.kind() && addr.match(net, bits);
  });
}

/** Checks the client address before anything is read. */
export function checkClient(policy: KeyPolicy | undefined, ip: string | undefined): void {
  if (policy?.allowed_ips?.length && !ipAllowed(ip, policy.allowed_ips)) {
    throw new RelayError(
      403,
      "invalid_api_key",
      `This API key may not be used from ${ip ?? "an unknown address"}`,
    );
  }
}

/** Checks a composed message's envelope and size against the key's policy. */
export function checkMessage(
  policy: KeyPolicy | undefined,
  composed: {
    message: { envelope: { from: string; to: string[] } };
    raw: string;
    headerFrom: string[];
  },
): void {
  if (!policy) return;
  const { message, headerFrom } = composed;
  const bytes = composed.raw.length;
  // Both the envelope sender and the From header readers see must be allowed: a raw message
  // could otherwise pass MAIL FROM and show another sender.
  const senders = [message.envelope.from, ...headerFrom];
  const refusedSender = policy.allowed_from?.length
    ? senders.find((s) => !matchesAny(s, policy.allowed_from ?? []))
    : undefined;
  if (refusedSender && policy.allowed_from) {
    throw new PolicyError(
      `from: ${refusedSender} is not a sender this API key may use (allowed: ${policy.allowed_from.join(", ")})`,
    );
  }
  if (policy.allowed_recipients) {
    const refused = message.envelope.to.find(
      (r) => !matchesAny(r, policy.allowed_recipients ?? []),
    );
    if (refused)
      throw new PolicyError(`to: ${refused} is not a recipient this API key may send to`);
  }
  if (policy.max_message_bytes !== undefined && bytes > policy.max_message_bytes) {
    throw new RelayError(
      413,
      "validation_error",
      `the message is ${bytes} bytes, over this API key's limit of ${policy.max_message_bytes}`,
    );
  }
}

/** Validates a policy given at key creation; errors name the field. */
export function validatePolicy(policy: KeyPolicy): void {
  for (const [field, list] of [
    ["allowed_from", policy.allowed_from],
    ["allowed_recipients", policy.allowed_recipients],
  ] as const) {
    list?.forEach((p, i) => {
      if (!isValidPattern(p)) {
        throw new ValidationError(
          `${JSON.stringify(p)} is not an address pattern (user@example.com, *@example.com, *@*.example.com)`,
          `${field}[${i}]`,
        );
      }
    });
  }
  if (policy.rate_limit !== undefined) rateLimitField(policy.rate_limit, "rate_limit");
  policy.allowed_ips?.forEach((r, i) => {
    if (!isValidCidr(r))
      throw new ValidationError(
        `${JSON.stringify(r)} is not an IP address or CIDR range`,
        `allowed_ips[${i}]`,
      );
  });
}
