/**
 * Failover between smart hosts (src/smtp/failover.ts): the rule that tells a failed session from a
 * verdict on the message, the rest a failed host gets, and the relay (the real Workers entry) with
 * two real sinks, one of them down, refusing a recipient, or answering 421 at the greeting.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createFailoverTransport, hostLabel, isSessionFailure } from "../../src/smtp/failover.ts";
import { errorOutcome } from "../../src/smtp/nodemailer.ts";
import type { RecipientOutcome, SmtpTransport } from "../../src/smtp/transport.ts";
import { nodemailerError } from "../support/nodemailer-error.ts";
import { redisSkipReason, services, sinkApi } from "../support/services.ts";
import { call, type TestEnv, testEnv, upstashEnv } from "../support/worker.ts";

const temp = (code: number | null, text = "x"): RecipientOutcome => ({
  address: "a@example.com",
  status: "temporary",
  reply: { code, text },
});

describe("isSessionFailure", () => {
  it("fails over when the host never took up the session", () => {
    // As nodemailer reports them (errorOutcome): refused, timed out, TLS, a 421 or 554 greeting,
    // a refused login.
    for (const err of [
      nodemailerError({ code: "ECONNECTION", command: "CONN" }),
      nodemailerError({ code: "ETIMEDOUT", command: "CONN" }),
      nodemailerError({ code: "ETLS", command: "STARTTLS" }),
      nodemailerError({
        code: "EPROTOCOL",
        command: "CONN",
        response: "421 4.3.2 try another host",
      }),
      nodemailerError({
        code: "EPROTOCOL",
        command: "CONN",
        response: "554 5.7.1 no service for you",
      }),
      nodemailerError({
        code: "EAUTH",
        command: "AUTH PLAIN",
        response: "535 5.7.8 bad credentials",
      }),
    ]) {
      const outcomes = ["a@example.com", "b@example.com"].map((a) => errorOutcome(a, err));
      expect(isSessionFailure(outcomes), `${err.code} ${err.response ?? ""}`).toBe(true);
    }
    expect(isSessionFailure([temp(421, "421 4.4.2 closing"), temp(null)])).toBe(true);
  });

  it("keeps a host's verdict on a recipient or the message with that host", () => {
    for (const [response, command] of [
      ["550 5.1.1 no such user", "RCPT TO"],
      ["450 4.2.1 greylisted", "RCPT TO"],
      ["552 5.2.2 mailbox full", "RCPT TO"],
      ["451 4.7.1 rate limited", "MAIL FROM"],
      ["554 5.6.0 spam", "DATA"],
      ["503 5.5.1 bad sequence", "DATA"],
    ] as const) {
      const outcomes = [
        errorOutcome("a@example.com", nodemailerError({ code: "EENVELOPE", command, response })),
      ];
      expect(isSessionFailure(outcomes), response).toBe(false);
    }
    // One recipient accepted or refused for good: the session worked.
    const accepted: RecipientOutcome = {
      address: "b@example.com",
      status: "accepted",
      reply: { code: 250, text: "250 ok" },
    };
    expect(isSessionFailure([temp(null), accepted])).toBe(false);
    // An address the transport itself refused (no reply, permanent) fails the same everywhere.
    expect(isSessionFailure([{ ...temp(null), status: "permanent" }, temp(null)])).toBe(false);
    expect(isSessionFailure([])).toBe(false);
  });
});

/** A transport that answers from a script and counts its sends (the rule's inputs, no network). */
function scripted(answer: () => RecipientOutcome["status"] | "down"): SmtpTransport & {
  sends: number;
} {
  const t = {
    sends: 0,
    async send(envelope: { to: string[] }): Promise<RecipientOutcome[]> {
      t.sends++;
      const a = answer();
      return envelope.to.map((address) =>
        a === "down"
          ? { address, status: "temporary" as const, reply: { code: null, text: "ECONNREFUSED" } }
          : { address, status: a, reply: { code: a === "accepted" ? 250 : 550, text: a } },
      );
    },
    async close() {},
  };
  return t;
}

