/**
 * A longer wait for the reply to the final "." of DATA on nodemailer's connections.
 *
 * RFC 5321 section 4.5.3.2.6 gives a server 10 minutes to answer the end of the data (it may be
 * scanning the message), and a client that gives up sooner and retries delivers the message twice.
 * nodemailer has one inactivity timeout (socketTimeout) for every wait and no per-phase option, so
 * this wraps SMTPConnection's `_createSendStream` (private, present in nodemailer 10): once the
 * whole message, final dot included, has gone to the socket, the socket's timeout becomes the data
 * timeout, and it goes back to socketTimeout when the reply comes. Connections whose options carry
 * no `relayDataTimeoutMs` are left alone. If nodemailer renames the method, the wrap is skipped and
 * the final reply waits socketTimeout, as before (the transport contract test then fails).
 */
import SMTPConnection from "nodemailer/lib/smtp-connection";

/** The transport option (passed through nodemailer's pool to each connection) that turns it on. */
export const DATA_TIMEOUT_OPTION = "relayDataTimeoutMs";

type Reply = (err: Error | null, response?: string) => void;

interface ConnectionInternals {
  options?: Record<string, unknown> & { socketTimeout?: number };
  _socket?: { setTimeout?: (ms: number) => unknown } | false;
}

interface SendStream {
  once(event: "end", listener: () => void): unknown;
}

type CreateSendStream = (this: ConnectionInternals, callback: Reply) => SendStream;

let installed: boolean | undefined;

/** Installs the wrap once per isolate; false when nodemailer's internals are not as expected. */
export function installDataTimeout(): boolean {
  if (installed !== undefined) return installed;
  const proto = (SMTPConnection as unknown as { prototype: Record<string, unknown> }).prototype;
  const original = proto._createSendStream as CreateSendStream | undefined;
  if (typeof original !== "function") {
    installed = false;
    return installed;
  }
  const wrapped: CreateSendStream = function (this: ConnectionInternals, callback: Reply) {
    const dataTimeout = this.options?.[DATA_TIMEOUT_OPTION];
    if (typeof dataTimeout !== "number") return original.call(this, callback);
    const socketTimeout = this.options?.socketTimeout;
    const setSocketTimeout = (ms: number | undefined) => {
      const socket = this._socket;
      if (ms !== undefined && socket && typeof socket.setTimeout === "function") {
        socket.setTimeout(ms);
      }
    };
    let answered = false;
    const stream = original.call(this, (err, response) => {
      answered = true;
      setSocketTimeout(socketTimeout);
      callback(err, response);
    });
    stream.once("end", () => {
      if (!answered) setSocketTimeout(dataTimeout);
    });
    return stream;
  };
  proto._createSendStream = wrapped;
  installed = true;
  return installed;
}
