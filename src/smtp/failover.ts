/**
 * Failover between smart hosts (`SMTP_URL` listing several). One transport per host, built by
 * factory.ts; this one sends through the first host that is not resting, and moves on to the next
 * only when a host never took up the session. A refusal or deferral of a recipient or of the message
 * is that host's verdict and stands: sending it elsewhere would route around a policy decision
 * (and a 4xx is the host asking us to come back later, not to go to someone else).
 *
 * Every outcome is labelled with the host (`host:port`, no credentials) that answered it, so the
 * attempt's history record can show where it went.
 */
import type { Envelope, RecipientOutcome, SendContext, SmtpTransport } from "./transport.ts";
import type { SmtpTarget } from "./url.ts";

/** How long a host that failed its session is skipped by later sends of the same run. */
export const HOST_REST_MS = 30_000;

export interface FailoverHost {
  /** `host:port`, as recorded per attempt. */
  label: string;
  transport: SmtpTransport;
}

export interface FailoverOptions {
  restMs?: number;
  now?: () => number;
}

/** `host:port` of a target (an IPv6 literal in brackets); never its credentials. */
export function hostLabel(target: Pick<SmtpTarget, "host" | "port">): string {
  const host = target.host.includes(":") ? `[${target.host}]` : target.host;
  return `${host}:${target.port}`;
}

/**
 * True when an attempt's outcomes say the host never took up the session, so the next host may be
 * tried; false when the host gave a verdict on the message. The transports report a session
 * failure as the same temporary outcome for every recipient (nodemailer.ts errorOutcome for its
 * SESSION_ERRORS, worker-mailer's setupFailure), so the rule reads that shape:
 *
 * - every recipient temporary: one accepted or permanently refused means the session worked;
 * - and each reply either absent (`code === null`: refused connection, timeout, TLS failure, a
 *   dropped connection), a 421 (the service is closing the channel: RFC 5321 3.8, at the greeting
 *   or any later command), or a 5xx other than 503 and 552. A 5xx can only be temporary when a
 *   transport marked it a session failure (a 554 greeting, a 535 to AUTH: the operator's
 *   configuration, kept queued), since classifyCode makes 5xx permanent except 503 (bad sequence,
 *   left to the normal retry) and 552 to RCPT (treated as 452: a verdict on that recipient).
 *
 * A 4xx other than 421 (to MAIL, RCPT or DATA: greylisting, a full mailbox, a rate limit) is the
 * host's deferral and stays with it.
 *
 * One case cannot be told apart: no reply to the final "." of DATA may mean the host took the
 * message. Failing over then can deliver it twice, exactly as the retry of that deferred message on
 * the same host always could; failover only makes that repeat come sooner.
 */
export function isSessionFailure(outcomes: readonly RecipientOutcome[]): boolean {
  if (outcomes.length === 0) return false;
  return outcomes.every((o) => {
    if (o.status !== "temporary") return false;
    const code = o.reply.code;
    return code === null || code === 421 || (code >= 500 && code !== 503 && code !== 552);
  });
}

/** A transport over `hosts`, tried in order as isSessionFailure allows. */
export function createFailoverTransport(
  hosts: readonly FailoverHost[],
  options: FailoverOptions = {},
): SmtpTransport {
  if (hosts.length === 0) throw new Error("failover needs at least one smart host");
  const restMs = options.restMs ?? HOST_REST_MS;
  const now = options.now ?? Date.now;
  /** When each host last failed its session (absent: it did not, or it worked since). */
  const failedAt = new Map<number, number>();

  /**
   * Hosts to try, in order: those not resting. When every host is resting, the one that failed
   * longest ago gets one try, so a single host is always tried (as before failover) and a message
   * never waits on more than one dead host's timeout while all of them are down.
   */
  const candidates = (): number[] => {
    const t = now();
    const awake = hosts
      .map((_, i) => i)
      .filter((i) => (failedAt.get(i) ?? -Infinity) + restMs <= t);
    if (awake.length > 0) return awake;
    let oldest = 0;
    for (let i = 1; i < hosts.length; i++) {
      if ((failedAt.get(i) ?? 0) < (failedAt.get(oldest) ?? 0)) oldest = i;
    }
    return [oldest];
  };

  return {
    async send(
      envelope: Envelope,
      raw: Uint8Array,
      context?: SendContext,
    ): Promise<RecipientOutcome[]> {
      let last: RecipientOutcome[] = [];
      for (const i of candidates()) {
        const host = hosts[i] as FailoverHost;
        const outcomes = (await host.transport.send(envelope, raw, context)).map((o) => ({
          ...o,
          host: host.label,
        }));
        if (!isSessionFailure(outcomes)) {
          failedAt.delete(i);
          return outcomes;
        }
        failedAt.set(i, now());
        last = outcomes;
      }
      // Every host tried failed its session: the last one's outcomes stand (temporary: retried).
      return last;
    },
    async close(): Promise<void> {
      await Promise.all(hosts.map((h) => h.transport.close()));
    },
  };
}
