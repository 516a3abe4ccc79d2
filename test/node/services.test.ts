/**
 * The services that test/global-setup.ts provides to every project answer as advertised: the
 * sinks with the TLS and credentials in their URLs, their control APIs, and the gateway's. Only
 * read-only checks here: other test files use these shared services at the same time.
 */
import { Redis } from "@upstash/redis";
import nodemailer from "nodemailer";
import { describe, expect, it } from "vitest";
import {
  gatewayApi,
  requireRedis,
  type SinkName,
  services,
  sinkApi,
  uniquePrefix,
} from "../support/services.ts";

describe("services from global setup", () => {
  it.each(["plain", "starttls", "implicit", "serial"] as SinkName[])(
    "sink %s accepts a session as its URL describes",
    async (name) => {
      const sink = services().sinks[name];
      const url = new URL(sink.url);
      expect(url.protocol).toBe(
        {
          plain: "smtp+insecure:",
          starttls: "smtp:",
          implicit: "smtps:",
          serial: "smtp+insecure:",
        }[name],
      );
      expect(Number(url.port)).toBe(sink.port);
      expect(decodeURIComponent(url.username)).toBe(sink.user ?? "");
      const transport = nodemailer.createTransport({
        host: sink.host,
        port: sink.port,
        secure: sink.tls === "implicit",
        requireTLS: sink.tls === "starttls",
        ignoreTLS: sink.tls === "none",
        auth: sink.user ? { user: sink.user, pass: sink.pass } : undefined,
        tls: { ca: services().ca },
      });
      // verify() connects, upgrades and authenticates without sending mail.
      expect(await transport.verify()).toBe(true);
      transport.close();
      expect(Array.isArray(await sinkApi(name).messages())).toBe(true);
      // Nothing here sends mail to the shared sinks: other files assert they stay empty.
      const nobody = `${crypto.randomUUID()}@example.com`;
      expect(await sinkApi(name).messages({ to: nobody })).toEqual([]);
      await expect(sinkApi(name).waitFor(1, 50, { to: nobody })).rejects.toThrow(
        /answered 408: waited 50 ms for 1 message\(s\) to \*/,
      );
    },
  );

  it("sinks that carry credentials refuse the wrong password", async () => {
    const sink = services().sinks.implicit;
    const transport = nodemailer.createTransport({
      host: sink.host,
      port: sink.port,
      secure: true,
      auth: { user: sink.user, pass: "not-the-password" },
      tls: { ca: services().ca },
    });
    await expect(transport.verify()).rejects.toMatchObject({ responseCode: 535 });
  });

  it("processes vitest spawns trust the test CA through NODE_EXTRA_CA_CERTS", async () => {
    // Set by vitest.config.ts before the workers started; workerd relies on the same variable.
    expect(process.env.NODE_EXTRA_CA_CERTS).toBe(services().caPath);
    const sink = services().sinks.implicit;
    const transport = nodemailer.createTransport({
      host: sink.host,
      port: sink.port,
      secure: true,
      auth: { user: sink.user, pass: sink.pass },
      // no tls.ca: only the inherited variable makes this certificate trusted
    });
    expect(await transport.verify()).toBe(true);
    transport.close();
  });

  const redis = requireRedis();
  it.skipIf(redis.skip)(
    `the gateway and its control API count commands${redis.label}`,
    async () => {
      const { upstash } = services();
      const client = new Redis({ url: upstash.url, token: upstash.token, retry: false });
      const key = `${uniquePrefix()}count`;
      const gateway = gatewayApi();
      await client.set(key, "1");
      await client.incr(key);
      await client.del(key);
      expect(await gateway.commands(key)).toBe(3);
      expect((await gateway.commandLog()).filter((c) => c.includes(key))).toEqual([
        ["SET", key, "1"],
        ["INCR", key],
        ["DEL", key],
      ]);
      expect(await gateway.commands()).toBeGreaterThanOrEqual(3);
    },
  );
});
