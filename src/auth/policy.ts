/**
 * What a key may send: sender and recipient patterns, a size cap, and client address ranges. The
 * checks run on the composed message's envelope (what actually reaches SMTP), so no header trick
 * can slip past them. Patterns are an exact address ("alerts@example.org"), any address at a
 * domain ("*@example.com"), or a domain with its subdomains ("*@*.example.com").
 */
import ipaddr from "ipaddr.js";
import { RelayError, StoredSizeError, ValidationError } from "../errors.ts";
import { type RateLimit, rateLimitField } from "./rate-limit.ts";

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
    headerFrom: string[];
    storedBytes: number;
  },
): void {
  if (!policy) return;
  const { message, headerFrom } = composed;
  const bytes = composed.storedBytes;
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
    throw new StoredSizeError("the message", bytes, policy.max_message_bytes, "this API key's");
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

// ---------------------------------------------------------------------------------------------
// Keys made by keys: a key may hand out only what it holds itself.

/** A key asked to create or rotate a key wider than itself; the message names the field. */
export class WiderPolicyError extends RelayError {
  readonly field: string;
  constructor(field: string, detail: string) {
    super(403, "validation_error", `${field}: ${detail}`);
    this.name = "WiderPolicyError";
    this.field = field;
  }
}

function splitPattern(pattern: string): { local: string; domain: string; subdomains: boolean } {
  const p = pattern.toLowerCase();
  const at = p.lastIndexOf("@");
  const domain = p.slice(at + 1);
  return domain.startsWith("*.")
    ? { local: p.slice(0, at), domain: domain.slice(2), subdomains: true }
    : { local: p.slice(0, at), domain, subdomains: false };
}

const isStrictSubdomain = (domain: string, parent: string) =>
  domain.length > parent.length + 1 && domain.endsWith(`.${parent}`);

/**
 * Whether every address `inner` matches is matched by `outer` (case-insensitive). A pattern's
 * addresses are a local part (one, or any) at one domain or at every strict subdomain of one.
 */
export function covers(outer: string, inner: string): boolean {
  const o = splitPattern(outer);
  const i = splitPattern(inner);
  if (o.local !== "*" && o.local !== i.local) return false;
  if (!o.subdomains) return !i.subdomains && i.domain === o.domain;
  // "*.d" covers "x.d" and "*.x.d", and "*.d" itself; never "d".
  return i.subdomains
    ? i.domain === o.domain || isStrictSubdomain(i.domain, o.domain)
    : isStrictSubdomain(i.domain, o.domain);
}

function parseRange(range: string): [ipaddr.IPv4 | ipaddr.IPv6, number] {
  if (range.includes("/")) return ipaddr.parseCIDR(range);
  const addr = ipaddr.parse(range);
  return [addr, addr.kind() === "ipv4" ? 32 : 128];
}

/** Whether every address in the range `inner` lies in `outer` (same kind, as ipAllowed compares). */
export function rangeWithin(outer: string, inner: string): boolean {
  const [oNet, oBits] = parseRange(outer);
  const [iNet, iBits] = parseRange(inner);
  return oNet.kind() === iNet.kind() && iBits >= oBits && iNet.match(oNet, oBits);
}

/**
 * Whether `inner` never allows more requests than `outer` in any stretch of time, reading a limit
 * "n per w" as at most n requests in any window of w seconds, the sliding window's promise. Over a
 * stretch of T seconds such a limit allows n x ceil(T / w). With an inner window at least as long,
 * n_inner <= n_outer is exactly the condition; with a shorter one, the worst stretch is one outer
 * window, which holds ceil(w_outer / w_inner) inner windows. (Comparing counts and rates alone
 * would let 6/2s under 10/3s: 12 requests within 2.1 s.)
 */
export function rateWithin(outer: RateLimit, inner: RateLimit): boolean {
  if (inner.windowSeconds >= outer.windowSeconds) return inner.requests <= outer.requests;
  return inner.requests * Math.ceil(outer.windowSeconds / inner.windowSeconds) <= outer.requests;
}

const SENDERS = "allowed senders";
const RECIPIENTS = "allowed recipients";

function checkPatterns(
  field: "allowed_from" | "allowed_recipients",
  outer: string[] | undefined,
  inner: string[] | undefined,
): void {
  const what = field === "allowed_from" ? SENDERS : RECIPIENTS;
  // allowed_from: absent or empty means any sender; allowed_recipients: only absent means any.
  const unbounded = (list: string[] | undefined) =>
    list === undefined || (field === "allowed_from" && list.length === 0);
  if (unbounded(outer)) return;
  const bound = outer ?? [];
  const shown = bound.length ? bound.join(", ") : "none";
  if (unbounded(inner)) {
    throw new WiderPolicyError(
      field,
      `would allow any address; this API key's ${what} are ${shown}`,
    );
  }
  (inner ?? []).forEach((p, i) => {
    if (!bound.some((o) => covers(o, p))) {
      throw new WiderPolicyError(
        `${field}[${i}]`,
        `${JSON.stringify(p)} is not within this API key's ${what} (${shown})`,
      );
    }
  });
}

/**
 * Checks that `inner` allows nothing `outer` does not: the policy of a key being created or
 * rotated by the key whose policy is `outer`. `relayRate` is the relay's RATE_LIMIT, which is
 * either key's limit when it has none of its own.
 */
export function checkWithin(
  outer: KeyPolicy | undefined,
  inner: KeyPolicy | undefined,
  relayRate: RateLimit,
): void {
  checkPatterns("allowed_from", outer?.allowed_from, inner?.allowed_from);
  checkPatterns("allowed_recipients", outer?.allowed_recipients, inner?.allowed_recipients);
  const maxBytes = outer?.max_message_bytes;
  if (maxBytes !== undefined) {
    const own = inner?.max_message_bytes;
    if (own === undefined || own > maxBytes) {
      throw new WiderPolicyError(
        "max_message_bytes",
        `${own === undefined ? "no limit" : own} is over this API key's limit of ${maxBytes} bytes`,
      );
    }
  }
  const outerRate = outer?.rate_limit ? rateLimitField(outer.rate_limit, "rate_limit") : relayRate;
  const innerRate = inner?.rate_limit ? rateLimitField(inner.rate_limit, "rate_limit") : relayRate;
  if (!rateWithin(outerRate, innerRate)) {
    throw new WiderPolicyError(
      "rate_limit",
      `${inner?.rate_limit ?? "the relay's RATE_LIMIT"} allows more requests than this API key's ${outer?.rate_limit ?? "RATE_LIMIT"} (${outerRate.requests} per ${outerRate.windowSeconds} s)`,
    );
  }
  const ranges = outer?.allowed_ips?.length ? outer.allowed_ips : undefined;
  if (ranges) {
    const own = inner?.allowed_ips?.length ? inner.allowed_ips : undefined;
    if (!own) {
      throw new WiderPolicyError(
        "allowed_ips",
        `would allow any client address; this API key's ranges are ${ranges.join(", ")}`,
      );
    }
    own.forEach((r, i) => {
      if (!ranges.some((o) => rangeWithin(o, r))) {
        throw new WiderPolicyError(
          `allowed_ips[${i}]`,
          `${JSON.stringify(r)} is not within this API key's ranges (${ranges.join(", ")})`,
        );
      }
    });
  }
}

/**
 * The policy of a key created by a key with policy `creator`: what the request leaves out is
 * inherited from the creator (so {"name": "x"} from a narrow key makes an equally narrow key),
 * and what it gives must lie within the creator's bounds.
 */
export function boundedPolicy(
  creator: KeyPolicy | undefined,
  requested: KeyPolicy,
  relayRate: RateLimit,
): KeyPolicy {
  const policy: KeyPolicy = { ...requested };
  for (const field of [
    "allowed_from",
    "allowed_recipients",
    "max_message_bytes",
    "allowed_ips",
    "rate_limit",
  ] as const) {
    const inherited = creator?.[field];
    if (policy[field] === undefined && inherited !== undefined) {
      (policy as Record<string, unknown>)[field] = inherited;
    }
  }
  checkWithin(creator, policy, relayRate);
  return policy;
}

/** A policy update: a field given replaces the key's, `null` removes it (the key may then do more). */
export type PolicyChanges = { [F in keyof KeyPolicy]?: KeyPolicy[F] | null };

const POLICY_FIELDS = [
  "allowed_from",
  "allowed_recipients",
  "max_message_bytes",
  "allowed_ips",
  "rate_limit",
] as const satisfies readonly (keyof KeyPolicy)[];

/** `current` with `changes` applied, validated (errors name the field); undefined when empty. */
export function changedPolicy(
  current: KeyPolicy | undefined,
  changes: PolicyChanges,
): KeyPolicy | undefined {
  const policy: Record<string, unknown> = { ...current };
  for (const field of POLICY_FIELDS) {
    const value = changes[field];
    if (value === null) delete policy[field];
    else if (value !== undefined) policy[field] = value;
  }
  validatePolicy(policy as KeyPolicy);
  return Object.keys(policy).length ? (policy as KeyPolicy) : undefined;
}

/**
 * Whether a key with policy `editor` may change, rotate or delete the key that has `current`: only
 * when `current` lies within `editor`, else a narrow key could revoke or rename a wider one.
 * A 403 naming the field.
 */
export function checkMayTouch(
  editor: KeyPolicy | undefined,
  current: KeyPolicy | undefined,
  relayRate: RateLimit,
): void {
  try {
    checkWithin(editor, current, relayRate);
  } catch (err) {
    if (!(err instanceof WiderPolicyError)) throw err;
    const detail = err.message.slice(err.field.length + 2);
    throw new WiderPolicyError(err.field, `the key to change allows more than this one: ${detail}`);
  }
}

/**
 * The policy a key with policy `editor` may give the key that has `current`: the key being edited
 * must already lie within the editor (a narrow key cannot touch a wider one, not even to rename
 * it), and so must the result. Both refusals are 403 naming the field.
 */
export function boundedUpdate(
  editor: KeyPolicy | undefined,
  current: KeyPolicy | undefined,
  changes: PolicyChanges,
  relayRate: RateLimit,
): KeyPolicy | undefined {
  checkMayTouch(editor, current, relayRate);
  const next = changedPolicy(current, changes);
  checkWithin(editor, next, relayRate);
  return next;
}
