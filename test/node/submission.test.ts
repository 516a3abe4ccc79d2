/**
 * The SMTP submission listener with real clients: nodemailer as an app uses it and Python's
 * smtplib, against the relay in workerd on real Redis (through the Upstash gateway), delivering
 * onward to a real SMTP sink. The listener runs in this process and reaches the relay over HTTP,
 * as it runs beside a Worker deployment.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import nodemailer from "nodemailer";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { SubmissionListener } from "../../src/submission/listener.ts";
import { type RelayWorker, startRelayWorker } from "../support/harness.ts";
import { gatewayApi, redisSkipReason, sinkApi } from "../support/services.ts";
import { converse, plain, startListener } from "../support/submission.ts";

const run = promisify(execFile);
const ADMIN = `smtp-admin-${crypto.randomUUID()}`;
const skip = redisSkipReason();
const tag = () => crypto.randomUUID().slice(0, 8);

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
      relay = await startRelayWorker({ adminToken: ADMIN, sink: "plain" });
      listener = await startListener(relay.url);
      port = listener.port as number;
    }, 60_000);

    afterAll(async () => {
      await listener?.close();
      await relay?.close();
    });

    beforeEach(async () => {
      await gatewayApi().up();
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
    }, 30_000);

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
  },
);
