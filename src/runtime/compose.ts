/**
 * The composition root: the one place that turns a configuration into a running relay, choosing
 * the store (Upstash or in memory), the rate limiter that goes with it and the SMTP transport.
 * Below this, nothing knows which driver it runs on; the runtime entries call createRelay once per
 * isolate (isolate.ts), tests and tools call it with their own store, clock or logger.
 */
import { memoryRateLimiter } from "../auth/memory-rate-limit.ts";
import { type RateLimiter, upstashRateLimiter } from "../auth/rate-limit.ts";
import type { Config } from "../config.ts";
import { jsonLogger, type Logger } from "../log.ts";
import { Relay, type StoreKind } from "../relay.ts";
import { createTransport } from "../smtp/factory.ts";
import { createFailoverTransport, hostLabel } from "../smtp/failover.ts";
import { createRoutingTransport } from "../smtp/routes.ts";
import { describeSmtpTarget, type SmtpTarget } from "../smtp/url.ts";
import { MemoryStore } from "../store/memory/store.ts";
import type { RelayStore } from "../store/store.ts";
import { UpstashStore } from "../store/upstash/store.ts";

export interface RelayOptions {
  log?: Logger;
  now?: () => number;
  /**
   * An in-memory store to use instead of the configured one (tests: a clock, injected faults).
   * It is rate-limited in memory, as the in-memory store always is.
   */
  store?: MemoryStore;
}

/** The store a configuration names, and the rate limiter that keeps its counts beside it. */
function storeFor(
  config: Config,
  options: RelayOptions,
  log: Logger,
  now: () => number,
): { store: RelayStore; storeKind: StoreKind; limiter: RateLimiter } {
  if (options.store) {
    return { store: options.store, storeKind: "memory", limiter: memoryRateLimiter(now) };
  }
  if (config.upstash) {
    const store = new UpstashStore({
      url: config.upstash.url,
      token: config.upstash.token,
      prefix: config.redisPrefix,
      now,
    });
    return {
      store,
      storeKind: "upstash",
      limiter: upstashRateLimiter(store.libraryClient(), config.redisPrefix),
    };
  }
  log.warn("store.memory", {
    message:
      "UPSTASH_REDIS_REST_URL/_TOKEN are not set: using the in-memory queue, which loses messages on restart",
  });
  return { store: new MemoryStore({ now }), storeKind: "memory", limiter: memoryRateLimiter(now) };
}

/** Builds the relay a configuration describes: Upstash or in-memory store, nodemailer transport. */
export function createRelay(config: Config, options: RelayOptions = {}): Relay {
  const log = options.log ?? jsonLogger(config.logLevel);
  const now = options.now ?? Date.now;
  const { store, storeKind, limiter } = storeFor(config, options, log, now);
  const hosts = config.smtpHosts;
  if (hosts.length > 0) {
    log.info("smtp.target", {
      target: describeSmtpTarget(hosts[0] as (typeof hosts)[0]),
      ...(hosts.length > 1 ? { failover: hosts.slice(1).map(describeSmtpTarget) } : {}),
    });
  }
  for (const route of config.smtpRoutes) {
    log.info("smtp.route", {
      match: "keyId" in route.match ? `key:${route.match.keyId}` : route.match.domain,
      targets: route.hosts.map(describeSmtpTarget),
    });
  }
  // One transport per smart host, each with its own pool, behind the failover transport (which
  // also labels every outcome with its host, so one host is wrapped too); routes likewise.
  const failover = (targets: SmtpTarget[], maxConnections: number) =>
    createFailoverTransport(
      targets.map((target) => ({
        label: hostLabel(target),
        transport: createTransport(config.smtpClient, {
          target,
          ehloName: config.ehloName,
          timeoutMs: config.smtpTimeoutMs,
          dataTimeoutMs: config.smtpDataTimeoutMs,
          maxConnections,
        }),
      })),
      { now },
    );
  const openTransport =
    hosts.length > 0
      ? (connections = config.smtpMaxConnections) => {
          const fallback = failover(hosts, connections);
          if (config.smtpRoutes.length === 0) return fallback;
          return createRoutingTransport(
            fallback,
            config.smtpRoutes.map((route) => ({
              route,
              transport: failover(route.hosts, route.maxConnections ?? config.smtpMaxConnections),
            })),
          );
        }
      : undefined;
  return new Relay({ config, store, storeKind, limiter, openTransport, log, now });
}
