/**
 * The relay's configuration: read from the environment (Workers bindings, Deno.env, process.env)
 * and validated here, once. Every error names the variable that is wrong, so an operator who
 * mistyped a secret learns which one from the first response or log line.
 */

import { type RateLimit, rateLimitFromEnv } from "./auth/rate-limit.ts";
import { bounceDomain, type DkimConfig, dkimSecret, dohUrl } from "./config/deliverability.ts";
import { type FanoutConfig, fanoutConfig } from "./config/fanout.ts";
import {
  bool,
  type Env,
  int,
  logLevel,
  namedRateLimit,
  parseRetrySchedule,
  str,
} from "./config/read.ts";
import { type SuppressionExpiry, suppressionExpiry } from "./config/suppression.ts";
import { ConfigError } from "./errors.ts";

export type { DkimConfig } from "./config/deliverability.ts";
export { HOST_NAME } from "./config/deliverability.ts";
export type { FanoutConfig } from "./config/fanout.ts";
export { type Env, parseRetrySchedule } from "./config/read.ts";
export type { SuppressionExpiry } from "./config/suppression.ts";

import { SMTP_CLIENTS, type SmtpClientName } from "./smtp/factory.ts";
import { parseSmtpRoutes, type SmtpRoute } from "./smtp/routes.ts";
import { parseSmtpUrls, type SmtpTarget } from "./smtp/url.ts";

export interface Limits {
  /** Largest composed or raw message, in bytes. Upstash REST accepts requests up to 10 MB, and a
   * message travels in one request, so the default leaves room for the envelope and JSON. */
  maxMessageBytes: number;
  /** Most envelope recipients (to + cc + bcc) in one message, as Resend allows. */
  maxRecipients: number;
  /** Most messages in one `POST /emails/batch`, as Resend allows. */
  maxBatch: number;
  /** The smart host accepts non-ASCII local parts (SMTPUTF8, RFC 6531). */
  smtpUtf8: boolean;
}

export interface Config {
  adminToken: string | undefined;
  upstash: { url: string; token: string } | undefined;
  /** Key prefix in Redis, so one database can serve several relays or test runs. */
  redisPrefix: string;
  /** The first smart host of SMTP_URL (the one normally used). */
  smtp: SmtpTarget | undefined;
  /** Every smart host of SMTP_URL in failover order (src/smtp/failover.ts); empty when unset. */
  smtpHosts: SmtpTarget[];
  /** SMTP_ROUTES: smart hosts by API key or sender domain (src/smtp/routes.ts); others: smtpHosts. */
  smtpRoutes: SmtpRoute[];
  smtpClient: SmtpClientName;
  ehloName: string;
  /** Socket timeouts for SMTP (connect, greeting, idle). */
  smtpTimeoutMs: number;
  /** The wait for the server's reply to the final "." of DATA (at least smtpTimeoutMs). */
  smtpDataTimeoutMs: number;
  /** Parallel SMTP connections per delivery run; Workers allow 6 opening at once. */
  smtpMaxConnections: number;
  /** Messages claimed per store round trip. */
  batchSize: number;
  /** How long a claimed message is reserved for one delivery run before others may take it. */
  leaseMs: number;
  /** Reservation for the attempt made right after accepting (shorter: it runs in waitUntil). */
  immediateLeaseMs: number;
  /** A scheduled run stops claiming new batches after this long (the cron fires every minute). */
  runBudgetMs: number;
  /** Further invocations a scheduled run may start, and the shared connection cap (fanout.ts). */
  fanout: FanoutConfig;
  /** Backoff after a temporary failure: first delay, doubling up to the ceiling. */
  retry: { firstMs: number; maxMs: number };
  /** Temporary failures are retried until the message is this old, then the recipient fails. */
  maxQueueAgeMs: number;
  /** Finished messages (delivered, failed, canceled) are kept this long for `GET /emails/:id`. */
  retentionMs: number;
  /** How long a verified API key is trusted without asking Redis again (revocation delay). */
  keyCacheMs: number;
  /** Try delivery right after accepting (through waitUntil). */
  immediateDelivery: boolean;
  /** Requests per window for a key without its own rate_limit. */
  rateLimit: RateLimit;
  /** Least severe log level written. */
  logLevel: "info" | "warn" | "error";
  limits: Limits;
  /** Inbound hooks (`POST /hooks/:id`): requests per window per hook, and the largest body. */
  hooks: { rateLimit: RateLimit; maxBodyBytes: number };
  /** The dashboard: pages and actions per window per signed-in key (sign-in has its own limit). */
  dashboard: { rateLimit: RateLimit };
  /** Forms (`POST /f/:id`): where Turnstile tokens are verified (siteverify or a stand-in). */
  forms: { turnstileVerifyUrl: string };
  /** Delivery of events to webhook endpoints (src/events/). */
  webhooks: WebhookConfig;
  /** The request log (`GET /logs`, src/request-log.ts). */
  requestLog: RequestLogConfig;
  /**
   * The domain that receives bounces (BOUNCE_DOMAIN, for example bounces.example.com): its MX is
   * Cloudflare Email Routing with a route to this Worker. Unset: no return-path records.
   */
  bounceDomain: string | undefined;
  /** Sending domains and their DKIM keys (src/domains.ts). */
  dkim: DkimConfig;
  /** How long suppression list entries last, per origin (SUPPRESSION_EXPIRY_DAYS). */
  suppressionExpiryMs: SuppressionExpiry;
}

