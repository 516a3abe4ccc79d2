/**
 * One mail transaction on a set-up session: MAIL FROM, one RCPT TO per recipient (each reply is
 * that recipient's outcome), DATA with the stored bytes; pipelined when the server offers it. Every recipient gets an outcome whatever
 * happens; a failure that leaves the session out of step closes it.
 */
import type { RecipientOutcome } from "../transport.ts";
import { errorText, type Reply, SessionLost } from "./errors.ts";
import { isPositive, noReply, outcome } from "./replies.ts";
import type { Session } from "./session.ts";

const encoder = new TextEncoder();

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

  /** The MAIL FROM line: SMTPUTF8 (RFC 6531) when an address needs it (the relay allows that only
   * when told the smart host has it: SMTP_UTF8). */
  #mailLine(from: string): string {
    const utf8 = /[^\x00-\x7f]/.test([from, ...this.#to].join(""));
    return `MAIL FROM:<${from}>${utf8 ? " SMTPUTF8" : ""}`;
  }

  /**
   * MAIL FROM's reply, read after `send` wrote the command (and, pipelined, the rest). A session
   * found closed here has said nothing about this message: `stale`, so the pool tries a new one.
   */
  async #mailReply(send: () => Promise<void>): Promise<Reply | TransactionResult> {
    try {
      await send();
      return await this.#session.reply(this.stage);
    } catch (err) {
      if (err instanceof SessionLost && err.closed) {
        return this.finish((a) => noReply(a, `${this.stage}: ${err.message}`), true);
      }
      throw err;
    }
  }

  async mailFrom(from: string): Step {
    const line = encoder.encode(`${this.#mailLine(from)}\r\n`);
    const mail = await this.#mailReply(() => this.#session.write(line, this.stage));
    if (!("code" in mail)) return mail;
    return this.#afterMail(mail);
  }

  async #afterMail(mail: Reply): Step {
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
      if (this.#recipientReply(i, rcpt)) accepted++;
      if (!session.usable) break;
    }
    return this.#afterRecipients(accepted);
  }

  /** Records recipient `i`'s reply; true when it was accepted. */
  #recipientReply(i: number, rcpt: Reply): boolean {
    this.#endsSession(rcpt);
    if (isPositive(rcpt)) return true;
    this.#outcomes[i] = outcome(this.#to[i] as string, rcpt, "rcpt");
    return false;
  }

  async #afterRecipients(accepted: number): Step {
    const session = this.#session;
    if (accepted > 0 && session.usable) return undefined;
    await this.#resetIfUsable();
    const stage = this.stage;
    return this.finish((a) => noReply(a, `${stage}: the server closed the session`));
  }

  async data(data: Uint8Array, dataTimeoutMs: number): Promise<TransactionResult> {
    this.stage = "DATA";
    const go = await this.#session.command("DATA", this.stage);
    return this.#afterDataCommand(go, data, dataTimeoutMs);
  }

  /**
   * RFC 2920: MAIL FROM, every RCPT TO and DATA in one write, then their replies in order, and
   * the message in a second write once DATA said 354: two round trips whatever the number of
   * recipients, instead of three plus one per recipient. Every reply is read even after a
   * refusal, so the session stays in step.
   */
  async pipelined(
    from: string,
    data: Uint8Array,
    dataTimeoutMs: number,
  ): Promise<TransactionResult> {
    const session = this.#session;
    const lines = [this.#mailLine(from), ...this.#to.map((a) => `RCPT TO:<${a}>`), "DATA"];
    const batch = encoder.encode(lines.map((l) => `${l}\r\n`).join(""));
    const mail = await this.#mailReply(() => session.write(batch, this.stage));
    if (!("code" in mail)) return mail;
    // A 421 closes the session: nothing more will come to read.
    if (mail.code === 421) return (await this.#afterMail(mail)) as TransactionResult;
    const accepted = await this.#pipelinedRecipients(mail);
    if (typeof accepted !== "number") return accepted;
    this.stage = "DATA";
    const go = await session.reply(this.stage);
    // The server took DATA with nothing to deliver to (it must not): no safe way back but to close.
    if (go.code === 354 && (accepted === 0 || !isPositive(mail))) {
      session.abort();
      if (!isPositive(mail)) return this.finish((a) => outcome(a, mail));
      return this.finish((a) => noReply(a, "DATA: accepted with no recipient; session closed"));
    }
    if (!isPositive(mail)) return (await this.#afterMail(mail)) as TransactionResult;
    const refused = await this.#afterRecipients(accepted);
    if (refused) return refused;
    return this.#afterDataCommand(go, data, dataTimeoutMs);
  }

  /** The RCPT replies of a pipelined batch: how many were accepted, or the end of the session. */
  async #pipelinedRecipients(mail: Reply): Promise<number | TransactionResult> {
    const session = this.#session;
    let accepted = 0;
    for (const [i, address] of this.#to.entries()) {
      this.stage = `RCPT TO:<${address}>`;
      const rcpt = await session.reply(this.stage);
      // After a refused MAIL FROM the RCPT replies say nothing of the recipients (503s).
      if (!isPositive(mail)) this.#endsSession(rcpt);
      else if (this.#recipientReply(i, rcpt)) accepted++;
      if (!session.usable)
        return this.finish((a) =>
          isPositive(mail) ? noReply(a, `${this.stage}: ${rcpt.text}`) : outcome(a, mail),
        );
    }
    return accepted;
  }

  async #afterDataCommand(
    go: Reply,
    data: Uint8Array,
    dataTimeoutMs: number,
  ): Promise<TransactionResult> {
    const session = this.#session;
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
    if (session.pipelining) return await tx.pipelined(from, data, dataTimeoutMs);
    return (
      (await tx.mailFrom(from)) ?? (await tx.recipients()) ?? (await tx.data(data, dataTimeoutMs))
    );
  } catch (err) {
    session.abort();
    return tx.finish((a) => noReply(a, `${tx.stage}: ${errorText(err)}`));
  }
}
