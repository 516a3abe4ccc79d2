/**
 * The relay as deployed: the Worker from wrangler.toml in workerd (wrangler's test harness), on
 * real Redis through the Upstash-compatible gateway, delivering to one of the SMTP sinks. The
 * end-to-end tests in test/node start it here, each under its own key prefix.
 */
import { createTestHarness, type TestHarness } from "wrangler";
import { type SinkName, services } from "./services.ts";

export interface RelayWorker {
  harness: TestHarness;
  /** The relay's origin, e.g. http://127.0.0.1:54321 */
  url: string;
  close(): Promise<void>;
}

export async function startRelayWorker(options: {
  adminToken: string;
  sink: SinkName;
  /** A smart host other than the sink (a private Postfix, say): replaces the sink's SMTP_URL. */
  smtpUrl?: string;
  /** Added to (or replacing) the defaults: a fresh REDIS_KEY_PREFIX and LOG_LEVEL=error. */
  vars?: Record<string, string>;
}): Promise<RelayWorker> {
  const { upstash, sinks } = services();
  const harness = createTestHarness({
    workers: [
      {
        configPath: "wrangler.toml",
        secrets: {
          ADMIN_TOKEN: options.adminToken,
          SMTP_URL: options.smtpUrl ?? sinks[options.sink].url,
          UPSTASH_REDIS_REST_URL: upstash.url,
          UPSTASH_REDIS_REST_TOKEN: upstash.token,
        },
        vars: {
          REDIS_KEY_PREFIX: `e2e:${crypto.randomUUID()}:`,
          LOG_LEVEL: "error",
          ...options.vars,
        },
      },
    ],
  });
  const { url } = await harness.listen();
  return { harness, url: url.origin, close: () => harness.close() };
}
