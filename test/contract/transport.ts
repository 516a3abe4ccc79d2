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

/** What a case may ask of the transport beyond the target. */
export interface MakeOptions {
  /** Overrides the factory's timeout (the stall cases use a short one). */
  timeoutMs?: number;
  /** The wait for the reply to the final dot (the data-timeout cases). */
  dataTimeoutMs?: number;
  /** The SASL mechanism to use, for the cases that check each one. */
  authMethod?: "PLAIN" | "LOGIN";
}

export interface TransportFactory {
  name: string;
  make: (target: SmtpTarget, options?: MakeOptions) => SmtpTransport;
  /** The EHLO name `make` configures; the sink records the one it hears. */
  ehloName: string;
  /**
   * The sink the cases without TLS use (default "plain", which offers PIPELINING; "serial" does
   * not, for a client's path that waits on every reply).
   */
  plain?: "plain" | "serial";
  /** Cases this transport cannot pass, each with the reason (shown in the test name). */
  skip?: { reason: string; tests: string[] }[];
}

const enc = new TextEncoder();

function message(subject: string, body = "Hello.\r\n", extra = ""): Uint8Array {
  return enc.encode(
    `From: sender@example.com\r\nTo: a@example.com\r\nSubject: ${subject}\r\nMessage-ID: <${crypto.randomUUID()}@example.com>\r\n${extra}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${body}`,
  );
}

/** A recipient no other test uses, so `sinkApi(...).messages({ to })` finds only this test's mail. */
function unique(tag: string): string {
  return `${tag}.${crypto.randomUUID().slice(0, 8)}@example.com`;
}

/** A message whose To header names `to`, with fixed Message-ID and Date, as the relay stores them. */
function addressed(to: string, subject: string, body = "Hello.\r\n", extra = ""): string {
  return `From: sender@example.com\r\nTo: ${to}\r\nSubject: ${subject}\r\nMessage-ID: <${crypto.randomUUID()}@example.com>\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\n${extra}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${body}`;
}

