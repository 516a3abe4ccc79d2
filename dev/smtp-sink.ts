/**
 * A recording SMTP server (on the `smtp-server` package) that plays the relay's smart host in tests
 * and in local development.
 *
 * It speaks what real submission servers speak: STARTTLS (port-587 style) or implicit TLS (465
 * style), AUTH PLAIN and LOGIN (refused before STARTTLS, as real servers do), SIZE, PIPELINING,
 * 8BITMIME and SMTPUTF8. It records every accepted message with its exact envelope and bytes, and
 * can be told to misbehave the way smart hosts do: reject one recipient (550, 451, ...), fail the
 * next DATA, or go away entirely (`down()`: listening stops and open connections drop).
 *
 * For fault-injection runs it also takes a fault plan (`setFaults`): rules that answer 4xx/5xx,
 * drop the connection without a reply (mid-DATA included) or stall past the client's timeout, at
 * the greeting, MAIL, RCPT or DATA, for a share of connections or transactions. The share is
 * counter-based (every k-th) or a seeded hash of the transaction number, never Math.random, so a
 * run can be repeated; `latencyMs` and `tarpitMs` play slow but healthy servers. `faults()` reports
 * what struck.
 *
 * `startSinkHttp` puts a small HTTP server next to it: a JSON control API (faults included) for
 * tests that cannot reach the sink object (tests inside workerd only have fetch), and a human
 * "development inbox" page that lists and shows what arrived.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import PostalMime, { type Address, type Attachment, type Email } from "postal-mime";
import {
  SMTPServer,
  type SMTPServerAuthentication,
  type SMTPServerDataStream,
  type SMTPServerOptions,
  type SMTPServerSession,
} from "smtp-server";

export type SinkTls = "none" | "starttls" | "implicit";

export interface SmtpSinkOptions {
  /** 0 (the default) picks a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default "none". "starttls" and "implicit" need key and cert. */
  tls?: SinkTls;
  key?: string;
  cert?: string;
  /** When set, AUTH PLAIN or LOGIN with these credentials is required before MAIL. */
  auth?: { user: string; pass: string };
  /** Refuse MAIL until the connection is encrypted (530). */
  requireTls?: boolean;
  /** The host name in the greeting and EHLO reply. */
  name?: string;
  /** The SIZE limit advertised and enforced, in bytes (default 50 MiB). */
  size?: number;
  /** Receives one line per connection, authentication, message and refusal. */
  log?: (line: string) => void;
}

export interface ReceivedMessage {
  /** 1, 2, 3, ... per sink. */
  id: number;
  /** The MAIL FROM address, "" for the null sender. */
  mailFrom: string;
  /** The accepted RCPT TO addresses, in order. */
  rcptTo: string[];
  /** The message as received (after dot-unstuffing), CRLF line ends, decoded as UTF-8. */
  raw: string;
  /** Its length in bytes. */
  size: number;
  receivedAt: string;
  /** True when the message arrived over TLS. */
  secure: boolean;
  authUser?: string;
  /** "PLAIN" or "LOGIN". */
  authMethod?: string;
  /** The connection's id: equal ids mean one reused connection. */
  sessionId: string;
  /** The name the client gave in EHLO/HELO (tells apart relay instances that set their own). */
  clientName: string;
  /**
   * Set when the connection was gone by the time the 250 was due (the client died or gave up while
   * a slow reply was pending): the message was taken, but its sender cannot know it.
   */
  unanswered?: true;
}

export interface MessageFilter {
  /** Keep messages with an envelope recipient containing this text. */
  to?: string;
}

/** The messages that match the filter (all of them without one). */
export function filterMessages(
  messages: ReceivedMessage[],
  filter: MessageFilter = {},
): ReceivedMessage[] {
  const { to } = filter;
  return to === undefined
    ? [...messages]
    : messages.filter((m) => m.rcptTo.some((r) => r.includes(to)));
}

