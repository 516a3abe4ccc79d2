/**
 * The worker-mailer transport beyond the shared contract (test/workers/transport.test.ts), and
 * worker-mailer 1.2.1's own defects, shown through its public API against the real sinks.
 *
 * The defect cases assert upstream's behaviour as it is today. When one fails, worker-mailer
 * changed: re-check the matching workaround in src/smtp/worker-mailer/ and the skips in
 * transport.test.ts. The ones that would spin at 100% CPU (and hang the whole suite) never run.
 */
import { afterEach, describe, expect, it } from "vitest";
import { LogLevel, WorkerMailer, type WorkerMailerOptions } from "worker-mailer";
import type { SmtpTransport } from "../../src/smtp/transport.ts";
import { parseSmtpUrl, type SmtpTarget } from "../../src/smtp/url.ts";
import { workerMailerInternals } from "../../src/smtp/worker-mailer/setup.ts";
import { createWorkerMailerTransport } from "../../src/smtp/worker-mailer/transport.ts";
import { dataBytes, envelopeProblem } from "../../src/smtp/worker-mailer/wire.ts";
import { services, sinkApi } from "../support/services.ts";
import { call, email, testEnv } from "../support/worker.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function unique(tag: string): string {
  return `${tag}.${crypto.randomUUID().slice(0, 8)}@example.com`;
}

function stored(to: string, subject: string): Uint8Array {
  return enc.encode(
    `From: sender@example.com\r\nTo: ${to}\r\nSubject: ${subject}\r\nMessage-ID: <${crypto.randomUUID()}@example.com>\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello.\r\n`,
  );
}

const plainTarget = (): SmtpTarget => parseSmtpUrl(services().sinks.plain.url);

describe("worker-mailer transport", () => {
  const open: SmtpTransport[] = [];
  const make = (maxConnections = 1) => {
    const t = createWorkerMailerTransport({
      target: plainTarget(),
      ehloName: "relay.test",
      timeoutMs: 10_000,
      maxConnections,
    });
    open.push(t);
    return t;
  };
  afterEach(async () => {
    await Promise.all(open.splice(0).map((t) => t.close()));
  });

  it("refuses a CR LF envelope address for that recipient only; the others are delivered", async () => {
    const sink = sinkApi("plain");
    const a = unique("a");
    const c = unique("c");
    const evil = unique("evil");
    const bad = `${unique("b")}>\r\nRCPT TO:<${evil}`;
    const outcomes = await make().send(
      { from: "sender@example.com", to: [a, bad, c] },
      stored(a, "per recipient"),
    );
    expect(outcomes.map((o) => [o.address, o.status, o.reply.code])).toEqual([
      [a, "accepted", 250],
      [bad, "permanent", null],
      [c, "accepted", 250],
    ]);
    expect(outcomes[1]?.reply.text).toMatch(/line break/);
    const [got] = await sink.waitFor(1, 10_000, { to: a });
    expect(got?.rcptTo).toEqual([a, c]);
    expect(await sink.messages({ to: evil })).toEqual([]);
  });

  it("sends the stored bytes unchanged on every attempt (Message-ID and Date included)", async () => {
    const sink = sinkApi("plain");
    const to = unique("retry");
    const raw = stored(to, "same bytes");
    const t = make();
    for (let i = 0; i < 2; i++) {
      expect((await t.send({ from: "sender@example.com", to: [to] }, raw))[0]?.status).toBe(
        "accepted",
      );
    }
    const got = await sink.waitFor(2, 10_000, { to });
    expect(got.map((m) => m.raw)).toEqual([dec.decode(raw), dec.decode(raw)]);
  });

  it("opens at most maxConnections sessions for concurrent sends", async () => {
    const sink = sinkApi("plain");
    const tag = crypto.randomUUID().slice(0, 8);
    const t = make(2);
    const sends = Array.from({ length: 6 }, (_, i) => `c${i}.${tag}@example.com`).map((to) =>
      t.send({ from: "sender@example.com", to: [to] }, stored(to, "concurrent")),
    );
    const outcomes = (await Promise.all(sends)).flat();
    expect(outcomes.every((o) => o.status === "accepted")).toBe(true);
    const got = await sink.waitFor(6, 10_000, { to: tag });
    expect(new Set(got.map((m) => m.sessionId)).size).toBeLessThanOrEqual(2);
  });

  it("dot-stuffs and makes every line end CRLF, ending with the lone dot", () => {
    const out = (text: string) => dec.decode(dataBytes(enc.encode(text)));
    expect(out("")).toBe(".\r\n");
    expect(out(".a\r\nb")).toBe("..a\r\nb\r\n.\r\n");
    expect(out("a\n.\r\nb\r.\rc\r\n")).toBe("a\r\n..\r\nb\r\n..\r\nc\r\n.\r\n");
    expect(out("a\r\n\r\n")).toBe("a\r\n\r\n.\r\n");
  });

  it("lets no control character, space or angle bracket into a command line", () => {
    expect(envelopeProblem("a@example.com", false)).toBeUndefined();
    expect(envelopeProblem("", true)).toBeUndefined();
    expect(envelopeProblem("", false)).toBe("an empty address");
    for (const bad of ["a@x.com\r\n", "a@x.com\n", "a\u0000@x.com", "a b@x.com", "a>@x.com"]) {
      expect(envelopeProblem(bad, false)).toBeDefined();
    }
  });

  it("names the missing worker-mailer internals instead of misbehaving after an update", () => {
    expect(() => workerMailerInternals({})).toThrow(
      /written against 1\.2\.1\): missing waitForSocketConnected, greet, ehlo, tls, auth, parseCapabilities, socket, reader, writer, supportsStartTls/,
    );
  });
});

