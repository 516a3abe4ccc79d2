/**
 * Drives the real Workers entry (src/runtime/workers.ts) inside workerd, the way the runtime does:
 * `fetch` with an env and an execution context, `scheduled` for cron ticks, and waiting for the
 * work handed to waitUntil (the immediate delivery attempt).
 */
import {
  createExecutionContext,
  createScheduledController,
  waitOnExecutionContext,
} from "cloudflare:test";
import worker from "../../src/runtime/workers.ts";
import { services } from "./services.ts";

export const ADMIN = "test-admin-token-0123456789abcdef";

export type TestEnv = Record<string, string>;

/** An env for one test: its own relay instance (and, with Upstash, its own key prefix). */
export function testEnv(overrides: TestEnv = {}): TestEnv {
  return {
    ADMIN_TOKEN: ADMIN,
    SMTP_URL: `smtp+insecure://127.0.0.1:${services().sinks.plain.port}`,
    REDIS_KEY_PREFIX: `t:${crypto.randomUUID()}:`,
    RETRY_FIRST_SECONDS: "1",
    LOG_LEVEL: "error",
    // Tests send in bursts; the limit itself is pinned in rate-limit.test.ts.
    RATE_LIMIT: "10000/1s",
    ...overrides,
  };
}

export function upstashEnv(overrides: TestEnv = {}): TestEnv {
  const { upstash } = services();
  return testEnv({
    UPSTASH_REDIS_REST_URL: upstash.url,
    UPSTASH_REDIS_REST_TOKEN: upstash.token,
    ...overrides,
  });
}

export interface CallOptions {
  token?: string | null;
  json?: unknown;
  body?: BodyInit;
  headers?: Record<string, string>;
}

export interface CallResult {
  status: number;
  headers: Headers;
  // biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON answers
  body: any;
}

export async function call(
  env: TestEnv,
  method: string,
  path: string,
  options: CallOptions = {},
): Promise<CallResult> {
  const headers: Record<string, string> = { ...options.headers };
  const token = options.token === undefined ? ADMIN : options.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let body = options.body;
  if (options.json !== undefined) {
    body = JSON.stringify(options.json);
    headers["content-type"] ??= "application/json";
  }
  const ctx = createExecutionContext();
  const res = await worker.fetch(
    new Request(`https://relay.test${path}`, { method, headers, body }),
    env,
    ctx,
  );
  await waitOnExecutionContext(ctx);
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {}
  return { status: res.status, headers: res.headers, body: parsed };
}

/** Runs one cron tick and waits for its delivery run to finish. */
export async function tick(env: TestEnv): Promise<void> {
  const ctx = createExecutionContext();
  await worker.scheduled(
    createScheduledController({ cron: "* * * * *", scheduledTime: Date.now() }),
    env,
    ctx,
  );
  await waitOnExecutionContext(ctx);
}

export const email = (overrides: Record<string, unknown> = {}) => ({
  from: "Acme <sender@example.com>",
  to: ["ann@example.com"],
  subject: "Hello",
  text: "Hello there.",
  ...overrides,
});
