/**
 * SMTP transport on worker-mailer 1.2.1, the Workers-native client over `cloudflare:sockets` (so it
 * runs in workerd, and on Deno through src/runtime/deno-sockets.ts; not on Node).
 *
 * worker-mailer's public API cannot do what the relay needs: `send()` composes its own MIME (the
 * relay stores finished bytes whose Message-ID and Date must not change between attempts), writes
 * header values raw (CRLF injection) and a `BCC:` header, and gives up at the first refused RCPT.
 * So this transport uses worker-mailer for the session only and runs the mail transaction itself:
 *
 * - worker-mailer (its TypeScript-private members, present at runtime; checked by
 *   `workerMailerInternals`): the constructor opens the socket in the right TLS mode, then its
 *   steps `greet`, `ehlo`, `tls` (STARTTLS) and `auth` (PLAIN or LOGIN) set the session up.
 *   The steps are called one by one rather than through `initializeSmtpSession`, so STARTTLS is
 *   required before credentials are sent (worker-mailer would go on in clear when the server does
 *   not offer it) and AUTH is skipped when there are no credentials (worker-mailer refuses to
 *   continue whenever the server advertises AUTH).
 * - this file: MAIL FROM, one RCPT TO per recipient (each reply is that recipient's outcome), DATA
 *   with the stored bytes written to the session's socket, dot-stuffed and with bare CR/LF made
 *   CRLF, reading replies with its own reader and timeouts, and pooling sessions.
 *
 * Credentials are handed over as the binary string of their UTF-8 bytes, because worker-mailer
 * base64-encodes them with btoa, which throws on anything beyond Latin-1.
 *
 * What stays worker-mailer's and cannot be fixed from here without patching it (each pinned by a
 * test in test/workers/worker-mailer.test.ts or a skipped contract case): it says `EHLO 127.0.0.1`
 * whatever `ehloName` is; its reads loop forever on a closed stream, so a server that drops the
 * connection during session setup (or closes it after a setup step timed out, leaving a read
 * pending that workerd cannot cancel) makes it spin at 100% CPU, which no timer can interrupt: in
 * production the invocation then dies at its CPU limit and its claimed messages come back after
 * their lease. `responseTimeoutMs` is ignored (its `socketTimeoutMs` times every setup reply), so
 * the whole setup also runs under this file's own deadline.
 */
import { LogLevel, WorkerMailer } from "worker-mailer";
import {
  classifyCode,
  type Envelope,
  parseReply,
  type RecipientOutcome,
  type ReplyStage,
  type SmtpTransport,
} from "./transport.ts";
import type { SmtpTarget } from "./url.ts";

export type WorkerMailerAuthMethod = "plain" | "login";

export interface WorkerMailerTransportOptions {
  target: SmtpTarget;
  /** Not sent: worker-mailer always says `EHLO 127.0.0.1`. Kept so every transport takes it. */
  ehloName: string;
  /** Longest silence waited for: a reply, a write, or the whole session setup. */
  timeoutMs: number;
  /** The wait for the reply to the final "." of DATA (at least timeoutMs; default timeoutMs). */
  dataTimeoutMs?: number | undefined;
  /** Sessions open at once; sends beyond that wait for one to come free. */
  maxConnections: number;
  /**
   * Mechanisms worker-mailer may use (default both). It prefers PLAIN whatever the order, so
   * `["login"]` is how to force LOGIN. CRAM-MD5 is left out: credentials only travel over TLS here.
   */
  authMethods?: WorkerMailerAuthMethod[];
}

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
}

const INTERNAL_METHODS = ["waitForSocketConnected", "greet", "ehlo", "tls", "auth"] as const;

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

const MAX_REPLY_CHARS = 64 * 1024;
const WRITE_CHUNK = 64 * 1024;
// As nodemailer's pool: some servers limit messages per connection, and a fresh one is cheap.
const MAX_TRANSACTIONS_PER_SESSION = 100;
const QUIT_WAIT_MS = 5_000;

const encoder = new TextEncoder();

interface Reply {
  code: number;
  text: string;
}

