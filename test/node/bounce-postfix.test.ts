/**
 * A real Postfix bounce, end to end. The relay runs in workerd from wrangler.toml (wrangler's test
 * harness), on real Redis through the Upstash gateway, with BOUNCE_DOMAIN set; its smart host is
 * a private Postfix instance started here (its own config, queue and data directories in a temp
 * dir, listening on 127.0.0.1 at a free port). Postfix's transport map sends the recipients'
 * domain to `error:` (so it answers 250, the relay records delivered, and Postfix then bounces)
 * and the bounce domain to a capture SMTP server in this test. The DSN Postfix writes comes back
 * to the VERP return path; the test hands it to the Worker's email() handler (a) through the
 * harness's email dispatch and (b) through wrangler's /cdn-cgi/handler/email endpoint, and
 * checks that the message ends bounced with Postfix's Status and Diagnostic-Code, that
 * `email.bounced` reached a webhook receiver, and that the tag verified (intake's counters).
 *
 * Skips with a reason outside CI when /usr/sbin/postfix is absent (.ci/run installs it).
 */
import { execFileSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createServer as createHttpServer, type Server } from "node:http";
import { type AddressInfo, createServer, type Server as NetServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SMTPServer } from "smtp-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RelayWorker, startRelayWorker } from "../support/harness.ts";
import { redisSkipReason } from "../support/services.ts";

const POSTFIX = "/usr/sbin/postfix";
const ADMIN = `bounce-admin-${crypto.randomUUID()}`;
const BOUNCE_DOMAIN = "bounces.relay.test";
const DEAD_DOMAIN = "dead.example.net";

function skipReason(): string | false {
  const redis = redisSkipReason();
  if (redis) return redis;
  if (existsSync(POSTFIX)) return false;
  if (process.env.CI) throw new Error(`${POSTFIX} is missing in CI: .ci/run installs postfix`);
  return `${POSTFIX} is not installed (apt-get install postfix)`;
}
const skip = skipReason();

/** A free TCP port: bind port 0, read it, release it (Postfix takes a port number, not 0). */
async function freePort(): Promise<number> {
  const server: NetServer = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

interface Captured {
  from: string;
  to: string[];
  raw: string;
}

/** The bounce domain's mail server: takes what Postfix sends there and keeps it. */
async function startCapture(): Promise<{ port: number; mail: Captured[]; server: SMTPServer }> {
  const mail: Captured[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ["AUTH", "STARTTLS"],
    logger: false,
    onData(stream, session, done) {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => {
        mail.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : "",
          to: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks).toString("utf8"),
        });
        done();
      });
    },
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { port: (server.server.address() as AddressInfo).port, mail, server };
}

