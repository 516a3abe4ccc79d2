/**
 * The SMTP transport contract: every SmtpTransport runs these cases against real SMTP servers
 * (the recording sinks started by test/global-setup.ts). Each case names the behaviour delivery
 * depends on: exact envelopes, per-recipient outcomes, TLS and AUTH, and failures classified as
 * temporary or permanent.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { SmtpTransport } from "../../src/smtp/transport.ts";
import { parseSmtpUrl, type SmtpTarget } from "../../src/smtp/url.ts";
import { type SinkName, services, sinkApi } from "../support/services.ts";

export interface TransportFactory {
  name: string;
  make: (target: SmtpTarget) => SmtpTransport;
  /** Cases this transport cannot pass, each with the reason (shown in the test name). */
  skip?: { reason: string; tests: string[] }[];
}

const enc = new TextEncoder();

function message(subject: string, body = "Hello.\r\n", extra = ""): Uint8Array {
  return enc.encode(
    `From: sender@example.com\r\nTo: a@example.com\r\nSubject: ${subject}\r\nMessage-ID: <${crypto.randomUUID()}@example.com>\r\n${extra}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${body}`,
  );
}

function target(name: SinkName, change: (url: URL) => void = () => {}): SmtpTarget {
  const url = new URL(services().sinks[name].url);
  change(url);
  return parseSmtpUrl(url.toString());
}

