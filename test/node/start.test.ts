/**
 * `npm start` (dev/start.ts, what the script runs) as a newcomer meets it: wrangler dev on the
 * port asked for (`npm start -- --port N`, `PORT=N`, 0 for any free one), the development inbox
 * on ports that clash with nothing, a banner whose curl command works as printed, and the
 * in-memory store limiting requests as production does. Every port here is a free one.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { resolve } from "node:path";
import { promisify } from "node:util";
import nodemailer from "nodemailer";
import { afterEach, describe, expect, it } from "vitest";
import { banner, npmStart, root, type Started, stop } from "../support/npm-start.ts";

const sh = promisify(execFile);

/** A port nothing listens on (bound to 0, read, released). */
async function freePort(): Promise<number> {
  const server = await listening();
  const port = portOf(server);
  await new Promise((r) => server.close(r));
  return port;
}

async function listening(): Promise<Server> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server;
}

const portOf = (server: Server) => (server.address() as { port: number }).port;

const running: Started[] = [];

/** `npm start` with `args` and `env` only, stopped after each test. */
function start(args: string[], env: Record<string, string> = {}): Started {
  const started = npmStart(args, env);
  running.push(started);
  return started;
}

afterEach(async () => {
  for (const s of running.splice(0)) await stop(s);
});

// A developer's own settings would change what it does (its SMTP_URL, say).
describe.skipIf(existsSync(resolve(root, ".dev.vars")))("npm start", () => {
  it("takes --port 0 as any free port, puts the inbox on free ports, and the banner's curl command sends there", async () => {
    const s = start(["--port", "0", "--inbox-port", "0", "--inbox-smtp-port=0"]);
    const { relay, inbox, token } = await banner(s);
    // The system's pick, from its ephemeral range: neither 0 nor the defaults.
    const port = Number(new URL(relay).port);
    expect(port).toBeGreaterThan(0);
    expect(port).not.toBe(8787);
    expect(Number(new URL(inbox).port)).toBeGreaterThan(0);
    expect(new URL(inbox).port).not.toBe("8025");

    // The command exactly as printed, through a shell.
    const curl = /curl -X POST [\s\S]*?-d '[^']*'/.exec(s.output())?.[0] as string;
    expect(curl).toContain(`${relay}/emails`);
    const sent = JSON.parse((await sh("sh", ["-c", `${curl} -s`])).stdout);
    expect(sent.id).toMatch(/^[0-9a-f-]{36}$/);
    const messages = (await (await fetch(`${inbox}/api/messages?wait=1&timeout=10000`)).json()) as {
      raw: string;
    }[];
    expect(messages).toHaveLength(1);
    expect(messages[0]?.raw).toContain(`Message-ID: <${sent.id}@`);
    expect(token).toMatch(/^dev_/);

    // The dashboard the banner names signs in with the printed key and lists that message.
    const dashboard = /Dashboard\s+(http:\/\/\S+)/.exec(s.output())?.[1] as string;
    expect(dashboard).toBe(`${relay}/dashboard`);
    const signIn = await fetch(`${dashboard}/sign-in`, {
      method: "POST",
      redirect: "manual",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        "sec-fetch-site": "same-origin",
      },
      body: new URLSearchParams({ token }),
    });
    expect(signIn.status).toBe(303);
    const cookie = (signIn.headers.get("set-cookie") ?? "").split(";")[0] ?? "";
    const list = await (await fetch(`${dashboard}/emails`, { headers: { cookie } })).text();
    expect(list).toContain(`/dashboard/emails/${sent.id}`);
  }, 90_000);

  it("opens the SMTP listener it prints: nodemailer and smtplib submit with user resend and the printed key, the inbox gets the envelope and no Bcc header", async () => {
    const s = start([
      "--port",
      "0",
      "--inbox-port",
      "0",
      "--inbox-smtp-port=0",
      "--smtp-port",
      "0",
    ]);
    const { inbox, token, smtpPort } = await banner(s);
    expect(smtpPort).toBeGreaterThan(0);
    expect(s.output()).toContain(`swaks --server 127.0.0.1:${smtpPort} --auth-user resend`);

    const info = await nodemailer
      .createTransport({ host: "127.0.0.1", port: smtpPort, auth: { user: "resend", pass: token } })
      .sendMail({
        from: "App <app@example.com>",
        to: "ann@example.net",
        bcc: "hidden@example.org",
        subject: "nodemailer via npm start",
        text: "hi",
      });
    expect(info.response).toMatch(/^250 2\.0\.0 Ok: queued as [0-9a-f-]{36}$/);
    const script = [
      "import smtplib, sys",
      "s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), timeout=20)",
      "s.login('resend', sys.argv[2])",
      "s.sendmail('py@example.com', ['bob@example.net', 'quiet@example.org'], b'From: py@example.com\\r\\nTo: bob@example.net\\r\\nSubject: smtplib via npm start\\r\\n\\r\\nhello\\r\\n')",
      "s.quit()",
    ].join("\n");
    await sh("python3", ["-c", script, String(smtpPort), token]);

    const messages = (await (await fetch(`${inbox}/api/messages?wait=2&timeout=15000`)).json()) as {
      mailFrom: string;
      rcptTo: string[];
      raw: string;
    }[];
    expect(messages).toHaveLength(2);
    const byNodemailer = messages.find((m) => m.raw.includes("nodemailer via npm start"));
    const bySmtplib = messages.find((m) => m.raw.includes("smtplib via npm start"));
    expect(byNodemailer?.mailFrom).toBe("app@example.com");
    expect(byNodemailer?.rcptTo).toEqual(["ann@example.net", "hidden@example.org"]);
    expect(bySmtplib?.mailFrom).toBe("py@example.com");
    expect(bySmtplib?.rcptTo).toEqual(["bob@example.net", "quiet@example.org"]);
    for (const m of messages) {
      expect(m.raw).not.toMatch(/^bcc:/im);
      expect(m.raw).not.toMatch(/hidden@|quiet@/);
    }
  }, 90_000);

  it("serves on the port PORT names, and limits requests as deployed", async () => {
    const port = await freePort();
    const s = start([], { PORT: String(port), INBOX_HTTP_PORT: "0", INBOX_SMTP_PORT: "0" });
    const { relay, token } = await banner(s);
    expect(relay).toBe(`http://127.0.0.1:${port}`);
    expect((await fetch(`${relay}/health`)).status).toBe(200);
    // The in-memory queue has the default RATE_LIMIT (10/1s), like a deployed relay.
    const res = await fetch(`${relay}/api-keys`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get("ratelimit-limit")).toBe("10");
    expect(Number(res.headers.get("ratelimit-remaining"))).toBeLessThan(10);
  }, 90_000);

  it("refuses a port it cannot use, naming the option, before starting anything", async () => {
    const bad = start(["--port", "80808"]);
    expect(await bad.exited).toBe(2);
    expect(bad.output()).toMatch(/^--port: must be a port number from 0 to 65535/m);

    const unknown = start(["--prot", "8788"]);
    expect(await unknown.exited).toBe(2);
    expect(unknown.output()).toMatch(/^--prot: unknown option/m);

    const taken = await listening();
    try {
      const clash = start(["--port", "0", "--inbox-smtp-port", String(portOf(taken))]);
      expect(await clash.exited).toBe(2);
      expect(clash.output()).toContain(
        `cannot listen on 127.0.0.1:${portOf(taken)}, which another program uses: choose another port with --inbox-smtp-port N`,
      );
      expect(clash.output()).not.toContain("wrangler");
    } finally {
      await new Promise((r) => taken.close(r));
    }
  });
});
