/**
 * What the test processes know about the services that test/global-setup.ts started, and small
 * clients for their HTTP control APIs.
 *
 * Everything here uses fetch and nothing from node:, because it also runs inside workerd (the
 * Workers test project), where the SMTP sinks and the Upstash gateway are reachable only over HTTP.
 */
import { inject } from "vitest";
import type {
  FaultPlan,
  FaultStats,
  MessageFilter,
  ReceivedMessage,
} from "../../dev/smtp-sink/index.ts";
import type { RequestFault } from "../../dev/upstash-gateway.ts";

export type { FaultPlan, FaultStats, MessageFilter, ReceivedMessage, RequestFault };

/** `serial` is `plain` without PIPELINING, for the clients' path that waits on each reply. */
export type SinkName = "plain" | "starttls" | "implicit" | "serial";

export interface SinkInfo {
  name: SinkName;
  host: string;
  port: number;
  tls: "none" | "starttls" | "implicit";
  /** In the relay's SMTP_URL form: smtp+insecure://, smtp://user:pass@ (STARTTLS), smtps://. */
  url: string;
  /** The credentials the sink requires, if any. */
  user?: string;
  pass?: string;
  /** Base URL of the sink's control API and inbox page. */
  api: string;
}

export interface GatewayInfo {
  /** UPSTASH_REDIS_REST_URL / UPSTASH_REDIS_REST_TOKEN for the gateway in front of real Redis. */
  url: string;
  token: string;
  /** Base URL of the gateway's control API (reachable while the gateway is down). */
  api: string;
}

export interface Services {
  upstash: GatewayInfo;
  /** Why Redis could not be used, or null when it answered. Never set in CI (setup fails there). */
  redisUnavailable: string | null;
  sinks: Record<SinkName, SinkInfo>;
  /** The Turnstile siteverify stand-in (dev/turnstile-stub.ts): `url` for TURNSTILE_VERIFY_URL. */
  turnstile: { url: string; api: string };
  /** The DNS-over-HTTPS stand-in (dev/doh-stub.ts): `url` for DOH_URL; dohApi() publishes. */
  doh: { url: string; api: string };
  /** The test CA (PEM) that signed the sinks' certificate, and its path. */
  ca: string;
  caPath: string;
}

declare module "vitest" {
  export interface ProvidedContext {
    services: Services;
  }
}

export function services(): Services {
  const provided = inject("services");
  if (!provided) {
    throw new Error(
      "no services were provided: run the tests through vitest.config.ts, whose globalSetup (test/global-setup.ts) starts them",
    );
  }
  return provided;
}

/** False when Redis is usable, otherwise the reason, for `describe.skipIf(Boolean(...))`. */
export function redisSkipReason(): string | false {
  return services().redisUnavailable ?? false;
}

/**
 * For tests that need Redis:
 * `const redis = requireRedis(); describe.skipIf(redis.skip)(`name${redis.label}`, ...)`.
 * Outside CI a missing Redis skips them with the reason in the test name; in CI setup fails instead.
 */
export function requireRedis(): { skip: boolean; reason: string; label: string } {
  const reason = services().redisUnavailable;
  return reason
    ? { skip: true, reason, label: ` (skipped: ${reason})` }
    : { skip: false, reason: "", label: "" };
}

/** A fresh Redis key prefix, so concurrent tests never see each other's keys. */
export function uniquePrefix(): string {
  return `t:${crypto.randomUUID()}:`;
}

async function call(base: string, method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: report the text as it is
  }
  if (!res.ok) {
    const message = (parsed as { error?: string } | null)?.error ?? text;
    throw new Error(`${method} ${base}${path} answered ${res.status}: ${message}`);
  }
  return parsed;
}

export interface SinkApi {
  /** Accepted messages, oldest first (with `filter.to`: those with a recipient containing it). */
  messages(filter?: MessageFilter): Promise<ReceivedMessage[]>;
  /** Forget received messages. */
  clear(): Promise<void>;
  /** Forget messages, recipient rejections and pending DATA failures; listen again if down. */
  reset(): Promise<void>;
  /**
   * Resolves with all messages once at least `count` arrived; throws after `timeoutMs`. Sinks are
   * shared by test files running in parallel: give a test unique recipients and pass
   * `{ to: "that-address" }` to see only its own messages.
   */
  waitFor(count: number, timeoutMs?: number, filter?: MessageFilter): Promise<ReceivedMessage[]>;
  /** Stop listening and drop connections (clients get connection refused). */
  down(): Promise<void>;
  up(): Promise<void>;
  /** Answer RCPT TO for `address` with `code` (and `text`, e.g. "5.1.1 No such user"). */
  rejectRecipient(address: string, code: number, text?: string): Promise<void>;
  /** Answer the next `times` (default 1) DATA commands with `code`. */
  failData(code: number, text?: string, times?: number): Promise<void>;
  /**
   * Replace the fault plan (4xx/5xx replies, dropped connections, stalls for a share of
   * connections or transactions; see FaultPlan in dev/smtp-sink/faults.ts) and zero its statistics.
   */
  setFaults(plan: FaultPlan): Promise<void>;
  /** No faults from now on (reset() also clears them). */
  clearFaults(): Promise<void>;
  /** The current plan and what it did: strikes per rule, stalls, drops. */
  faults(): Promise<{ plan: FaultPlan; stats: FaultStats }>;
}