export interface SmtpSink {
  port: number;
  host: string;
  tls: SinkTls;
  /**
   * How to reach it, in the relay's SMTP_URL schemes: smtps://user:pass@host:port (implicit TLS),
   * smtp://user:pass@host:port (STARTTLS), smtp+insecure://host:port (no TLS).
   */
  url: string;
  /** Accepted messages, oldest first. */
  messages: ReceivedMessage[];
  /**
   * Resolves once at least `count` messages arrived (with all of them); rejects on timeout. With
   * `filter.to`, only messages with a recipient containing that text count and are returned, so
   * tests sharing a sink can each wait for their own (unique) recipients.
   */
  waitFor(count: number, timeoutMs?: number, filter?: MessageFilter): Promise<ReceivedMessage[]>;
  /** Forget the received messages. */
  clear(): void;
  /** Forget messages, recipient rejections, pending DATA failures and faults; listen if down. */
  reset(): Promise<void>;
  /** Answer RCPT TO for this address (any case) with this code from now on. */
  rejectRecipient(address: string, code: number, text?: string): void;
  /** Answer the next `times` (default 1) DATA with this code. */
  failData(code: number, text?: string, times?: number): void;
  /** Replace the fault plan (validated; see FaultPlan) and zero its statistics. */
  setFaults(plan: FaultPlan): void;
  /** No faults and no latency from now on; statistics are kept until the next plan or reset. */
  clearFaults(): void;
  /** The current plan and what it did so far. */
  faults(): { plan: FaultPlan; stats: FaultStats };
  /** Stop listening and drop open connections: clients get connection refused. */
  down(): Promise<void>;
  /** Listen again on the same port. */
  up(): Promise<void>;
  close(): Promise<void>;
  /** The exact bytes of a received message, for byte-level checks and the raw download. */
  bytes(id: number): Buffer | undefined;
}

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
  const plan: FaultPlan = {
    rules: rules.map((raw, i): FaultRule => {
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
      if (rule.action === "reply") {
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
      if (rule.action === "stall") {
        rule.ms = wholeNumber(r.ms, name("ms"), 1, 600_000);
        if (rule.ms === undefined) throw new Error(`${name("ms")} is required for a stall`);
      }
      if (rule.action === "drop" && r.afterBytes !== undefined) {
        rule.afterBytes = wholeNumber(r.afterBytes, name("afterBytes"), 1, 1 << 30);
      }
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
      return rule;
    }),
  };
  const latency = wholeNumber(latencyMs, "latencyMs", 0, 600_000);
  if (latency) plan.latencyMs = latency;
  const tarpit = wholeNumber(tarpitMs, "tarpitMs", 0, 600_000);
  if (tarpit) plan.tarpitMs = tarpit;
  return plan;
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

function selects(rule: FaultRule, n: number): boolean {
  if (rule.probability !== undefined) return unitHash(rule.seed ?? 1, n) < rule.probability;
  const offset = rule.offset ?? 0;
  return n > offset && (n - offset) % (rule.every ?? 1) === 0;
}

function emptyStats(rules: number): FaultStats {
  return {
    connections: 0,
    transactions: 0,
    hits: new Array<number>(rules).fill(0),
    stalls: [],
    drops: 0,
    unanswered: 0,
  };
}

const DEFAULT_SIZE = 50 * 1024 * 1024;
const DEFAULT_WAIT_MS = 10_000;

// Enhanced status codes (RFC 3463) that real servers put before the text, so a client that reads
// them (the relay does) sees realistic replies when a test gives only a code.
const ENHANCED: Record<number, string> = {
  421: "4.4.2",
  450: "4.2.1",
  451: "4.3.0",
  452: "4.2.2",
  550: "5.1.1",
  551: "5.1.6",
  552: "5.2.2",
  553: "5.1.3",
  554: "5.6.0",
};

function replyCode(code: number): number {
  if (!Number.isInteger(code) || code < 400 || code > 599) {
    throw new Error(`SMTP failure code must be 400-599, got ${code}`);
  }
  return code;
}

function defaultText(code: number, what: string): string {
  const enhanced = ENHANCED[code] ?? `${Math.floor(code / 100)}.0.0`;
  return `${enhanced} ${what} (set by the test sink)`;
}

function smtpError(code: number, text: string): Error {
  return Object.assign(new Error(text), { responseCode: code });
}

function urlHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

function sinkUrl(tls: SinkTls, host: string, port: number, auth?: { user: string; pass: string }) {
  const scheme = { none: "smtp+insecure", starttls: "smtp", implicit: "smtps" }[tls];
  const credentials = auth
    ? `${encodeURIComponent(auth.user)}:${encodeURIComponent(auth.pass)}@`
    : "";
  return `${scheme}://${credentials}${urlHost(host)}:${port}`;
}

interface Waiter {
  count: number;
  filter: MessageFilter | undefined;
  resolve: (messages: ReceivedMessage[]) => void;
}

export async function startSmtpSink(opts: SmtpSinkOptions = {}): Promise<SmtpSink> {
  const host = opts.host ?? "127.0.0.1";
  const tls = opts.tls ?? "none";
  const log = opts.log ?? (() => {});
  if (tls !== "none" && !(opts.key && opts.cert)) {
    throw new Error(`an SMTP sink with tls "${tls}" needs key and cert`);
  }

  const messages: ReceivedMessage[] = [];
  const raws = new Map<number, Buffer>();
  let nextId = 1;
  const rejections = new Map<string, { code: number; text: string }>();
  const dataFailures: { code: number; text: string }[] = [];
  const waiters = new Set<Waiter>();
  let plan: FaultPlan = { rules: [] };
  let stats = emptyStats(0);
  // The rule (index into plan.rules) that owns each session's current transaction, and how many
  // RCPTs that transaction has seen; cleared at MAIL and when the connection closes.
  // A plan replaced mid-transaction no longer applies to it.
  const transactions = new Map<
    string,
    { plan: FaultPlan; rule: number | undefined; rcpts: number }
  >();
  const ruleOf = (sessionId: string) => {
    const current = transactions.get(sessionId);
    return current?.plan === plan ? current.rule : undefined;
  };

  const notify = () => {
    for (const waiter of waiters) {
      const matching = filterMessages(messages, waiter.filter);
      if (matching.length >= waiter.count) {
        waiters.delete(waiter);
        waiter.resolve(matching);
      }
    }
  };

  const authUserOf = (session: SMTPServerSession) =>
    session.user as { name: string; method: string } | undefined;

  /** The socket of a session, to close it the way a crashing server would (no reply, no QUIT). */
  const socketOf = (sessionId: string) => {
    for (const connection of server?.connections ?? []) {
      if (connection.id === sessionId) return connection._socket;
    }
    return undefined;
  };

  /**
   * The first rule for this kind of count that selects number `n` and has strikes left. A rule
   * for a later stage only strikes if the transaction gets there (all RCPTs refused: no DATA).
   */
  const pick = (connectRules: boolean, n: number): number | undefined => {
    const index = plan.rules.findIndex(
      (rule, i) =>
        (rule.at === "connect") === connectRules &&
        (rule.limit === undefined || (stats.hits[i] ?? 0) < rule.limit) &&
        selects(rule, n),
    );
    return index < 0 ? undefined : index;
  };

  /**
   * Carries out rule `index`. `fail` gets the error to answer with; when the connection is already
   * closed (drop, stall) smtp-server writes nothing, so the error only ends the command.
   */
  const strike = (
    index: number,
    session: SMTPServerSession,
    fail: (error: Error) => void,
  ): void => {
    const rule = plan.rules[index];
    if (!rule) {
      // Unreachable (indexes come from the current plan), but never leave a command unanswered.
      fail(smtpError(451, "4.3.0 no such fault rule (set by the test sink)"));
      return;
    }
    stats.hits[index] = (stats.hits[index] ?? 0) + 1;
    const what = `${rule.at} ${session.id}`;
    if (rule.action === "reply") {
      const code = rule.code ?? 451;
      const text = rule.text ?? defaultText(code, `${rule.at} refused`);
      log(`fault ${what} -> ${code} ${text}`);
      fail(smtpError(code, text));
      return;
    }
    const socket = socketOf(session.id);
    if (rule.action === "drop") {
      log(`fault ${what} -> connection dropped`);
      stats.drops++;
      socket?.destroy();
      fail(smtpError(421, "4.4.2 connection dropped (set by the test sink)"));
      return;
    }
    const ms = rule.ms ?? 0;
    const started = Date.now();
    const record: StallRecord = { at: rule.at, clientGaveUpAfterMs: null };
    stats.stalls.push(record);
    log(`fault ${what} -> stall ${ms} ms`);
    const owner = server;
    const onClose = () => {
      // down() forgets the server before it drops the connections.
      if (server !== owner) record.cutByDown = true;
      else record.clientGaveUpAfterMs = Date.now() - started;
    };
    socket?.once("close", onClose);
    setTimeout(() => {
      socket?.off("close", onClose);
      // A hung server that finally dies: whoever is still waiting loses the connection.
      socket?.destroy();
      fail(smtpError(421, "4.4.2 stalled (set by the test sink)"));
    }, ms).unref();
  };

  /** The reply, later by the plan's tarpit (the plan when the command came decides). */
  const tarpitted = (reply: (error?: Error | null) => void) => {
    const ms = plan.tarpitMs ?? 0;
    if (ms === 0) return reply;
    return (error?: Error | null) => {
      setTimeout(() => reply(error), ms).unref();
    };
  };

  const serverOptions = (): SMTPServerOptions => ({
    secure: tls === "implicit",
    key: opts.key,
    cert: opts.cert,
    name: opts.name ?? "localhost",
    size: opts.size ?? DEFAULT_SIZE,
    // smtp-server's own logging is per command and very chatty; `log` gets a summary instead.
    logger: false,
    banner: "smtp-sink ready",
    authMethods: ["PLAIN", "LOGIN"],
    // With TLS available, AUTH is refused until STARTTLS (smtp-server answers 538). Without TLS
    // there is nothing to upgrade to, so a sink with auth and no TLS takes it in clear.
    allowInsecureAuth: tls === "none",
    disabledCommands: [...(tls === "none" ? ["STARTTLS"] : []), ...(opts.auth ? [] : ["AUTH"])],
    onConnect(session, callback) {
      log(`connect ${session.id} from ${session.remoteAddress}:${session.remotePort}`);
      const index = pick(true, ++stats.connections);
      // The greeting waits for this callback, so a connect fault decides what the client hears first.
      if (index !== undefined) return strike(index, session, callback);
      callback();
    },
    onAuth(auth: SMTPServerAuthentication, session, callback) {
      const ok =
        opts.auth !== undefined &&
        (auth.method === "PLAIN" || auth.method === "LOGIN") &&
        auth.username === opts.auth.user &&
        auth.password === opts.auth.pass;
      log(`auth ${session.id} ${auth.method} ${auth.username ?? ""} ${ok ? "ok" : "refused"}`);
      if (!ok) return callback(smtpError(535, "5.7.8 Authentication credentials invalid"));
      callback(null, { user: { name: auth.username, method: auth.method } });
    },
    onMailFrom(_address, session, callback) {
      if (opts.requireTls && !session.secure) {
        log(`mail ${session.id} refused: not encrypted`);
        return callback(smtpError(530, "5.7.0 Must issue a STARTTLS command first"));
      }
      const reply = tarpitted(callback);
      const index = pick(false, ++stats.transactions);
      transactions.set(session.id, { plan, rule: index, rcpts: 0 });
      if (index !== undefined && plan.rules[index]?.at === "mail") {
        return strike(index, session, reply);
      }
      reply();
    },
    onRcptTo(address, session, callback) {
      const reply = tarpitted(callback);
      const index = ruleOf(session.id);
      const current = transactions.get(session.id);
      if (current && index !== undefined && plan.rules[index]?.at === "rcpt") {
        if (current.rcpts++ === 0) return strike(index, session, reply);
      }
      const rejection = rejections.get(address.address.toLowerCase());
      if (rejection) {
        log(`rcpt ${session.id} ${address.address} -> ${rejection.code} ${rejection.text}`);
        return reply(smtpError(rejection.code, rejection.text));
      }
      reply();
    },
    onClose(session) {
      transactions.delete(session.id);
    },
    onData(stream: SMTPServerDataStream, session, callback) {
      const owner = ruleOf(session.id);
      const fault = owner === undefined ? undefined : plan.rules[owner];
      const faultIndex = fault?.at === "data" ? owner : undefined;
      // smtp-server answers the first call only; a dropped connection may also error the stream.
      let answered = false;
      const answer: typeof callback = (error, reply) => {
        if (answered) return;
        answered = true;
        callback(error, reply);
      };
      const chunks: Buffer[] = [];
      let received = 0;
      stream.on("data", (chunk: Buffer) => {
        chunks.push(chunk);
        received += chunk.length;
        // Part of the message has arrived: the connection goes away with no reply at all.
        if (
          faultIndex !== undefined &&
          fault?.action === "drop" &&
          !answered &&
          received >= (fault.afterBytes ?? 1)
        ) {
          strike(faultIndex, session, answer);
        }
      });
      stream.on("error", (error) => answer(error));
      stream.on("end", () => {
        if (answered) return;
        const bytes = Buffer.concat(chunks);
        if (stream.sizeExceeded) {
          log(`data ${session.id} refused: ${bytes.length} bytes over the SIZE limit`);
          return answer(smtpError(552, "5.3.4 Message size exceeds fixed maximum message size"));
        }
        // A drop rule whose byte count the message never reached drops at the end instead.
        if (faultIndex !== undefined) return strike(faultIndex, session, answer);
        const failure = dataFailures.shift();
        if (failure) {
          log(`data ${session.id} -> ${failure.code} ${failure.text}`);
          return answer(smtpError(failure.code, failure.text));
        }
        const user = authUserOf(session);
        const mailFrom = session.envelope.mailFrom;
        const message: ReceivedMessage = {
          id: nextId++,
          mailFrom: mailFrom ? mailFrom.address : "",
          rcptTo: session.envelope.rcptTo.map((r) => r.address),
          raw: bytes.toString("utf8"),
          size: bytes.length,
          receivedAt: new Date().toISOString(),
          secure: session.secure,
          sessionId: session.id,
          clientName: session.hostNameAppearsAs || "",
          ...(user ? { authUser: user.name, authMethod: user.method } : {}),
        };
        messages.push(message);
        raws.set(message.id, bytes);
        log(
          `message #${message.id} ${session.id} from <${message.mailFrom}> to ${message.rcptTo.map((r) => `<${r}>`).join(", ")}, ${bytes.length} bytes${session.secure ? ", TLS" : ""}`,
        );
        notify();
        // Recorded first, answered after: a real server queues the message before it says 250,
        // so a client that dies in between leaves a message it does not know was taken.
        const reply = () => {
          const socket = socketOf(session.id);
          if (!socket || socket.destroyed) {
            message.unanswered = true;
            stats.unanswered++;
            log(`message #${message.id} ${session.id}: connection gone before the 250`);
          }
          answer(null, `2.0.0 Ok: queued as ${message.id}`);
        };
        const latency = (plan.latencyMs ?? 0) + (plan.tarpitMs ?? 0);
        if (latency > 0) setTimeout(reply, latency).unref();
        else reply();
      });
    },
  });

  let server: SMTPServer | undefined;
  let port = opts.port ?? 0;

  const listen = async () => {
    const created = new SMTPServer(serverOptions());
    // A client that breaks off a TLS handshake surfaces here; without a listener it would crash
    // the test process.
    created.on("error", (error) => log(`error ${error.message}`));
    await new Promise<void>((resolve, reject) => {
      created.server.once("error", reject);
      created.listen(port, host, () => {
        created.server.off("error", reject);
        resolve();
      });
    });
    port = (created.server.address() as AddressInfo).port;
    server = created;
  };

  const stop = async () => {
    const current = server;
    if (!current) return;
    server = undefined;
    await new Promise<void>((resolve) => {
      current.close(() => resolve());
      // Drop sessions at once, as a crashed or restarted server does; smtp-server's close() would
      // otherwise wait 30 s for them.
      for (const connection of [...current.connections]) connection._socket.destroy();
    });
  };

  await listen();

  const sink: SmtpSink = {
    get port() {
      return port;
    },
    host,
    tls,
    get url() {
      return sinkUrl(tls, host, port, opts.auth);
    },
    messages,
    waitFor(count, timeoutMs = DEFAULT_WAIT_MS, filter) {
      const now = filterMessages(messages, filter);
      if (now.length >= count) return Promise.resolve(now);
      return new Promise((resolve, reject) => {
        const waiter: Waiter = {
          count,
          filter,
          resolve: (got) => {
            clearTimeout(timer);
            resolve(got);
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(
            new Error(
              `waited ${timeoutMs} ms for ${count} message(s)${filter?.to === undefined ? "" : ` to *${filter.to}*`} on ${sink.url}, got ${filterMessages(messages, filter).length}`,
            ),
          );
        }, timeoutMs);
        waiters.add(waiter);
      });
    },
    clear() {
      messages.length = 0;
      raws.clear();
    },
    async reset() {
      sink.clear();
      rejections.clear();
      dataFailures.length = 0;
      sink.clearFaults();
      stats = emptyStats(0);
      if (!server) await listen();
    },
    rejectRecipient(address, code, text) {
      rejections.set(address.toLowerCase(), {
        code: replyCode(code),
        text: text ?? defaultText(code, `<${address}> rejected`),
      });
    },
    failData(code, text, times = 1) {
      for (let i = 0; i < times; i++) {
        dataFailures.push({
          code: replyCode(code),
          text: text ?? defaultText(code, "DATA failed"),
        });
      }
    },
    setFaults(next) {
      plan = parseFaultPlan(next);
      stats = emptyStats(plan.rules.length);
    },
    clearFaults() {
      plan = { rules: [] };
    },
    faults: () => ({ plan, stats }),
    down: stop,
    async up() {
      if (!server) await listen();
    },
    close: stop,
    bytes: (id) => raws.get(id),
  };
  return sink;
}

// ---------------------------------------------------------------------------------------------
// HTTP: control API and development inbox

export interface SinkHttp {
  url: string;
  port: number;
  close(): Promise<void>;
}

class HttpError extends Error {
  status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

function escapeHtml(value: string): string {
  return value
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;")
    .replaceAll("'", "&#39;");
}

function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("error", reject);
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      if (!text) return resolve({});
      try {
        const value = JSON.parse(text) as unknown;
        if (typeof value !== "object" || value === null || Array.isArray(value)) {
          return reject(new HttpError(400, "expected a JSON object"));
        }
        resolve(value as Record<string, unknown>);
      } catch {
        reject(new HttpError(400, "body is not JSON"));
      }
    });
  });
}

