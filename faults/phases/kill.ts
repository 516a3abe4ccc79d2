/**
 * Phase 4, kill a run: one scheduled run with many messages due is killed (the workerd instance
 * is closed, as a deploy does) after it delivered a third of them; a new instance starts, and what
 * the dead run had claimed must come back once its lease runs out.
 */
import { sleep } from "../async.ts";
import { type FaultRun, isFinished } from "../context.ts";
import { FIRST_RETRY_DUE_MS } from "../timings.ts";

export interface KillReport {
  /** Messages due when the run started. */
  due: number;
  /** Messages the server had received from the run when it was killed. */
  deliveredBeforeKill: number;
  /** Of those, the ones whose 250 was still pending (the server has them; the run never knew). */
  unansweredAtKill: number;
  killedAfterMs: number;
  /**
   * Messages the dead run had claimed and not committed: their lease token was still set in Redis
   * after the kill. Each must come back, and not before its lease ran out.
   */
  held: number;
  /** Of those, how many the server received again (all of them, once the run drained). */
  heldBack: number;
  /** Received again before their lease ran out (must be 0: two owners at once). */
  heldEarly: number;
  /** First copy after the kill minus the end of the lease. */
  heldBackAfterLeaseMs: { min: number; max: number };
}

export async function killRun(run: FaultRun, count: number): Promise<KillReport> {
  let kill: KillReport | undefined;
  await run.phase("kill a run", async () => {
    const { smtp } = run;
    const ids = await run.backlog("kill", count);
    // A slow server: each 250 comes 150 ms after the message is taken, so the kill finds
    // some messages taken whose run never heard the 250.
    smtp.setFaults({ rules: [], latencyMs: 150 });
    await smtp.up();
    await sleep(FIRST_RETRY_DUE_MS);
    await run.readViews(run.acceptedIds());
    const due = run.accepted().filter((m) => !isFinished(run.views.get(m.id))).length;
    const k = Math.max(1, Math.ceil(ids.length / 3));
    const before = smtp.messages.length;
    const runStarted = Date.now();
    run.relay.scheduled()?.catch(() => {});
    await smtp.waitFor(k, 15_000, { to: "kill-" }).catch(() => []);
    await run.relay.stop(runStarted);
    const killedAt = Date.now();
    const deliveredBeforeKill = smtp.messages.length - before;
    run.say(
      `kill: closed the instance after the server took ${deliveredBeforeKill} of ${due} due messages`,
    );
    const held = await heldLeases(run, killedAt);
    await sleep(200); // let pending 250s find their connections gone
    const unansweredAtKill = smtp.messages.slice(before).filter((m) => m.unanswered).length;
    smtp.clearFaults();
    await run.relay.start();
    run.ticker.resume();
    await run.waitUntil(run.acceptedIds(), isFinished, Math.min(run.deadline, Date.now() + 60_000));
    const offsets = backAfterLease(run, held, killedAt);
    kill = {
      due,
      deliveredBeforeKill,
      unansweredAtKill,
      killedAfterMs: killedAt - runStarted,
      held: held.size,
      heldBack: offsets.length,
      heldEarly: offsets.filter((ms) => ms < 0).length,
      heldBackAfterLeaseMs: {
        min: offsets.length ? Math.min(...offsets) : 0,
        max: offsets.length ? Math.max(...offsets) : 0,
      },
    };
  });
  return kill as KillReport;
}

/**
 * Which messages did the dead run still hold (tag to lease end)? Read from Redis itself (the
 * layout is in src/store/upstash/keys.ts: hash m:<id>, l = lease token, lu = lease end).
 */
async function heldLeases(run: FaultRun, killedAt: number): Promise<Map<string, number>> {
  const held = new Map<string, number>();
  for (const m of run.accepted()) {
    const [token, until] = await run.store.hmget(`${run.prefix}m:${m.id}`, "l", "lu");
    if (token && Number(until) > killedAt) held.set(m.tag, Number(until));
  }
  return held;
}

/** When did the held messages come back: first copy after the kill minus the lease end, each. */
function backAfterLease(run: FaultRun, held: Map<string, number>, killedAt: number): number[] {
  const offsets: number[] = [];
  for (const [tag, until] of held) {
    const first = run.smtp.messages.find(
      (m) => Date.parse(m.receivedAt) > killedAt && m.rcptTo.some((r) => r.startsWith(`${tag}-`)),
    );
    if (first) offsets.push(Date.parse(first.receivedAt) - until);
  }
  return offsets;
}
