/**
 * The SMTP submission listener with real clients: nodemailer as an app uses it and Python's
 * smtplib, against the relay in workerd on real Redis (through the Upstash gateway), delivering
 * onward to a real SMTP sink. The listener runs in this process and reaches the relay over HTTP,
 * as it runs beside a Worker deployment.
 */
import { execFile, execFileSync, spawn } from "node:child_process";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import nodemailer from "nodemailer";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { makeTestCertificates } from "../../dev/test-ca.ts";
import { AuthLockout } from "../../src/submission/limits.ts";
import type { SubmissionListener } from "../../src/submission/listener.ts";
import { authenticateClient } from "../../src/submission/session.ts";
import { sessionCookie } from "../support/dashboard.ts";
import { type RelayWorker, startRelayWorker } from "../support/harness.ts";
import { postfixSkipReason, startPostfixRelayhost } from "../support/postfix-relayhost.ts";
import { gatewayApi, redisSkipReason, services, sinkApi } from "../support/services.ts";
import { converse, plain, startListener } from "../support/submission.ts";

const run = promisify(execFile);
const ADMIN = `smtp-admin-${crypto.randomUUID()}`;
const PREFIX = `smtp:${crypto.randomUUID()}:`;
const skip = redisSkipReason();
const tag = () => crypto.randomUUID().slice(0, 8);
const noPostfix = postfixSkipReason();
const hasSwaks = (() => {
  try {
    execFileSync("swaks", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

describe("AUTH before TLS", () => {
  it("is refused with 538 from any address but loopback, before the relay is asked", async () => {
    let asked = 0;
    const relay = async () => {
      asked++;
      return new Response("{}", { status: 500 });
    };
    const input = { method: "PLAIN", username: "resend", password: "re_x", secure: false, now: 0 };
    await expect(
      authenticateClient(relay, new AuthLockout(), { ...input, ip: "192.0.2.10" }),
    ).rejects.toMatchObject({
      responseCode: 538,
      message: "5.7.11 Encryption required: send STARTTLS first",
    });
    await expect(
      authenticateClient(relay, new AuthLockout(), { ...input, ip: "::ffff:198.51.100.7" }),
    ).rejects.toMatchObject({ responseCode: 538 });
    expect(asked).toBe(0);
    // Over TLS, or from this machine, the relay is asked (and its 500 is a temporary failure).
    await expect(
      authenticateClient(relay, new AuthLockout(), { ...input, ip: "192.0.2.10", secure: true }),
    ).rejects.toMatchObject({ responseCode: 454 });
    await expect(
      authenticateClient(relay, new AuthLockout(), { ...input, ip: "127.0.0.1" }),
    ).rejects.toMatchObject({ responseCode: 454 });
    expect(asked).toBe(2);
  });
});

describe.skipIf(Boolean(skip))(
  `SMTP submission listener${skip ? ` (skipped: ${skip})` : ""}`,
  () => {
    let relay: RelayWorker;
    let listener: SubmissionListener;
    let port: number;
    const sink = sinkApi("plain");

    const api = async (path: string, init: RequestInit = {}, token = ADMIN) => {
      const res = await fetch(`${relay.url}${path}`, {
        ...init,
        headers: {
          authorization: `Bearer ${token}`,
          "content-type": "application/json",
          ...init.headers,
        },
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };

    const newKey = async (policy: Record<string, unknown> = {}) => {
      const { status, body } = await api("/api-keys", {
        method: "POST",
        body: JSON.stringify({ name: `smtp-${tag()}`, permission: "sending_access", ...policy }),
      });
      expect(status).toBe(201);
      return body.token as string;
    };

    const transport = (pass: string, user = "resend") =>
      nodemailer.createTransport({
        host: "127.0.0.1",
        port,
        secure: false,
        ignoreTLS: true,
        auth: { user, pass },
      });

    beforeAll(async () => {
      relay = await startRelayWorker({
        adminToken: ADMIN,
        sink: "plain",
        vars: { REDIS_KEY_PREFIX: PREFIX },
      });
      listener = await startListener(relay.url);
      port = listener.port as number;
    }, 60_000);

    afterAll(async () => {
      await listener?.close();
      await relay?.close();
    });

    afterEach(async () => {
      await gatewayApi().clearFaults();
    });

    it("nodemailer: 250 names the stored id, the envelope decides (Bcc by envelope, no header added), GET /emails/:id says smtp", async () => {
      const t = tag();
      const key = await newKey();
      const info = await transport(key).sendMail({
        from: "App <app@example.com>",
        to: `to-${t}@example.net`,
        cc: `cc-${t}@example.org`,
        bcc: `hidden-${t}@example.com`,
        subject: `Hello over SMTP ${t}`,
        text: "It works",
      });
      const id = /queued as ([0-9a-f-]{36})/.exec(info.response)?.[1];
      expect(info.response).toMatch(/^250 2\.0\.0 Ok: queued as /);
      expect(info.accepted).toHaveLength(3);

      const [got] = await sink.waitFor(1, 15_000, { to: `to-${t}` });
      expect(got?.mailFrom).toBe("app@example.com");
      expect([...(got?.rcptTo ?? [])].sort()).toEqual(
        [`cc-${t}@example.org`, `hidden-${t}@example.com`, `to-${t}@example.net`].sort(),
      );
      expect(got?.raw).not.toMatch(/^bcc:/im);
      expect(got?.raw).not.toContain(`hidden-${t}`);
      expect(got?.raw).toMatch(
        /^Received: from .* \(\[127\.0\.0\.1\]\)\r\n\tby localhost with ESMTPA/m,
      );

      const view = await api(`/emails/${id}`);
      expect(view.status).toBe(200);
      expect(view.body.submitted_via).toBe("smtp");
      expect(view.body.subject).toBe(`Hello over SMTP ${t}`);

      // The dashboard's page for it says so too.
      const cookie = await sessionCookie(relay.url, ADMIN);
      const page = await (
        await fetch(`${relay.url}/dashboard/emails/${id}`, { headers: { cookie } })
      ).text();
      expect(page).toContain('<td id="submitted-via">by SMTP</td>');
    }, 30_000);

    it("costs the Upstash commands of POST /emails plus one authenticated request per session", async () => {
      const t = tag();
      const gateway = gatewayApi();
      const raw = (to: string) =>
        `From: app@example.com\r\nTo: ${to}\r\nSubject: count\r\nMessage-ID: <${to}>\r\n\r\nx\r\n`;
      // Each key is looked up once (then cached), in both paths alike. Earlier tests' background
      // writes (request log, deliveries) settle first, so they do not fall into the count.
      const httpKey = await newKey();
      await new Promise((r) => setTimeout(r, 1000));
      const before = await gateway.commands(PREFIX);
      const res = await fetch(`${relay.url}/emails`, {
        method: "POST",
        headers: { authorization: `Bearer ${httpKey}`, "content-type": "message/rfc822" },
        body: raw(`http-${t}@example.net`),
      });
      expect(res.status).toBe(200);
      await sink.waitFor(1, 15_000, { to: `http-${t}` });
      await new Promise((r) => setTimeout(r, 500));
      const http = (await gateway.commands(PREFIX)) - before;

      const smtpKey = await newKey();
      await new Promise((r) => setTimeout(r, 1000));
      const start = await gateway.commands(PREFIX);
      await transport(smtpKey).sendMail({
        envelope: { from: "app@example.com", to: [`smtp-${t}@example.net`] },
        raw: raw(`smtp-${t}@example.net`),
      });
      await sink.waitFor(1, 15_000, { to: `smtp-${t}` });
      await new Promise((r) => setTimeout(r, 500));
      const smtp = (await gateway.commands(PREFIX)) - start;
      console.log(`Upstash commands, one message sent and delivered: HTTP ${http}, SMTP ${smtp}`);
      // What SMTP adds is the authenticated request AUTH makes (GET /submission/session: its
      // rate limit check and request-log entry) and the RCPT's suppression check (its rate limit
      // check and one read; not logged); the message itself costs what POST /emails does.
      expect(smtp).toBeGreaterThan(http);
      expect(smtp).toBeLessThanOrEqual(http + 4);
    }, 40_000);

    it("npm run smtp (src/runtime/smtp-listener.ts) beside the Worker: its own process, the relay by URL", async () => {
      const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
      const refused = await run(process.execPath, ["src/runtime/smtp-listener.ts"], {
        cwd: root,
        env: { PATH: process.env.PATH ?? "", SMTP_SUBMISSION_PORT: "0" },
      }).catch((err: { code: number; stderr: string; stdout: string }) => err);
      expect((refused as { code: number }).code).toBe(1);
      expect(JSON.stringify(refused)).toContain("SMTP_SUBMISSION_RELAY_URL: must be set");

      const child = spawn(process.execPath, ["src/runtime/smtp-listener.ts"], {
        cwd: root,
        env: {
          PATH: process.env.PATH ?? "",
          SMTP_SUBMISSION_PORT: "0",
          SMTP_SUBMISSION_RELAY_URL: relay.url,
        },
        stdio: ["ignore", "pipe", "pipe"],
      });
      try {
        let out = "";
        const standalonePort = await new Promise<number>((resolvePort, reject) => {
          const timer = setTimeout(() => reject(new Error(`not listening: ${out}`)), 15_000);
          const read = (chunk: Buffer) => {
            out += chunk.toString();
            const m = /"event":"submission\.listening"[^\n]*"port":(\d+)/.exec(out);
            if (m) {
              clearTimeout(timer);
              resolvePort(Number(m[1]));
            }
          };
          child.stdout.on("data", read);
          child.stderr.on("data", read);
        });
        const t = tag();
        const key = await newKey();
        const info = await nodemailer
          .createTransport({
            host: "127.0.0.1",
            port: standalonePort,
            auth: { user: "resend", pass: key },
          })
          .sendMail({
            from: "app@example.com",
            to: `beside-${t}@example.net`,
            subject: "beside",
            text: "x",
          });
        expect(info.response).toMatch(/^250 2\.0\.0 Ok: queued as /);
        await sink.waitFor(1, 15_000, { to: `beside-${t}` });
        // The key never reaches the listener's log.
        expect(out).not.toContain(key);
      } finally {
        child.kill("SIGTERM");
      }
    }, 40_000);

    it("Python's smtplib: login() with user resend and the key, a recipient by envelope only, the message reaches the sink", async () => {
      const t = tag();
      const key = await newKey();
      const script = `
import smtplib, sys
from email.message import EmailMessage
m = EmailMessage()
m["From"] = "py@example.com"
m["To"] = "py-${t}@example.net"
m["Subject"] = "from smtplib ${t}"
m.set_content("hello")
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20)
s.ehlo("python.test")
s.login("resend", sys.argv[2])
refused = s.send_message(m, to_addrs=["py-${t}@example.net", "py-bcc-${t}@example.org"])
code, text = s.docmd("NOOP")
s.quit()
print("refused", refused)
`;
      const { stdout } = await run("python3", ["-c", script, String(port), key]);
      expect(stdout).toContain("refused {}");
      const [got] = await sink.waitFor(1, 15_000, { to: `py-${t}` });
      expect(got?.rcptTo).toEqual([`py-${t}@example.net`, `py-bcc-${t}@example.org`]);
      expect(got?.raw).toContain(`Subject: from smtplib ${t}`);
      expect(got?.raw).not.toContain(`py-bcc-${t}`);
    }, 30_000);

    it("a wrong key or username is 535; five failures lock the network out with 421", async () => {
      await expect(
        transport("re_not_a_key").sendMail({
          from: "a@example.com",
          to: "b@example.net",
          text: "x",
        }),
      ).rejects.toMatchObject({ responseCode: 535 });
      const key = await newKey();
      await expect(
        transport(key, "admin").sendMail({ from: "a@example.com", to: "b@example.net", text: "x" }),
      ).rejects.toThrow(/username is "resend"/);
      // Three more failures reach the limit of five; the sixth attempt is refused unchecked.
      for (let i = 0; i < 3; i++) {
        const replies = await converse(port, [
          "EHLO t.test",
          `AUTH PLAIN ${plain(`re_wrong_${i}`)}`,
          "QUIT",
        ]);
        expect(replies[2]).toMatch(/^535 5\.7\.8/);
      }
      const locked = await converse(port, ["EHLO t.test", `AUTH PLAIN ${plain(key)}`]);
      expect(locked[2]).toMatch(/^421 4\.7\.0 Too many failed authentications/);
    }, 30_000);

    // The lockout above holds 127.0.0.1 in `listener`; the tests below use their own listeners.
    let second: SubmissionListener;
    const secondPort = () => second.port as number;
    beforeAll(async () => {
      second = await startListener(relay.url);
    });
    afterAll(async () => {
      await second?.close();
    });

    it("checks each RCPT against the key's policy at once: 550 5.7.1 naming why, the others delivered", async () => {
      const t = tag();
      const key = await newKey({
        allowed_from: ["app@example.com"],
        allowed_recipients: [`*@ok-${t}.test`],
      });
      const replies = await converse(secondPort(), [
        "EHLO client.test",
        `AUTH PLAIN ${plain(key)}`,
        "MAIL FROM:<ceo@example.com>",
        "RSET",
        "MAIL FROM:<app@example.com>",
        `RCPT TO:<one@ok-${t}.test>`,
        `RCPT TO:<victim@elsewhere-${t}.test>`,
        `RCPT TO:<two@ok-${t}.test>`,
        "DATA",
        "From: app@example.com",
        `To: one@ok-${t}.test`,
        "Subject: policy",
        "",
        "body",
        ".",
        "QUIT",
      ]);
      expect(replies[3]).toMatch(
        /^550 5\.7\.1 from: ceo@example\.com is not a sender this API key may use/,
      );
      expect(replies[6]).toMatch(/^250/);
      expect(replies[7]).toMatch(
        new RegExp(
          `^550 5\\.7\\.1 to: victim@elsewhere-${t}\\.test is not a recipient this API key may send to`,
        ),
      );
      expect(replies[8]).toMatch(/^250/);
      expect(replies[10]).toMatch(/^250 2\.0\.0 Ok: queued as /);
      const [got] = await sink.waitFor(1, 15_000, { to: `ok-${t}` });
      expect(got?.rcptTo).toEqual([`one@ok-${t}.test`, `two@ok-${t}.test`]);
    }, 30_000);

    it("refuses a suppressed recipient at RCPT with 550 5.7.1 naming why; the others are sent", async () => {
      const t = tag();
      const key = await newKey();
      const held = `held-${t}@example.net`;
      const added = await fetch(`${relay.url}/suppressions`, {
        method: "POST",
        headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
        body: JSON.stringify({ email: held }),
      });
      expect(added.status).toBe(201);
      const replies = await converse(secondPort(), [
        "EHLO client.test",
        `AUTH PLAIN ${plain(key)}`,
        "MAIL FROM:<app@example.com>",
        `RCPT TO:<${held.toUpperCase()}>`,
        `RCPT TO:<ok-${t}@example.net>`,
        "DATA",
        "From: app@example.com",
        `To: ok-${t}@example.net`,
        "Subject: suppressed",
        "",
        "body",
        ".",
        "QUIT",
      ]);
      expect(replies[4]).toMatch(
        new RegExp(`^550 5\\.7\\.1 ${held.toUpperCase()}: on the suppression list \\(manual\\)`),
      );
      expect(replies[5]).toMatch(/^250/);
      expect(replies[7]).toMatch(/^250 2\.0\.0 Ok: queued as /);
      const [got] = await sink.waitFor(1, 15_000, { to: `ok-${t}` });
      expect(got?.rcptTo).toEqual([`ok-${t}@example.net`]);
      expect(await sink.messages({ to: held })).toEqual([]);
    }, 30_000);

    it("takes at most 50 recipients: the 51st is 452 4.5.3, the 50 are sent", async () => {
      const t = tag();
      const key = await newKey();
      const rcpts = Array.from({ length: 51 }, (_, i) => `RCPT TO:<r${i}-${t}@example.net>`);
      const replies = await converse(secondPort(), [
        "EHLO client.test",
        `AUTH PLAIN ${plain(key)}`,
        "MAIL FROM:<app@example.com>",
        ...rcpts,
        "DATA",
        "Subject: many",
        "",
        "x",
        ".",
        "QUIT",
      ]);
      expect(replies.slice(4, 54).every((r) => r.startsWith("250"))).toBe(true);
      expect(replies[54]).toMatch(/^452 4\.5\.3 Too many recipients: at most 50/);
      expect(replies[56]).toMatch(/^250 2\.0\.0 Ok: queued as /);
      const [got] = await sink.waitFor(1, 15_000, { to: `r0-${t}` });
      expect(got?.rcptTo).toHaveLength(50);
    }, 30_000);

    it("store down: 451 4.3.0 and nothing stored; the client's retry is stored and delivered once", async () => {
      const t = tag();
      const key = await newKey();
      const lines = [
        "EHLO client.test",
        `AUTH PLAIN ${plain(key)}`,
        "MAIL FROM:<app@example.com>",
        `RCPT TO:<kept-${t}@example.net>`,
        "DATA",
        "From: app@example.com",
        `Subject: kept ${t}`,
        `Message-ID: <kept-${t}@example.com>`,
        "",
        "keep me",
        ".",
        "QUIT",
      ];
      const down = await converse(secondPort(), lines, {
        // The store goes away after AUTH, while the client sends the message: every request for
        // this relay's keys is dropped (a fault on its prefix, so parallel files are untouched).
        before: async (i) => {
          if (i === 4) await gatewayApi().addFault({ contains: PREFIX, mode: "drop", times: 1000 });
        },
      });
      expect(down[6]).toMatch(/^451 4\.3\.0 Nothing was stored, try again later/);
      await gatewayApi().clearFaults();
      const listed = await api("/emails?limit=100");
      expect(JSON.stringify(listed.body)).not.toContain(`kept ${t}`);

      const retried = await converse(secondPort(), lines);
      expect(retried[6]).toMatch(/^250 2\.0\.0 Ok: queued as /);
      await sink.waitFor(1, 15_000, { to: `kept-${t}` });
      await new Promise((r) => setTimeout(r, 1000));
      expect(await sink.messages({ to: `kept-${t}` })).toHaveLength(1);
    }, 40_000);

    it("advertises SIZE from MAX_MESSAGE_BYTES and refuses a bigger message with 552 5.3.4, at MAIL or after DATA", async () => {
      const small = await startListener(relay.url, { MAX_MESSAGE_BYTES: "2048" });
      try {
        const t = tag();
        const key = await newKey();
        const body = Array.from({ length: 60 }, () => "x".repeat(70));
        const replies = await converse(small.port as number, [
          "EHLO client.test",
          `AUTH PLAIN ${plain(key)}`,
          "MAIL FROM:<app@example.com> SIZE=4096",
          "MAIL FROM:<app@example.com>",
          `RCPT TO:<big-${t}@example.net>`,
          "DATA",
          "Subject: big",
          "",
          ...body,
          ".",
          "QUIT",
        ]);
        expect(replies[1]).toContain("SIZE 2048");
        expect(replies[3]).toMatch(/^552/);
        expect(replies[4]).toMatch(/^250/);
        expect(replies[7]).toMatch(/^552 5\.3\.4 The message is over 2048 bytes/);
        await new Promise((r) => setTimeout(r, 500));
        expect(await sink.messages({ to: `big-${t}` })).toHaveLength(0);
      } finally {
        await small.close();
      }
    }, 30_000);

    it("a client that drops mid-DATA leaves nothing queued", async () => {
      const t = tag();
      const key = await newKey();
      const lines = [
        "EHLO client.test",
        `AUTH PLAIN ${plain(key)}`,
        "MAIL FROM:<app@example.com>",
        `RCPT TO:<dropped-${t}@example.net>`,
        "DATA",
        "From: app@example.com",
        `Subject: dropped ${t}`,
        "",
        "half a messa",
      ];
      const replies = await converse(secondPort(), [...lines, "ge", "."], {
        dropAfter: lines.length,
      });
      expect(replies[5]).toMatch(/^354/);
      await new Promise((r) => setTimeout(r, 1500));
      expect(JSON.stringify((await api("/emails?limit=100")).body)).not.toContain(`dropped ${t}`);
      expect(await sink.messages({ to: `dropped-${t}` })).toHaveLength(0);
    }, 30_000);

    describe("TLS and trusted networks", () => {
      let tls: SubmissionListener;
      let trusted: SubmissionListener;
      let trustedKey: string;
      const ca = () => services().ca;

      beforeAll(async () => {
        // The certificate global setup made for the sinks (signed by the provided test CA).
        const { key, cert } = makeTestCertificates(
          resolve(dirname(fileURLToPath(import.meta.url)), "../../.certs"),
        );
        tls = await startListener(relay.url, {
          SMTP_SUBMISSION_TLS_PORT: "0",
          SMTP_SUBMISSION_TLS_CERT: cert,
          SMTP_SUBMISSION_TLS_KEY: key,
        });
        trustedKey = await newKey({ allowed_from: ["printer@example.com"] });
        trusted = await startListener(relay.url, {
          SMTP_TRUSTED_NETWORKS: `10.0.0.0/8=re_unused, 127.0.0.1/32=${trustedKey}`,
        });
      });
      afterAll(async () => {
        await tls?.close();
        await trusted?.close();
      });

      it("STARTTLS and implicit TLS with the operator's certificate, AUTH over them", async () => {
        const t = tag();
        const key = await newKey();
        const send = (port: number, secure: boolean) =>
          nodemailer
            .createTransport({
              host: "localhost",
              port,
              secure,
              requireTLS: !secure,
              tls: { ca: ca() },
              auth: { user: "resend", pass: key },
            })
            .sendMail({
              from: "app@example.com",
              to: `tls-${t}@example.net`,
              subject: secure ? "implicit" : "starttls",
              text: "x",
            });
        const viaStarttls = await send(tls.port as number, false);
        const viaImplicit = await send(tls.tlsPort as number, true);
        expect(viaStarttls.response).toMatch(/^250 2\.0\.0 Ok: queued as /);
        expect(viaImplicit.response).toMatch(/^250 2\.0\.0 Ok: queued as /);
        const got = await sink.waitFor(2, 15_000, { to: `tls-${t}` });
        // RFC 3848: ESMTPSA, TLS and AUTH.
        for (const m of got) expect(m.raw).toMatch(/ with ESMTPSA id /);
        // The plain port offers STARTTLS.
        const ehlo = await converse(tls.port as number, ["EHLO client.test", "QUIT"]);
        expect(ehlo[1]).toContain("STARTTLS");
        expect(ehlo[1]).toMatch(/SIZE \d+/);
        expect(ehlo[1]).toContain("8BITMIME");
        expect(ehlo[1]).toContain("SMTPUTF8");
        expect(ehlo[1]).toContain("PIPELINING");
      }, 30_000);

      it.skipIf(Boolean(noPostfix) && process.env.CI !== "true")(
        `Postfix with this listener as relayhost (SASL, STARTTLS): deferred on 454/451 while the store is down, then delivered with the envelope intact${noPostfix ? ` (skipped: ${noPostfix})` : ""}`,
        async () => {
          const t = tag();
          const key = await newKey();
          const postfix = await startPostfixRelayhost({
            relayhost: `[127.0.0.1]:${tls.port}`,
            user: "resend",
            password: key,
            ca: ca(),
          });
          try {
            // The store is unreachable when Postfix first hands the message over.
            await gatewayApi().addFault({ contains: PREFIX, mode: "drop", times: 1000 });
            const app = nodemailer.createTransport({
              host: "127.0.0.1",
              port: postfix.port,
              ignoreTLS: true,
            });
            await app.sendMail({
              from: "Server <server@example.com>",
              to: `pf-${t}@example.net`,
              bcc: `pf-bcc-${t}@example.org`,
              subject: `through postfix ${t}`,
              text: "relayed",
            });
            // AUTH itself needs the store (the key and its rate limit): 454 4.7.0 there, or 451
            // 4.3.0 at the end of DATA. Either is temporary, and Postfix keeps the message.
            await postfix.waitForLog(
              /status=deferred \(.*(454 4\.7\.0|451 4\.3\.0) .*nothing was stored/i,
            );
            expect(await sink.messages({ to: `pf-${t}` })).toHaveLength(0);
            await gatewayApi().clearFaults();
            const log = await postfix.waitForLog(
              /status=sent \(250 2\.0\.0 Ok: queued as [0-9a-f-]{36}\)/,
            );
            expect(log).toContain(`relay=127.0.0.1[127.0.0.1]:${tls.port}`);
            const [got] = await sink.waitFor(1, 15_000, { to: `pf-${t}` });
            expect(got?.mailFrom).toBe("server@example.com");
            expect([...(got?.rcptTo ?? [])].sort()).toEqual(
              [`pf-${t}@example.net`, `pf-bcc-${t}@example.org`].sort(),
            );
            expect(got?.raw).not.toContain(`pf-bcc-${t}`);
            // Postfix authenticated over TLS: the listener's trace field says ESMTPSA.
            expect(got?.raw).toMatch(/by localhost with ESMTPSA id/);
            expect(got?.raw).toContain(`Subject: through postfix ${t}`);
            // Delivered once, though Postfix tried twice.
            await new Promise((r) => setTimeout(r, 1000));
            expect(await sink.messages({ to: `pf-${t}` })).toHaveLength(1);
          } finally {
            postfix.stop();
          }
        },
        60_000,
      );

      it("a trusted network sends under its key without AUTH, within that key's policy", async () => {
        const t = tag();
        const send = (from: string) =>
          nodemailer
            .createTransport({ host: "127.0.0.1", port: trusted.port as number, ignoreTLS: true })
            .sendMail({ from, to: `trusted-${t}@example.net`, subject: "scan", text: "x" });
        expect((await send("printer@example.com")).response).toMatch(/^250 2\.0\.0 Ok: queued as /);
        await expect(send("someone@example.com")).rejects.toMatchObject({ responseCode: 550 });
        const [got] = await sink.waitFor(1, 15_000, { to: `trusted-${t}` });
        expect(got?.mailFrom).toBe("printer@example.com");
        // Outside the trusted ranges (the plain listener), AUTH is still required.
        const replies = await converse(secondPort(), [
          "EHLO client.test",
          "MAIL FROM:<printer@example.com>",
          "QUIT",
        ]);
        expect(replies[2]).toMatch(/^530/);
      }, 30_000);
    });

    it.skipIf(!hasSwaks && process.env.CI !== "true")(
      `swaks (Debian's) submits with AUTH and the envelope decides${hasSwaks ? "" : " (skipped: swaks is not installed; .ci/run installs it)"}`,
      async () => {
        const t = tag();
        const key = await newKey();
        const { stdout } = await run("swaks", [
          "--server",
          `127.0.0.1:${secondPort()}`,
          "--auth",
          "PLAIN",
          "--auth-user",
          "resend",
          "--auth-password",
          key,
          "--from",
          "swaks@example.com",
          "--to",
          `swaks-${t}@example.net,swaks-bcc-${t}@example.org`,
          "--header",
          `Subject: swaks ${t}`,
          "--header",
          `To: swaks-${t}@example.net`,
        ]);
        expect(stdout).toMatch(/<- {2}250 2\.0\.0 Ok: queued as [0-9a-f-]{36}/);
        const [got] = await sink.waitFor(1, 15_000, { to: `swaks-${t}` });
        expect(got?.rcptTo).toEqual([`swaks-${t}@example.net`, `swaks-bcc-${t}@example.org`]);
        expect(got?.raw).not.toContain(`swaks-bcc-${t}`);
      },
      30_000,
    );
  },
);