describe("failover transport", () => {
  const envelope = { from: "s@example.com", to: ["r@example.com"] };
  const raw = new Uint8Array([65]);

  it("rests a host that failed its session, then tries it again", async () => {
    let clock = 1_000;
    let firstUp = false;
    const first = scripted(() => (firstUp ? "accepted" : "down"));
    const second = scripted(() => "accepted");
    const t = createFailoverTransport(
      [
        { label: "a:25", transport: first },
        { label: "b:25", transport: second },
      ],
      { restMs: 30_000, now: () => clock },
    );
    expect((await t.send(envelope, raw))[0]).toMatchObject({ status: "accepted", host: "b:25" });
    expect([first.sends, second.sends]).toEqual([1, 1]);
    // Within the rest, the dead host costs later sends nothing.
    clock += 29_000;
    await t.send(envelope, raw);
    expect([first.sends, second.sends]).toEqual([1, 2]);
    // After it, the first host is tried first again.
    firstUp = true;
    clock += 1_000;
    expect((await t.send(envelope, raw))[0]).toMatchObject({ host: "a:25" });
    expect([first.sends, second.sends]).toEqual([2, 2]);
  });

  it("does not send a refused message to the next host", async () => {
    const first = scripted(() => "permanent");
    const second = scripted(() => "accepted");
    const t = createFailoverTransport([
      { label: "a:25", transport: first },
      { label: "b:25", transport: second },
    ]);
    expect((await t.send(envelope, raw))[0]).toMatchObject({ status: "permanent", host: "a:25" });
    expect(second.sends).toBe(0);
  });

  it("with every host resting, tries only the one that failed longest ago", async () => {
    let clock = 0;
    const first = scripted(() => "down");
    const second = scripted(() => "down");
    const t = createFailoverTransport(
      [
        { label: "a:25", transport: first },
        { label: "b:25", transport: second },
      ],
      { now: () => clock++ },
    );
    expect((await t.send(envelope, raw))[0]).toMatchObject({ status: "temporary", host: "b:25" });
    expect([first.sends, second.sends]).toEqual([1, 1]);
    expect((await t.send(envelope, raw))[0]).toMatchObject({ host: "a:25" });
    expect([first.sends, second.sends]).toEqual([2, 1]);
  });

  it("labels hosts host:port, IPv6 literals in brackets, without credentials", () => {
    expect(hostLabel({ host: "smtp.example.com", port: 465 })).toBe("smtp.example.com:465");
    expect(hostLabel({ host: "::1", port: 25 })).toBe("[::1]:25");
  });
});

for (const client of ["nodemailer", "worker-mailer"] as const)
  describe(`the relay with two smart hosts (${client})`, () => {
    const plain = sinkApi("plain");
    const serial = sinkApi("serial");
    const url = (name: "plain" | "serial") =>
      `smtp+insecure://127.0.0.1:${services().sinks[name].port}`;
    const label = (name: "plain" | "serial") => `127.0.0.1:${services().sinks[name].port}`;

    beforeEach(async () => {
      await plain.reset();
      await serial.reset();
    });
    afterEach(async () => {
      // reset() also listens again after down() and clears the fault plan.
      await plain.reset();
      await serial.reset();
    });

    async function send(env: TestEnv, to: string[]) {
      const res = await call(env, "POST", "/emails", {
        json: { from: "sender@example.com", to, subject: "failover", text: "hello" },
      });
      expect(res.status).toBe(200);
      return (await call(env, "GET", `/emails/${res.body.id}`)).body;
    }

    it("delivers through the second host when the first is down, and records that host", async () => {
      const to = `down-first-${crypto.randomUUID().slice(0, 8)}@example.com`;
      await serial.down();
      const env = testEnv({ SMTP_CLIENT: client, SMTP_URL: `${url("serial")}, ${url("plain")}` });
      const email = await send(env, [to]);
      expect(await plain.messages({ to })).toHaveLength(1);
      expect(email.last_event).toBe("delivered");
      expect(email.delivery.history).toEqual([
        expect.objectContaining({ delivered: 1, host: label("plain") }),
      ]);
    });

    it("sends through the second host when the first answers 421 at the greeting", async () => {
      const to = `greeting-${crypto.randomUUID().slice(0, 8)}@example.com`;
      await serial.setFaults({ rules: [{ at: "connect", action: "reply", code: 421 }] });
      const env = testEnv({ SMTP_CLIENT: client, SMTP_URL: `${url("serial")} ${url("plain")}` });
      const email = await send(env, [to]);
      expect((await serial.faults()).stats.hits[0]).toBeGreaterThanOrEqual(1);
      expect(await plain.messages({ to })).toHaveLength(1);
      expect(email.delivery.history[0]).toMatchObject({ delivered: 1, host: label("plain") });
    });

    it("keeps a recipient the first host refused with 550 refused, without trying the second", async () => {
      const tag = crypto.randomUUID().slice(0, 8);
      const refused = `refused-${tag}@example.com`;
      await plain.rejectRecipient(refused, 550, "5.1.1 no such user");
      const env = testEnv({ SMTP_CLIENT: client, SMTP_URL: `${url("plain")},${url("serial")}` });
      // The only recipient: every outcome is a refusal, and still none goes to the second host.
      const email = await send(env, [refused]);
      expect(await serial.messages({ to: tag })).toEqual([]);
      expect(email.last_event).toBe("bounced");
      expect(email.delivery.recipients[0]).toMatchObject({
        status: "failed",
        reply: { code: 550, enhanced: "5.1.1" },
      });
      expect(email.delivery.history[0]).toMatchObject({ failed: 1, host: label("plain") });
    });

    it("leaves the message deferred when both hosts are down, naming the last one tried", async () => {
      const to = `both-down-${crypto.randomUUID().slice(0, 8)}@example.com`;
      await serial.down();
      await plain.down();
      const env = testEnv({ SMTP_CLIENT: client, SMTP_URL: `${url("serial")}, ${url("plain")}` });
      const email = await send(env, [to]);
      expect(email.last_event).toBe("delivery_delayed");
      expect(email.delivery.recipients[0]).toMatchObject({
        status: "pending",
        reply: { code: null },
      });
      expect(email.delivery.history[0]).toMatchObject({ deferred: 1, host: label("plain") });
      expect(email.delivery.next_attempt_at).not.toBeNull();
    });

    it("records the host of a single smart host too", async () => {
      const to = `single-${crypto.randomUUID().slice(0, 8)}@example.com`;
      const email = await send(testEnv({ SMTP_CLIENT: client }), [to]);
      expect(email.delivery.history[0]).toMatchObject({ delivered: 1, host: label("plain") });
    });
  });

