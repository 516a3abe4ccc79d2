/**
 * The sink's fault plan: the rules a test sets (what strikes, where, how often), their checks, and
 * the deterministic selection (every k-th, or a seeded hash: never Math.random) that picks which
 * connections or transactions a rule takes. server.ts carries the strikes out.
 */
import { replyCode } from "./replies.ts";

/** Where a fault strikes: before the greeting, or at a transaction's MAIL, RCPT or DATA. */
export type FaultStage = "connect" | "mail" | "rcpt" | "data";

/**
 * What a fault does: `reply` answers `code` (421 also closes the connection, as servers do);
 * `drop` closes the connection without a reply (at DATA after reading `afterBytes` of the
 * message); `stall` says nothing for `ms`, then closes the connection (a hung server).
 */
export type FaultAction = "reply" | "drop" | "stall";

export interface FaultRule {
  at: FaultStage;
  action: FaultAction;
  /** For `reply`: 400-599. */
  code?: number;
  /** For `reply`: the text after the code (default: an enhanced code and "set by the test sink"). */
  text?: string;
  /** For `stall`: how long to stay silent, 1 to 600000 ms. */
  ms?: number;
  /** For `drop` at DATA: bytes of the message to read before closing (default 1: the first chunk). */
  afterBytes?: number;
  /**
   * Which ones: every `every`-th (after skipping `offset`), or those whose seeded hash of the
   * number falls under `probability`. Neither: all. "connect" rules count connections; the others
   * count transactions (each MAIL FROM starts one), numbered from 1 in arrival order.
   */
  every?: number;
  offset?: number;
  probability?: number;
  /** For `probability` (default 1): the same seed picks the same transaction numbers. */
  seed?: number;
  /** Strike at most this many times. */
  limit?: number;
}

/**
 * Rules are tried in order and the first that selects a connection (or transaction) owns it, so
 * one transaction meets at most one transaction fault. A RCPT fault strikes the transaction's
 * first recipient only, so the others are accepted, as when one mailbox is over quota.
 */
export interface FaultPlan {
  rules: FaultRule[];
  /**
   * A slow but healthy server: each accepted message is recorded at once and its 250 sent this
   * many ms later (keep it below the client's timeout).
   */
  latencyMs?: number;
  /**
   * A tarpit: every reply to MAIL, RCPT and the end of DATA comes this many ms late. Below the
   * client's timeout nothing fails, but a transaction takes (2 + recipients) times as long.
   */
  tarpitMs?: number;
}

export interface StallRecord {
  at: FaultStage;
  /**
   * When the client closed the connection itself, after this many ms; null if it did not (it
   * outwaited the stall, or `down()` cut the stall short).
   */
  clientGaveUpAfterMs: number | null;
  /** Set when `down()` dropped the connection during the stall. */
  cutByDown?: true;
}

export interface FaultStats {
  connections: number;
  transactions: number;
  /** Strikes per rule, in the plan's order. */
  hits: number[];
  stalls: StallRecord[];
  /** Connections closed by a `drop` rule. */
  drops: number;
  /** Accepted messages whose 250 found the connection gone (see ReceivedMessage.unanswered). */
  unanswered: number;
}

const FAULT_STAGES: readonly FaultStage[] = ["connect", "mail", "rcpt", "data"];
const FAULT_ACTIONS: readonly FaultAction[] = ["reply", "drop", "stall"];
const MAX_RULES = 32;

function wholeNumber(value: unknown, name: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new Error(`${name} must be a whole number from ${min} to ${max}`);
  }
  return value;
}

/** Checks a plan from a test or from JSON; the error names the offending field. */
export function parseFaultPlan(value: unknown): FaultPlan {
  if (typeof value !== "object" || value === null) throw new Error("a fault plan is an object");
  const { rules, latencyMs, tarpitMs } = value as {
    rules?: unknown;
    latencyMs?: unknown;
    tarpitMs?: unknown;
  };
  if (!Array.isArray(rules)) throw new Error("rules must be an array");
  if (rules.length > MAX_RULES) throw new Error(`at most ${MAX_RULES} rules`);
  const plan: FaultPlan = { rules: rules.map(parseRule) };
  const latency = wholeNumber(latencyMs, "latencyMs", 0, 600_000);
  if (latency) plan.latencyMs = latency;
  const tarpit = wholeNumber(tarpitMs, "tarpitMs", 0, 600_000);
  if (tarpit) plan.tarpitMs = tarpit;
  return plan;
}

