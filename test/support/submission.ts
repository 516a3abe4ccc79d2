/**
 * The SMTP submission listener (src/submission/) in front of the relay in workerd, as a Worker
 * deployment with the listener beside it runs: the listener in this process, the relay over HTTP.
 */
import { loadSubmissionConfig } from "../../src/config/submission.ts";
import { silentLogger } from "../../src/log.ts";
import { type SubmissionListener, startSubmission } from "../../src/submission/listener.ts";
import { networkRelay } from "../../src/submission/relay-client.ts";

export async function startListener(
  relayUrl: string,
  env: Record<string, string> = {},
): Promise<SubmissionListener> {
  return startSubmission({
    config: loadSubmissionConfig({ SMTP_SUBMISSION_PORT: "0", ...env }),
    relay: networkRelay(relayUrl),
    log: silentLogger,
  });
}

/** A raw SMTP conversation: send each line, collect every reply (multi-line replies joined). */
export async function converse(
  port: number,
  lines: string[],
  opts: { dropAfter?: number; before?: (index: number) => Promise<void> } = {},
): Promise<string[]> {
  const { connect } = await import("node:net");
  const socket = connect(port, "127.0.0.1");
  const replies: string[] = [];
  let buffer = "";
  let current: string[] = [];
  let waiting: (() => void) | undefined;
  socket.on("data", (chunk) => {
    buffer += chunk.toString("latin1");
    let i = buffer.indexOf("\r\n");
    while (i >= 0) {
      const line = buffer.slice(0, i);
      buffer = buffer.slice(i + 2);
      current.push(line);
      if (/^\d{3} /.test(line) || /^\d{3}$/.test(line)) {
        replies.push(current.join("\n"));
        current = [];
        waiting?.();
      }
      i = buffer.indexOf("\r\n");
    }
  });
  const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
  const next = (count: number) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no reply; so far: ${replies.join(" | ")}`)),
        15_000,
      );
      const check = () => {
        if (replies.length >= count) {
          clearTimeout(timer);
          waiting = undefined;
          resolve();
        }
      };
      waiting = check;
      check();
      void closed.then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  await next(1);
  let expected = 1;
  for (const [n, line] of lines.entries()) {
    if (opts.dropAfter !== undefined && n === opts.dropAfter) {
      socket.destroy();
      await closed;
      return replies;
    }
    await opts.before?.(n);
    socket.write(`${line}\r\n`);
    // DATA content lines get no reply until the final dot.
    const inData = replies.at(-1)?.startsWith("354") && line !== ".";
    if (!inData) {
      expected++;
      await next(expected);
    }
  }
  socket.end();
  return replies;
}

/** AUTH PLAIN's initial response for user `resend` and `key`. */
export const plain = (key: string, user = "resend") =>
  Buffer.from(`\u0000${user}\u0000${key}`).toString("base64");