/** The session cannot be used any more: closed, timed out, or out of step with the server. */
class SessionLost extends Error {
  /** True when the server closed the connection (or a write found it closed). */
  readonly closed: boolean;
  constructor(message: string, closed = false) {
    super(message);
    this.closed = closed;
  }
}

/** Session setup failed; `reply` is the server's answer when there was one. */
class SetupFailed extends Error {
  readonly reply: Reply | undefined;
  constructor(message: string, reply: Reply | undefined) {
    super(message);
    this.reply = reply;
  }
}

/**
 * Runs `work` for at most `ms`; on expiry calls `onTimeout` and throws SessionLost. A session
 * closes its socket there, so a read of its own still waiting ends; the timer is cleared either way.
 */
async function within<T>(work: Promise<T>, ms: number, what: string, onTimeout: () => void) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout();
      reject(new SessionLost(`no answer within ${ms} ms ${what}`));
    }, ms);
  });
  try {
    return await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** One set-up SMTP session: worker-mailer's socket, read and written by this file from now on. */
class Session {
  transactions = 0;
  usable = true;
  #buffer = "";
  readonly #decoder = new TextDecoder();
  readonly #wm: WorkerMailerInternals;
  readonly #timeoutMs: number;

  constructor(wm: WorkerMailerInternals, timeoutMs: number) {
    this.#wm = wm;
    this.#timeoutMs = timeoutMs;
  }

  /** Sends one command line and reads its reply. */
  async command(line: string, what: string): Promise<Reply> {
    await this.write(encoder.encode(`${line}\r\n`), what);
    return this.reply(what);
  }

  async write(bytes: Uint8Array, what: string): Promise<void> {
    for (let at = 0; at < bytes.length; at += WRITE_CHUNK) {
      const chunk = bytes.subarray(at, Math.min(at + WRITE_CHUNK, bytes.length));
      const written = this.#wm.writer.write(chunk).catch((err: unknown) => {
        throw new SessionLost(`writing ${what} failed: ${errorText(err)}`, true);
      });
      await this.#guard(written, `while writing ${what}`);
    }
  }

  /** Reads one reply (all lines of a multi-line one), waiting `timeoutMs` (default the session's). */
  async reply(what: string, timeoutMs = this.#timeoutMs): Promise<Reply> {
    return this.#guard(this.#readReply(), `to ${what}`, timeoutMs);
  }

  async #guard<T>(work: Promise<T>, what: string, timeoutMs = this.#timeoutMs): Promise<T> {
    try {
      const result = await within(work, timeoutMs, what, () => this.abort());
      return result;
    } catch (err) {
      this.usable = false;
      throw err instanceof SessionLost ? err : new SessionLost(errorText(err));
    }
  }

  async #readReply(): Promise<Reply> {
    const lines: string[] = [];
    for (;;) {
      let end = this.#buffer.indexOf("\n");
      while (end < 0) {
        if (this.#buffer.length > MAX_REPLY_CHARS) {
          throw new SessionLost("the server sent a reply line longer than 64 KiB");
        }
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await this.#wm.reader.read();
        } catch (err) {
          throw new SessionLost(`the connection failed: ${errorText(err)}`, true);
        }
        // Unlike worker-mailer's own read loop, a finished stream ends the wait.
        if (chunk.done) throw new SessionLost("the server closed the connection", true);
        this.#buffer += this.#decoder.decode(chunk.value, { stream: true });
        end = this.#buffer.indexOf("\n");
      }
      const line = this.#buffer.slice(0, end).replace(/\r$/, "");
      this.#buffer = this.#buffer.slice(end + 1);
      lines.push(line);
      const m = /^([2-5]\d\d)([ -]|$)/.exec(line);
      if (!m) throw new SessionLost(`the server sent something that is not a reply: ${line}`);
      if (m[2] !== "-") return { code: Number(m[1]), text: lines.join("\n") };
      if (lines.length > 1000) throw new SessionLost("the server sent a reply of over 1000 lines");
    }
  }

  /** Ends the session politely when the server is still there. */
  async quit(): Promise<void> {
    if (this.usable) {
      this.usable = false;
      try {
        await within(this.command("QUIT", "QUIT"), QUIT_WAIT_MS, "to QUIT", () => {});
      } catch {
        // It is closed below either way.
      }
    }
    this.abort();
  }

  /** Closes the socket; a read of ours still waiting then sees the end of the stream. */
  abort(): void {
    this.usable = false;
    this.#wm.socket.close().catch(() => {});
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Why `address` cannot be an SMTP command argument, or undefined when it can. The relay validates
 * addresses when it accepts a message; this is the last line, since here the address is written
 * into a command line: no line breaks or other controls, no spaces or angle brackets.
 */
export function envelopeProblem(address: string, isSender: boolean): string | undefined {
  if (address === "") return isSender ? undefined : "an empty address";
  if (/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(address)) {
    return `${JSON.stringify(address)} contains a line break or another control character`;
  }
  if (/[\s<>]/.test(address)) return `${JSON.stringify(address)} contains a space or < >`;
  if (!/^[^@]+@[^@]+$/.test(address)) return `${JSON.stringify(address)} is not local@domain`;
  if (address.length > 254) return `${JSON.stringify(address)} is longer than 254 characters`;
  return undefined;
}

/**
 * The DATA payload: line ends made CRLF (a bare CR or LF would let some servers see an end of data
 * that others do not: SMTP smuggling), a dot at the start of a line doubled, and the final
 * `.` line. Counted first, so a 7 MiB message is copied once.
 */
export function dataBytes(raw: Uint8Array): Uint8Array {
  const CR = 13;
  const LF = 10;
  const DOT = 46;
  const walk = (emit: (byte: number) => void) => {
    let lineStart = true;
    for (let i = 0; i < raw.length; i++) {
      const byte = raw[i] as number;
      if (byte === CR || byte === LF) {
        if (byte === CR && raw[i + 1] === LF) i++;
        emit(CR);
        emit(LF);
        lineStart = true;
        continue;
      }
      if (lineStart && byte === DOT) emit(DOT);
      emit(byte);
      lineStart = false;
    }
    if (!lineStart) {
      emit(CR);
      emit(LF);
    }
    emit(DOT);
    emit(CR);
    emit(LF);
  };
  let size = 0;
  walk(() => {
    size++;
  });
  const out = new Uint8Array(size);
  let at = 0;
  walk((byte) => {
    out[at++] = byte;
  });
  return out;
}

/** RFC 4616/4954 send credentials as UTF-8; worker-mailer base64-encodes with btoa (Latin-1). */
function utf8AsBinaryString(value: string): string {
  let out = "";
  for (const byte of encoder.encode(value)) out += String.fromCharCode(byte);
  return out;
}

/** The server reply inside one of worker-mailer's error messages ("...: 535 5.7.8 ..."). */
function replyIn(message: string): Reply | undefined {
  const m = /(?:^|[\s:.])([2-5]\d\d)([ -][\s\S]*)?$/.exec(message.trim());
  if (!m?.[1]) return undefined;
  return { code: Number(m[1]), text: `${m[1]}${m[2] ?? ""}`.trim() };
}

function outcome(address: string, reply: Reply, stage: ReplyStage = "other"): RecipientOutcome {
  const status =
    reply.code >= 200 && reply.code < 300 ? "accepted" : classifyCode(reply.code, stage);
  return { address, status, reply: parseReply(reply.text, reply.code) };
}

function noReply(address: string, text: string): RecipientOutcome {
  return { address, status: "temporary", reply: { code: null, text } };
}

export function createWorkerMailerTransport(options: WorkerMailerTransportOptions): SmtpTransport {
  const { target, timeoutMs } = options;
  // RFC 5321 section 4.5.3.2.6: the server may take 10 minutes to answer the final dot, and
  // giving up sooner means sending the message again.
  const dataTimeoutMs = Math.max(options.dataTimeoutMs ?? timeoutMs, timeoutMs);
  // worker-mailer times each setup step with socketTimeoutMs (it ignores responseTimeoutMs);
  // the setup as a whole is bounded by timeoutMs below.
  const stepTimeoutMs = Math.min(timeoutMs, 15_000);
  const authMethods = options.authMethods ?? ["plain", "login"];
  const maxConnections = Math.max(1, options.maxConnections);

  const idle: Session[] = [];
  const waiting: (() => void)[] = [];
  let busy = 0;
  let closing = false;

  const acquireSlot = async () => {
    while (busy >= maxConnections) await new Promise<void>((resolve) => waiting.push(resolve));
    busy++;
  };
  const releaseSlot = () => {
    busy--;
    waiting.shift()?.();
  };

  const openSession = async (): Promise<Session> => {
    let wm: WorkerMailerInternals | undefined;
    let step = "connecting";
    let timedOut = false;
    // After the deadline, worker-mailer's step still runs to its end; stop before the next one.
    const next = (name: string) => {
      if (timedOut) throw new SessionLost(`gave up before ${name}`);
      step = name;
    };
    const setup = async () => {
      const Mailer = WorkerMailer as unknown as WorkerMailerConstructor;
      wm = workerMailerInternals(
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
      wm.socket.closed.catch(() => {});
      await wm.waitForSocketConnected();
      next("waiting for the greeting");
      await wm.greet();
      next("EHLO");
      await wm.ehlo();
      if (target.security === "starttls") {
        // smtp:// means STARTTLS or nothing: stop before any credentials or mail go out in clear.
        if (!wm.supportsStartTls) {
          throw new SetupFailed(
            "STARTTLS is required (smtp://) but the server does not offer it",
            undefined,
          );
        }
        next("STARTTLS");
        await wm.tls();
        wm.socket.closed.catch(() => {});
        next("EHLO after STARTTLS");
        await wm.ehlo();
      }
      if (target.auth) {
        next("AUTH");
        await wm.auth();
      }
      next("MAIL FROM");
      return new Session(wm, timeoutMs);
    };

    try {
      return await within(setup(), timeoutMs, "while setting up the session", () => {
        timedOut = true;
      });
    } catch (err) {
      const message = errorText(err);
      // A worker-mailer read may still be waiting after a timeout. Closing the socket would end it
      // with {done: true}, on which it spins forever; QUIT lets a slow server answer it and close.
      if (timedOut || /Timeout while waiting/i.test(message)) {
        wm?.writer.write(encoder.encode("QUIT\r\n")).catch(() => {});
      } else {
        wm?.socket.close().catch(() => {});
      }
      if (err instanceof SetupFailed) throw err;
      const reply = replyIn(message);
      throw new SetupFailed(
        step === "connecting"
          ? `could not connect to ${target.host}:${target.port}: ${message}`
          : `${step}: ${message}`,
        reply,
      );
    }
  };

  const release = (session: Session) => {
    if (session.usable && !closing && session.transactions < MAX_TRANSACTIONS_PER_SESSION) {
      idle.push(session);
    } else {
      session.quit().catch(() => {});
    }
  };

  /**
   * One mail transaction for `to` (all valid). `stale` means the session was found closed (or
   * closing: 421) at MAIL FROM, before the server said anything about this message: a pooled
   * session the server dropped while it sat idle.
   */
  const transaction = async (
    session: Session,
    from: string,
    to: string[],
    data: Uint8Array,
  ): Promise<{ stale: boolean; outcomes: RecipientOutcome[] }> => {
    const outcomes: (RecipientOutcome | undefined)[] = to.map(() => undefined);
    const finish = (fill: (address: string) => RecipientOutcome) =>
      to.map((address, i) => outcomes[i] ?? fill(address));
    const reset = async () => {
      try {
        const r = await session.command("RSET", "RSET");
        if (r.code !== 250) session.usable = false;
      } catch {
        session.usable = false;
      }
    };
    const endsSession = (reply: Reply) => {
      // 421: the server is closing the connection.
      if (reply.code === 421) session.usable = false;
    };
    session.transactions++;
    let stage = "MAIL FROM";
    try {
      // SMTPUTF8 (RFC 6531) when an address needs it; the relay allows that only when told the
      // smart host has it (SMTP_UTF8).
      const utf8 = /[^\x00-\x7f]/.test([from, ...to].join(""));
      let mail: Reply;
      try {
        mail = await session.command(`MAIL FROM:<${from}>${utf8 ? " SMTPUTF8" : ""}`, stage);
      } catch (err) {
        if (err instanceof SessionLost && err.closed) {
          return { stale: true, outcomes: finish((a) => noReply(a, `${stage}: ${err.message}`)) };
        }
        throw err;
      }
      endsSession(mail);
      // A 421 waiting on a pooled session was said while it sat idle: the server is going away.
      if (mail.code === 421) {
        return { stale: true, outcomes: finish((a) => outcome(a, mail)) };
      }
      if (mail.code < 200 || mail.code >= 300) {
        if (session.usable) await reset();
        return { stale: false, outcomes: finish((a) => outcome(a, mail)) };
      }
      const accepted: number[] = [];
      for (const [i, address] of to.entries()) {
        stage = `RCPT TO:<${address}>`;
        const rcpt = await session.command(`RCPT TO:<${address}>`, stage);
        endsSession(rcpt);
        if (rcpt.code >= 200 && rcpt.code < 300) accepted.push(i);
        else outcomes[i] = outcome(address, rcpt, "rcpt");
        if (!session.usable) break;
      }
      if (accepted.length === 0 || !session.usable) {
        if (session.usable) await reset();
        return {
          stale: false,
          outcomes: finish((a) => noReply(a, `${stage}: the server closed the session`)),
        };
      }
      stage = "DATA";
      const go = await session.command("DATA", stage);
      endsSession(go);
      if (go.code !== 354) {
        // Anything but 354 means the message was not taken, even a (nonsensical) 2xx.
        if (go.code < 400) {
          session.usable = false;
          return { stale: false, outcomes: finish((a) => noReply(a, `DATA: ${go.text}`)) };
        }
        if (session.usable) await reset();
        return { stale: false, outcomes: finish((a) => outcome(a, go)) };
      }
      stage = "the message";
      await session.write(data, stage);
      stage = "the end of the message";
      const done = await session.reply(stage, dataTimeoutMs);
      endsSession(done);
      return { stale: false, outcomes: finish((a) => outcome(a, done)) };
    } catch (err) {
      session.abort();
      return { stale: false, outcomes: finish((a) => noReply(a, `${stage}: ${errorText(err)}`)) };
    }
  };

  return {
    async send(envelope: Envelope, raw: Uint8Array): Promise<RecipientOutcome[]> {
      // Nothing that could end a command line reaches one: such an address is refused for good
      // (retrying cannot change it) and the others still go.
      const senderProblem = envelopeProblem(envelope.from, true);
      const outcomes: (RecipientOutcome | undefined)[] = envelope.to.map((address) => {
        const problem = senderProblem
          ? `the sender ${senderProblem}`
          : envelopeProblem(address, false);
        return problem === undefined
          ? undefined
          : {
              address,
              status: "permanent",
              reply: { code: null, text: `not sent: ${problem}` },
            };
      });
      const valid = envelope.to.filter((_, i) => outcomes[i] === undefined);
      const merge = (got: RecipientOutcome[]) => {
        let next = 0;
        return envelope.to.map((address, i) => {
          const own = outcomes[i];
          if (own) return own;
          return got[next++] ?? noReply(address, "no outcome");
        });
      };
      if (valid.length === 0) return merge([]);

      const data = dataBytes(raw);
      await acquireSlot();
      try {
        // A pooled session may have been closed by the server while idle: then one fresh try.
        for (let attempt = 0; ; attempt++) {
          const pooled = idle.pop();
          let session: Session;
          try {
            session = pooled ?? (await openSession());
          } catch (err) {
            const reply = err instanceof SetupFailed ? err.reply : undefined;
            const text = errorText(err);
            // A refused login, a 4xx/5xx greeting, missing STARTTLS: the session's problem, not
            // the message's, so it stays queued (as nodemailer's transport, and Postfix's
            // smtp_sasl_auth_soft_bounce); fixing the smart host or password delivers the backlog.
            return merge(
              valid.map((address) => ({
                address,
                status: "temporary",
                reply: reply ? parseReply(reply.text, reply.code) : { code: null, text },
              })),
            );
          }
          const result = await transaction(session, envelope.from, valid, data);
          if (result.stale && pooled && attempt === 0) {
            session.abort();
            continue;
          }
          release(session);
          return merge(result.outcomes);
        }
      } finally {
        releaseSlot();
      }
    },

    async close(): Promise<void> {
      closing = true;
      await Promise.all(idle.splice(0).map((session) => session.quit()));
    },
  };
}