function query(filter: MessageFilter | undefined, extra: Record<string, string> = {}): string {
  const params = new URLSearchParams(extra);
  if (filter?.to !== undefined) params.set("to", filter.to);
  const text = params.toString();
  return text ? `?${text}` : "";
}

/** The control API of one SMTP sink. Resolves the sink lazily, so it can be made at module level. */
export function sinkApi(name: SinkName): SinkApi {
  const base = () => services().sinks[name].api;
  return {
    messages: async (filter) =>
      (await call(base(), "GET", `/api/messages${query(filter)}`)) as ReceivedMessage[],
    clear: async () => {
      await call(base(), "DELETE", "/api/messages");
    },
    reset: async () => {
      await call(base(), "POST", "/api/reset");
    },
    waitFor: async (count, timeoutMs = 10_000, filter) =>
      (await call(
        base(),
        "GET",
        `/api/messages${query(filter, { wait: String(count), timeout: String(timeoutMs) })}`,
      )) as ReceivedMessage[],
    down: async () => {
      await call(base(), "POST", "/api/down");
    },
    up: async () => {
      await call(base(), "POST", "/api/up");
    },
    rejectRecipient: async (address, code, text) => {
      await call(base(), "POST", "/api/reject-recipient", { address, code, text });
    },
    failData: async (code, text, times) => {
      await call(base(), "POST", "/api/fail-data", { code, text, times });
    },
    setFaults: async (plan) => {
      await call(base(), "POST", "/api/faults", plan);
    },
    clearFaults: async () => {
      await call(base(), "DELETE", "/api/faults");
    },
    faults: async () =>
      (await call(base(), "GET", "/api/faults")) as { plan: FaultPlan; stats: FaultStats },
  };
}

export interface GatewayApi {
  /**
   * Billed commands so far. The count is shared by all test files running at the same time; pass
   * `contains` (e.g. a test's key prefix) to count only logged commands with an argument containing
   * it.
   */
  commands(contains?: string): Promise<number>;
  /** Commands seen, each as [NAME, ...args] (long arguments are shortened). */
  commandLog(): Promise<string[][]>;
  resetCounters(): Promise<void>;
  /**
   * Strike requests whose commands match (see RequestFault in dev/upstash-gateway.ts): drop them
   * unseen, or run them and lose the reply. The fault list is shared by test files running at the
   * same time: match on the test's own key prefix or message id.
   */
  addFault(fault: RequestFault): Promise<void>;
  /** Remove every fault; returns how often each struck. */
  clearFaults(): Promise<{ fault: RequestFault; struck: number }[]>;
  /** Stop listening: Upstash clients get connection refused until up(). */
  down(): Promise<void>;
  up(): Promise<void>;
}

/** The control API of the Upstash gateway. */
export function gatewayApi(): GatewayApi {
  const base = () => services().upstash.api;
  return {
    commands: async (contains) => {
      if (contains === undefined) {
        return ((await call(base(), "GET", "/api/commands")) as { commands: number }).commands;
      }
      const query = `?contains=${encodeURIComponent(contains)}`;
      return ((await call(base(), "GET", `/api/commands${query}`)) as { matching: number })
        .matching;
    },
    commandLog: async () =>
      ((await call(base(), "GET", "/api/command-log")) as { log: string[][] }).log,
    resetCounters: async () => {
      await call(base(), "POST", "/api/reset-counters");
    },
    addFault: async (fault) => {
      await call(base(), "POST", "/api/faults", fault);
    },
    clearFaults: async () =>
      (
        (await call(base(), "DELETE", "/api/faults")) as {
          faults: { fault: RequestFault; struck: number }[];
        }
      ).faults,
    down: async () => {
      await call(base(), "POST", "/api/down");
    },
    up: async () => {
      await call(base(), "POST", "/api/up");
    },
  };
}

export interface DohApi {
  /** Sets a name's TXT records (an empty list removes them). */
  publish(name: string, values: string[]): Promise<void>;
  /** "normal", or a failure the relay's lookups must survive (see dev/doh-stub.ts). */
  mode(mode: "normal" | "servfail" | "http500" | "slow" | "huge"): Promise<void>;
  requests(): Promise<string[]>;
}

/** The control API of the DoH stand-in. */
export function dohApi(): DohApi {
  const base = () => services().doh.api;
  return {
    publish: async (name, values) => {
      await call(base(), "PUT", "/api/records", { name, values });
    },
    mode: async (mode) => {
      await call(base(), "PUT", "/api/mode", { mode });
    },
    requests: async () => (await call(base(), "GET", "/api/requests")) as string[],
  };
}
