/**
 * The SMTP submission listener: for apps and servers that speak only SMTP (WordPress, Gitea,
 * Django, printers, a Postfix `relayhost`). Resend's convention: username `resend`, the API key
 * as password. Built on `smtp-server` (the parser, pipelining, STARTTLS, SASL and DATA
 * dot-unstuffing are the hard parts of a listener, and it has them well tested); this module only
 * says what the relay decides.
 *
 * It is an SMTP front for the relay's own HTTP API (relay-client.ts), because the relay may not
 * share this process: `npm start` runs it in workerd, where no socket can be listened on, and a
 * Worker deployment runs it beside the Worker (SMTP_SUBMISSION_RELAY_URL). On Deno it calls the
 * app in process. Either way a key is checked as the API checks it, and "250" means the relay
 * answered 200: stored.
 */
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from "smtp-server";
import type { SubmissionConfig } from "../config/submission.ts";
import type { Logger } from "../log.ts";
import {
  AuthLockout,
  ConnectionCounter,
  IDLE_TIMEOUT_MS,
  MAX_COMMANDS_BEFORE_AUTH,
  MAX_CONNECTIONS,
  SESSION_TIMEOUT_MS,
} from "./limits.ts";
import { type RelayFetch, SmtpReplyError, submit, suppressionOf } from "./relay-client.ts";
import {
  authenticateClient,
  authorize,
  checkRecipient,
  checkSender,
  receivedHeader,
  type SessionUser,
  trustedNetworkOf,
} from "./session.ts";

export interface SubmissionListener {
  /** The bound ports (useful with port 0). */
  port: number | undefined;
  tlsPort: number | undefined;
  close(): Promise<void>;
}

export interface ListenerOptions {
  config: SubmissionConfig;
  relay: RelayFetch;
  log: Logger;
  now?: () => number;
}

/** What smtp-server's connection exposes that the session timeout needs. */
interface OpenConnection {
  id: string;
  send(code: number, text: string): void;
}

type Callback = (err?: Error | null) => void;

const userOf = (session: SMTPServerSession) => session.user as unknown as SessionUser | undefined;

function reply(callback: Callback, err: unknown, log: Logger, session: SMTPServerSession): void {
  if (err instanceof SmtpReplyError) {
    callback(err);
    return;
  }
  log.error("submission.failed", { session: session.id, error: String(err) });
  callback(new SmtpReplyError(451, "4.3.0", "Local error; nothing was stored, try again later"));
}

