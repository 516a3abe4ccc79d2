/**
 * One scheduled delivery run, or one helper a run fanned out to (fanout.ts): the first claim
 * (which also takes the run's connection slots when a shared cap is kept), then batch after batch
 * through deliverRun (run.ts) over a transport sized to the connections granted, until nothing is
 * due or the budget is spent; then the slots go back and the run waits for its helpers.
 *
 * An idle run stays at one store command: the first claim finds nothing due, takes no slot, and
 * no transport is opened.
 */
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import { hostLabel } from "../smtp/failover.ts";
import type { SmtpTransport } from "../smtp/transport.ts";
import type { ClaimRun, ClaimSlots, RelayStore } from "../store/store.ts";
import { newLeaseToken } from "../store/store.ts";
import { type DeliveryContext, type DeliveryReport, emptyReport } from "./deliver.ts";
import { Fanout, type FanoutResult, type HelperRequest, type StartHelper } from "./fanout.ts";
import { deliverRun, logRunTrouble } from "./run.ts";

export interface ScheduledDeps {
  store: RelayStore;
  config: Config;
  /** A transport whose default pool opens at most `connections` (routes keep their own). */
  openTransport: (connections: number) => SmtpTransport;
  /** The delivery context for a transport with that many connections. */
  context: (transport: SmtpTransport, connections: number) => DeliveryContext;
  now: () => number;
  log: Logger;
  /** How long slots stay taken without a renewal (SLOT_HOLD_MS; tests shorten it). */
  slotHoldMs?: number;
}

/** A run, which may fan out, or a helper started by one. */
export type RunRole = { kind: "run"; startHelper?: StartHelper | undefined } | HelperRole;
type HelperRole = { kind: "helper"; request: HelperRequest };

export interface RunOutcome extends DeliveryReport {
  batches: number;
  /** Connections this invocation was granted (SMTP_MAX_CONNECTIONS without a shared cap). */
  connections: number;
  /** Webhook event chains due, the most any of its claims counted. */
  eventsDue: number;
  /** The helpers it started, when it fanned out (their counts are included above). */
  fanout?: FanoutResult;
}

/** Who a run is, to the store: when it stops, its slot holder name, the cap it shares. */
interface RunPlan {
  until: number;
  holder: string;
  slots: ClaimSlots | undefined;
}

function plan(config: Config, role: RunRole, now: number): RunPlan {
  const cap = config.fanout.hostConnectionCap;
  const first = config.smtpHosts[0];
  return {
    until: role.kind === "helper" ? role.request.until : now + config.runBudgetMs,
    holder: role.kind === "helper" ? role.request.holder : `run-${newLeaseToken()}`,
    // The shared cap counts connections to SMTP_URL's first smart host (the one normally used).
    slots: cap !== undefined && first ? { host: hostLabel(first), cap } : undefined,
  };
}

export async function scheduledRun(deps: ScheduledDeps, role: RunRole): Promise<RunOutcome> {
  const { store, config, now, log } = deps;
  const { until, holder, slots } = plan(config, role, now());
  const hold = deps.slotHoldMs ?? SLOT_HOLD_MS;
  const outcome: RunOutcome = { ...emptyReport(), batches: 0, connections: 0, eventsDue: 0 };
  const claim = (take?: ClaimSlots["take"]) =>
    store.claimRun(now(), config.batchSize, config.leaseMs, slots && { ...slots, take });

  let pending: ClaimRun | undefined;
  try {
    // Should the run die without giving its slots back, they lapse a minute after its last renewal.
    pending = await claim({ holder, want: config.smtpMaxConnections, until: now() + hold });
  } catch (err) {
    log.error("store.unavailable", { op: "claim", error: String(err) });
    return outcome;
  }
  outcome.eventsDue = pending.eventsDue;
  const connections = slots ? (pending.slots?.taken ?? 0) : config.smtpMaxConnections;
  if (pending.entries.length === 0) {
    await nothingClaimed(deps, slots, holder, connections, pending.dueLeft);
    return outcome;
  }
  outcome.connections = connections;

  const fanout = startFanout(deps, role, holder, until);
  const transport = deps.openTransport(connections);
  const stopRenewing = keepSlots(deps, slots, { holder, count: connections, hold });
  try {
    // What the last claim said is still due, for fan-out to weigh against the rate as it goes.
    let due = { dueLeft: pending.dueLeft, slotsFree: pending.slots?.free };
    let sent = 0;
    const run = await deliverRun(
      async () => {
        const claimed = pending ?? (await claim());
        pending = undefined;
        outcome.eventsDue = Math.max(outcome.eventsDue, claimed.eventsDue);
        due = { dueLeft: claimed.dueLeft, slotsFree: claimed.slots?.free };
        fanout?.consider({ ...due, sent });
        // A short batch means the queue has nothing more due, unless the claim stopped at its
        // byte budget (large messages): then more are due now.
        const more = claimed.entries.length === config.batchSize || claimed.stoppedAtBudget;
        return { entries: claimed.entries, more };
      },
      deps.context(transport, connections),
      () => now() < until,
      // Fan-out decides as soon as the run has a rate, not only at its next claim.
      fanout &&
        ((n) => {
          sent = n;
          fanout.consider({ ...due, sent });
        }),
    );
    Object.assign(outcome, run.report, { batches: run.batches });
    logRunTrouble(log, run);
  } finally {
    await transport.close();
    stopRenewing();
    await giveBack(deps, slots, holder, connections);
  }
  if (fanout) {
    outcome.fanout = await fanout.settle();
    for (const helper of outcome.fanout.reports) addReport(outcome, helper);
  }
  return outcome;
}

