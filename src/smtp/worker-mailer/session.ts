/**
 * One set-up SMTP session: worker-mailer's socket, written and read by this transport from the
 * end of setup on. Every wait is bounded; any failure marks the session unusable.
 */
import { errorText, type Reply, SessionLost, within } from "./errors.ts";
import { ReplyReader } from "./replies.ts";

const WRITE_CHUNK = 64 * 1024;
const QUIT_WAIT_MS = 5_000;

const encoder = new TextEncoder();

/** The parts of worker-mailer's session a Session takes over. */
export interface SessionSocket {
  socket: { close(): Promise<void> };
  reader: ReadableStreamDefaultReader<Uint8Array>;
  writer: WritableStreamDefaultWriter<Uint8Array>;
}

export class Session {
  transactions = 0;
  usable = true;
  /** The server offered PIPELINING: a transaction's envelope and DATA go out in one write. */
  readonly pipelining: boolean;
  readonly #socket: SessionSocket;
  readonly #replies: ReplyReader;
  readonly #timeoutMs: number;

  constructor(socket: SessionSocket, timeoutMs: number, options: { pipelining?: boolean } = {}) {
    this.pipelining = options.pipelining ?? false;
    this.#socket = socket;
    this.#replies = new ReplyReader(socket.reader);
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
      const written = this.#socket.writer.write(chunk).catch((err: unknown) => {
        throw new SessionLost(`writing ${what} failed: ${errorText(err)}`, true);
      });
      await this.#guard(written, `while writing ${what}`);
    }
  }

  /** Reads one reply (all lines of a multi-line one), waiting `timeoutMs` (default the session's). */
  async reply(what: string, timeoutMs = this.#timeoutMs): Promise<Reply> {
    return this.#guard(this.#replies.read(), `to ${what}`, timeoutMs);
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
    this.#socket.socket.close().catch(() => {});
  }
}