describe("the relay with SMTP_CLIENT=worker-mailer", () => {
  it("delivers a JSON email at once: Bcc in the envelope only, each recipient reported", async () => {
    const sink = sinkApi("plain");
    const ann = unique("ann");
    const bad = unique("bad");
    const bob = unique("bob");
    await sink.rejectRecipient(bad, 550, "5.1.1 No such user");
    const env = testEnv({ SMTP_CLIENT: "worker-mailer" });
    const res = await call(env, "POST", "/emails", {
      json: email({
        from: "Zoë <sender@example.com>",
        to: [ann, bad],
        bcc: [bob],
        subject: "Grüße ✓",
        attachments: [{ filename: "a.txt", content: btoa("attached") }],
      }),
    });
    expect(res.status).toBe(200);
    const id = res.body.id as string;
    const [got] = await sink.waitFor(1, 10_000, { to: ann });
    expect(got?.rcptTo).toEqual([ann, bob]);
    expect(got?.raw).not.toContain(bob);
    expect(got?.raw).not.toMatch(/^bcc:/im);
    expect(got?.raw).toContain(`Message-ID: <${id}@example.com>`);
    const view = await call(env, "GET", `/emails/${id}`);
    expect(view.body.last_event).toBe("bounced");
    expect(
      view.body.delivery.recipients.map((r: { status: string; reply: { code: number } }) => [
        r.status,
        r.reply.code,
      ]),
    ).toEqual([
      ["delivered", 250],
      ["failed", 550],
      ["delivered", 250],
    ]);
  });
});