/** A private Postfix: main.cf, master.cf (smtpd on `port`, nothing chrooted), transport map. */
function startPostfix(port: number, capturePort: number): { dir: string; stop: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "relay-postfix-"));
  // Postfix's daemons run as the postfix user: they must reach the directories.
  chmodSync(dir, 0o755);
  for (const sub of ["conf", "queue", "data"]) mkdirSync(join(dir, sub));
  const postfixUid = Number(execFileSync("id", ["-u", "postfix"]).toString().trim());
  chownSync(join(dir, "data"), postfixUid, -1);
  const conf = join(dir, "conf");
  writeFileSync(
    join(conf, "main.cf"),
    [
      "compatibility_level = 3.6",
      `queue_directory = ${dir}/queue`,
      `data_directory = ${dir}/data`,
      "inet_interfaces = 127.0.0.1",
      "inet_protocols = ipv4",
      "myhostname = postfix.relay.test",
      "mydestination =",
      "mynetworks = 127.0.0.0/8",
      "alias_maps =",
      "alias_database =",
      "local_recipient_maps =",
      `transport_maps = texthash:${conf}/transport`,
      `maillog_file = ${dir}/maillog`,
      `maillog_file_prefixes = ${dir}`,
      "smtp_dns_support_level = disabled",
      "smtputf8_enable = no",
      // The error: transport is answered at RCPT unless this is off: accept, then bounce.
      "smtpd_reject_unlisted_recipient = no",
      "",
    ].join("\n"),
  );
  writeFileSync(
    join(conf, "transport"),
    `${DEAD_DOMAIN} error:5.1.1 mailbox unavailable\n${BOUNCE_DOMAIN} smtp:[127.0.0.1]:${capturePort}\n`,
  );
  const master = readFileSync("/etc/postfix/master.cf", "utf8")
    .split("\n")
    .map((line) => {
      if (!/^[^#\s]/.test(line)) return line;
      const f = line.trim().split(/\s+/);
      if (f.length < 8) return line;
      if (f[0] === "smtp" && f[1] === "inet") f[0] = `127.0.0.1:${port}`;
      f[4] = "n"; // no chroot: the queue directory has none of what a chroot needs
      return f.join("  ");
    })
    .join("\n");
  writeFileSync(join(conf, "master.cf"), master);
  execFileSync(POSTFIX, ["-c", conf, "start"], { stdio: "pipe" });
  return {
    dir,
    stop: () => {
      try {
        execFileSync(POSTFIX, ["-c", conf, "stop"], { stdio: "pipe" });
      } finally {
        if (process.env.KEEP_POSTFIX_LOG) console.log(readFileSync(join(dir, "maillog"), "utf8"));
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

async function startReceiver(): Promise<{ url: string; bodies: string[]; server: Server }> {
  const bodies: string[] = [];
  const server = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      bodies.push(Buffer.concat(chunks).toString("utf8"));
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/in`, bodies, server };
}

describe.skipIf(Boolean(skip))(
  `a real Postfix DSN through the return path${skip ? ` (skipped: ${skip})` : ""}`,
  () => {
    let relay: RelayWorker;
    let postfix: { dir: string; stop: () => void };
    let capture: Awaited<ReturnType<typeof startCapture>>;
    let receiver: Awaited<ReturnType<typeof startReceiver>>;

    async function api(method: string, path: string, json?: unknown) {
      const res = await fetch(`${relay.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
        ...(json === undefined ? {} : { body: JSON.stringify(json) }),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    }

    beforeAll(async () => {
      capture = await startCapture();
      receiver = await startReceiver();
      const port = await freePort();
      postfix = startPostfix(port, capture.port);
      relay = await startRelayWorker({
        adminToken: ADMIN,
        sink: "plain",
        smtpUrl: `smtp+insecure://127.0.0.1:${port}`,
        vars: {
          BOUNCE_DOMAIN,
          WEBHOOK_ALLOW_LOOPBACK: "true",
          LOG_LEVEL: "error",
          RATE_LIMIT: "10000/1s",
        },
      });
      const hook = await api("POST", "/webhooks", {
        endpoint: receiver.url,
        events: ["email.bounced"],
      });
      expect(hook.status, JSON.stringify(hook.body)).toBe(201);
    }, 60_000);

    afterAll(async () => {
      await relay?.close();
      postfix?.stop();
      await new Promise<void>((r) => (capture ? capture.server.close(() => r()) : r()));
      await new Promise((r) => receiver?.server.close(r));
    });

    /** Sends to a dead address and waits for the DSN Postfix sends to its return path. */
    async function bounced(): Promise<{ id: string; rcpt: string; dsn: Captured }> {
      const rcpt = `gone-${crypto.randomUUID()}@${DEAD_DOMAIN}`;
      const sent = await api("POST", "/emails", {
        from: "Acme <news@example.com>",
        to: [rcpt],
        subject: "Hello",
        text: "Hello there.",
      });
      expect(sent.status, JSON.stringify(sent.body)).toBe(200);
      const id = sent.body.id as string;
      await expect
        .poll(async () => (await api("GET", `/emails/${id}`)).body.last_event, { timeout: 20_000 })
        .toBe("delivered");
      let dsn: Captured | undefined;
      await expect
        .poll(
          () => {
            dsn = capture.mail.find((m) => m.raw.includes(rcpt));
            return Boolean(dsn);
          },
          { timeout: 30_000, interval: 250 },
        )
        .toBe(true);
      return { id, rcpt, dsn: dsn as Captured };
    }

    async function expectBounced(id: string, rcpt: string) {
      await expect
        .poll(async () => (await api("GET", `/emails/${id}`)).body.last_event, { timeout: 10_000 })
        .toBe("bounced");
      const view = await api("GET", `/emails/${id}`);
      const [r] = (view.body.delivery as { recipients: Record<string, unknown>[] }).recipients;
      expect(r).toMatchObject({ email: rcpt, status: "bounced", reply: { enhanced: "5.1.1" } });
      expect(String((r as { reply: { text: string } }).reply.text)).toContain(
        "mailbox unavailable",
      );
      await expect
        .poll(
          () =>
            receiver.bodies
              .map((b) => JSON.parse(b))
              .find((e) => e.type === "email.bounced" && e.data.email_id === id),
          { timeout: 20_000 },
        )
        .toMatchObject({ data: { bounce: { type: "Permanent", recipients: [rcpt] } } });
    }

    it("(a) through the Worker's email() handler in workerd", { timeout: 90_000 }, async () => {
      const { id, rcpt, dsn } = await bounced();
      // Postfix's DSN goes to the VERP return path, from the null sender.
      expect(dsn.from).toBe("");
      expect(dsn.to).toHaveLength(1);
      expect(dsn.to[0]).toMatch(new RegExp(`^b-${id.replaceAll("-", "")}-[a-z2-7]{16}@`));
      expect(dsn.raw).toMatch(/message\/delivery-status/i);
      const result = await relay.harness
        .getWorker()
        .email({ from: "MAILER-DAEMON@postfix.relay.test", to: dsn.to[0] as string, raw: dsn.raw });
      expect(result).toBeDefined();
      await expectBounced(id, rcpt);
      const counts = await api("GET", "/bounces");
      expect(counts.body.counters).toEqual({ applied: 1 });
    });

    it("(b) through wrangler's /cdn-cgi/handler/email endpoint", { timeout: 90_000 }, async () => {
      const { id, rcpt, dsn } = await bounced();
      const url = new URL(`${relay.url}/cdn-cgi/handler/email`);
      url.searchParams.set("from", "MAILER-DAEMON@postfix.relay.test");
      url.searchParams.set("to", dsn.to[0] as string);
      const res = await fetch(url, { method: "POST", body: dsn.raw });
      expect(res.status, await res.text()).toBeLessThan(300);
      await expectBounced(id, rcpt);
      const counts = await api("GET", "/bounces");
      // Both verified (no dropped:bad_tag), both applied.
      expect(counts.body.counters).toEqual({ applied: 2 });

      // The bounce put the address on the suppression list; the next send to it is not tried.
      const entry = await api("GET", `/suppressions/${encodeURIComponent(rcpt)}`);
      expect(entry.body).toMatchObject({ email: rcpt, origin: "bounce", source_id: id });
      const again = await api("POST", "/emails", {
        from: "Acme <news@example.com>",
        to: [rcpt],
        subject: "Hello again",
        text: "Hello there.",
      });
      expect(again.status).toBe(200);
      const view = () => api("GET", `/emails/${again.body.id as string}`);
      await expect
        .poll(async () => (await view()).body.last_event, { timeout: 10_000 })
        .toBe("suppressed");
      const { recipients } = (await view()).body.delivery as { recipients: { status: string }[] };
      expect(recipients.map((r) => r.status)).toEqual(["suppressed"]);
      // Postfix never saw it: no second report for the address comes back.
      await new Promise((r) => setTimeout(r, 3_000));
      expect(capture.mail.filter((m) => m.raw.includes(rcpt))).toHaveLength(1);
    });
  },
);