function parseRule(raw: unknown, i: number): FaultRule {
  const name = (field: string) => `rules[${i}].${field}`;
  if (typeof raw !== "object" || raw === null) throw new Error(`rules[${i}] must be an object`);
  const r = raw as Record<string, unknown>;
  if (!FAULT_STAGES.includes(r.at as FaultStage)) {
    throw new Error(`${name("at")} must be one of ${FAULT_STAGES.join(", ")}`);
  }
  if (!FAULT_ACTIONS.includes(r.action as FaultAction)) {
    throw new Error(`${name("action")} must be one of ${FAULT_ACTIONS.join(", ")}`);
  }
  const rule: FaultRule = { at: r.at as FaultStage, action: r.action as FaultAction };
  parseAction(rule, r, name);
  parseSelection(rule, r, i, name);
  return rule;
}

/** The fields of what the rule does: a reply's code and text, a stall's length, a drop's bytes. */
function parseAction(
  rule: FaultRule,
  r: Record<string, unknown>,
  name: (field: string) => string,
): void {
  if (rule.action === "reply") parseReply(rule, r, name);
  if (rule.action === "stall") {
    rule.ms = wholeNumber(r.ms, name("ms"), 1, 600_000);
    if (rule.ms === undefined) throw new Error(`${name("ms")} is required for a stall`);
  }
  if (rule.action === "drop" && r.afterBytes !== undefined) {
    rule.afterBytes = wholeNumber(r.afterBytes, name("afterBytes"), 1, 1 << 30);
  }
}

function parseReply(
  rule: FaultRule,
  r: Record<string, unknown>,
  name: (field: string) => string,
): void {
  if (typeof r.code !== "number") throw new Error(`${name("code")} is required for a reply`);
  try {
    rule.code = replyCode(r.code);
  } catch (error) {
    throw new Error(`${name("code")}: ${(error as Error).message}`);
  }
  if (r.text !== undefined) {
    if (typeof r.text !== "string" || /[\r\n]/.test(r.text)) {
      throw new Error(`${name("text")} must be one line of text`);
    }
    rule.text = r.text;
  }
}

/** The fields of which connections or transactions the rule takes, and how often. */
function parseSelection(
  rule: FaultRule,
  r: Record<string, unknown>,
  i: number,
  name: (field: string) => string,
): void {
  if (r.every !== undefined && r.probability !== undefined) {
    throw new Error(`rules[${i}] takes every or probability, not both`);
  }
  const every = wholeNumber(r.every, name("every"), 1, 1_000_000);
  const offset = wholeNumber(r.offset, name("offset"), 0, 1_000_000);
  const seed = wholeNumber(r.seed, name("seed"), 0, 2 ** 32 - 1);
  const limit = wholeNumber(r.limit, name("limit"), 1, 1_000_000_000);
  if (every !== undefined) rule.every = every;
  if (offset !== undefined) rule.offset = offset;
  if (r.probability !== undefined) {
    if (typeof r.probability !== "number" || !(r.probability >= 0 && r.probability <= 1)) {
      throw new Error(`${name("probability")} must be a number from 0 to 1`);
    }
    rule.probability = r.probability;
  }
  if (seed !== undefined) rule.seed = seed;
  if (limit !== undefined) rule.limit = limit;
}

/**
 * A number in [0, 1) fixed by the seed and n (an integer finaliser in the style of MurmurHash3),
 * so a probability rule strikes the same transaction numbers on every run with that seed.
 */
function unitHash(seed: number, n: number): number {
  let x = (seed >>> 0) ^ Math.imul(n >>> 0, 0x9e3779b1);
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  x ^= x >>> 16;
  return (x >>> 0) / 2 ** 32;
}

export function selects(rule: FaultRule, n: number): boolean {
  if (rule.probability !== undefined) return unitHash(rule.seed ?? 1, n) < rule.probability;
  const offset = rule.offset ?? 0;
  return n > offset && (n - offset) % (rule.every ?? 1) === 0;
}

export function emptyStats(rules: number): FaultStats {
  return {
    connections: 0,
    transactions: 0,
    hits: new Array<number>(rules).fill(0),
    stalls: [],
    drops: 0,
    unanswered: 0,
  };
}
