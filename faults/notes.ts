/** The report lines of a fault run: what each fault exercised, for the FAULTS part of the ledger. */
import type { FaultStats } from "../dev/smtp-sink/index.ts";
import type { Generation, Ledger } from "./ledger.ts";
import type { KillReport } from "./phases/kill.ts";
import type { OverrunReport } from "./phases/overrun.ts";
import type { OutageReport } from "./phases/store-down.ts";
import type { Ticker } from "./ticker.ts";
import { TIMINGS } from "./timings.ts";

export interface NoteInputs {
  flakyStats: FaultStats | undefined;
  flakyLabels: string[];
  outage: OutageReport | undefined;
  kill: KillReport | undefined;
  overruns: OverrunReport[];
  ledger: Ledger;
  ticker: Ticker;
  commands: number;
  generations: Generation[];
}

export function faultNotes(n: NoteInputs): string[] {
  const notes: string[] = [];
  if (n.flakyStats) notes.push(...flakyNotes(n.flakyStats, n.flakyLabels));
  if (n.outage) notes.push(outageNote(n.outage));
  if (n.kill) notes.push(killNote(n.kill));
  for (const o of n.overruns) notes.push(overrunNote(o, n.ledger));
  const { ticker } = n;
  notes.push(
    `cron ticks: ${ticker.fired} fired, ${ticker.interrupted} interrupted by the kill, ${ticker.skipped} skipped (${ticker.maxInFlight} runs already in flight); Upstash commands: ${n.commands}; generations: ${n.generations.map((g) => `${g.name}${g.killedAt ? " (killed)" : ""}`).join(", ")}`,
  );
  return notes;
}

function flakyNotes(stats: FaultStats, labels: string[]): string[] {
  const notes = [
    `flaky SMTP: ${stats.connections} connections, ${stats.transactions} transactions; strikes:`,
  ];
  labels.forEach((label, i) => {
    notes.push(`  ${String(stats.hits[i] ?? 0).padStart(4)}  ${label}`);
  });
  const gaveUp = stats.stalls
    .map((s) => s.clientGaveUpAfterMs)
    .filter((n): n is number => n !== null);
  const cut = stats.stalls.filter((s) => s.cutByDown).length;
  notes.push(
    `  stalls: ${stats.stalls.length}; the relay gave up on ${gaveUp.length} by itself, after ${gaveUp.length ? `${Math.min(...gaveUp)}-${Math.max(...gaveUp)} ms` : "-"} (SMTP_TIMEOUT_SECONDS=${TIMINGS.smtpTimeoutSeconds})${cut ? `; ${cut} cut short when the server went down` : ""}`,
  );
  return notes;
}

function outageNote(outage: OutageReport): string {
  return `store down ${outage.ms} ms: ${outage.sends} send(s) answered ${Object.entries(
    outage.refusedStatuses,
  )
    .map(([s, n]) => `${n}×${s}`)
    .join(
      ", ",
    )}; ${outage.ticksDuring} cron ticks during it; ${outage.deliveriesDuring} copies reached the server during it (runs already past their claim); first copy ${outage.firstDeliveryAfterMs === null ? "never" : `${outage.firstDeliveryAfterMs} ms`} after the store came back`;
}

function killNote(kill: KillReport): string {
  return `kill: ${kill.due} messages due; the instance was closed ${kill.killedAfterMs} ms into the run, after the server had taken ${kill.deliveredBeforeKill} (${kill.unansweredAtKill} of them with the 250 still pending); the dead run held ${kill.held} claimed-but-uncommitted message(s); ${kill.heldBack} came back, ${kill.heldBackAfterLeaseMs.min}-${kill.heldBackAfterLeaseMs.max} ms after their lease ran out (${kill.heldEarly} before it)`;
}

function overrunNote(o: OverrunReport, ledger: Ledger): string {
  const duplicated = ledger.duplicates.records.filter((d) => d.recipient.startsWith(`${o.tag}-`));
  return `${o.name}: ${o.messages} messages to ${o.recipients} recipients each, ${o.stalls} stalled transactions, a second run ${o.secondRunAfterMs} ms after the first (lease ${TIMINGS.leaseSeconds * 1000} ms); the relay logged ${o.skipped} "delivery.skipped_lease_short" and ${o.unrecorded} "delivery.unrecorded" (lease lost); ${duplicated.length} recipient(s) got the message twice`;
}
