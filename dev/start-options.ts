/**
 * The ports of `npm start` and `deno task start`: the relay's and the development inbox's, from
 * the command line (`npm start -- --port 8788`, as with `wrangler dev`) or the environment
 * (`PORT=8788 npm start`). Flags win over the environment; 0 asks for any free port. Shared by
 * dev/start.ts (Node) and dev/start-deno.ts (Deno), so it imports nothing.
 */

export interface StartPorts {
  /** Undefined: the runtime's default (wrangler dev: 8787, or the next free port after it). */
  relay: number | undefined;
  inboxSmtp: number;
  inboxHttp: number;
  /** The SMTP submission listener's (user "resend", the API key as password). */
  submission: number;
}

export const START_USAGE = `Options (or the environment variable in brackets):
  --port N             the relay's port [PORT] (default 8787; 0: any free port)
  --inbox-port N       the development inbox's web page [INBOX_HTTP_PORT] (default 8025; 0: any free port)
  --inbox-smtp-port N  the development inbox's SMTP server [INBOX_SMTP_PORT] (default 2525; 0: any free port)
  --smtp-port N        the relay's SMTP submission listener [SMTP_SUBMISSION_PORT] (default 2587; 0: any free port)
  --help               this text`;

/** A command line or port setting the start script cannot use; the message names it. */
export class StartUsageError extends Error {
  override name = "StartUsageError";
}

const FLAGS = {
  "--port": "relay",
  "--inbox-port": "inboxHttp",
  "--inbox-smtp-port": "inboxSmtp",
  "--smtp-port": "submission",
} as const;

function port(value: string | undefined, name: string): number {
  const text = value?.trim() ?? "";
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535)
    throw new StartUsageError(
      `${name}: must be a port number from 0 to 65535 (0: any free port); got ${JSON.stringify(value ?? "")}`,
    );
  return Number(text);
}

/** Reads the flags and the environment; `help` when --help was given. */
export function startPorts(
  args: readonly string[],
  env: (name: string) => string | undefined,
): { ports: StartPorts; help: boolean } {
  const given: Partial<Record<keyof StartPorts, number>> = {};
  let help = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === "--help" || arg === "-h") {
      help = true;
      continue;
    }
    const [flag = "", inline] = arg.split(/=(.*)/s, 2);
    const key = FLAGS[flag as keyof typeof FLAGS];
    if (!key) throw new StartUsageError(`${arg}: unknown option\n${START_USAGE}`);
    const value = inline ?? args[++i];
    given[key] = port(value, flag);
  }
  const fromEnv = (name: string, fallback?: number) => {
    const value = env(name);
    return value === undefined || value === "" ? fallback : port(value, name);
  };
  return {
    ports: {
      // RELAY_PORT is what earlier versions of this script read.
      relay: given.relay ?? fromEnv("PORT") ?? fromEnv("RELAY_PORT"),
      inboxSmtp: given.inboxSmtp ?? (fromEnv("INBOX_SMTP_PORT", 2525) as number),
      inboxHttp: given.inboxHttp ?? (fromEnv("INBOX_HTTP_PORT", 8025) as number),
      // Resend's STARTTLS port; 587 would need root on most systems.
      submission: given.submission ?? (fromEnv("SMTP_SUBMISSION_PORT", 2587) as number),
    },
    help,
  };
}

/** A clearer message for a port that is taken. */
export function portInUse(err: unknown, what: string, flag: string, port: number): unknown {
  const code = (err as { code?: string } | null)?.code;
  const inUse = code === "EADDRINUSE" || (err as Error | null)?.name === "AddrInUse";
  return inUse
    ? new StartUsageError(
        `${what} cannot listen on 127.0.0.1:${port}, which another program uses: choose another port with ${flag} N, or ${flag} 0 for any free port`,
      )
    : err;
}
