/**
 * The sink's SMTP server (on the `smtp-server` package): STARTTLS or implicit TLS, AUTH PLAIN and
 * LOGIN, SIZE; it records each accepted message with its envelope and bytes, refuses what a test
 * asked it to refuse, and carries out the fault plan (faults.ts) at the greeting, MAIL, RCPT and DATA.
 */
import type { AddressInfo } from "node:net";
import {
  SMTPServer,
  type SMTPServerAuthentication,
  type SMTPServerDataStream,
  type SMTPServerOptions,
  type SMTPServerSession,
} from "smtp-server";
import { emptyStats, type FaultPlan, parseFaultPlan, type StallRecord, selects } from "./faults.ts";
import { defaultText, replyCode, smtpError } from "./replies.ts";
import {
  filterMessages,
  type MessageFilter,
  type ReceivedMessage,
  type SinkTls,
  type SmtpSink,
  type SmtpSinkOptions,
} from "./types.ts";

const DEFAULT_SIZE = 50 * 1024 * 1024;
export const DEFAULT_WAIT_MS = 10_000;

export function urlHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

function sinkUrl(tls: SinkTls, host: string, port: number, auth?: { user: string; pass: string }) {
  const scheme = { none: "smtp+insecure", starttls: "smtp", implicit: "smtps" }[tls];
  const credentials = auth
    ? `${encodeURIComponent(auth.user)}:${encodeURIComponent(auth.pass)}@`
    : "";
  return `${scheme}://${credentials}${urlHost(host)}:${port}`;
}

interface Waiter {
  count: number;
  filter: MessageFilter | undefined;
  /** The messages that match so far, kept as they arrive: one check per new message. */
  matched: ReceivedMessage[];
  resolve: (messages: ReceivedMessage[]) => void;
}

