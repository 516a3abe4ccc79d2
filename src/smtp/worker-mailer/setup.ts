/**
 * Opening a session with worker-mailer 1.2.1: its constructor opens the socket in the right TLS
 * mode, then its steps `greet`, `ehlo`, `tls` (STARTTLS) and `auth` (PLAIN or LOGIN) set the
 * session up. These are TypeScript-private members, present at runtime and checked by
 * `workerMailerInternals`. The steps are called one by one rather than through
 * `initializeSmtpSession`, so STARTTLS is required before credentials are sent (worker-mailer would
 * go on in clear when the server does not offer it) and AUTH is skipped when there are no
 * credentials (worker-mailer refuses to continue whenever the server advertises AUTH).
 *
 * Credentials are handed over as the binary string of their UTF-8 bytes, because worker-mailer
 * base64-encodes them with btoa, which throws on anything beyond Latin-1.
 */
import { LogLevel, WorkerMailer } from "worker-mailer";
import type { SmtpTarget } from "../url.ts";
import { errorText, SessionLost, SetupFailed, within } from "./errors.ts";
import { replyIn } from "./replies.ts";
import { Session } from "./session.ts";
import { utf8AsBinaryString } from "./wire.ts";

export type WorkerMailerAuthMethod = "plain" | "login";

/** The members of a worker-mailer 1.2.1 instance this transport relies on. */
export interface WorkerMailerInternals {
  socket: { close(): Promise<void>; closed: Promise<void> };
  reader: ReadableStreamDefaultReader<Uint8Array>;
  writer: WritableStreamDefaultWriter<Uint8Array>;
  supportsStartTls: boolean;
  waitForSocketConnected(): Promise<void>;
  greet(): Promise<void>;
  ehlo(): Promise<void>;
  tls(): Promise<void>;
  auth(): Promise<void>;
  /** Reads the EHLO reply; ehlo() calls it, so wrapping it shows this transport the reply too. */
  parseCapabilities(reply: string): void;
}

const INTERNAL_METHODS = [
  "waitForSocketConnected",
  "greet",
  "ehlo",
  "tls",
  "auth",
  "parseCapabilities",
] as const;

/**
 * Checks that `value` still has the private members this file uses. They are not worker-mailer's
 * API, so an update may rename them: then every attempt fails as temporary with this message
 * (the queue waits) instead of misbehaving.
 */
export function workerMailerInternals(value: unknown): WorkerMailerInternals {
  const v = value as Record<string, unknown> | null;
  const missing = [
    ...INTERNAL_METHODS.filter((name) => typeof v?.[name] !== "function"),
    ...(["socket", "reader", "writer"] as const).filter(
      (name) => typeof v?.[name] !== "object" || v?.[name] === null,
    ),
    ...(typeof v?.supportsStartTls === "boolean" ? [] : ["supportsStartTls"]),
  ];
  if (missing.length > 0) {
    throw new Error(
      `worker-mailer's internals changed (this transport was written against 1.2.1): missing ${missing.join(", ")}`,
    );
  }
  return value as WorkerMailerInternals;
}

// worker-mailer 1.2.1 exports the class with a private constructor and private steps.
type WorkerMailerConstructor = new (options: Record<string, unknown>) => unknown;

const encoder = new TextEncoder();

export interface SetupOptions {
  target: SmtpTarget;
  /** The whole setup, and then each reply of the session. */
  timeoutMs: number;
  /** What worker-mailer times each setup step with (its socketTimeoutMs). */
  stepTimeoutMs: number;
  authMethods: WorkerMailerAuthMethod[];
}

/** Where a setup has got to, shared between the steps and whoever gives up on them. */
class SetupProgress {
  wm: WorkerMailerInternals | undefined;
  step = "connecting";
  timedOut = false;

  /** After the deadline, worker-mailer's step still runs to its end; stop before the next one. */
  next(name: string): void {
    if (this.timedOut) throw new SessionLost(`gave up before ${name}`);
    this.step = name;
  }
}

