/**
 * A private Postfix instance (Debian's postfix) that relays everything it receives to a
 * `relayhost` with SASL, as a server that sends through this relay's submission listener is set
 * up: `relayhost`, `smtp_sasl_password_maps`, `smtp_tls_security_level = encrypt`. Its own config
 * and queue directories in a temporary folder, its own port, started with `postfix -c`, so it
 * touches neither the system's Postfix nor another test's instance. Needs root (Postfix's master
 * starts as root and drops to the `postfix` user) and libsasl2-modules (the PLAIN mechanism).
 */
import { execFileSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const POSTFIX = "/usr/sbin/postfix";

/** Why a Postfix instance cannot run here, or false. */
export function postfixSkipReason(): string | false {
  if (!existsSync(POSTFIX)) return "postfix is not installed (.ci/run installs it)";
  if (process.getuid?.() !== 0) return "Postfix's master must start as root";
  const sasl = ["/usr/lib/x86_64-linux-gnu/sasl2", "/usr/lib/aarch64-linux-gnu/sasl2"].some(
    (dir) => existsSync(dir) && readdirSync(dir).some((f) => f.startsWith("libplain.so")),
  );
  if (!sasl) return "libsasl2-modules is not installed (.ci/run installs it)";
  return false;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface PostfixRelayhost {
  /** Where apps hand Postfix their mail (127.0.0.1, no AUTH: `mynetworks`). */
  port: number;
  /** Postfix's log so far. */
  log(): string;
  /** Waits until the log matches `pattern` (a delivery's `status=sent`, say). */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<string>;
  stop(): void;
}

export async function startPostfixRelayhost(o: {
  /** The listener, as `[host]:port`. */
  relayhost: string;
  user: string;
  password: string;
  /** PEM of the CA that signed the listener's certificate. */
  ca: string;
}): Promise<PostfixRelayhost> {
  const dir = mkdtempSync(join(tmpdir(), "postfix-relayhost-"));
  // Postfix's daemons run as the postfix user and must reach the queue under it.
  chmodSync(dir, 0o755);
  const config = join(dir, "etc");
  const queue = join(dir, "queue");
  const data = join(dir, "data");
  for (const d of [config, queue, data]) mkdirSync(d, { recursive: true });
  // The data directory holds the master's lock, which it creates as the postfix user.
  const uid = Number(execFileSync("id", ["-u", "postfix"], { encoding: "utf8" }).trim());
  chownSync(data, uid, -1);
  const port = await freePort();
  const logFile = join(dir, "maillog");
  writeFileSync(join(config, "ca.pem"), o.ca);
  // The password map: a key may hold characters a static: map would misread, so a hash file.
  writeFileSync(join(config, "sasl_passwd"), `${o.relayhost} ${o.user}:${o.password}\n`);
  writeFileSync(
    join(config, "main.cf"),
    [
      "compatibility_level = 3.6",
      `queue_directory = ${queue}`,
      `data_directory = ${data}`,
      "mail_owner = postfix",
      "setgid_group = postdrop",
      "myhostname = postfix-relayhost.test",
      "inet_interfaces = 127.0.0.1",
      "inet_protocols = ipv4",
      "mydestination =",
      "local_recipient_maps =",
      "alias_maps =",
      "alias_database =",
      "mynetworks = 127.0.0.0/8",
      "smtpd_relay_restrictions = permit_mynetworks, reject",
      `relayhost = ${o.relayhost}`,
      "smtp_sasl_auth_enable = yes",
      `smtp_sasl_password_maps = texthash:${join(config, "sasl_passwd")}`,
      "smtp_sasl_security_options = noanonymous",
      "smtp_tls_security_level = encrypt",
      `smtp_tls_CAfile = ${join(config, "ca.pem")}`,
      `maillog_file = ${logFile}`,
      `maillog_file_prefixes = ${dir}`,
      // Retry fast: a test waits for the second attempt.
      "queue_run_delay = 2s",
      "minimal_backoff_time = 2s",
      "maximal_backoff_time = 4s",
      "",
    ].join("\n"),
  );
  // Only the services a relaying instance needs, smtpd on its own port.
  const service = (name: string, type: string, command: string, extra = "n - n - -") =>
    `${name} ${type} ${extra} ${command}`;
  writeFileSync(
    join(config, "master.cf"),
    [
      `127.0.0.1:${port} inet n - n - - smtpd`,
      service("pickup", "unix", "pickup", "n - n 60 1"),
      service("cleanup", "unix", "cleanup", "n - n - 0"),
      service("qmgr", "unix", "qmgr", "n - n 300 1"),
      service("rewrite", "unix", "trivial-rewrite", "- - n - -"),
      service("bounce", "unix", "bounce", "- - n - 0"),
      service("defer", "unix", "bounce", "- - n - 0"),
      service("trace", "unix", "bounce", "- - n - 0"),
      service("verify", "unix", "verify", "- - n - 1"),
      service("flush", "unix", "flush", "n - n 1000? 0"),
      service("smtp", "unix", "smtp", "- - n - -"),
      service("relay", "unix", "smtp", "- - n - -"),
      service("error", "unix", "error", "- - n - -"),
      service("retry", "unix", "error", "- - n - -"),
      service("discard", "unix", "discard", "- - n - -"),
      service("showq", "unix", "showq", "n - n - -"),
      service("tlsmgr", "unix", "tlsmgr", "- - n 1000? 1"),
      service("anvil", "unix", "anvil", "- - n - 1"),
      service("scache", "unix", "scache", "- - n - 1"),
      service("postlog", "unix-dgram", "postlogd", "n - n - 1"),
      "",
    ].join("\n"),
  );
  const postfix = (...args: string[]) =>
    execFileSync(POSTFIX, ["-c", config, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  postfix("start");
  const log = () => (existsSync(logFile) ? readFileSync(logFile, "utf8") : "");
  return {
    port,
    log,
    async waitForLog(pattern, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      while (!pattern.test(log())) {
        if (Date.now() > deadline)
          throw new Error(`Postfix's log never matched ${pattern}:\n${log()}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      return log();
    },
    stop() {
      try {
        postfix("stop");
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
