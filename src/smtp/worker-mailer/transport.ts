/**
 * SMTP transport on worker-mailer 1.2.1, the Workers-native client over `cloudflare:sockets` (so it
 * runs in workerd, and on Deno through src/runtime/deno-sockets.ts; not on Node).
 *
 * worker-mailer's public API cannot do what the relay needs: `send()` composes its own MIME (the
 * relay stores finished bytes whose Message-ID and Date must not change between attempts), writes
 * header values raw (CRLF injection) and a `BCC:` header, and gives up at the first refused RCPT.
 * So this transport uses worker-mailer for the session only and runs the mail transaction itself:
 *
 * - setup.ts: worker-mailer's constructor and its private setup steps, STARTTLS enforced.
 * - session.ts, replies.ts: the set-up socket, written and read here with our own reader and
 *   timeouts; transaction.ts: MAIL FROM, one RCPT TO per recipient, DATA with the stored bytes
 *   (wire.ts: dot-stuffed, bare CR/LF made CRLF); pool.ts: pooling sessions.
 * - this file: the SmtpTransport, refusing unsendable addresses and retrying a stale pooled session.
 *
 * What stays worker-mailer's and cannot be fixed from here without patching it (each pinned by a
 * test in test/workers/worker-mailer.test.ts or a skipped contract case): it says `EHLO 127.0.0.1`
 * whatever `ehloName` is; its reads loop forever on a closed stream, so a server that drops the
 * connection during session setup (or closes it after a setup step timed out, leaving a read
 * pending that workerd cannot cancel) makes it spin at 100% CPU, which no timer can interrupt: in
 * production the invocation then dies at its CPU limit and its claimed messages come back after
 * their lease. `responseTimeoutMs` is ignored (its `socketTimeoutMs` times every setup reply), so
 * the whole setup also runs under this transport's own deadline.
 */
import {
  type Envelope,
  parseReply,
  type RecipientOutcome,
  type SmtpTransport,
} from "../transport.ts";
import type { SmtpTarget } from "../url.ts";
import { errorText, SetupFailed } from "./errors.ts";
import { SessionPool } from "./pool.ts";
import { noReply } from "./replies.ts";
import type { Session } from "./session.ts";
import { openSession, type SetupOptions, type WorkerMailerAuthMethod } from "./setup.ts";
import { runTransaction } from "./transaction.ts";
import { dataBytes, envelopeProblem } from "./wire.ts";

export type { WorkerMailerAuthMethod } from "./setup.ts";

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

/**
 * The outcome of each address that must not reach a command line (refused for good: retrying
 * cannot change it), undefined for the others, which still go.
 */
function unsendable(envelope: Envelope): (RecipientOutcome | undefined)[] {
  const senderProblem = envelopeProblem(envelope.from, true);
  return envelope.to.map((address) => {
    const problem = senderProblem ? `the sender ${senderProblem}` : envelopeProblem(address, false);
    if (problem === undefined) return undefined;
    return { address, status: "permanent", reply: { code: null, text: `not sent: ${problem}` } };
  });
}

/**
 * A refused login, a 4xx/5xx greeting, missing STARTTLS: the session's problem, not the message's,
 * so it stays queued (as nodemailer's transport, and Postfix's smtp_sasl_auth_soft_bounce); fixing
 * the smart host or password delivers the backlog.
 */
function setupFailure(to: string[], err: unknown): RecipientOutcome[] {
  const reply = err instanceof SetupFailed ? err.reply : undefined;
  const text = errorText(err);
  return to.map((address) => ({
    address,
    status: "temporary",
    reply: reply ? parseReply(reply.text, reply.code) : { code: null, text },
  }));
}

export function createWorkerMailerTransport(options: WorkerMailerTransportOptions): SmtpTransport {
  const { target, timeoutMs } = options;
  // RFC 5321 section 4.5.3.2.6: the server may take 10 minutes to answer the final dot, and
  // giving up sooner means sending the message again.
  const dataTimeoutMs = Math.max(options.dataTimeoutMs ?? timeoutMs, timeoutMs);
  const setup: SetupOptions = {
    target,
    timeoutMs,
    // worker-mailer times each setup step with socketTimeoutMs (it ignores responseTimeoutMs);
    // the setup as a whole is bounded by timeoutMs.
    stepTimeoutMs: Math.min(timeoutMs, 15_000),
    authMethods: options.authMethods ?? ["plain", "login"],
  };
  const pool = new SessionPool(options.maxConnections);

  /** Outcomes for `to` (all valid), on a pooled session or a new one. */
  const deliver = async (from: string, to: string[], data: Uint8Array) => {
    // A pooled session may have been closed by the server while idle: then one fresh try.
    for (let attempt = 0; ; attempt++) {
      const pooled = pool.take();
      let session: Session;
      try {
        session = pooled ?? (await openSession(setup));
      } catch (err) {
        return setupFailure(to, err);
      }
      const result = await runTransaction(session, from, to, data, dataTimeoutMs);
      if (result.stale && pooled && attempt === 0) {
        session.abort();
        continue;
      }
      pool.give(session);
      return result.outcomes;
    }
  };

  return {
    async send(envelope: Envelope, raw: Uint8Array): Promise<RecipientOutcome[]> {
      const own = unsendable(envelope);
      const valid = envelope.to.filter((_, i) => own[i] === undefined);
      const merge = (got: RecipientOutcome[]) => {
        let next = 0;
        return envelope.to.map(
          (address, i) => own[i] ?? got[next++] ?? noReply(address, "no outcome"),
        );
      };
      if (valid.length === 0) return merge([]);

      const data = dataBytes(raw);
      await pool.enter();
      try {
        return merge(await deliver(envelope.from, valid, data));
      } finally {
        pool.leave();
      }
    },

    close: () => pool.close(),
  };
}
