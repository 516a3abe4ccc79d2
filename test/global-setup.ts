/**
 * Starts the real services the tests talk to, once per vitest run, and hands their addresses to
 * every test project through `provide("services")` (read them with services() from
 * test/support/services.ts):
 * - the Upstash-compatible gateway in front of the local redis-server, with its control API;
 * - three recording SMTP sinks, each with its HTTP control API: `plain` (no TLS, no AUTH),
 *   `starttls` (STARTTLS required, AUTH required) and `implicit` (TLS from the first byte, AUTH).
 * - a stand-in for Cloudflare Turnstile's siteverify (dev/turnstile-stub.ts), for forms.
 * - a DNS-over-HTTPS stand-in (dev/doh-stub.ts) serving the TXT records tests publish, for domains.
 *
 * Without Redis the Redis tests are skipped with the reason, except in CI (CI=true), where a
 * missing Redis is a broken setup and fails the run.
 * Set SERVICES_LOG=1 to see each SMTP session and Upstash command on stderr.
 */
import { randomBytes } from "node:crypto";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { TestProject } from "vitest/node";
import { startDohStub } from "../dev/doh-stub.ts";
import { type SinkTls, startSinkHttp, startSmtpSink } from "../dev/smtp-sink/index.ts";
import { makeTestCertificates } from "../dev/test-ca.ts";
import { startTurnstileStub } from "../dev/turnstile-stub.ts";
import { probeRedis, startGatewayHttp, startUpstashGateway } from "../dev/upstash-gateway.ts";
import type { Services, SinkInfo, SinkName } from "./support/services.ts";

// TEST_REDIS_URL points the tests at another Redis (or, to see the skips, at none).
const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const closers: (() => Promise<void>)[] = [];
  const teardown = async () => {
    for (const close of closers.reverse()) await close().catch(() => {});
  };
  const verbose = process.env.SERVICES_LOG === "1";
  const logFor = (name: string) =>
    verbose ? (line: string) => process.stderr.write(`[${name}] ${line}\n`) : undefined;

  try {
    const certs = makeTestCertificates(
      resolve(dirname(fileURLToPath(import.meta.url)), "..", ".certs"),
    );

    const redisUnavailable = await probeRedis(REDIS_URL);
    if (redisUnavailable && process.env.CI === "true") {
      throw new Error(
        `${redisUnavailable}. CI runs every Redis test, so it needs redis-server at ${REDIS_URL} (.ci/run starts it on 127.0.0.1:6379).`,
      );
    }

    // Random per run, so nothing outside this run can use the gateway by accident.
    const gateway = await startUpstashGateway({
      redisUrl: REDIS_URL,
      token: `test-${randomBytes(12).toString("hex")}`,
      log: logFor("upstash"),
    });
    closers.push(() => gateway.close());
    const gatewayHttp = await startGatewayHttp(gateway);
    closers.push(() => gatewayHttp.close());

    const startSink = async (
      name: SinkName,
      tls: SinkTls,
      pipelining = true,
    ): Promise<SinkInfo> => {
      const auth =
        tls === "none"
          ? undefined
          : { user: `relay-${name}`, pass: `pw-${randomBytes(9).toString("hex")}` };
      const sink = await startSmtpSink({
        tls,
        auth,
        key: certs.key,
        cert: certs.cert,
        requireTls: tls !== "none",
        name: "sink.localhost",
        pipelining,
        log: logFor(`smtp:${name}`),
      });
      closers.push(() => sink.close());
      const http = await startSinkHttp(sink, { title: `Test sink: ${name}` });
      closers.push(() => http.close());
      return {
        name,
        host: sink.host,
        port: sink.port,
        tls,
        url: sink.url,
        ...(auth ? { user: auth.user, pass: auth.pass } : {}),
        api: http.url,
      };
    };

    // Cloudflare Turnstile's siteverify, as forms call it (TURNSTILE_VERIFY_URL).
    const turnstile = await startTurnstileStub();
    closers.push(() => turnstile.close());
    const doh = await startDohStub();
    closers.push(() => doh.close());

    const services: Services = {
      upstash: { url: gateway.url, token: gateway.token, api: gatewayHttp.url },
      redisUnavailable,
      sinks: {
        plain: await startSink("plain", "none"),
        starttls: await startSink("starttls", "starttls"),
        implicit: await startSink("implicit", "implicit"),
        serial: await startSink("serial", "none", false),
      },
      turnstile: { url: turnstile.url, api: turnstile.api },
      doh: { url: doh.url, api: doh.api },
      ca: certs.ca,
      caPath: certs.caPath,
    };
    project.provide("services", services);
    return teardown;
  } catch (error) {
    await teardown();
    throw error;
  }
}