function construct({ target, stepTimeoutMs, authMethods }: SetupOptions): WorkerMailerInternals {
  const Mailer = WorkerMailer as unknown as WorkerMailerConstructor;
  return workerMailerInternals(
    new Mailer({
      host: target.host,
      port: target.port,
      secure: target.security === "implicit",
      startTls: target.security === "starttls",
      ...(target.auth
        ? {
            credentials: {
              username: utf8AsBinaryString(target.auth.user),
              password: utf8AsBinaryString(target.auth.pass),
            },
          }
        : {}),
      authType: authMethods,
      // Its own logging goes to console and would repeat what the outcomes carry.
      logLevel: LogLevel.NONE,
      socketTimeoutMs: stepTimeoutMs,
      responseTimeoutMs: stepTimeoutMs,
    }),
  );
}

async function startTls(wm: WorkerMailerInternals, progress: SetupProgress): Promise<void> {
  // smtp:// means STARTTLS or nothing: stop before any credentials or mail go out in clear.
  if (!wm.supportsStartTls) {
    throw new SetupFailed(
      "STARTTLS is required (smtp://) but the server does not offer it",
      undefined,
    );
  }
  progress.next("STARTTLS");
  await wm.tls();
  wm.socket.closed.catch(() => {});
  progress.next("EHLO after STARTTLS");
  await wm.ehlo();
}

/**
 * Whether the last EHLO reply offered PIPELINING (RFC 2920). worker-mailer keeps only the
 * capabilities it uses, so its parser is wrapped; the reply after STARTTLS replaces the one before.
 */
function watchPipelining(wm: WorkerMailerInternals): () => boolean {
  let offered = false;
  const parse = wm.parseCapabilities.bind(wm);
  wm.parseCapabilities = (reply: string) => {
    offered = /^250[ -]PIPELINING\b/im.test(reply);
    parse(reply);
  };
  return () => offered;
}

async function setUp(options: SetupOptions, progress: SetupProgress): Promise<Session> {
  const wm = construct(options);
  progress.wm = wm;
  const pipelining = watchPipelining(wm);
  wm.socket.closed.catch(() => {});
  await wm.waitForSocketConnected();
  progress.next("waiting for the greeting");
  await wm.greet();
  progress.next("EHLO");
  await wm.ehlo();
  if (options.target.security === "starttls") await startTls(wm, progress);
  if (options.target.auth) {
    progress.next("AUTH");
    await wm.auth();
  }
  progress.next("MAIL FROM");
  return new Session(wm, options.timeoutMs, { pipelining: pipelining() });
}

/** Lets go of a failed setup's socket without making worker-mailer spin. */
function abandon(progress: SetupProgress, message: string): void {
  // A worker-mailer read may still be waiting after a timeout. Closing the socket would end it
  // with {done: true}, on which it spins forever; QUIT lets a slow server answer it and close.
  if (progress.timedOut || /Timeout while waiting/i.test(message)) {
    progress.wm?.writer.write(encoder.encode("QUIT\r\n")).catch(() => {});
  } else {
    progress.wm?.socket.close().catch(() => {});
  }
}

/** A set-up session, or SetupFailed naming the step that failed and the server's reply. */
export async function openSession(options: SetupOptions): Promise<Session> {
  const progress = new SetupProgress();
  try {
    return await within(
      setUp(options, progress),
      options.timeoutMs,
      "while setting up the session",
      () => {
        progress.timedOut = true;
      },
    );
  } catch (err) {
    const message = errorText(err);
    abandon(progress, message);
    if (err instanceof SetupFailed) throw err;
    const { host, port } = options.target;
    throw new SetupFailed(
      progress.step === "connecting"
        ? `could not connect to ${host}:${port}: ${message}`
        : `${progress.step}: ${message}`,
      replyIn(message),
    );
  }
}