describe("worker-mailer 1.2.1 defects, through its own API", () => {
  const plainOptions = (): WorkerMailerOptions => ({
    host: "127.0.0.1",
    port: services().sinks.plain.port,
    logLevel: LogLevel.NONE,
    socketTimeoutMs: 5_000,
  });
  const starttls = () => services().sinks.starttls;

  it("still writes a BCC: header naming every Bcc recipient (the transport never hands it a message)", async () => {
    const to = unique("to");
    const bcc = unique("bcc");
    await WorkerMailer.send(plainOptions(), {
      from: "sender@example.com",
      to,
      bcc,
      subject: "bcc",
      text: "Hello.",
    });
    const [got] = await sinkApi("plain").waitFor(1, 10_000, { to: bcc });
    expect(got?.raw).toMatch(new RegExp(`^BCC: ${bcc.replaceAll(".", "\\.")}\\r$`, "m"));
  });

  it("still writes header values raw: a subject with CR LF injects a header (the transport sends stored bytes)", async () => {
    const to = unique("crlf");
    await WorkerMailer.send(plainOptions(), {
      from: "sender@example.com",
      to,
      subject: "Hi\r\nX-Injected: yes",
      text: "Hello.",
    });
    const [got] = await sinkApi("plain").waitFor(1, 10_000, { to });
    expect(got?.raw).toMatch(/^X-Injected: yes\r$/m);
  });

  it("still says EHLO 127.0.0.1 whatever the host (nothing in the transport can change it)", async () => {
    const to = unique("ehlo");
    await WorkerMailer.send(plainOptions(), {
      from: "sender@example.com",
      to,
      subject: "ehlo",
      text: "Hello.",
    });
    const [got] = await sinkApi("plain").waitFor(1, 10_000, { to });
    expect(got?.clientName).toBe("127.0.0.1");
  });

  it("still gives up at the first refused RCPT, so later recipients get nothing (the transport sends each RCPT itself)", async () => {
    const sink = sinkApi("plain");
    const a = unique("a");
    const b = unique("b");
    const c = unique("c");
    await sink.rejectRecipient(b, 550, "5.1.1 No such user");
    const mailer = await WorkerMailer.connect(plainOptions());
    try {
      await expect(
        mailer.send({ from: "sender@example.com", to: [a, b, c], subject: "x", text: "x" }),
      ).rejects.toThrow(/550 5\.1\.1/);
    } finally {
      await mailer.close();
    }
    expect(await sink.messages({ to: c })).toEqual([]);
  });

  it("still ignores responseTimeoutMs: socketTimeoutMs times every reply (the transport times its own reads)", async () => {
    const mailer = await WorkerMailer.connect({
      ...plainOptions(),
      socketTimeoutMs: 5_678,
      responseTimeoutMs: 1_234,
    });
    try {
      expect((mailer as unknown as { responseTimeoutMs: number }).responseTimeoutMs).toBe(5_678);
    } finally {
      await mailer.close();
    }
  });

  it("still refuses to go on without credentials when the server offers AUTH (the transport skips AUTH then)", async () => {
    await expect(
      WorkerMailer.connect({ ...plainOptions(), port: starttls().port }),
    ).rejects.toThrow(/requires authentication, but no credentials/);
  });

  it("still cannot log in without an explicit authType (the transport always passes one)", async () => {
    await expect(
      WorkerMailer.connect({
        ...plainOptions(),
        port: starttls().port,
        credentials: { username: starttls().user ?? "", password: starttls().pass ?? "" },
      }),
    ).rejects.toThrow(/No supported auth method found/);
  });

  it("still goes on in clear text when STARTTLS is not offered (the transport stops before AUTH)", async () => {
    const to = unique("cleartext");
    // startTls defaults to true: it asked for TLS, the plain sink has none, and it sends anyway.
    await WorkerMailer.send(plainOptions(), {
      from: "sender@example.com",
      to,
      subject: "clear",
      text: "Hello.",
    });
    const [got] = await sinkApi("plain").waitFor(1, 10_000, { to });
    expect(got?.secure).toBe(false);
  });

  it("still encodes credentials with btoa, which throws on non-Latin-1 text (the transport passes UTF-8 bytes)", async () => {
    await expect(
      WorkerMailer.connect({
        ...plainOptions(),
        port: starttls().port,
        credentials: { username: starttls().user ?? "", password: "pässwörd ✓" },
        authType: "plain",
      }),
    ).rejects.toThrow();
  });

  it.skip("spins at 100% CPU forever when the server drops the connection during setup (skipped: its read() loops on {done: true} and no timer can interrupt it; running it hangs the suite)", async () => {
    await sinkApi("plain").setFaults({ rules: [{ at: "connect", action: "drop", limit: 1 }] });
    await expect(WorkerMailer.connect(plainOptions())).rejects.toThrow();
  });

  it.skip("spins at 100% CPU when a server that let a setup read time out then closes (skipped: the timed-out read stays pending, workerd's releaseLock() cannot cancel it, and it loops on {done: true}; running it hangs the suite)", async () => {
    await sinkApi("plain").setFaults({
      rules: [{ at: "connect", action: "stall", ms: 2_000, limit: 1 }],
    });
    await expect(WorkerMailer.connect({ ...plainOptions(), socketTimeoutMs: 500 })).rejects.toThrow(
      /Timeout/,
    );
    await new Promise((resolve) => setTimeout(resolve, 3_000));
  });

  it.skip("spins at 100% CPU when close() runs on a connection the server already dropped (skipped: close() reads the QUIT reply with the same read loop; running it hangs the suite; the transport never calls close())", async () => {
    const mailer = await WorkerMailer.connect(plainOptions());
    await sinkApi("plain").down();
    await sinkApi("plain").up();
    await mailer.close();
  });
});
