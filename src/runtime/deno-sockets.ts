/**
 * `cloudflare:sockets` for Deno, over `Deno.connect`, `Deno.connectTls` and `Deno.startTls`, so SMTP
 * clients written for Workers' Socket API (worker-mailer) run unchanged. deno.json maps the
 * `cloudflare:sockets` specifier here.
 *
 * It covers what those clients use: `connect(address, { secureTransport, allowHalfOpen })`
 * returning a socket at once (the connection opens behind it), `readable`/`writable` byte streams,
 * `opened`, `closed`, `close()` and `startTls()`. TLS trusts Deno's root store plus whatever
 * `--cert` or DENO_CERT adds.
 */

export interface SocketAddress {
  hostname: string;
  port: number;
}

export interface SocketOptions {
  /** "off": plain TCP; "on": TLS from the first byte; "starttls": plain now, startTls() later. */
  secureTransport?: "off" | "on" | "starttls";
  /** When false (the default, as on Workers), the end of the readable side closes the socket. */
  allowHalfOpen?: boolean;
}

export interface SocketInfo {
  remoteAddress?: string;
  localAddress?: string;
}

export interface TlsOptions {
  /** The name the server's certificate must carry; defaults to the host that was dialled. */
  expectedServerHostname?: string;
}

export interface Socket {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  readonly opened: Promise<SocketInfo>;
  readonly closed: Promise<void>;
  readonly upgraded: boolean;
  readonly secureTransport: "off" | "on" | "starttls";
  close(): Promise<void>;
  startTls(options?: TlsOptions): Socket;
}

const READ_CHUNK = 16 * 1024;

function parseAddress(address: string | SocketAddress): SocketAddress {
  if (typeof address !== "string") return address;
  // "host:port" or "[v6]:port", as Workers accept.
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(address);
  if (!m) throw new TypeError(`connect(): expected "host:port", got ${JSON.stringify(address)}`);
  return { hostname: (m[1] ?? m[2]) as string, port: Number(m[3]) };
}

function describe(addr: Deno.Addr): string | undefined {
  // Checked by shape: the conn Deno.startTls returns has hostname and port but no `transport`.
  if (!("hostname" in addr) || !("port" in addr)) return undefined;
  const { hostname, port } = addr as Deno.NetAddr;
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}

/** Closing a connection Deno already closed throws; for close() that is success. */
function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // already closed
  }
}

/**
 * Deno completes a TLS handshake lazily, at the first read or write. Doing it before the socket
 * counts as open makes `opened` mean what it means on Workers: a certificate that does not verify
 * rejects it, rather than surfacing later as a failed read.
 */
async function handshaken(pending: Promise<Deno.TlsConn>): Promise<Deno.TlsConn> {
  const conn = await pending;
  try {
    await conn.handshake();
  } catch (err) {
    closeQuietly(conn);
    throw err;
  }
  return conn;
}

class DenoSocket implements Socket {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  readonly opened: Promise<SocketInfo>;
  readonly closed: Promise<void>;
  readonly upgraded: boolean;
  readonly secureTransport: "off" | "on" | "starttls";

  readonly #conn: Promise<Deno.Conn>;
  readonly #hostname: string;
  readonly #allowHalfOpen: boolean;
  #resolveClosed!: () => void;
  #rejectClosed!: (err: unknown) => void;
  #closing = false;
  /** Set once startTls() handed the connection to a TLS socket: this one must not touch it. */
  #successor: DenoSocket | undefined;
  /** The read in progress, so startTls() waits for it rather than racing it for the bytes. */
  #reading: Promise<unknown> = Promise.resolve();