/** A run (not a helper) with a way to start helpers and DELIVERY_FANOUT above 1 may fan out. */
function startFanout(deps: ScheduledDeps, role: RunRole, runId: string, until: number) {
  const { invocations } = deps.config.fanout;
  if (role.kind !== "run" || !role.startHelper || invocations <= 1) return undefined;
  return new Fanout({
    invocations,
    start: role.startHelper,
    runId,
    until,
    perInvocation: deps.config.smtpMaxConnections,
    now: deps.now,
    log: deps.log,
  });
}

/**
 * How long connection slots stay taken without a renewal. Short, so a run that dies (its
 * invocation evicted, the CPU limit) holds the cap for at most about a minute; renewed every
 * third of it while the run lives, one command each time, whatever the run sends.
 */
export const SLOT_HOLD_MS = 60_000;

/** Renews the run's slots until stopped. A renewal that fails is logged and tried next time. */
function keepSlots(
  deps: ScheduledDeps,
  slots: ClaimSlots | undefined,
  { holder, count, hold }: { holder: string; count: number; hold: number },
): () => void {
  if (!slots) return () => {};
  const { host } = slots;
  const timer = setInterval(() => {
    deps.store.renewSlots(host, holder, count, deps.now() + hold).catch((err: unknown) => {
      deps.log.warn("delivery.slots_not_renewed", { host, holder, count, error: String(err) });
    });
  }, hold / 3);
  return () => clearInterval(timer);
}

/** The first claim leased nothing: says so when the cap is why, and gives back what it took. */
async function nothingClaimed(
  deps: ScheduledDeps,
  slots: ClaimSlots | undefined,
  holder: string,
  connections: number,
  dueLeft: number,
): Promise<void> {
  if (slots && connections === 0 && dueLeft > 0)
    deps.log.warn("delivery.capped", {
      reason: "SMTP_HOST_MAX_CONNECTIONS reached: other delivery runs hold every connection",
      due: dueLeft,
      cap: slots.cap,
    });
  await giveBack(deps, slots, holder, connections);
}

/** Slots not given back (the store is down) lapse on their own; the cap is only lower meanwhile. */
async function giveBack(
  deps: ScheduledDeps,
  slots: ClaimSlots | undefined,
  holder: string,
  count: number,
) {
  if (!slots || count <= 0) return;
  const { host } = slots;
  try {
    await deps.store.releaseSlots(host, holder, count);
  } catch (err) {
    deps.log.warn("delivery.slots_not_released", { host, holder, count, error: String(err) });
  }
}

function addReport(into: RunOutcome, from: DeliveryReport & { batches: number }): void {
  into.messages += from.messages;
  into.delivered += from.delivered;
  into.deferred += from.deferred;
  into.failed += from.failed;
  into.unrecorded += from.unrecorded;
  into.skipped += from.skipped;
  into.batches += from.batches;
}
