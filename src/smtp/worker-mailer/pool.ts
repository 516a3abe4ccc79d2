/**
 * The session pool: at most `maxConnections` sends at once (the rest wait their turn), and idle
 * sessions kept for the next send until the server or the transaction count retires them.
 */
import type { Session } from "./session.ts";

// As nodemailer's pool: some servers limit messages per connection, and a fresh one is cheap.
const MAX_TRANSACTIONS_PER_SESSION = 100;

export class SessionPool {
  readonly #idle: Session[] = [];
  readonly #waiting: (() => void)[] = [];
  readonly #maxConnections: number;
  #busy = 0;
  #closing = false;

  constructor(maxConnections: number) {
    this.#maxConnections = Math.max(1, maxConnections);
  }

  /** Waits for one of the `maxConnections` slots; pair with `leave`. */
  async enter(): Promise<void> {
    while (this.#busy >= this.#maxConnections) {
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    }
    this.#busy++;
  }

  leave(): void {
    this.#busy--;
    this.#waiting.shift()?.();
  }

  /** The most recently used idle session, if any. */
  take(): Session | undefined {
    return this.#idle.pop();
  }

  /** Keeps `session` for the next send, or ends it when it cannot or should not be reused. */
  give(session: Session): void {
    const reusable = session.usable && session.transactions < MAX_TRANSACTIONS_PER_SESSION;
    if (reusable && !this.#closing) {
      this.#idle.push(session);
    } else {
      session.quit().catch(() => {});
    }
  }

  /** Ends the idle sessions; sessions given back from now on are ended too. */
  async close(): Promise<void> {
    this.#closing = true;
    await Promise.all(this.#idle.splice(0).map((session) => session.quit()));
  }
}