describe.skipIf(Boolean(redisSkipReason()))(
  `the relay with SMTP_ROUTES${redisSkipReason() ? ` (skipped: ${redisSkipReason()})` : ""}`,
  () => {
    const plain = sinkApi("plain");
    const serial = sinkApi("serial");
    const port = (name: "plain" | "serial") => services().sinks[name].port;

    beforeEach(async () => {
      await plain.reset();
      await serial.reset();
    });

    it("sends a routed sender domain and a routed key to their own smart host, the rest to SMTP_URL", async () => {
      const tag = crypto.randomUUID().slice(0, 8);
      // The key's id must be known before SMTP_ROUTES can name it: it is made through a relay
      // without routes, on the Upstash store the routed relay then shares (same key prefix).
      const base = upstashEnv();
      const created = await call(base, "POST", "/api-keys", {
        json: { name: "routed", permission: "sending_access" },
      });
      expect(created.status).toBe(201);
      const env = {
        ...base,
        SMTP_ROUTES: `routed.test=smtp+insecure://127.0.0.1:${port("serial")}?connections=1; key:${created.body.id}=smtp+insecure://127.0.0.1:${port("serial")}`,
      };
      const send = async (from: string, to: string, token?: string) => {
        const res = await call(env, "POST", "/emails", {
          json: { from, to: [to], subject: "routes", text: "hello" },
          ...(token ? { token } : {}),
        });
        expect(res.status, JSON.stringify(res.body)).toBe(200);
        return (await call(env, "GET", `/emails/${res.body.id}`)).body;
      };
      const byDomain = await send("app@Routed.test", `domain-${tag}@example.com`);
      const byKey = await send("app@example.com", `key-${tag}@example.com`, created.body.token);
      const other = await send("app@example.com", `other-${tag}@example.com`);
      expect((await serial.messages({ to: tag })).map((m) => m.rcptTo[0]).sort()).toEqual([
        `domain-${tag}@example.com`,
        `key-${tag}@example.com`,
      ]);
      expect((await plain.messages({ to: tag })).map((m) => m.rcptTo[0])).toEqual([
        `other-${tag}@example.com`,
      ]);
      expect(byDomain.delivery.history[0].host).toBe(`127.0.0.1:${port("serial")}`);
      expect(byKey.delivery.history[0].host).toBe(`127.0.0.1:${port("serial")}`);
      expect(other.delivery.history[0].host).toBe(`127.0.0.1:${port("plain")}`);
    });
  },
);