function field<T extends "string" | "number">(
  body: Record<string, unknown>,
  name: string,
  type: T,
  required: boolean,
): (T extends "string" ? string : number) | undefined {
  const value = body[name];
  if (value === undefined || value === null) {
    if (required) throw new HttpError(400, `missing "${name}"`);
    return undefined;
  }
  if (typeof value !== type) throw new HttpError(400, `"${name}" must be a ${type}`);
  return value as T extends "string" ? string : number;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
  });
  res.end(text);
}

// The page shows mail that anyone can send to the sink: no scripts at all, remote content blocked,
// and the HTML part only inside a sandboxed iframe (which inherits this policy).
const PAGE_POLICY =
  "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'";

function sendHtml(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, {
    "content-type": "text/html; charset=utf-8",
    "content-length": Buffer.byteLength(html),
    "content-security-policy": PAGE_POLICY,
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
  });
  res.end(html);
}

const STYLE = `
  :root { color-scheme: light; --ink: #1d2330; --muted: #667085; --line: #e4e7ec; --accent: #2f5bea; --bg: #f7f8fa; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); background: var(--bg); }
  header { background: #fff; border-bottom: 1px solid var(--line); padding: 14px 24px; display: flex; gap: 16px; align-items: center; flex-wrap: wrap; }
  header h1 { font-size: 18px; margin: 0; }
  header .meta { color: var(--muted); font-size: 13px; }
  header form { margin-left: auto; }
  main { max-width: 1100px; margin: 20px auto; padding: 0 24px; }
  a { color: var(--accent); text-decoration: none; }
  a:hover { text-decoration: underline; }
  code, pre { font: 13px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
  table { width: 100%; border-collapse: collapse; background: #fff; border: 1px solid var(--line); border-radius: 8px; overflow: hidden; }
  th, td { text-align: left; padding: 9px 12px; border-bottom: 1px solid var(--line); vertical-align: top; }
  th { font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); background: #fbfbfc; }
  tr:last-child td { border-bottom: 0; }
  td.time { white-space: nowrap; color: var(--muted); font-variant-numeric: tabular-nums; }
  td.subject a { display: block; }
  .empty { background: #fff; border: 1px dashed var(--line); border-radius: 8px; padding: 40px; text-align: center; color: var(--muted); }
  .badge { display: inline-block; font-size: 11px; padding: 1px 7px; border-radius: 10px; background: #e8f0fe; color: #1a4fd6; margin-left: 6px; }
  .badge.plain { background: #fdecea; color: #b42318; }
  section { margin: 18px 0; }
  section h2 { font-size: 14px; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); margin: 0 0 8px; }
  dl { display: grid; grid-template-columns: max-content 1fr; gap: 6px 18px; background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; margin: 0; }
  dt { color: var(--muted); }
  dd { margin: 0; word-break: break-word; }
  pre { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; overflow: auto; white-space: pre-wrap; word-break: break-word; margin: 0; max-height: 480px; }
  iframe { width: 100%; height: 420px; border: 1px solid var(--line); border-radius: 8px; background: #fff; }
  button { font: inherit; padding: 5px 12px; border: 1px solid var(--line); border-radius: 6px; background: #fff; cursor: pointer; }
  button:hover { border-color: var(--accent); color: var(--accent); }
  p.back { margin: 0 0 12px; }
  td.headers-key { white-space: nowrap; color: var(--muted); width: 1%; }
`;

