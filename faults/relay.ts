/**
 * The relay under a fault run: one workerd instance (wrangler's test harness) per generation, a
 * new one after each kill, all on the same store and SMTP server. Collects the instances' JSON log
 * lines and sends admin requests to the live one.
 */
import { randomBytes } from "node:crypto";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createTestHarness, type TestHarness } from "wrangler";
import type { UpstashGateway } from "../dev/upstash-gateway.ts";
import type { Generation, RelayLog } from "./ledger.ts";
import { TIMINGS } from "./timings.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const ADMIN = `faults-admin-${randomBytes(16).toString("hex")}`;

export interface RelayAnswer {
  /** 0 when no instance is up or the request failed. */
  status: number;
  json: unknown;
}

export class RelayGenerations {
  harness: TestHarness | undefined;
  generation: Generation | undefined;
  readonly generations: Generation[] = [];
  readonly logs: RelayLog[] = [];
  readonly #smtpUrl: string;
  readonly #gateway: UpstashGateway;
  readonly #prefix: string;

  constructor(smtpUrl: string, gateway: UpstashGateway, prefix: string) {
    this.#smtpUrl = smtpUrl;
    this.#gateway = gateway;
    this.#prefix = prefix;
  }

  /** Moves the live instance's log lines (those with an event) into `logs`. */
  collectLogs(): void {
    const { harness, generation } = this;
    if (!harness || !generation) return;
    for (const entry of harness.getLogs()) {
      const log = parseLog(generation.name, entry.timestamp, entry.message);
      if (log) this.logs.push(log);
    }
    harness.clearLogs();
  }

  async start(): Promise<void> {
    const name = `gen${this.generations.length + 1}.faults.test`;
    const next = createTestHarness({
      root: ROOT,
      workers: [
        {
          configPath: "wrangler.toml",
          secrets: {
            ADMIN_TOKEN: ADMIN,
            SMTP_URL: this.#smtpUrl,
            UPSTASH_REDIS_REST_URL: this.#gateway.url,
            UPSTASH_REDIS_REST_TOKEN: this.#gateway.token,
          },
          vars: {
            REDIS_KEY_PREFIX: this.#prefix,
            RETRY_FIRST_SECONDS: String(TIMINGS.retryFirstSeconds),
            RETRY_MAX_SECONDS: String(TIMINGS.retryMaxSeconds),
            DELIVERY_LEASE_SECONDS: String(TIMINGS.leaseSeconds),
            SMTP_TIMEOUT_SECONDS: String(TIMINGS.smtpTimeoutSeconds),
            // The stalls after DATA are meant to outlast the client's wait for the final reply
            // (default 600 s): give it the short timeout too.
            SMTP_DATA_TIMEOUT_SECONDS: String(TIMINGS.smtpTimeoutSeconds),
            SMTP_MAX_CONNECTIONS: String(TIMINGS.connections),
            DELIVERY_BATCH_SIZE: String(TIMINGS.batchSize),
            // Tells this instance's deliveries apart at the server.
            SMTP_EHLO_NAME: name,
            LOG_LEVEL: "warn",
            // One admin key sends everything here; a per-key request limit is not under test.
            RATE_LIMIT: "100000/1s",
          },
        },
      ],
    });
    await next.listen();
    this.harness = next;
    this.generation = { name, startedAt: Date.now() };
    this.generations.push(this.generation);
  }

  /**
   * Closes the current instance; `killedRunStartedAt` marks it as having died in the middle of
   * the delivery run that began then.
   */
  async stop(killedRunStartedAt?: number): Promise<void> {
    const current = this.harness;
    if (!current || !this.generation) return;
    const closing = this.generation;
    this.collectLogs();
    this.harness = undefined;
    await current.close();
    // Only now is the instance surely gone: anything it sent before this is its own.
    if (killedRunStartedAt !== undefined) {
      closing.killedAt = Date.now();
      closing.killedRunStartedAt = killedRunStartedAt;
    }
  }

  /** Starts a scheduled run on the live instance, as the cron would. */
  scheduled(): Promise<unknown> | undefined {
    return this.harness?.getWorker().scheduled({ cron: "* * * * *", scheduledTime: new Date() });
  }

  /** An admin request to the live instance; never throws. */
  async request(method: string, path: string, body?: unknown): Promise<RelayAnswer> {
    const current = this.harness;
    if (!current) return { status: 0, json: undefined as unknown };
    try {
      const res = await current.fetch(path, {
        method,
        headers: {
          authorization: `Bearer ${ADMIN}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = text;
      }
      return { status: res.status, json };
    } catch (error) {
      return { status: 0, json: String(error) };
    }
  }
}

/** One log line as the ledger keeps it, or undefined when it is not a JSON event. */
function parseLog(generation: string, at: number, message: string): RelayLog | undefined {
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(message) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (typeof parsed.event !== "string") return undefined;
  const detail = parsed.reason ?? parsed.error ?? parsed.op;
  return {
    generation,
    at,
    event: parsed.event,
    ...(typeof parsed.email_id === "string" ? { emailId: parsed.email_id } : {}),
    ...(detail === undefined ? {} : { detail: String(detail) }),
  };
}
