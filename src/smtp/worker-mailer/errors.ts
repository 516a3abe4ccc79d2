/**
 * What can go wrong in a worker-mailer session, and the one deadline helper every wait goes
 * through. The transport turns each of these into recipient outcomes; none leaves it.
 */

/** One SMTP reply: its code and all of its lines. */
export interface Reply {
  code: number;
  text: string;
}

/** The session cannot be used any more: closed, timed out, or out of step with the server. */
export class SessionLost extends Error {
  /** True when the server closed the connection (or a write found it closed). */
  readonly closed: boolean;
  constructor(message: string, closed = false) {
    super(message);
    this.name = "SessionLost";
    this.closed = closed;
  }
}

/** Session setup failed; `reply` is the server's answer when there was one. */
export class SetupFailed extends Error {
  readonly reply: Reply | undefined;
  constructor(message: string, reply: Reply | undefined) {
    super(message);
    this.name = "SetupFailed";
    this.reply = reply;
  }
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Runs `work` for at most `ms`; on expiry calls `onTimeout` and throws SessionLost. A session
 * closes its socket there, so a read of its own still waiting ends; the timer is cleared either way.
 */
export async function within<T>(
  work: Promise<T>,
  ms: number,
  what: string,
  onTimeout: () => void,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout();
      reject(new SessionLost(`no answer within ${ms} ms ${what}`));
    }, ms);
  });
  try {
    return await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
  }
}
