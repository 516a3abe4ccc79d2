/**
 * `deno task start` as a newcomer meets it: with nothing set, it opens the development inbox,
 * makes up an API key, prints a banner, and a message sent with that key lands in the inbox.
 */
import assert from "node:assert/strict";
import { passThrough, taskFlags } from "./support.ts";

const root = new URL("../../", import.meta.url);

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

async function exists(path: URL): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** `deno task start` with `args` and `env`, its output collected as it comes. */
async function startTask(args: string[], env: Record<string, string> = {}) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...(await taskFlags("start", "dev/start-deno.ts")), "dev/start-deno.ts", ...args],
    cwd: root,
    clearEnv: true,
    env: { ...passThrough(), NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) output += text;
  };
  const collected = Promise.all([collect(child.stdout), collect(child.stderr)]);
  return {
    output: () => output,
    /** Resolves once the output matches `pattern` (the banner), or throws after 30 s. */
    async waitFor(pattern: RegExp): Promise<void> {
      const deadline = Date.now() + 30_000;
      while (!pattern.test(output)) {
        if (Date.now() > deadline) throw new Error(`no banner within 30 s:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    },
    /** Stops it as a terminal would and checks that it exited cleanly. */
    async stop(): Promise<void> {
      child.kill("SIGTERM");
      const status = await child.status;
      await collected;
      assert.equal(status.code, 0, output);
    },
  };
}

Deno.test({
  name: "deno task start: development inbox, a key, and a message that arrives",
  // A developer's own settings would change what it does (its SMTP_URL, say).
  ignore: await exists(new URL(".dev.vars", root)),
  fn: async () => {
    const [relayPort, smtpPort, inboxPort] = [freePort(), freePort(), freePort()];
    const task = await startTask([], {
      PORT: String(relayPort),
      INBOX_SMTP_PORT: String(smtpPort),
      INBOX_HTTP_PORT: String(inboxPort),
      SMTP_SUBMISSION_PORT: String(freePort()),
    });
    try {
      await task.waitFor(/API key\s+(\S+)/);
      const output = task.output();
      const token = /API key\s+(\S+)/.exec(output)?.[1];
      assert.match(output, new RegExp(`Relay\\s+http://127\\.0\\.0\\.1:${relayPort}`));
      assert.match(
        output,
        new RegExp(`development inbox, read it at http://127\\.0\\.0\\.1:${inboxPort}`),
      );

      const res = await fetch(`http://127.0.0.1:${relayPort}/emails`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({
          from: "Dev <dev@example.com>",
          to: ["you@example.com"],
          subject: "Hello from deno task start",
          text: "It works!",
        }),
      });
      assert.equal(res.status, 200, await res.clone().text());
      const { id } = await res.json();

      const inbox = await fetch(`http://127.0.0.1:${inboxPort}/api/messages?wait=1&timeout=10000`);
      const messages = await inbox.json();
      assert.equal(messages.length, 1);
      assert.match(messages[0].raw, new RegExp(`Message-ID: <${id}@`));
    } finally {
      await task.stop();
    }
  },
});

Deno.test({
  name: "deno task start --port 0: any free ports, named in the banner",
  ignore: await exists(new URL(".dev.vars", root)),
  fn: async () => {
    const task = await startTask([
      "--port",
      "0",
      "--inbox-port=0",
      "--inbox-smtp-port",
      "0",
      "--smtp-port=0",
    ]);
    try {
      await task.waitFor(/curl -X POST/);
      const output = task.output();
      const relay = new URL(/Relay\s+(http:\/\/\S+)/.exec(output)?.[1] ?? "");
      const inbox = new URL(/read it at (http:\/\/\S+)/.exec(output)?.[1] ?? "");
      for (const [url, fixed] of [
        [relay, "8787"],
        [inbox, "8025"],
      ] as const) {
        assert.ok(Number(url.port) > 0, output);
        assert.notEqual(url.port, fixed);
      }
      assert.match(output, new RegExp(`curl -X POST ${relay.origin}/emails`));
      const health = await fetch(`${relay.origin}/health`);
      assert.equal(health.status, 200);
      await health.body?.cancel();
    } finally {
      await task.stop();
    }
  },
});

Deno.test({
  name: "deno task start: nodemailer and smtplib submit to the printed SMTP port with user resend and the key; the inbox gets the envelope and no Bcc",
  ignore: await exists(new URL(".dev.vars", root)),
  fn: async () => {
    const [relayPort, smtpPort, inboxPort, submissionPort] = [
      freePort(),
      freePort(),
      freePort(),
      freePort(),
    ];
    const task = await startTask(["--smtp-port", String(submissionPort)], {
      PORT: String(relayPort),
      INBOX_SMTP_PORT: String(smtpPort),
      INBOX_HTTP_PORT: String(inboxPort),
    });
    try {
      await task.waitFor(/swaks --server/);
      const output = task.output();
      const token = /API key\s+(\S+)/.exec(output)?.[1] as string;
      assert.match(
        output,
        new RegExp(`SMTP\\s+host 127\\.0\\.0\\.1\\s+port ${submissionPort}\\s+user resend`),
      );

      const { default: nodemailer } = await import("nodemailer");
      const info = await nodemailer
        .createTransport({
          host: "127.0.0.1",
          port: submissionPort,
          auth: { user: "resend", pass: token },
        })
        .sendMail({
          from: "App <app@example.com>",
          to: "ann@example.net",
          bcc: "hidden@example.org",
          subject: "nodemailer via deno task start",
          text: "hi",
        });
      assert.match(info.response, /^250 2\.0\.0 Ok: queued as [0-9a-f-]{36}$/);
      const id = /queued as (\S+)/.exec(info.response)?.[1];

      const script = [
        "import smtplib, sys",
        "s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), timeout=20)",
        "s.login('resend', sys.argv[2])",
        "s.sendmail('py@example.com', ['bob@example.net', 'quiet@example.org'], b'From: py@example.com\\r\\nTo: bob@example.net\\r\\nSubject: smtplib via deno\\r\\n\\r\\nhello\\r\\n')",
        "s.quit()",
      ].join("\n");
      const py = await new Deno.Command("python3", {
        args: ["-c", script, String(submissionPort), token],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(py.code, 0, new TextDecoder().decode(py.stderr));

      const inbox = await fetch(`http://127.0.0.1:${inboxPort}/api/messages?wait=2&timeout=15000`);
      const messages = (await inbox.json()) as {
        mailFrom: string;
        rcptTo: string[];
        raw: string;
      }[];
      assert.equal(messages.length, 2);
      const byNodemailer = messages.find((m) => m.raw.includes("nodemailer via deno task start"));
      const bySmtplib = messages.find((m) => m.raw.includes("smtplib via deno"));
      assert.equal(byNodemailer?.mailFrom, "app@example.com");
      assert.deepEqual(byNodemailer?.rcptTo, ["ann@example.net", "hidden@example.org"]);
      assert.deepEqual(bySmtplib?.rcptTo, ["bob@example.net", "quiet@example.org"]);
      for (const m of messages) {
        assert.doesNotMatch(m.raw, /^bcc:/im);
        assert.doesNotMatch(m.raw, /hidden@|quiet@/);
      }
      // In process, the relay records where it came from.
      const view = await fetch(`http://127.0.0.1:${relayPort}/emails/${id}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      assert.equal((await view.json()).submitted_via, "smtp");
    } finally {
      await task.stop();
    }
  },
});
