/**
 * One mail transaction on a set-up session: MAIL FROM, one RCPT TO per recipient (each reply is
 * that recipient's outcome), DATA with the stored bytes. Every recipient gets an outcome whatever
 * happens; a failure that leaves the session out of step closes it.
 */
import type { RecipientOutcome } from "../transport.ts";
import { errorText, type Reply, SessionLost } from "./errors.ts";
import { isPositive, noReply, outcome } from "./replies.ts";
import type { Session } from "./session.ts";

export interface TransactionResult {
  /**
   * The session was found closed (or closing: 421) at MAIL FROM, before the server said anything
   * about this message: a pooled session the server dropped while it sat idle.
   */
  stale: boolean;
  outcomes: RecipientOutcome[];
}

/** Each step either ends the transaction with a result or returns undefined to go on. */
type Step = Promise<TransactionResult | undefined>;

class Transaction {
  /** The command under way, named in outcomes that have no reply. */
  stage = "MAIL FROM";
  readonly #session: Session;
  readonly #to: string[];
  readonly #outcomes: (RecipientOutcome | undefined)[];

  constructor(session: Session, to: string[]) {
    this.#session = session;
    this.#to = to;
    this.#outcomes = to.map(() => undefined);
  }

  /** Every recipient's outcome: its own when it has one, else `fill`'s. */
  finish(fill: (address: string) => RecipientOutcome, stale = false): TransactionResult {
    return { stale, outcomes: this.#to.map((address, i) => this.#outcomes[i] ?? fill(address)) };
  }

  async mailFrom(from: string): Step {
    const session = this.#session;
    // SMTPUTF8 (RFC 6531) when an address needs it; the relay allows that only when told the
    // smart host has it (SMTP_UTF8).
    const utf8 = /[^\x00-\x7f]/.test([from, ...this.#to].join(""));
    let mail: Reply;
    try {
      mail = await session.command(`MAIL FROM:<${from}>${utf8 ? " SMTPUTF8" : ""}`, this.stage);
    } catch (err) {
      if (err instanceof SessionLost && err.closed) {
        return this.finish((a) => noReply(a, `${this.stage}: ${err.message}`), true);
      }
      throw err;
    }
    this.#endsSession(mail);
    // A 421 waiting on a pooled session was said while it sat idle: the server is going away.
    if (mail.code === 421) return this.finish((a) => outcome(a, mail), true);
    if (!isPositive(mail)) {
      await this.#resetIfUsable();
      return this.finish((a) => outcome(a, mail));
    }
    return undefined;
  }

  async recipients(): Step {
    const session = this.#session;
    let accepted = 0;
    for (const [i, address] of this.#to.entries()) {
      this.stage = `RCPT TO:<${address}>`;
      const rcpt = await session.command(`RCPT TO:<${address}>`, this.stage);
      this.#endsSession(rcpt);
      if (isPositive(rcpt)) accepted++;
      else this.#outcomes[i] = outcome(address, rcpt, "rcpt");
      if (!session.usable) break;
    }
    if (accepted > 0 && session.usable) return undefined;
    await this.#resetIfUsable();
    const stage = this.stage;
    return this.finish((a) => noReply(a, `${stage}: the server closed the session`));
  }

  async data(data: Uint8Array, dataTimeoutMs: number): Promise<TransactionResult> {
    const session = this.#session;
    this.stage = "DATA";
    const go = await session.command("DATA", this.stage);
    this.#endsSession(go);
    if (go.code !== 354) return this.#refusedData(go);
    this.stage = "the message";
    await session.write(data, this.stage);
    this.stage = "the end of the message";
    const done = await session.reply(this.stage, dataTimeoutMs);
    this.#endsSession(done);
    return this.finish((a) => outcome(a, done));
  }

  async #refusedData(go: Reply): Promise<TransactionResult> {
    // Anything but 354 means the message was not taken, even a (nonsensical) 2xx.
    if (go.code < 400) {
      this.#session.usable = false;
      return this.finish((a) => noReply(a, `DATA: ${go.text}`));
    }
    await this.#resetIfUsable();
    return this.finish((a) => outcome(a, go));
  }

  /** 421: the server is closing the connection. */
  #endsSession(reply: Reply): void {
    if (reply.code === 421) this.#session.usable = false;
  }

  async #resetIfUsable(): Promise<void> {
    const session = this.#session;
    if (!session.usable) return;
    try {
      const r = await session.command("RSET", "RSET");
      if (r.code !== 250) session.usable = false;
    } catch {
      session.usable = false;
    }
  }
}

/** One mail transaction for `to` (all valid addresses) on `session`. Never throws. */
export async function runTransaction(
  session: Session,
  from: string,
  to: string[],
  data: Uint8Array,
  dataTimeoutMs: number,
): Promise<TransactionResult> {
  const tx = new Transaction(session, to);
  session.transactions++;
  try {
    return (
      (await tx.mailFrom(from)) ?? (await tx.recipients()) ?? (await tx.data(data, dataTimeoutMs))
    );
  } catch (err) {
    session.abort();
    return tx.finish((a) => noReply(a, `${tx.stage}: ${errorText(err)}`));
  }
}