export function describeTransportContract(factory: TransportFactory): void {
  const skipped = (test: string) => factory.skip?.find((s) => s.tests.includes(test))?.reason;
  const maybe = (test: string, fn: () => Promise<void>) => {
    const reason = skipped(test);
    if (reason) it.skip(`${test} (skipped: ${reason})`, fn);
    else it(test, fn);
  };

  describe(`SMTP transport contract: ${factory.name}`, () => {
    const open: SmtpTransport[] = [];
    const make = (t: SmtpTarget) => {
      const transport = factory.make(t);
      open.push(transport);
      return transport;
    };
    beforeEach(async () => {
      for (const name of ["plain", "starttls", "implicit"] as const) await sinkApi(name).reset();
    });
    afterEach(async () => {
      await Promise.all(open.splice(0).map((t) => t.close()));
    });

    maybe("delivers over plain SMTP with the exact envelope and body", async () => {
      const sink = sinkApi("plain");
      const raw = message("plain", "line one\r\n.leading dot\r\n..two dots\r\n");
      const outcomes = await make(target("plain")).send(
        { from: "sender@example.com", to: ["a@example.com", "b@example.net"] },
        raw,
      );
      expect(outcomes.map((o) => [o.address, o.status, o.reply.code])).toEqual([
        ["a@example.com", "accepted", 250],
        ["b@example.net", "accepted", 250],
      ]);
      const [got] = await sink.waitFor(1);
      expect(got?.mailFrom).toBe("sender@example.com");
      expect(got?.rcptTo).toEqual(["a@example.com", "b@example.net"]);
      expect(got?.raw).toContain("\r\n.leading dot\r\n..two dots\r\n");
    });

    maybe("upgrades with STARTTLS and authenticates before sending", async () => {
      const sink = sinkApi("starttls");
      const outcomes = await make(target("starttls")).send(
        { from: "sender@example.com", to: ["a@example.com"] },
        message("starttls"),
      );
      expect(outcomes[0]?.status).toBe("accepted");
      const [got] = await sink.waitFor(1);
      expect(got?.secure).toBe(true);
      expect(got?.authUser).toBe(services().sinks.starttls.user);
    });

    maybe("speaks implicit TLS and authenticates", async () => {
      const sink = sinkApi("implicit");
      const outcomes = await make(target("implicit")).send(
        { from: "sender@example.com", to: ["a@example.com"] },
        message("implicit"),
      );
      expect(outcomes[0]?.status).toBe("accepted");
      const [got] = await sink.waitFor(1);
      expect(got?.secure).toBe(true);
      expect(got?.authUser).toBe(services().sinks.implicit.user);
    });

    maybe("refuses to send when STARTTLS is required but not offered", async () => {
      // The plain sink offers no STARTTLS: an smtp:// target must not fall back to clear text.
      const sink = sinkApi("plain");
      const t = parseSmtpUrl(`smtp://127.0.0.1:${services().sinks.plain.port}`);
      const outcomes = await make(t).send(
        { from: "sender@example.com", to: ["a@example.com"] },
        message("no tls"),
      );
      expect(outcomes[0]?.status).toBe("temporary");
      expect(await sink.messages()).toEqual([]);
    });

    maybe("keeps the message queued when the login is refused", async () => {
      const t = target("starttls", (u) => {
        u.password = "wrong-password";
      });
      const outcomes = await make(t).send(
        { from: "sender@example.com", to: ["a@example.com"] },
        message("bad login"),
      );
      expect(outcomes[0]?.status).toBe("temporary");
      expect(outcomes[0]?.reply.code).toBe(535);
    });

    maybe("reports a rejected recipient as permanent and delivers to the others", async () => {
      const sink = sinkApi("plain");
      await sink.rejectRecipient("b@example.com", 550, "5.1.1 No such user");
      const outcomes = await make(target("plain")).send(
        { from: "sender@example.com", to: ["a@example.com", "b@example.com", "c@example.com"] },
        message("partial"),
      );
      expect(outcomes.map((o) => [o.address, o.status])).toEqual([
        ["a@example.com", "accepted"],
        ["b@example.com", "permanent"],
        ["c@example.com", "accepted"],
      ]);
      const rejected = outcomes[1]?.reply;
      expect(rejected?.code).toBe(550);
      expect(rejected?.enhanced).toBe("5.1.1");
      const [got] = await sink.waitFor(1);
      expect(got?.rcptTo).toEqual(["a@example.com", "c@example.com"]);
    });

    maybe("reports a 451 for one recipient as temporary", async () => {
      const sink = sinkApi("plain");
      await sink.rejectRecipient("b@example.com", 451, "4.7.1 Try again later");
      const outcomes = await make(target("plain")).send(
        { from: "sender@example.com", to: ["a@example.com", "b@example.com"] },
        message("451"),
      );
      expect(outcomes.map((o) => o.status)).toEqual(["accepted", "temporary"]);
      expect(outcomes[1]?.reply).toMatchObject({ code: 451, enhanced: "4.7.1" });
    });

    maybe("reports every recipient rejected, each with its reply", async () => {
      const sink = sinkApi("plain");
      await sink.rejectRecipient("a@example.com", 550, "5.1.1 Unknown a");
      await sink.rejectRecipient("b@example.com", 452, "4.2.2 Mailbox full");
      const outcomes = await make(target("plain")).send(
        { from: "sender@example.com", to: ["a@example.com", "b@example.com"] },
        message("none"),
      );
      expect(outcomes.map((o) => [o.status, o.reply.code])).toEqual([
        ["permanent", 550],
        ["temporary", 452],
      ]);
      expect(await sink.messages()).toEqual([]);
    });

    maybe("classifies a 4xx after DATA as temporary and a 5xx as permanent", async () => {
      const sink = sinkApi("plain");
      await sink.failData(451, "4.3.0 Queue full", 1);
      const t = make(target("plain"));
      const first = await t.send(
        { from: "sender@example.com", to: ["a@example.com"] },
        message("data 451"),
      );
      expect(first[0]).toMatchObject({ status: "temporary", reply: { code: 451 } });
      await sink.failData(554, "5.6.0 Content rejected", 1);
      const second = await t.send(
        { from: "sender@example.com", to: ["a@example.com"] },
        message("data 554"),
      );
      expect(second[0]).toMatchObject({ status: "permanent", reply: { code: 554 } });
    });

    maybe("reports a server that is down as temporary, without a reply code", async () => {
      const sink = sinkApi("plain");
      await sink.down();
      try {
        const outcomes = await make(target("plain")).send(
          { from: "sender@example.com", to: ["a@example.com"] },
          message("down"),
        );
        expect(outcomes[0]?.status).toBe("temporary");
        expect(outcomes[0]?.reply.code).toBeNull();
        expect(outcomes[0]?.reply.text).toMatch(/ECONNREFUSED|refused/i);
      } finally {
        await sink.up();
      }
    });

    maybe("reuses one connection for consecutive messages", async () => {
      const sink = sinkApi("plain");
      const t = make(target("plain"));
      for (let i = 0; i < 3; i++) {
        const [o] = await t.send(
          { from: "sender@example.com", to: ["a@example.com"] },
          message(`reuse ${i}`),
        );
        expect(o?.status).toBe("accepted");
      }
      const got = await sink.waitFor(3);
      expect(new Set(got.map((m) => m.sessionId)).size).toBe(1);
    });

    maybe("carries non-ASCII headers and a large attachment intact", async () => {
      const sink = sinkApi("plain");
      const big = "A".repeat(76);
      const lines = Array.from({ length: 40_000 }, () => big).join("\r\n");
      const raw = message("=?UTF-8?B?w6nDqMOgIOKckw==?=", `${lines}\r\n`);
      const outcomes = await make(target("plain")).send(
        { from: "sender@example.com", to: ["a@example.com"] },
        raw,
      );
      expect(outcomes[0]?.status).toBe("accepted");
      const [got] = await sink.waitFor(1);
      expect(got?.raw.length).toBeGreaterThanOrEqual(raw.byteLength - 2);
      expect(got?.raw).toContain("Subject: =?UTF-8?B?w6nDqMOgIOKckw==?=");
    });
  });
}