function page(title: string, header: string, body: string, refresh = false): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
${refresh ? '<meta http-equiv="refresh" content="2">' : ""}
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<header>${header}</header>
<main>${body}</main>
</body>
</html>`;
}

function formatAddresses(list: Address[] | undefined): string {
  return (list ?? [])
    .flatMap((a) => (a.group ? a.group : [a]))
    .map((a) => (a.name ? `${a.name} <${a.address}>` : (a.address ?? "")))
    .join(", ");
}

function formatTime(iso: string): string {
  // The sink and the person reading it are on the same machine: local time, to the second.
  const d = new Date(iso);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function attachmentSize(content: Attachment["content"]): number {
  return typeof content === "string" ? Buffer.byteLength(content) : content.byteLength;
}

/** Hides the password of an SMTP URL shown on the page. */
function displayUrl(url: string): string {
  return url.replace(/^([a-z+]+:\/\/[^:@/]+:)[^@/]*@/i, "$1***@");
}

export async function startSinkHttp(
  sink: SmtpSink,
  opts: { port?: number; host?: string; title?: string } = {},
): Promise<SinkHttp> {
  const host = opts.host ?? "127.0.0.1";
  const title = opts.title ?? "Development inbox";
  // Parsing is the slow part of the auto-refreshing list, so each message is parsed once.
  const parsed = new Map<number, Promise<Email>>();
  const parse = (message: ReceivedMessage) => {
    let result = parsed.get(message.id);
    if (!result) {
      result = PostalMime.parse(sink.bytes(message.id) ?? message.raw).catch(
        (): Email => ({ headers: [], headerLines: [], attachments: [] }),
      );
      parsed.set(message.id, result);
    }
    return result;
  };
  const find = (id: string) => sink.messages.find((m) => String(m.id) === id);

  const headerBar = () =>
    `<h1><a href="/">${escapeHtml(title)}</a></h1>
     <span class="meta">SMTP <code>${escapeHtml(displayUrl(sink.url))}</code> · ${sink.messages.length} message${sink.messages.length === 1 ? "" : "s"}</span>
     <form method="post" action="/clear"><button type="submit">Clear all</button></form>`;

  const listPage = async () => {
    const rows = await Promise.all(
      [...sink.messages].reverse().map(async (m) => {
        const email = await parse(m);
        const subject = email.subject?.trim() || "(no subject)";
        const from = email.from ? formatAddresses([email.from]) : m.mailFrom || "<>";
        return `<tr>
          <td class="time">${escapeHtml(formatTime(m.receivedAt))}</td>
          <td>${escapeHtml(from)}</td>
          <td>${escapeHtml(m.rcptTo.join(", "))}</td>
          <td class="subject"><a href="/messages/${m.id}">${escapeHtml(subject)}</a></td>
          <td>${formatBytes(m.size)}${m.secure ? '<span class="badge">TLS</span>' : '<span class="badge plain">plain</span>'}</td>
        </tr>`;
      }),
    );
    const body = rows.length
      ? `<table><thead><tr><th>Received</th><th>From</th><th>To (envelope)</th><th>Subject</th><th>Size</th></tr></thead><tbody>${rows.join("")}</tbody></table>`
      : `<div class="empty">No messages yet. Mail sent to <code>${escapeHtml(displayUrl(sink.url))}</code> shows up here; this page refreshes every 2 seconds.</div>`;
    return page(`${title} (${sink.messages.length})`, headerBar(), body, true);
  };

  const messagePage = async (m: ReceivedMessage) => {
    const email = await parse(m);
    const subject = email.subject?.trim() || "(no subject)";
    const summary: [string, string][] = [
      ["Subject", subject],
      ["From", email.from ? formatAddresses([email.from]) : ""],
      ["To", formatAddresses(email.to)],
      ["Cc", formatAddresses(email.cc)],
      ["Envelope from", m.mailFrom || "<>"],
      ["Envelope to", m.rcptTo.join(", ")],
      ["Received", `${formatTime(m.receivedAt)} (${m.receivedAt})`],
      ["Connection", `${m.secure ? "TLS" : "plain text"}, session ${m.sessionId}`],
      ["Authenticated", m.authUser ? `${m.authUser} (${m.authMethod})` : "no"],
      ["Size", formatBytes(m.size)],
    ];
    const sections = [
      `<p class="back"><a href="/">&larr; All messages</a></p>`,
      `<section><dl>${summary
        .filter(([, v]) => v !== "")
        .map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd>`)
        .join("")}</dl></section>`,
    ];
    if (email.html !== undefined) {
      // sandbox with no allowances: no scripts, no forms, no navigation of this page.
      sections.push(
        `<section><h2>HTML part</h2><iframe sandbox srcdoc="${escapeHtml(email.html)}" title="HTML part"></iframe></section>`,
      );
    }
    if (email.text !== undefined) {
      sections.push(`<section><h2>Text part</h2><pre>${escapeHtml(email.text)}</pre></section>`);
    }
    if (email.attachments.length) {
      sections.push(
        `<section><h2>Attachments</h2><table><thead><tr><th>Name</th><th>Type</th><th>Disposition</th><th>Size</th></tr></thead><tbody>${email.attachments
          .map(
            (a) =>
              `<tr><td>${escapeHtml(a.filename ?? "(unnamed)")}</td><td>${escapeHtml(a.mimeType)}</td><td>${escapeHtml(a.disposition ?? "")}</td><td>${formatBytes(attachmentSize(a.content))}</td></tr>`,
          )
          .join("")}</tbody></table></section>`,
      );
    }
    sections.push(
      `<section><h2>Headers</h2><table><tbody>${email.headers
        .map(
          (h) =>
            `<tr><td class="headers-key">${escapeHtml(h.originalKey)}</td><td>${escapeHtml(h.value)}</td></tr>`,
        )
        .join("")}</tbody></table></section>`,
      `<section><h2>Source <a href="/messages/${m.id}/raw">(raw)</a></h2><pre>${escapeHtml(m.raw)}</pre></section>`,
    );
    return page(`${subject} · ${title}`, headerBar(), sections.join("\n"));
  };

  const waitFor = async (
    res: ServerResponse,
    count: number,
    timeoutMs: number,
    filter: MessageFilter,
  ) => {
    try {
      sendJson(res, 200, await sink.waitFor(count, timeoutMs, filter));
    } catch (error) {
      sendJson(res, 408, {
        error: (error as Error).message,
        messages: filterMessages(sink.messages, filter),
      });
    }
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://sink");
    const route = `${req.method} ${url.pathname}`;
    const detail = /^\/messages\/(\d+)(\/raw)?$/.exec(url.pathname);
    if (req.method === "GET" && detail) {
      const m = find(detail[1] as string);
      if (!m)
        return sendHtml(
          res,
          404,
          page("Not found", headerBar(), '<div class="empty">No such message.</div>'),
        );
      if (detail[2]) {
        const bytes = sink.bytes(m.id) ?? Buffer.from(m.raw);
        res.writeHead(200, {
          "content-type": "text/plain; charset=utf-8",
          "content-length": bytes.length,
          "x-content-type-options": "nosniff",
        });
        return res.end(bytes);
      }
      return sendHtml(res, 200, await messagePage(m));
    }
    switch (route) {
      case "GET /":
        return sendHtml(res, 200, await listPage());
      case "POST /clear":
        req.resume();
        sink.clear();
        parsed.clear();
        res.writeHead(303, { location: "/" });
        return res.end();
      case "GET /api/messages": {
        const to = url.searchParams.get("to");
        const filter: MessageFilter = to === null ? {} : { to };
        const wait = url.searchParams.get("wait");
        if (wait === null) return sendJson(res, 200, filterMessages(sink.messages, filter));
        const count = Number(wait);
        const timeout = Number(url.searchParams.get("timeout") ?? DEFAULT_WAIT_MS);
        if (!Number.isInteger(count) || count < 0 || !Number.isFinite(timeout) || timeout < 0) {
          throw new HttpError(400, "wait and timeout must be non-negative numbers");
        }
        return waitFor(res, count, timeout, filter);
      }
      case "DELETE /api/messages":
        sink.clear();
        parsed.clear();
        return sendJson(res, 200, { ok: true });
      case "POST /api/reset":
        req.resume();
        await sink.reset();
        parsed.clear();
        return sendJson(res, 200, { ok: true });
      case "POST /api/down":
        req.resume();
        await sink.down();
        return sendJson(res, 200, { ok: true });
      case "POST /api/up":
        req.resume();
        await sink.up();
        return sendJson(res, 200, { ok: true });
      case "POST /api/reject-recipient": {
        const body = await readJson(req);
        const address = field(body, "address", "string", true) as string;
        const code = field(body, "code", "number", true) as number;
        try {
          sink.rejectRecipient(address, code, field(body, "text", "string", false));
        } catch (error) {
          throw new HttpError(400, (error as Error).message);
        }
        return sendJson(res, 200, { ok: true });
      }
      case "POST /api/fail-data": {
        const body = await readJson(req);
        const code = field(body, "code", "number", true) as number;
        try {
          sink.failData(
            code,
            field(body, "text", "string", false),
            field(body, "times", "number", false),
          );
        } catch (error) {
          throw new HttpError(400, (error as Error).message);
        }
        return sendJson(res, 200, { ok: true });
      }
      case "GET /api/faults":
        return sendJson(res, 200, sink.faults());
      case "POST /api/faults": {
        const body = await readJson(req);
        try {
          sink.setFaults(body as unknown as FaultPlan);
        } catch (error) {
          throw new HttpError(400, (error as Error).message);
        }
        return sendJson(res, 200, { ok: true });
      }
      case "DELETE /api/faults":
        req.resume();
        sink.clearFaults();
        return sendJson(res, 200, { ok: true });
      default:
        if (url.pathname.startsWith("/api/")) throw new HttpError(404, `no route ${route}`);
        return sendHtml(
          res,
          404,
          page("Not found", headerBar(), '<div class="empty">Not found.</div>'),
        );
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      const status = error instanceof HttpError ? error.status : 500;
      if (!res.headersSent) sendJson(res, status, { error: (error as Error).message });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${urlHost(host)}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