/** One server (plain with STARTTLS, or implicit TLS) with the relay's handlers. */
function createServer(o: ListenerOptions, implicitTls: boolean, shared: Shared): SMTPServer {
  const { config, relay, log } = o;
  const now = o.now ?? Date.now;
  const sessionTimers = new Map<string, ReturnType<typeof setTimeout>>();
  const counted = new Set<string>();
  const messages = new Map<string, number>();

  /** Trusted networks send under their key without AUTH (set again after STARTTLS resets it). */
  const trust = async (session: SMTPServerSession): Promise<void> => {
    const network = trustedNetworkOf(config.trustedNetworks, session.remoteAddress);
    if (!network) return;
    let key: SessionUser["key"];
    try {
      key = await authorize(relay, network.apiKey, session.remoteAddress);
    } catch (err) {
      if (!(err instanceof SmtpReplyError)) throw err;
      // Refused before the greeting: 421 closes politely (the client tries later), and a key the
      // relay refuses is the operator's mistake, which retrying will not mend.
      log.error("submission.trusted_key_refused", { range: network.range, reply: err.message });
      throw err.responseCode === 535
        ? new SmtpReplyError(554, "5.7.0", "This network's API key is refused by the relay")
        : new SmtpReplyError(421, "4.3.0", "The relay cannot be reached; try again later");
    }
    const user: SessionUser = { token: network.apiKey, key, via: { trusted: network.range } };
    session.user = user as never;
  };

  const options: SMTPServerOptions = {
    name: config.name,
    banner: "edge-smtp-relay submission",
    secure: implicitTls,
    ...(config.tls ? { key: config.tls.key, cert: config.tls.cert } : {}),
    // Without a certificate there is no STARTTLS (smtp-server would offer its own self-signed one).
    disabledCommands: config.tls ? [] : ["STARTTLS"],
    // AUTH before TLS is refused in onAuth, except from loopback (see authenticateClient).
    allowInsecureAuth: true,
    authMethods: ["PLAIN", "LOGIN"],
    size: config.maxMessageBytes,
    // The relay's replies name RFC 3463 codes themselves (5.7.1 for a policy refusal, which
    // smtp-server's own table would give as 5.1.1), so its automatic ones are off.
    hideENHANCEDSTATUSCODES: true,
    hideDSN: true,
    hideREQUIRETLS: true,
    disableReverseLookup: true,
    maxClients: MAX_CONNECTIONS,
    maxAllowedUnauthenticatedCommands: MAX_COMMANDS_BEFORE_AUTH,
    socketTimeout: IDLE_TIMEOUT_MS,
    closeTimeout: 5_000,
    logger: false,

    onConnect(session, callback) {
      if (!shared.connections.enter(session.remoteAddress))
        return callback(
          new SmtpReplyError(421, "4.7.0", "Too many connections from this network; try later"),
        );
      counted.add(session.id);
      const timer = setTimeout(() => {
        const open = [...(server as unknown as { connections: Set<OpenConnection> }).connections];
        open
          .find((c) => c.id === session.id)
          ?.send(421, "4.4.2 Session too long; connect again to continue");
      }, SESSION_TIMEOUT_MS);
      timer.unref?.();
      sessionTimers.set(session.id, timer);
      trust(session).then(
        () => callback(),
        (err) => reply(callback, err, log, session),
      );
    },
    onSecure(_socket, session, callback) {
      trust(session).then(
        () => callback(),
        (err) => reply(callback, err, log, session),
      );
    },
    onClose(session) {
      clearTimeout(sessionTimers.get(session.id));
      sessionTimers.delete(session.id);
      messages.delete(session.id);
      if (counted.delete(session.id)) shared.connections.leave(session.remoteAddress);
    },
    onAuth(auth, session, callback) {
      authenticateClient(relay, shared.lockout, {
        method: auth.method,
        username: auth.username ?? undefined,
        password: auth.password ?? undefined,
        secure: session.secure,
        ip: session.remoteAddress,
        now: now(),
      }).then(
        (user) => {
          log.info("submission.auth", { session: session.id, key_id: user.key.keyId });
          callback(null, { user: user as never });
        },
        (err) => {
          if (err instanceof SmtpReplyError) {
            log.warn("submission.auth_failed", { session: session.id, ip: session.remoteAddress });
            return callback(err);
          }
          reply(callback as Callback, err, log, session);
        },
      );
    },
    onMailFrom(address, session, callback) {
      const user = userOf(session);
      if (!user) return callback(new SmtpReplyError(530, "5.7.0", "Authentication required"));
      const args = (address.args || {}) as Record<string, string | undefined>;
      const size = Number(args.SIZE ?? Number.NaN);
      try {
        checkSender(
          user,
          address.address,
          Number.isFinite(size) ? size : undefined,
          messages.get(session.id) ?? 0,
        );
        callback();
      } catch (err) {
        reply(callback, err, log, session);
      }
    },
    onRcptTo(address, session, callback) {
      const user = userOf(session);
      if (!user) return callback(new SmtpReplyError(530, "5.7.0", "Authentication required"));
      try {
        const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : "";
        checkRecipient(user, from, address.address, session.envelope.rcptTo.length);
      } catch (err) {
        return reply(callback, err, log, session);
      }
      // The suppression list, at once: this recipient refused, the others still taken.
      suppressionOf(relay, user.token, address.address, session.remoteAddress).then((origin) => {
        if (origin === null) return callback();
        reply(
          callback,
          new SmtpReplyError(
            550,
            "5.7.1",
            `${address.address}: on the suppression list (${origin}); the relay does not send to it`,
          ),
          log,
          session,
        );
      });
    },
    onData(stream, session, callback) {
      const user = userOf(session);
      const chunks: Buffer[] = [];
      let failed = false;
      // A client that drops mid-DATA destroys the stream with an error: nothing is handed over.
      stream.on("error", () => {
        failed = true;
      });
      stream.on("data", (chunk: Buffer) => {
        // Past SIZE the rest is read and dropped; smtp-server then answers 552 itself.
        if (!(stream as { sizeExceeded?: boolean }).sizeExceeded) chunks.push(chunk);
      });
      stream.on("end", () => {
        if (failed || (stream as { sizeExceeded?: boolean }).sizeExceeded || !user) {
          return callback(
            new SmtpReplyError(552, "5.3.4", `The message is over ${config.maxMessageBytes} bytes`),
          );
        }
        const trace = receivedHeader({
          clientName: session.hostNameAppearsAs || session.clientHostname,
          clientIp: session.remoteAddress,
          serverName: config.name,
          protocol: session.transmissionType || "ESMTP",
          id: session.id,
          now: now(),
        });
        const bytes = Buffer.concat([Buffer.from(trace, "latin1"), ...chunks]);
        const envelope = {
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : "",
          to: session.envelope.rcptTo.map((r) => r.address),
        };
        submit(relay, { token: user.token, clientIp: session.remoteAddress, envelope, bytes })
          .then((id) => {
            messages.set(session.id, (messages.get(session.id) ?? 0) + 1);
            log.info("submission.stored", {
              session: session.id,
              id,
              key_id: user.key.keyId,
              recipients: envelope.to.length,
            });
            callback(null, `2.0.0 Ok: queued as ${id}` as never);
          })
          .catch((err) => {
            if (err instanceof SmtpReplyError)
              log.warn("submission.refused", { session: session.id, reply: err.message });
            reply(callback, err, log, session);
          });
      });
    },
  };
  const server = new SMTPServer(options);
  server.on("error", (err) => log.error("submission.error", { error: String(err) }));
  return server;
}

/** What both servers of one listener share: the per-network counts. */
interface Shared {
  connections: ConnectionCounter;
  lockout: AuthLockout;
}

function listen(server: SMTPServer, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      resolve((server.server.address() as { port: number }).port);
    });
  });
}

/** Opens the configured ports; resolves once they listen. */
export async function startSubmission(o: ListenerOptions): Promise<SubmissionListener> {
  const shared: Shared = { connections: new ConnectionCounter(), lockout: new AuthLockout() };
  const servers: SMTPServer[] = [];
  const close = () =>
    Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r())))).then(() => {});
  try {
    let port: number | undefined;
    let tlsPort: number | undefined;
    if (o.config.port !== undefined) {
      const s = createServer(o, false, shared);
      servers.push(s);
      port = await listen(s, o.config.port, o.config.host);
    }
    if (o.config.tlsPort !== undefined) {
      const s = createServer(o, true, shared);
      servers.push(s);
      tlsPort = await listen(s, o.config.tlsPort, o.config.host);
    }
    o.log.info("submission.listening", {
      host: o.config.host,
      port,
      tls_port: tlsPort,
      starttls: Boolean(o.config.tls),
      trusted_networks: o.config.trustedNetworks.map((n) => n.range),
    });
    return { port, tlsPort, close };
  } catch (err) {
    await close();
    throw err;
  }
}
