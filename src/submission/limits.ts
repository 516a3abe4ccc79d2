/**
 * The submission listener's abuse limits, each with the threat it answers. A listener on a public
 * port meets password guessers, connection floods and clients that hold sockets open; none of
 * them may cost the operator store commands or the relay's rate limit for honest keys.
 * Counted in the listener's process (as src/auth/abuse.ts counts in the isolate), bounded in
 * memory so an attacker with many addresses cannot grow the tables without limit.
 */
import { BoundedCache, clientBucket } from "../auth/abuse.ts";

/** Connections open at once from one client network: one client cannot take every socket. */
export const MAX_CONNECTIONS_PER_CLIENT = 10;
/** Connections open at once in all: the process keeps file descriptors and memory for others. */
export const MAX_CONNECTIONS = 500;
/** Failed AUTH attempts from one client network before it is locked out: password guessing. */
export const AUTH_FAILURE_LIMIT = 5;
/** How long those failures count, and how long the lockout lasts once reached. */
export const AUTH_LOCKOUT_MS = 15 * 60_000;
/** Silence after which a connection is closed: slow clients holding sockets (slowloris). */
export const IDLE_TIMEOUT_MS = 60_000;
/** A whole session's longest life, however busy: one socket cannot be held for ever. */
export const SESSION_TIMEOUT_MS = 30 * 60_000;
/**
 * Commands before the client authenticates (EHLO, STARTTLS, NOOP, RSET...): probing and socket
 * holding without credentials. After AUTH the client is known and the key's rate limit applies.
 * smtp-server also closes a session after 10 unrecognized commands.
 */
export const MAX_COMMANDS_BEFORE_AUTH = 10;
/** Recipients per message, as the HTTP API allows (RFC 5321 4.5.3.1.8 asks servers for 100+). */
export const MAX_RECIPIENTS = 50;
/** Messages per session: a stolen key cannot stream unbounded mail down one connection. */
export const MAX_MESSAGES_PER_SESSION = 100;

/** Open connections per client network. */
export class ConnectionCounter {
  readonly #open = new Map<string, number>();

  /** Counts a connection in; false when its network is at the limit (then nothing is counted). */
  enter(ip: string | undefined): boolean {
    const bucket = clientBucket(ip);
    const n = this.#open.get(bucket) ?? 0;
    if (n >= MAX_CONNECTIONS_PER_CLIENT) return false;
    this.#open.set(bucket, n + 1);
    return true;
  }

  leave(ip: string | undefined): void {
    const bucket = clientBucket(ip);
    const n = (this.#open.get(bucket) ?? 1) - 1;
    if (n <= 0) this.#open.delete(bucket);
    else this.#open.set(bucket, n);
  }
}

/** Failed AUTH per client network in fixed windows; a full window locks the network out. */
export class AuthLockout {
  readonly #windows = new BoundedCache<{ count: number; resetAt: number }>();

  /** Seconds until the lockout ends, or 0 when the network may try. */
  lockedFor(ip: string | undefined, now: number): number {
    const w = this.#windows.get(clientBucket(ip), now);
    return w && w.count >= AUTH_FAILURE_LIMIT ? Math.ceil((w.resetAt - now) / 1000) : 0;
  }

  fail(ip: string | undefined, now: number): void {
    const bucket = clientBucket(ip);
    const w = this.#windows.get(bucket, now);
    if (w) {
      w.count++;
      // The lockout runs its full length from the failure that reached the limit.
      if (w.count === AUTH_FAILURE_LIMIT) {
        w.resetAt = now + AUTH_LOCKOUT_MS;
        this.#windows.set(bucket, w, w.resetAt);
      }
    } else {
      const resetAt = now + AUTH_LOCKOUT_MS;
      this.#windows.set(bucket, { count: 1, resetAt }, resetAt);
    }
  }
}
