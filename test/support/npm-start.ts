/**
 * `npm start` (dev/start.ts) run as a child process the way a newcomer runs it, with none of the
 * developer's own settings: read its banner for the relay's URL, the inbox's and the printed key,
 * and stop it with Ctrl-C (SIGINT) afterwards.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

export interface Started {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

export interface Banner {
  relay: string;
  inbox: string;
  token: string;
  /** The SMTP submission listener's port (user "resend", the token as password). */
  smtpPort: number;
}

/** Runs dev/start.ts with none of a developer's settings, only `env` and `args`. */
export function npmStart(args: string[], env: Record<string, string> = {}): Started {
  const clean = { ...process.env };
  for (const name of Object.keys(clean))
    if (
      /^(SMTP_URL|SMTP_SUBMISSION_|SMTP_TRUSTED_|UPSTASH_|ADMIN_TOKEN|PORT|RELAY_PORT|INBOX_)/.test(
        name,
      )
    )
      delete clean[name];
  const child = spawn(process.execPath, ["dev/start.ts", ...args], {
    cwd: root,
    // Any free SMTP port unless a test names one: start scripts run in parallel test files.
    env: { ...clean, NO_COLOR: "1", SMTP_SUBMISSION_PORT: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const collect = (c: Buffer) => {
    output += c.toString();
  };
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);
  const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
  return { child, output: () => output, exited };
}

/** Waits for the banner (at most 60 s) and reads the relay's URL, the inbox's and the key. */
export async function banner(s: Started): Promise<Banner> {
  const deadline = Date.now() + 60_000;
  while (!/Then open/.test(s.output())) {
    if (Date.now() > deadline || s.child.exitCode !== null)
      throw new Error(`no banner:\n${s.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const out = s.output();
  return {
    relay: /Relay\s+(http:\/\/\S+)/.exec(out)?.[1] as string,
    inbox: /Inbox\s+(http:\/\/\S+)/.exec(out)?.[1] as string,
    token: /API key\s+(\S+)/.exec(out)?.[1] as string,
    smtpPort: Number(/SMTP\s+host 127\.0\.0\.1\s+port (\d+)/.exec(out)?.[1]),
  };
}

/** Ctrl-C, and SIGKILL if it has not stopped within 10 s. */
export async function stop(s: Started): Promise<void> {
  if (s.child.exitCode !== null) return;
  s.child.kill("SIGINT");
  const stopped = await Promise.race([
    s.exited.then(() => true),
    new Promise((r) => setTimeout(() => r(false), 10_000)),
  ]);
  if (!stopped) s.child.kill("SIGKILL");
}