export interface RequestLogConfig {
  /**
   * Keep a log entry per API request: one more Upstash command per logged request, written
   * after the answer (REQUEST_LOG=off saves it).
   * @default true
   */
  enabled: boolean;
  /** Entries kept (the newest; REQUEST_LOG_MAX). @default 1000 */
  maxEntries: number;
  /** Entries older than this are dropped (REQUEST_LOG_DAYS). @default 7 days */
  retentionMs: number;
}

export interface WebhookConfig {
  /** Waits before each retry of a failed event; its length is the number of retries. */
  retryScheduleMs: number[];
  /** Each POST to an endpoint gives up after this long (and counts as a failed attempt). */
  timeoutMs: number;
  /** A scheduled run sends events for at most this long, after its mail. */
  runBudgetMs: number;
  /** Endpoints may be http(s) on loopback addresses (development and tests only). */
  allowLoopback: boolean;
}

/** Standard Webhooks / Svix-style schedule: retries after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h. */
export const DEFAULT_WEBHOOK_RETRY_SCHEDULE = "5s,5m,30m,2h,5h,10h,10h";

/**
 * The largest MAX_MESSAGE_BYTES with Upstash. A message travels in one request and comes back in
 * one claim answer, and Upstash caps both at 10 MB (10,000,000 bytes). The answer carries the
 * stored bytes base64-encoded (4/3 of MAX_MESSAGE_BYTES, which counts bytes as stored: see
 * src/mail/bytes.ts storedSize), so 7 MiB answers in about 9.79 MB and leaves some 200 KB for
 * the message's metadata and delivery state. A larger message could be stored but never claimed.
 */
export const UPSTASH_MAX_MESSAGE_BYTES = 7 * 1024 * 1024;

/** Cloudflare's siteverify unless set (tests point it at dev/turnstile-stub.ts). */
function turnstileVerifyUrl(env: Env): string {
  const raw =
    str(env, "TURNSTILE_VERIFY_URL") ?? "https://challenges.cloudflare.com/turnstile/v0/siteverify";
  if (!/^https?:\/\/[^\s]+$/.test(raw))
    throw new ConfigError("TURNSTILE_VERIFY_URL", "must be an http(s) URL");
  return raw;
}

const SECOND = 1000;

/**
 * The lease time a run wants left before it starts one SMTP transaction: connecting and the
 * greeting wait at most SMTP_TIMEOUT_SECONDS together (each is capped at 15 s), and the exchange
 * another SMTP_TIMEOUT_SECONDS of silence at most.
 */
export function sendWindowMs(smtpTimeoutMs: number): number {
  return 2 * smtpTimeoutMs;
}
const MINUTE = 60 * SECOND;
const DAY = 24 * 60 * MINUTE;

