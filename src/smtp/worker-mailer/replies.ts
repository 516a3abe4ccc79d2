/**
 * Reading SMTP replies off worker-mailer's socket (its own read loop spins on a closed stream, so
 * after setup this reader is the only one), and turning replies into recipient outcomes.
 */
import { classifyCode, parseReply, type RecipientOutcome, type ReplyStage } from "../transport.ts";
import { errorText, type Reply, SessionLost } from "./errors.ts";

const MAX_REPLY_CHARS = 64 * 1024;
const MAX_REPLY_LINES = 1000;

/** Reads whole replies from a stream, keeping what arrived past the end of one for the next. */
export class ReplyReader {
  #buffer = "";
  readonly #decoder = new TextDecoder();
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;

  constructor(reader: ReadableStreamDefaultReader<Uint8Array>) {
    this.#reader = reader;
  }

  /** One reply, all lines of a multi-line one. Throws SessionLost on anything that is not one. */
  async read(): Promise<Reply> {
    const lines: string[] = [];
    for (;;) {
      const line = await this.#line();
      lines.push(line);
      const m = /^([2-5]\d\d)([ -]|$)/.exec(line);
      if (!m) throw new SessionLost(`the server sent something that is not a reply: ${line}`);
      if (m[2] !== "-") return { code: Number(m[1]), text: lines.join("\n") };
      if (lines.length > MAX_REPLY_LINES) {
        throw new SessionLost("the server sent a reply of over 1000 lines");
      }
    }
  }

  /** The next line without its line end, reading more from the stream until one is complete. */
  async #line(): Promise<string> {
    let end = this.#buffer.indexOf("\n");
    while (end < 0) {
      if (this.#buffer.length > MAX_REPLY_CHARS) {
        throw new SessionLost("the server sent a reply line longer than 64 KiB");
      }
      this.#buffer += await this.#chunk();
      end = this.#buffer.indexOf("\n");
    }
    const line = this.#buffer.slice(0, end).replace(/\r$/, "");
    this.#buffer = this.#buffer.slice(end + 1);
    return line;
  }

  async #chunk(): Promise<string> {
    let chunk: ReadableStreamReadResult<Uint8Array>;
    try {
      chunk = await this.#reader.read();
    } catch (err) {
      throw new SessionLost(`the connection failed: ${errorText(err)}`, true);
    }
    // Unlike worker-mailer's own read loop, a finished stream ends the wait.
    if (chunk.done) throw new SessionLost("the server closed the connection", true);
    return this.#decoder.decode(chunk.value, { stream: true });
  }
}

/** The server reply inside one of worker-mailer's error messages ("...: 535 5.7.8 ..."). */
export function replyIn(message: string): Reply | undefined {
  const m = /(?:^|[\s:.])([2-5]\d\d)([ -][\s\S]*)?$/.exec(message.trim());
  if (!m?.[1]) return undefined;
  return { code: Number(m[1]), text: `${m[1]}${m[2] ?? ""}`.trim() };
}

export function isPositive(reply: Reply): boolean {
  return reply.code >= 200 && reply.code < 300;
}

/** What `reply` means for `address`: accepted on 2xx, else as classifyCode reads it. */
export function outcome(
  address: string,
  reply: Reply,
  stage: ReplyStage = "other",
): RecipientOutcome {
  const status = isPositive(reply) ? "accepted" : classifyCode(reply.code, stage);
  return { address, status, reply: parseReply(reply.text, reply.code) };
}

/** No verdict from the server for `address`: it stays queued. */
export function noReply(address: string, text: string): RecipientOutcome {
  return { address, status: "temporary", reply: { code: null, text } };
}