  constructor(
    conn: Promise<Deno.Conn>,
    init: {
      hostname: string;
      secureTransport: "off" | "on" | "starttls";
      allowHalfOpen: boolean;
      upgraded: boolean;
    },
  ) {
    this.#conn = conn;
    this.#hostname = init.hostname;
    this.#allowHalfOpen = init.allowHalfOpen;
    this.secureTransport = init.secureTransport;
    this.upgraded = init.upgraded;
    this.closed = new Promise<void>((resolve, reject) => {
      this.#resolveClosed = resolve;
      this.#rejectClosed = reject;
    });
    this.opened = conn.then((c) => ({
      remoteAddress: describe(c.remoteAddr),
      localAddress: describe(c.localAddr),
    }));
    // A failed connection rejects `opened` and `closed`, as on Workers. Callers often await only
    // one of them, and Deno ends the process on an unhandled rejection: mark both as handled.
    this.opened.catch(() => {});
    this.closed.catch(() => {});
    conn.catch((err) => this.#rejectClosed(err));

    this.readable = new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          const read = this.#read();
          this.#reading = read.catch(() => {});
          const chunk = await read;
          if (chunk === null) {
            controller.close();
            if (!this.#allowHalfOpen) await this.close();
          } else {
            controller.enqueue(chunk);
          }
        },
        cancel: () => this.close(),
      },
      // No read-ahead: bytes are taken from the connection only when the client asks, so none are
      // left stranded in this stream when startTls() hands the connection over.
      { highWaterMark: 0 },
    );

    this.writable = new WritableStream<Uint8Array>({
      write: async (chunk) => {
        const c = await this.#live();
        let written = 0;
        while (written < chunk.byteLength) written += await c.write(chunk.subarray(written));
      },
      close: async () => {
        const c = await this.#live();
        if (this.#allowHalfOpen && "closeWrite" in c) await (c as Deno.TcpConn).closeWrite();
        else await this.close();
      },
      abort: () => this.close(),
    });
  }

  async #live(): Promise<Deno.Conn> {
    if (this.#successor) throw new Error("this socket was upgraded by startTls(); use the new one");
    if (this.#closing) throw new Error("the socket is closed");
    return await this.#conn;
  }

  /** One chunk, or null at the end of the stream (also when close() interrupted the read). */
  async #read(): Promise<Uint8Array | null> {
    if (this.#closing && !this.#successor) return null;
    const c = await this.#live();
    const buffer = new Uint8Array(READ_CHUNK);
    try {
      const n = await c.read(buffer);
      return n === null ? null : buffer.subarray(0, n);
    } catch (err) {
      if (this.#closing) return null;
      this.#rejectClosed(err);
      throw err;
    }
  }

  close(): Promise<void> {
    if (this.#successor) return this.#successor.close();
    if (!this.#closing) {
      this.#closing = true;
      this.#conn.then(closeQuietly, () => {}).finally(() => this.#resolveClosed());
    }
    return this.closed;
  }

  startTls(options: TlsOptions = {}): Socket {
    if (this.secureTransport !== "starttls") {
      throw new Error('startTls() needs a socket opened with secureTransport: "starttls"');
    }
    if (this.upgraded || this.#successor) throw new Error("startTls() was already called");
    if (this.#closing) throw new Error("the socket is closed");
    const plain = this.#conn;
    const pendingRead = this.#reading;
    const hostname = options.expectedServerHostname ?? this.#hostname;
    const tls = (async () => {
      const conn = await plain;
      await pendingRead;
      return await handshaken(Deno.startTls(conn as Deno.TcpConn, { hostname }));
    })();
    const successor = new DenoSocket(tls, {
      hostname,
      secureTransport: "starttls",
      allowHalfOpen: this.#allowHalfOpen,
      upgraded: true,
    });
    this.#successor = successor;
    // One connection under two sockets: the plain one ends when the TLS one does.
    successor.closed.then(this.#resolveClosed, this.#rejectClosed);
    return successor;
  }
}

export function connect(address: string | SocketAddress, options: SocketOptions = {}): Socket {
  const { hostname, port } = parseAddress(address);
  const secureTransport = options.secureTransport ?? "off";
  const conn: Promise<Deno.Conn> =
    secureTransport === "on"
      ? handshaken(Deno.connectTls({ hostname, port }))
      : Deno.connect({ hostname, port, transport: "tcp" });
  return new DenoSocket(conn, {
    hostname,
    secureTransport,
    allowHalfOpen: options.allowHalfOpen ?? false,
    upgraded: false,
  });
}