/** Reads and validates the whole configuration. Throws `ConfigError` naming the bad variable. */
export function loadConfig(env: Env): Config {
  const adminToken = str(env, "ADMIN_TOKEN");
  if (adminToken !== undefined && adminToken.length < 24) {
    throw new ConfigError("ADMIN_TOKEN", "must be at least 24 characters (use a random secret)");
  }

  const restUrl = str(env, "UPSTASH_REDIS_REST_URL");
  const restToken = str(env, "UPSTASH_REDIS_REST_TOKEN");
  if ((restUrl === undefined) !== (restToken === undefined)) {
    throw new ConfigError(
      restUrl === undefined ? "UPSTASH_REDIS_REST_URL" : "UPSTASH_REDIS_REST_TOKEN",
      "is not set, but the other Upstash variable is: set both, or neither for the in-memory queue",
    );
  }
  if (restUrl !== undefined && !/^https?:\/\/[^\s]+$/.test(restUrl)) {
    throw new ConfigError(
      "UPSTASH_REDIS_REST_URL",
      "must be an http(s) URL such as https://xyz.upstash.io",
    );
  }

  const smtpUrl = str(env, "SMTP_URL");
  const smtpHosts = smtpUrl === undefined ? [] : parseSmtpUrls(smtpUrl);
  const smtp = smtpHosts[0];
  const smtpRoutes = parseSmtpRoutes(str(env, "SMTP_ROUTES"));
  if (smtpRoutes.length > 0 && smtp === undefined) {
    throw new ConfigError(
      "SMTP_ROUTES",
      "is set but SMTP_URL is not: SMTP_URL carries the messages no route matches",
    );
  }

  const smtpClient = (str(env, "SMTP_CLIENT") ?? "nodemailer") as SmtpClientName;
  if (!SMTP_CLIENTS.includes(smtpClient)) {
    throw new ConfigError(
      "SMTP_CLIENT",
      `must be one of ${SMTP_CLIENTS.join(", ")}; got ${JSON.stringify(smtpClient)}`,
    );
  }

  const ehloName = str(env, "SMTP_EHLO_NAME") ?? "localhost";
  if (
    !/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*)$/.test(
      ehloName,
    )
  ) {
    throw new ConfigError(
      "SMTP_EHLO_NAME",
      "must be a host name (relay.example.com) or an address literal ([192.0.2.1])",
    );
  }

  const upstash = restUrl && restToken ? { url: restUrl, token: restToken } : undefined;
  const maxMessageBytes = int(env, "MAX_MESSAGE_BYTES", 7 * 1024 * 1024, 1024, 100 * 1024 * 1024);
  if (upstash && maxMessageBytes > UPSTASH_MAX_MESSAGE_BYTES) {
    throw new ConfigError(
      "MAX_MESSAGE_BYTES",
      `must be at most ${UPSTASH_MAX_MESSAGE_BYTES} (7 MiB) with Upstash: a message is read back base64-encoded in one answer, and Upstash answers at most 10 MB`,
    );
  }

  const smtpTimeoutMs = int(env, "SMTP_TIMEOUT_SECONDS", 30, 1, 600) * SECOND;
  // RFC 5321 section 4.5.3.2.6 suggests 10 minutes for the reply to the final dot (the server may
  // be scanning the message); a client that gives up sooner retries and delivers it twice. At most
  // 14 minutes: a scheduled Worker invocation has 15 minutes of wall time. A longer wait is covered
  // by lease renewals (src/delivery/deliver.ts keepLease), so the lease needs no minimum for it.
  const smtpDataTimeoutMs = int(env, "SMTP_DATA_TIMEOUT_SECONDS", 600, 1, 840) * SECOND;
  if (smtpDataTimeoutMs < smtpTimeoutMs) {
    throw new ConfigError(
      "SMTP_DATA_TIMEOUT_SECONDS",
      `must be at least SMTP_TIMEOUT_SECONDS (${smtpTimeoutMs / SECOND} here), got ${smtpDataTimeoutMs / SECOND}`,
    );
  }
  const leaseMs = int(env, "DELIVERY_LEASE_SECONDS", 300, 5, 3600) * SECOND;
  // A run sends a claimed message only while its lease has room for one whole SMTP transaction
  // (see sendWindowMs); a lease shorter than a few transactions would let it send nothing.
  if (leaseMs < 3 * sendWindowMs(smtpTimeoutMs)) {
    throw new ConfigError(
      "DELIVERY_LEASE_SECONDS",
      `must be at least 6 × SMTP_TIMEOUT_SECONDS (room for three whole SMTP transactions), so at least ${(3 * sendWindowMs(smtpTimeoutMs)) / SECOND} here`,
    );
  }

  const smtpMaxConnections = int(env, "SMTP_MAX_CONNECTIONS", 3, 1, 6);
  return {
    adminToken,
    upstash,
    redisPrefix: str(env, "REDIS_KEY_PREFIX") ?? "relay:",
    smtp,
    smtpHosts,
    smtpRoutes,
    smtpClient,
    ehloName,
    smtpTimeoutMs,
    smtpDataTimeoutMs,
    smtpMaxConnections,
    batchSize: int(env, "DELIVERY_BATCH_SIZE", 25, 1, 500),
    leaseMs,
    immediateLeaseMs: Math.max(2 * MINUTE, 3 * sendWindowMs(smtpTimeoutMs)),
    runBudgetMs: int(env, "DELIVERY_RUN_SECONDS", 50, 1, 840) * SECOND,
    fanout: fanoutConfig(env, smtpMaxConnections),
    retry: {
      firstMs: int(env, "RETRY_FIRST_SECONDS", 60, 1, 3600) * SECOND,
      maxMs: int(env, "RETRY_MAX_SECONDS", 4 * 3600, 1, 24 * 3600) * SECOND,
    },
    maxQueueAgeMs: int(env, "MAX_QUEUE_AGE_HOURS", 96, 1, 24 * 30) * 60 * MINUTE,
    retentionMs: int(env, "RETENTION_DAYS", 7, 1, 365) * DAY,
    keyCacheMs: int(env, "KEY_CACHE_SECONDS", 30, 0, 600) * SECOND,
    immediateDelivery: bool(env, "IMMEDIATE_DELIVERY", true),
    logLevel: logLevel(env),
    rateLimit: rateLimitFromEnv(str(env, "RATE_LIMIT")),
    hooks: {
      rateLimit: namedRateLimit(env, "HOOK_RATE_LIMIT", "60/1m"),
      // GitHub caps its payloads at 25 MB; most are a few kilobytes.
      maxBodyBytes: int(env, "HOOK_MAX_BODY_BYTES", 1024 * 1024, 1024, 25 * 1024 * 1024),
    },
    forms: { turnstileVerifyUrl: turnstileVerifyUrl(env) },
    dashboard: { rateLimit: namedRateLimit(env, "DASHBOARD_RATE_LIMIT", "120/1m") },
    limits: {
      maxMessageBytes,
      maxRecipients: 50,
      maxBatch: 100,
      smtpUtf8: bool(env, "SMTP_UTF8", false),
    },
    webhooks: {
      retryScheduleMs: parseRetrySchedule(
        str(env, "WEBHOOK_RETRY_SCHEDULE") ?? DEFAULT_WEBHOOK_RETRY_SCHEDULE,
      ),
      timeoutMs: int(env, "WEBHOOK_TIMEOUT_SECONDS", 10, 1, 30) * SECOND,
      runBudgetMs: int(env, "WEBHOOK_RUN_SECONDS", 20, 1, 840) * SECOND,
      allowLoopback: bool(env, "WEBHOOK_ALLOW_LOOPBACK", false),
    },
    requestLog: {
      enabled: bool(env, "REQUEST_LOG", true),
      // At most 10,000 entries of about 400 bytes: a filtered page walks at most that many.
      maxEntries: int(env, "REQUEST_LOG_MAX", 1000, 10, 10_000),
      retentionMs: int(env, "REQUEST_LOG_DAYS", 7, 1, 90) * DAY,
    },
    bounceDomain: bounceDomain(env),
    dkim: {
      secret: dkimSecret(env, adminToken),
      dohUrl: dohUrl(env),
      dohTimeoutMs: int(env, "DOH_TIMEOUT_SECONDS", 5, 1, 30) * SECOND,
    },
    suppressionExpiryMs: suppressionExpiry(env),
  };
}
export {
  loadSubmissionConfig,
  type SubmissionConfig,
  type TrustedNetwork,
} from "./config/submission.ts";