export async function startSmtpSink(opts: SmtpSinkOptions = {}): Promise<SmtpSink> {
  const host = opts.host ?? "127.0.0.1";
  const tls = opts.tls ?? "none";
  const log = opts.log ?? (() => {});
  if (tls !== "none" && !(opts.key && opts.cert)) {
    throw new Error(`an SMTP sink with tls "${tls}" needs key and cert`);
  }

  const messages: ReceivedMessage[] = [];
  const raws = new Map<number, Buffer>();
  let nextId = 1;
  const rejections = new Map<string, { code: number; text: string }>();
  const dataFailures: { code: number; text: string }[] = [];
  const waiters = new Set<Waiter>();
  let plan: FaultPlan = { rules: [] };
  let stats = emptyStats(0);
  // The rule (index into plan.rules) that owns each session's current transaction, and how many
  // RCPTs that transaction has seen; cleared at MAIL and when the connection closes.
  // A plan replaced mid-transaction no longer applies to it.
  const transactions = new Map<
    string,
    { plan: FaultPlan; rule: number | undefined; rcpts: number }
  >();
  const ruleOf = (sessionId: string) => {
    const current = transactions.get(sessionId);
    return current?.plan === plan ? current.rule : undefined;
  };

  // Each waiter checks only the new message: re-filtering every stored message on each arrival
  // made a long-lived sink (a bench's thousands of messages) slow down the runs it measures.
  const notify = (message: ReceivedMessage) => {
    for (const waiter of waiters) {
      if (filterMessages([message], waiter.filter).length === 0) continue;
      waiter.matched.push(message);
      if (waiter.matched.length >= waiter.count) {
        waiters.delete(waiter);
        waiter.resolve(waiter.matched);
      }
    }
  };

  const authUserOf = (session: SMTPServerSession) =>
    session.user as { name: string; method: string } | undefined;

  /** The socket of a session, to close it the way a crashing server would (no reply, no QUIT). */
  const socketOf = (sessionId: string) => {
    for (const connection of server?.connections ?? []) {
      if (connection.id === sessionId) return connection._socket;
    }
    return undefined;
  };

  /**
   * The first rule for this kind of count that selects number `n` and has strikes left. A rule
   * for a later stage only strikes if the transaction gets there (all RCPTs refused: no DATA).
   */
  const pick = (connectRules: boolean, n: number): number | undefined => {
    const index = plan.rules.findIndex(
      (rule, i) =>
        (rule.at === "connect") === connectRules &&
        (rule.limit === undefined || (stats.hits[i] ?? 0) < rule.limit) &&
        selects(rule, n),
    );
    return index < 0 ? undefined : index;
  };

  /**
   * Carries out rule `index`. `fail` gets the error to answer with; when the connection is already
   * closed (drop, stall) smtp-server writes nothing, so the error only ends the command.
   */
  const strike = (
    index: number,
    session: SMTPServerSession,
    fail: (error: Error) => void,
  ): void => {
    const rule = plan.rules[index];
    if (!rule) {
      // Unreachable (indexes come from the current plan), but never leave a command unanswered.
      fail(smtpError(451, "4.3.0 no such fault rule (set by the test sink)"));
      return;
    }
    stats.hits[index] = (stats.hits[index] ?? 0) + 1;
    const what = `${rule.at} ${session.id}`;
    if (rule.action === "reply") {
      const code = rule.code ?? 451;
      const text = rule.text ?? defaultText(code, `${rule.at} refused`);
      log(`fault ${what} -> ${code} ${text}`);
      fail(smtpError(code, text));
      return;
    }
    const socket = socketOf(session.id);
    if (rule.action === "drop") {
      log(`fault ${what} -> connection dropped`);
      stats.drops++;
      socket?.destroy();
      fail(smtpError(421, "4.4.2 connection dropped (set by the test sink)"));
      return;
    }
    const ms = rule.ms ?? 0;
    const started = Date.now();
    const record: StallRecord = { at: rule.at, clientGaveUpAfterMs: null };
    stats.stalls.push(record);
    log(`fault ${what} -> stall ${ms} ms`);
    const owner = server;
    const onClose = () => {
      // down() forgets the server before it drops the connections.
      if (server !== owner) record.cutByDown = true;
      else record.clientGaveUpAfterMs = Date.now() - started;
    };
    socket?.once("close", onClose);
    setTimeout(() => {
      socket?.off("close", onClose);
      // A hung server that finally dies: whoever is still waiting loses the connection.
      socket?.destroy();
      fail(smtpError(421, "4.4.2 stalled (set by the test sink)"));
    }, ms).unref();
  };

  /** The reply, later by the plan's tarpit (the plan when the command came decides). */
  const tarpitted = (reply: (error?: Error | null) => void) => {
    const ms = plan.tarpitMs ?? 0;
    if (ms === 0) return reply;
    return (error?: Error | null) => {
      setTimeout(() => reply(error), ms).unref();
    };
  };

  /** Records a message that passed every check, then gives its 250 (late by the plan's latency). */
  const acceptMessage = (
    bytes: Buffer,
    session: SMTPServerSession,
    answer: (error: Error | null, reply?: string) => void,
  ) => {
    const user = authUserOf(session);
    const mailFrom = session.envelope.mailFrom;
    const message: ReceivedMessage = {
      id: nextId++,
      mailFrom: mailFrom ? mailFrom.address : "",
      rcptTo: session.envelope.rcptTo.map((r) => r.address),
      raw: bytes.toString("utf8"),
      size: bytes.length,
      receivedAt: new Date().toISOString(),
      secure: session.secure,
      sessionId: session.id,
      clientName: session.hostNameAppearsAs || "",
      ...(user ? { authUser: user.name, authMethod: user.method } : {}),
    };
    messages.push(message);
    raws.set(message.id, bytes);
    log(
      `message #${message.id} ${session.id} from <${message.mailFrom}> to ${message.rcptTo.map((r) => `<${r}>`).join(", ")}, ${bytes.length} bytes${session.secure ? ", TLS" : ""}`,
    );
    notify(message);
    // Recorded first, answered after: a real server queues the message before it says 250,
    // so a client that dies in between leaves a message it does not know was taken.
    const reply = () => {
      const socket = socketOf(session.id);
      if (!socket || socket.destroyed) {
        message.unanswered = true;
        stats.unanswered++;
        log(`message #${message.id} ${session.id}: connection gone before the 250`);
      }
      answer(null, `2.0.0 Ok: queued as ${message.id}`);
    };
    const latency = (plan.latencyMs ?? 0) + (plan.tarpitMs ?? 0);
    if (latency > 0) setTimeout(reply, latency).unref();
    else reply();
  };

  /** The end of DATA: refuse (size, a DATA fault, a queued failure) or record and accept. */
  const finishData = (
    stream: SMTPServerDataStream,
    session: SMTPServerSession,
    bytes: Buffer,
    faultIndex: number | undefined,
    answer: (error: Error | null, reply?: string) => void,
  ) => {
    if (stream.sizeExceeded) {
      log(`data ${session.id} refused: ${bytes.length} bytes over the SIZE limit`);
      return answer(smtpError(552, "5.3.4 Message size exceeds fixed maximum message size"));
    }
    // A drop rule whose byte count the message never reached drops at the end instead.
    if (faultIndex !== undefined) return strike(faultIndex, session, answer);
    const failure = dataFailures.shift();
    if (failure) {
      log(`data ${session.id} -> ${failure.code} ${failure.text}`);
      return answer(smtpError(failure.code, failure.text));
    }
    acceptMessage(bytes, session, answer);
  };

  const serverOptions = (): SMTPServerOptions => ({
    secure: tls === "implicit",
    key: opts.key,
    cert: opts.cert,
    name: opts.name ?? "localhost",
    size: opts.size ?? DEFAULT_SIZE,
    // smtp-server's own logging is per command and very chatty; `log` gets a summary instead.
    logger: false,
    banner: "smtp-sink ready",
    hidePIPELINING: opts.pipelining === false,
    authMethods: ["PLAIN", "LOGIN"],
    // With TLS available, AUTH is refused until STARTTLS (smtp-server answers 538). Without TLS
    // there is nothing to upgrade to, so a sink with auth and no TLS takes it in clear.
    allowInsecureAuth: tls === "none",
    disabledCommands: [...(tls === "none" ? ["STARTTLS"] : []), ...(opts.auth ? [] : ["AUTH"])],
    onConnect(session, callback) {
      log(`connect ${session.id} from ${session.remoteAddress}:${session.remotePort}`);
      const index = pick(true, ++stats.connections);
      // The greeting waits for this callback, so a connect fault decides what the client hears first.
      if (index !== undefined) return strike(index, session, callback);
      callback();
    },
    onAuth(auth: SMTPServerAuthentication, session, callback) {
      const ok =
        opts.auth !== undefined &&
        (auth.method === "PLAIN" || auth.method === "LOGIN") &&
        auth.username === opts.auth.user &&
        auth.password === opts.auth.pass;
      log(`auth ${session.id} ${auth.method} ${auth.username ?? ""} ${ok ? "ok" : "refused"}`);
      if (!ok) return callback(smtpError(535, "5.7.8 Authentication credentials invalid"));
      callback(null, { user: { name: auth.username, method: auth.method } });
    },
    onMailFrom(_address, session, callback) {
      if (opts.requireTls && !session.secure) {
        log(`mail ${session.id} refused: not encrypted`);
        return callback(smtpError(530, "5.7.0 Must issue a STARTTLS command first"));
      }
      const reply = tarpitted(callback);
      const index = pick(false, ++stats.transactions);
      transactions.set(session.id, { plan, rule: index, rcpts: 0 });
      if (index !== undefined && plan.rules[index]?.at === "mail") {
        return strike(index, session, reply);
      }
      reply();
    },
    onRcptTo(address, session, callback) {
      const reply = tarpitted(callback);
      const index = ruleOf(session.id);
      const current = transactions.get(session.id);
      if (current && index !== undefined && plan.rules[index]?.at === "rcpt") {
        if (current.rcpts++ === 0) return strike(index, session, reply);
      }
      const rejection = rejections.get(address.address.toLowerCase());
      if (rejection) {
        log(`rcpt ${session.id} ${address.address} -> ${rejection.code} ${rejection.text}`);
        return reply(smtpError(rejection.code, rejection.text));
      }
      reply();
    },
    onClose(session) {
      transactions.delete(session.id);
    },
    onData(stream: SMTPServerDataStream, session, callback) {
      const owner = ruleOf(session.id);
      const fault = owner === undefined ? undefined : plan.rules[owner];
      const faultIndex = fault?.at === "data" ? owner : undefined;
      // smtp-server answers the first call only; a dropped connection may also error the stream.
      let answered = false;
      const answer: typeof callback = (error, reply) => {
        if (answered) return;
        answered = true;
        callback(error, reply);
      };
      const chunks: Buffer[] = [];
      let received = 0;
      stream.on("data", (chunk: Buffer) => {
        chunks.push(chunk);
        received += chunk.length;
        // Part of the message has arrived: the connection goes away with no reply at all.
        if (
          faultIndex !== undefined &&
          fault?.action === "drop" &&
          !answered &&
          received >= (fault.afterBytes ?? 1)
        ) {
          strike(faultIndex, session, answer);
        }
      });
      stream.on("error", (error) => answer(error));
      stream.on("end", () => {
        if (!answered) finishData(stream, session, Buffer.concat(chunks), faultIndex, answer);
      });
    },
  });

  let server: SMTPServer | undefined;
  let port = opts.port ?? 0;

  const listen = async () => {
    const created = new SMTPServer(serverOptions());
    // A client that breaks off a TLS handshake surfaces here; without a listener it would crash
    // the test process.
    created.on("error", (error) => log(`error ${error.message}`));
    await new Promise<void>((resolve, reject) => {
      created.server.once("error", reject);
      created.listen(port, host, () => {
        created.server.off("error", reject);
        resolve();
      });
    });
    port = (created.server.address() as AddressInfo).port;
    server = created;
  };

  const stop = async () => {
    const current = server;
    if (!current) return;
    server = undefined;
    await new Promise<void>((resolve) => {
      current.close(() => resolve());
      // Drop sessions at once, as a crashed or restarted server does; smtp-server's close() would
      // otherwise wait 30 s for them.
      for (const connection of [...current.connections]) connection._socket.destroy();
    });
  };

  await listen();

  const sink: SmtpSink = {
    get port() {
      return port;
    },
    host,
    tls,
    get url() {
      return sinkUrl(tls, host, port, opts.auth);
    },
    messages,
    waitFor(count, timeoutMs = DEFAULT_WAIT_MS, filter) {
      const now = filterMessages(messages, filter);
      if (now.length >= count) return Promise.resolve(now);
      return new Promise((resolve, reject) => {
        const waiter: Waiter = {
          count,
          filter,
          matched: now,
          resolve: (got) => {
            clearTimeout(timer);
            resolve(got);
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(
            new Error(
              `waited ${timeoutMs} ms for ${count} message(s)${filter?.to === undefined ? "" : ` to *${filter.to}*`} on ${sink.url}, got ${filterMessages(messages, filter).length}`,
            ),
          );
        }, timeoutMs);
        waiters.add(waiter);
      });
    },
    clear() {
      messages.length = 0;
      raws.clear();
      // A wait that began before counts only what arrives from now on, as it did by re-filtering.
      for (const waiter of waiters) waiter.matched = [];
    },
    async reset() {
      sink.clear();
      rejections.clear();
      dataFailures.length = 0;
      sink.clearFaults();
      stats = emptyStats(0);
      if (!server) await listen();
    },
    rejectRecipient(address, code, text) {
      rejections.set(address.toLowerCase(), {
        code: replyCode(code),
        text: text ?? defaultText(code, `<${address}> rejected`),
      });
    },
    failData(code, text, times = 1) {
      for (let i = 0; i < times; i++) {
        dataFailures.push({
          code: replyCode(code),
          text: text ?? defaultText(code, "DATA failed"),
        });
      }
    },
    setFaults(next) {
      plan = parseFaultPlan(next);
      stats = emptyStats(plan.rules.length);
    },
    clearFaults() {
      plan = { rules: [] };
    },
    faults: () => ({ plan, stats }),
    down: stop,
    async up() {
      if (!server) await listen();
    },
    close: stop,
    bytes: (id) => raws.get(id),
  };
  return sink;
}