/** Waits until the sink saw the client close the stalled connection (it reports that a bit later). */
async function stallEnd(name: SinkName): Promise<number | null> {
  for (let i = 0; i < 40; i++) {
    const { stats } = await sinkApi(name).faults();
    const gaveUp = stats.stalls[0]?.clientGaveUpAfterMs;
    if (gaveUp !== null && gaveUp !== undefined) return gaveUp;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return null;
}

function target(name: SinkName, change: (url: URL) => void = () => {}): SmtpTarget {
  const url = new URL(services().sinks[name].url);
  change(url);
  return parseSmtpUrl(url.toString());
}

export function describeTransportContract(factory: TransportFactory): void {
  const PLAIN = factory.plain ?? "plain";
  const skipped = (test: string) => factory.skip?.find((s) => s.tests.includes(test))?.reason;
  const maybe = (test: string, fn: () => Promise<void>) => {
    const reason = skipped(test);
    // Only cases a factory lists with a written reason (test/workers/transport.test.ts) skip,
    // and the reason is part of the test's name, in CI too.
    if (reason) it.skip(`${test} (skipped: ${reason})`, fn);
    else it(test, fn);
  };

  describe(`SMTP transport contract: ${factory.name}`, () => {
    const open: SmtpTransport[] = [];
    const make = (t: SmtpTarget, options?: MakeOptions) => {
      const transport = factory.make(t, options);
      open.push(transport);
      return transport;
    };
    beforeEach(async () => {
      for (const name of [PLAIN, "starttls", "implicit"] as const) await sinkApi(name).reset();
    });
    afterEach(async () => {
      await Promise.all(open.splice(0).map((t) => t.close()));
    });

    maybe("delivers over plain SMTP with the exact envelope and body", async () => {
      const sink = sinkApi(PLAIN);
      const raw = message("plain", "line one\r\n.leading dot\r\n..two dots\r\n");
      const outcomes = await make(target(PLAIN)).send(
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
      const sink = sinkApi(PLAIN);
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
      const sink = sinkApi(PLAIN);
      await sink.rejectRecipient("b@example.com", 550, "5.1.1 No such user");
      const outcomes = await make(target(PLAIN)).send(
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
      const sink = sinkApi(PLAIN);
      await sink.rejectRecipient("b@example.com", 451, "4.7.1 Try again later");
      const outcomes = await make(target(PLAIN)).send(
        { from: "sender@example.com", to: ["a@example.com", "b@example.com"] },
        message("451"),
      );
      expect(outcomes.map((o) => o.status)).toEqual(["accepted", "temporary"]);
      expect(outcomes[1]?.reply).toMatchObject({ code: 451, enhanced: "4.7.1" });
    });

    maybe("treats a 552 to RCPT TO as temporary (RFC 5321 4.5.3.1.10), not a bounce", async () => {
      const sink = sinkApi(PLAIN);
      const a = unique("rcpt552-ok");
      const b = unique("rcpt552-full");
      await sink.rejectRecipient(b, 552, "5.2.2 Too many recipients or mailbox full");
      const outcomes = await make(target(PLAIN)).send(
        { from: "sender@example.com", to: [a, b] },
        enc.encode(addressed(a, "552 at rcpt")),
      );
      expect(outcomes.map((o) => [o.address, o.status])).toEqual([
        [a, "accepted"],
        [b, "temporary"],
      ]);
      expect(outcomes[1]?.reply).toMatchObject({ code: 552, enhanced: "5.2.2" });
      const [got] = await sink.waitFor(1, 10_000, { to: a });
      expect(got?.rcptTo).toEqual([a]);
    });

    maybe("refuses an empty recipient for good and still sends to the others", async () => {
      const sink = sinkApi(PLAIN);
      const to = unique("beside-empty");
      const outcomes = await make(target(PLAIN)).send(
        { from: "sender@example.com", to: ["", to] },
        enc.encode(addressed(to, "empty recipient")),
      );
      expect(outcomes.map((o) => [o.address, o.status])).toEqual([
        ["", "permanent"],
        [to, "accepted"],
      ]);
      const [got] = await sink.waitFor(1, 10_000, { to });
      expect(got?.rcptTo).toEqual([to]);
    });

    maybe("reports every recipient rejected, each with its reply", async () => {
      const sink = sinkApi(PLAIN);
      await sink.rejectRecipient("a@example.com", 550, "5.1.1 Unknown a");
      await sink.rejectRecipient("b@example.com", 452, "4.2.2 Mailbox full");
      const outcomes = await make(target(PLAIN)).send(
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
      const sink = sinkApi(PLAIN);
      await sink.failData(451, "4.3.0 Queue full", 1);
      const t = make(target(PLAIN));
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
      const sink = sinkApi(PLAIN);
      await sink.down();
      try {
        const outcomes = await make(target(PLAIN)).send(
          { from: "sender@example.com", to: ["a@example.com"] },
          message("down"),
        );
        expect(outcomes[0]?.status).toBe("temporary");
        expect(outcomes[0]?.reply.code).toBeNull();
        expect(outcomes[0]?.reply.text).toMatch(/ECONNREFUSED|refused|could not connect/i);
      } finally {
        await sink.up();
      }
    });

    maybe("reuses one connection for consecutive messages", async () => {
      const sink = sinkApi(PLAIN);
      const t = make(target(PLAIN));
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
      const sink = sinkApi(PLAIN);
      const big = "A".repeat(76);
      const lines = Array.from({ length: 40_000 }, () => big).join("\r\n");
      const raw = message("=?UTF-8?B?w6nDqMOgIOKckw==?=", `${lines}\r\n`);
      const outcomes = await make(target(PLAIN)).send(
        { from: "sender@example.com", to: ["a@example.com"] },
        raw,
      );
      expect(outcomes[0]?.status).toBe("accepted");
      const [got] = await sink.waitFor(1);
      expect(got?.raw.length).toBeGreaterThanOrEqual(raw.byteLength - 2);
      expect(got?.raw).toContain("Subject: =?UTF-8?B?w6nDqMOgIOKckw==?=");
    });

    maybe("sends the EHLO name it was configured with", async () => {
      const to = unique("ehlo");
      const outcomes = await make(target(PLAIN)).send(
        { from: "sender@example.com", to: [to] },
        enc.encode(addressed(to, "ehlo")),
      );
      expect(outcomes[0]?.status).toBe("accepted");
      const [got] = await sinkApi(PLAIN).waitFor(1, 10_000, { to });
      expect(got?.clientName).toBe(factory.ehloName);
    });

    for (const mechanism of ["PLAIN", "LOGIN"] as const) {
      maybe(`authenticates with AUTH ${mechanism} when told to`, async () => {
        const to = unique(mechanism.toLowerCase());
        const outcomes = await make(target("starttls"), { authMethod: mechanism }).send(
          { from: "sender@example.com", to: [to] },
          enc.encode(addressed(to, `auth ${mechanism}`)),
        );
        expect(outcomes[0]?.status).toBe("accepted");
        const [got] = await sinkApi("starttls").waitFor(1, 10_000, { to });
        expect(got?.authMethod).toBe(mechanism);
        expect(got?.authUser).toBe(services().sinks.starttls.user);
      });
    }

    maybe("keeps Bcc recipients in the envelope only, never in the delivered bytes", async () => {
      const sink = sinkApi(PLAIN);
      const to = unique("visible");
      const bcc = unique("hidden");
      const outcomes = await make(target(PLAIN)).send(
        { from: "sender@example.com", to: [to, bcc] },
        enc.encode(addressed(to, "bcc")),
      );
      expect(outcomes.map((o) => o.status)).toEqual(["accepted", "accepted"]);
      const delivered = [
        ...(await sink.waitFor(1, 10_000, { to })),
        ...(await sink.messages({ to: bcc })),
      ];
      expect(delivered.flatMap((m) => m.rcptTo)).toContain(bcc);
      for (const m of delivered) {
        expect(m.raw).not.toContain(bcc);
        expect(m.raw).not.toMatch(/^bcc:/im);
      }
    });

    maybe("never turns a CR LF encoded in a header into a header line", async () => {
      // What a decoded-and-recomposed subject would inject; the stored bytes must go as they are.
      const to = unique("crlf");
      const word = btoa(`Hi\r\nX-Injected: yes\r\nBcc: ${unique("injected")}`);
      const outcomes = await make(target(PLAIN)).send(
        { from: "sender@example.com", to: [to] },
        enc.encode(addressed(to, `=?UTF-8?B?${word}?=`)),
      );
      expect(outcomes[0]?.status).toBe("accepted");
      const [got] = await sinkApi(PLAIN).waitFor(1, 10_000, { to });
      expect(got?.raw).toContain(`\r\nSubject: =?UTF-8?B?${word}?=\r\n`);
      expect(got?.raw).not.toMatch(/^(X-Injected|Bcc):/im);
      expect(got?.rcptTo).toEqual([to]);
    });

    maybe("never sends an envelope address that carries CR or LF", async () => {
      const sink = sinkApi(PLAIN);
      const t = make(target(PLAIN));
      const good = unique("good");
      const evil = unique("smuggled");
      const raw = enc.encode(addressed(good, "envelope injection"));
      const badRecipient = await t.send(
        { from: "sender@example.com", to: [`${good}>\r\nRCPT TO:<${evil}`] },
        raw,
      );
      expect(badRecipient[0]?.status).not.toBe("accepted");
      const badSender = await t.send(
        { from: `sender@example.com>\r\nRCPT TO:<${evil}`, to: [good] },
        raw,
      );
      expect(badSender[0]?.status).not.toBe("accepted");
      expect(await sink.messages({ to: evil })).toEqual([]);
      expect(await sink.messages({ to: good })).toEqual([]);
    });

    maybe("sends lone dots and bare CR or LF as text, never as the end of the data", async () => {
      const to = unique("dots");
      const smuggled = unique("smuggled");
      // A bare LF or CR before ".\r\n" ends the data for some servers (SMTP smuggling): it must
      // go as CRLF with the dot doubled, so the text after it stays text.
      const body = `.\r\nbefore\r\n.\r\nafter\n.\r\nMAIL FROM:<x@example.com>\r\nRCPT TO:<${smuggled}>\r\nDATA\r\nsmuggled\r\nbare CR\r.\r\nend\r\n`;
      const outcomes = await make(target(PLAIN)).send(
        { from: "sender@example.com", to: [to] },
        enc.encode(addressed(to, "dots", body)),
      );
      expect(outcomes[0]?.status).toBe("accepted");
      const [got] = await sinkApi(PLAIN).waitFor(1, 10_000, { to });
      expect(got?.raw).toContain(
        `\r\n\r\n.\r\nbefore\r\n.\r\nafter\r\n.\r\nMAIL FROM:<x@example.com>\r\nRCPT TO:<${smuggled}>\r\nDATA\r\nsmuggled\r\nbare CR\r\n.\r\nend\r\n`,
      );
      expect(await sinkApi(PLAIN).messages({ to: smuggled })).toEqual([]);
    });

    maybe("carries 8-bit UTF-8 headers byte for byte, and a non-ASCII address", async () => {
      const id = crypto.randomUUID().slice(0, 8);
      const to = `zoë.${id}@example.com`;
      const text = `From: "Zoë Ångström" <sender@example.com>\r\nTo: "Ünïcödé" <${to}>\r\nSubject: Grüße ✓ 日本語\r\nMessage-ID: <${id}@example.com>\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nÄpfel und Öl.\r\n`;
      const outcomes = await make(target(PLAIN)).send(
        { from: "sender@example.com", to: [to] },
        enc.encode(text),
      );
      expect(outcomes[0]?.status).toBe("accepted");
      const [got] = await sinkApi(PLAIN).waitFor(1, 10_000, { to: id });
      expect(got?.rcptTo).toEqual([to]);
      expect(got?.raw).toBe(text);
    });

    maybe("waits for a slow but healthy server", async () => {
      const sink = sinkApi(PLAIN);
      await sink.setFaults({ rules: [], latencyMs: 1_500 });
      const to = unique("slow");
      const outcomes = await make(target(PLAIN), { timeoutMs: 5_000 }).send(
        { from: "sender@example.com", to: [to] },
        enc.encode(addressed(to, "slow")),
      );
      expect(outcomes[0]?.status).toBe("accepted");
    });

    maybe(
      "waits past the timeout for the reply to the final dot, within the data timeout",
      async () => {
        // The sink records the message, then answers the final dot 2 s later: longer than the 1 s
        // timeout, within the 4 s data timeout. Giving up would send the message a second time.
        const sink = sinkApi(PLAIN);
        await sink.setFaults({ rules: [], latencyMs: 2_000 });
        const to = unique("slow-dot");
        const outcomes = await make(target(PLAIN), {
          timeoutMs: 1_000,
          dataTimeoutMs: 4_000,
        }).send(
          { from: "sender@example.com", to: [to] },
          enc.encode(addressed(to, "slow final dot")),
        );
        expect(outcomes[0]).toMatchObject({ status: "accepted", reply: { code: 250 } });
        const got = await sink.messages({ to });
        expect(got).toHaveLength(1);
        // The client was still there for the 250.
        expect(got[0]?.unanswered).toBeUndefined();
      },
    );

    maybe(
      "gives up on the reply to the final dot after the data timeout, as temporary",
      async () => {
        const sink = sinkApi(PLAIN);
        await sink.setFaults({ rules: [], latencyMs: 5_000 });
        const to = unique("silent-dot");
        const started = Date.now();
        const outcomes = await make(target(PLAIN), {
          timeoutMs: 1_000,
          dataTimeoutMs: 2_000,
        }).send(
          { from: "sender@example.com", to: [to] },
          enc.encode(addressed(to, "no answer to the final dot")),
        );
        const waited = Date.now() - started;
        expect(outcomes[0]).toMatchObject({ status: "temporary", reply: { code: null } });
        // It waited the data timeout, not the 1 s timeout, and not the server's 5 s.
        expect(waited).toBeGreaterThanOrEqual(1_900);
        expect(waited).toBeLessThan(4_500);
      },
    );

    for (const stage of ["mail", "data"] as const) {
      maybe(
        `gives up on a server that stalls at ${stage} past the timeout, as temporary`,
        async () => {
          const sink = sinkApi(PLAIN);
          await sink.setFaults({ rules: [{ at: stage, action: "stall", ms: 5_000, limit: 1 }] });
          const to = unique(`stall-${stage}`);
          const started = Date.now();
          const outcomes = await make(target(PLAIN), { timeoutMs: 1_000 }).send(
            { from: "sender@example.com", to: [to] },
            enc.encode(addressed(to, "stall")),
          );
          expect(Date.now() - started).toBeLessThan(4_000);
          expect(outcomes[0]).toMatchObject({ status: "temporary", reply: { code: null } });
          // The client hung up itself, long before the sink's 5 s stall ended.
          expect(await stallEnd(PLAIN)).toBeLessThan(4_000);
        },
      );
    }

    maybe("gives up on a server that stalls before its greeting, as temporary", async () => {
      const sink = sinkApi(PLAIN);
      await sink.setFaults({ rules: [{ at: "connect", action: "stall", ms: 5_000, limit: 1 }] });
      const to = unique("stall-greeting");
      const started = Date.now();
      const outcomes = await make(target(PLAIN), { timeoutMs: 1_000 }).send(
        { from: "sender@example.com", to: [to] },
        enc.encode(addressed(to, "stall")),
      );
      expect(Date.now() - started).toBeLessThan(4_000);
      expect(outcomes[0]).toMatchObject({ status: "temporary", reply: { code: null } });
      expect(await stallEnd(PLAIN)).toBeLessThan(4_000);
    });

    for (const stage of ["mail", "data"] as const) {
      maybe(
        `reports a connection dropped at ${stage} as temporary, then sends the next message`,
        async () => {
          const sink = sinkApi(PLAIN);
          // At DATA, after the first 1 KiB of a 64 KiB message: the connection dies mid-message.
          await sink.setFaults({
            rules: [{ at: stage, action: "drop", afterBytes: 1024, limit: 1 }],
          });
          const t = make(target(PLAIN));
          const lost = unique(`drop-${stage}`);
          const first = await t.send(
            { from: "sender@example.com", to: [lost] },
            enc.encode(addressed(lost, "dropped", `${"x".repeat(76)}\r\n`.repeat(840))),
          );
          expect(first[0]).toMatchObject({ status: "temporary", reply: { code: null } });
          const to = unique(`after-drop-${stage}`);
          const second = await t.send(
            { from: "sender@example.com", to: [to] },
            enc.encode(addressed(to, "after the drop")),
          );
          expect(second[0]?.status).toBe("accepted");
          expect(await sink.messages({ to: lost })).toEqual([]);
          expect((await sink.faults()).stats.drops).toBe(1);
        },
      );
    }

    maybe("reports a connection dropped before the greeting as temporary", async () => {
      const sink = sinkApi(PLAIN);
      await sink.setFaults({ rules: [{ at: "connect", action: "drop", limit: 1 }] });
      const t = make(target(PLAIN));
      const lost = unique("drop-connect");
      const first = await t.send(
        { from: "sender@example.com", to: [lost] },
        enc.encode(addressed(lost, "dropped")),
      );
      // Temporary, or delivered once over another connection (nodemailer's pool retries a
      // connection that died before it was used); never a bounce.
      const delivered = await sink.messages({ to: lost });
      if (first[0]?.status === "accepted") expect(delivered).toHaveLength(1);
      else expect(first[0]).toMatchObject({ status: "temporary", reply: { code: null } });
      const to = unique("after-drop-connect");
      const second = await t.send(
        { from: "sender@example.com", to: [to] },
        enc.encode(addressed(to, "after the drop")),
      );
      expect(second[0]?.status).toBe("accepted");
    });

    maybe("sends on a fresh connection when the server closed the pooled one", async () => {
      const sink = sinkApi(PLAIN);
      const t = make(target(PLAIN));
      const first = unique("pooled");
      expect(
        (await t.send({ from: "sender@example.com", to: [first] }, message("one")))[0]?.status,
      ).toBe("accepted");
      // A restart drops every open connection, as an idle timeout on the server would.
      await sink.down();
      await sink.up();
      const second = unique("pooled-again");
      const outcomes = await t.send(
        { from: "sender@example.com", to: [second] },
        enc.encode(addressed(second, "after restart")),
      );
      expect(outcomes[0]?.status).toBe("accepted");
      const [a] = await sink.messages({ to: first });
      const [b] = await sink.waitFor(1, 10_000, { to: second });
      expect(b?.sessionId).not.toBe(a?.sessionId);
    });
  });
}
