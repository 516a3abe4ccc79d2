/**
 * The ledger of a fault run: what the clients were told, what the SMTP server received and what the
 * relay recorded, reconciled recipient by recipient. Pure functions over the observations that
 * faults/scenario.ts collects, so the rules that decide "lost" and "allowed duplicate" can be read
 * (and tested) in one place.
 *
 * - sent: requests answered 2xx, and the messages and recipients in them;
 * - refused: requests answered otherwise (the client was told to retry; nothing may be delivered);
 * - delivered: (Message-ID, RCPT) pairs the SMTP server accepted, counted at the server;
 * - failed: recipients the relay recorded as failed (GET /emails/:id), with the server's reply;
 * - lost: accepted recipients neither delivered nor recorded as failed. Must be 0;
 * - duplicates: a pair accepted more than once. Allowed only as the README's at-least-once rule
 *   says: the copy the relay recorded is the last one, and every other copy was sent by a run that
 *   could not write its outcome back because it died (killed) or the store was unreachable.
 */

/** A recipient's state as GET /emails/:id reports it. */
export interface RelayRecipient {
  email: string;
  status: "pending" | "delivered" | "failed" | "canceled";
  reply: { code: number | null; text: string } | null;
  at: string | null;
}

/** The part of GET /emails/:id the ledger reads. */
export interface RelayView {
  id: string;
  message_id: string;
  last_event: string;
  delivery: { attempts: number; recipients: RelayRecipient[] };
}

export interface PlannedMessage {
  /** Unique per message; its recipients' addresses contain it. */
  tag: string;
  recipients: string[];
  /** The relay's id, once a 2xx gave one. */
  id?: string;
}

export interface SendRecord {
  phase: string;
  kind: "single" | "batch";
  sentAt: number;
  answeredAt: number;
  /** HTTP status; 0 when the request itself failed. */
  status: number;
  /** The error's name and message for a non-2xx answer. */
  error?: string;
  messages: PlannedMessage[];
}

/** One message as the SMTP server recorded it (a subset of dev/smtp-sink/types.ts ReceivedMessage). */
export interface ServerDelivery {
  rcptTo: string[];
  raw: string;
  receivedAt: string;
  clientName: string;
  unanswered?: true;
}

/** A warning or error the relay logged (LOG_LEVEL=warn), with the generation that logged it. */
export interface RelayLog {
  generation: string;
  at: number;
  event: string;
  emailId?: string;
  detail?: string;
}

/** One workerd instance of the relay; its SMTP_EHLO_NAME tells its deliveries apart. */
export interface Generation {
  name: string;
  startedAt: number;
  /** Set when the instance was closed in the middle of a delivery run (a deploy or a crash)... */
  killedAt?: number;
  /** ... which began then. */
  killedRunStartedAt?: number;
}

export interface Window {
  name: string;
  from: number;
  to: number;
}

export interface Observations {
  sends: SendRecord[];
  server: ServerDelivery[];
  /** Views of every accepted message, read after the run. */
  views: Map<string, RelayView>;
  logs: RelayLog[];
  generations: Generation[];
  /** When the Redis gateway was down (sends then must be refused). */
  storeOutages: Window[];
  /** Named phases, for timings. */
  phases: Window[];
  /** When the last drain ended (the deadline, if it was reached first). */
  finishedAt: number;
  deadlineReached: boolean;
}

export type DuplicateCause =
  | "run killed between the 250 and the commit"
  | "store unreachable when committing"
  | "the 250 never reached the client"
  | "lease ran out while its run was still delivering"
  | "sent again after the relay had recorded it delivered"
  | "no cause found";

const ALLOWED: ReadonlySet<DuplicateCause> = new Set<DuplicateCause>([
  "run killed between the 250 and the commit",
  "store unreachable when committing",
  "the 250 never reached the client",
]);

export interface DuplicateRecord {
  emailId: string;
  messageId: string;
  recipient: string;
  copies: number;
  /** Every copy: when it arrived, from which generation, and why it was not the recorded one. */
  deliveries: { at: string; generation: string; recorded: boolean; cause?: DuplicateCause }[];
  allowed: boolean;
}

export interface LostRecord {
  emailId: string;
  recipient: string;
  relayStatus: string;
  phase: string;
}

export interface Ledger {
  requests: { total: number; accepted: number; refused: number };
  sent: { messages: number; recipients: number };
  refused: {
    messages: number;
    recipients: number;
    byStatus: Record<string, number>;
    /** Refused recipients the SMTP server received anyway (a 503 that was not "nothing stored"). */
    deliveredAnyway: number;
    /** 2xx answers while the store was down. */
    acceptedDuringOutage: number;
  };
  delivered: { recipients: number; copies: number };
  failed: { recipients: number; reasons: Record<string, number> };
  lost: { recipients: number; pendingAtDeadline: number; records: LostRecord[] };
  duplicates: {
    pairs: number;
    extraCopies: number;
    allowed: number;
    notAllowed: number;
    byCause: Record<string, number>;
    records: DuplicateRecord[];
  };
  /** Recipients the relay recorded as failed that the server nevertheless accepted. */
  failedButDelivered: number;
  /** Server deliveries matching no accepted or refused message. */
  strays: number;
  timings: {
    totalMs: number;
    phases: { name: string; ms: number }[];
    /** From the 2xx to the first copy at the server, per delivered recipient. */
    deliveryMs: { p50: number; p90: number; p99: number; max: number };
    /** The same, for the messages sent in each phase. */
    deliveryMsByPhase: { phase: string; recipients: number; p50: number; max: number }[];
    /** From the end of the last phase's sends to the moment every message was finished. */
    drainMs: number;
    deadlineReached: boolean;
  };
}

/** The Message-ID header of a raw message, with its angle brackets. */
export function messageIdOf(raw: string): string | undefined {
  return /^Message-ID:[ \t]*(<[^>\r\n]+>)/im.exec(raw)?.[1];
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, index)] ?? 0;
}

function bump(counts: Record<string, number>, key: string, by = 1): void {
  counts[key] = (counts[key] ?? 0) + by;
}

/**
 * The relay's clock (workerd) and the server's (Node) are the same machine's, but the relay stamps
 * a delivery after the 250 arrives and the server before it sends it; this much either way still
 * counts as the same moment. Copies of one message are always further apart (a lease, a retry).
 */
const SAME_MOMENT_MS = 100;
/** A run writes an outcome back right after the 250 (the store client's own retries included). */
const COMMIT_WINDOW_MS = 10_000;

/**
 * Why a copy other than the recorded one exists. `after` is the time the relay recorded the pair
 * delivered, when that happened before this copy.
 */
function causeOf(
  copy: { at: number; generation: string; unanswered: boolean },
  emailId: string,
  obs: Observations,
  recordedBefore: boolean,
): DuplicateCause {
  const generation = obs.generations.find((g) => g.name === copy.generation);
  const logged = (event: string) =>
    obs.logs.some(
      (l) =>
        l.generation === copy.generation &&
        l.emailId === emailId &&
        l.event === event &&
        l.at >= copy.at - SAME_MOMENT_MS &&
        l.at <= copy.at + COMMIT_WINDOW_MS,
    );
  // The relay's own word first: a commit it logged as failed or refused.
  if (logged("delivery.commit_failed")) return "store unreachable when committing";
  if (logged("delivery.unrecorded")) return "lease ran out while its run was still delivering";
  if (
    generation?.killedAt !== undefined &&
    copy.at >= (generation.killedRunStartedAt ?? generation.startedAt) - SAME_MOMENT_MS &&
    copy.at <= generation.killedAt + SAME_MOMENT_MS
  ) {
    return "run killed between the 250 and the commit";
  }
  if (recordedBefore) return "sent again after the relay had recorded it delivered";
  if (copy.unanswered) return "the 250 never reached the client";
  return "no cause found";
}

type Copy = { at: number; generation: string; unanswered: boolean };

export function buildLedger(obs: Observations): Ledger {
  const accepted = obs.sends.filter((s) => s.status >= 200 && s.status < 300);
  const refused = obs.sends.filter((s) => !(s.status >= 200 && s.status < 300));
  const { copies, byAddress, strays } = serverCopies(obs);
  const ledger = emptyLedger(obs, accepted.length, refused.length, strays);
  countRefused(ledger, refused, accepted, byAddress, obs);
  const latenciesByPhase = new Map<string, number[]>();
  for (const s of accepted) {
    for (const m of s.messages) {
      ledger.sent.messages++;
      ledger.sent.recipients += m.recipients.length;
      const view = m.id === undefined ? undefined : obs.views.get(m.id);
      for (const recipient of m.recipients) {
        const latency = tallyRecipient(ledger, { s, m, view, recipient, copies, obs });
        if (latency !== undefined) {
          const own = latenciesByPhase.get(s.phase) ?? [];
          own.push(latency);
          latenciesByPhase.set(s.phase, own);
        }
      }
    }
  }
  countDuplicates(ledger);
  fillTimings(ledger, latenciesByPhase, obs);
  return ledger;
}

/**
 * Server copies by (Message-ID, recipient), and the recipient addresses seen (for refused
 * messages, which have no Message-ID the client knows); strays are copies to unknown addresses.
 */
function serverCopies(obs: Observations) {
  const copies = new Map<string, Copy[]>();
  const byAddress = new Set<string>();
  let strays = 0;
  const knownAddresses = new Set(
    obs.sends.flatMap((s) => s.messages.flatMap((m) => m.recipients.map((r) => r.toLowerCase()))),
  );
  for (const d of obs.server) {
    const messageId = messageIdOf(d.raw) ?? "(none)";
    for (const rcpt of d.rcptTo) {
      const address = rcpt.toLowerCase();
      byAddress.add(address);
      if (!knownAddresses.has(address)) strays++;
      const key = `${messageId} ${address}`;
      const list = copies.get(key) ?? [];
      list.push({
        at: Date.parse(d.receivedAt),
        generation: d.clientName,
        unanswered: d.unanswered === true,
      });
      copies.set(key, list);
    }
  }
  return { copies, byAddress, strays };
}

function emptyLedger(obs: Observations, accepted: number, refused: number, strays: number): Ledger {
  return {
    requests: { total: obs.sends.length, accepted, refused },
    sent: { messages: 0, recipients: 0 },
    refused: {
      messages: 0,
      recipients: 0,
      byStatus: {},
      deliveredAnyway: 0,
      acceptedDuringOutage: 0,
    },
    delivered: { recipients: 0, copies: 0 },
    failed: { recipients: 0, reasons: {} },
    lost: { recipients: 0, pendingAtDeadline: 0, records: [] },
    duplicates: { pairs: 0, extraCopies: 0, allowed: 0, notAllowed: 0, byCause: {}, records: [] },
    failedButDelivered: 0,
    strays,
    timings: {
      totalMs: 0,
      phases: obs.phases.map((p) => ({ name: p.name, ms: p.to - p.from })),
      deliveryMs: { p50: 0, p90: 0, p99: 0, max: 0 },
      deliveryMsByPhase: [],
      drainMs: 0,
      deadlineReached: obs.deadlineReached,
    },
  };
}

function countRefused(
  ledger: Ledger,
  refused: SendRecord[],
  accepted: SendRecord[],
  byAddress: Set<string>,
  obs: Observations,
): void {
  for (const s of refused) {
    bump(ledger.refused.byStatus, String(s.status));
    for (const m of s.messages) {
      ledger.refused.messages++;
      ledger.refused.recipients += m.recipients.length;
      ledger.refused.deliveredAnyway += m.recipients.filter((r) =>
        byAddress.has(r.toLowerCase()),
      ).length;
    }
  }
  for (const s of accepted) {
    if (obs.storeOutages.some((w) => s.sentAt >= w.from && s.answeredAt <= w.to)) {
      ledger.refused.acceptedDuringOutage++;
    }
  }
}

/**
 * One accepted recipient: delivered (the delay to its first copy is returned), failed as the
 * relay recorded, or lost; and a duplicate record when the server got it more than once.
 */
function tallyRecipient(
  ledger: Ledger,
  r: {
    s: SendRecord;
    m: PlannedMessage;
    view: RelayView | undefined;
    recipient: string;
    copies: Map<string, Copy[]>;
    obs: Observations;
  },
): number | undefined {
  const { s, m, view, recipient } = r;
  const state = view?.delivery.recipients.find(
    (x) => x.email.toLowerCase() === recipient.toLowerCase(),
  );
  const list = view ? (r.copies.get(`${view.message_id} ${recipient.toLowerCase()}`) ?? []) : [];
  list.sort((a, b) => a.at - b.at);
  let latency: number | undefined;
  if (list.length > 0) {
    ledger.delivered.recipients++;
    ledger.delivered.copies += list.length;
    latency = (list[0]?.at ?? s.answeredAt) - s.answeredAt;
    if (state?.status === "failed") ledger.failedButDelivered++;
  } else if (state?.status === "failed") {
    ledger.failed.recipients++;
    // One line per kind of reply, not per address.
    bump(
      ledger.failed.reasons,
      (state.reply?.text ?? "(no reply)").replace(/<[^<>\s]+@[^<>\s]+>/g, "<…>"),
    );
  } else {
    ledger.lost.recipients++;
    if (state?.status === "pending") ledger.lost.pendingAtDeadline++;
    ledger.lost.records.push({
      emailId: m.id ?? "(no id)",
      recipient,
      relayStatus: state?.status ?? "(no record)",
      phase: s.phase,
    });
  }
  if (list.length > 1 && view) {
    ledger.duplicates.records.push(classifyDuplicate(view, recipient, state, list, r.obs));
  }
  return latency;
}

function countDuplicates(ledger: Ledger): void {
  for (const d of ledger.duplicates.records) {
    ledger.duplicates.pairs++;
    ledger.duplicates.extraCopies += d.copies - 1;
    if (d.allowed) ledger.duplicates.allowed++;
    else ledger.duplicates.notAllowed++;
    for (const c of d.deliveries) if (c.cause) bump(ledger.duplicates.byCause, c.cause);
  }
}

function fillTimings(
  ledger: Ledger,
  latenciesByPhase: Map<string, number[]>,
  obs: Observations,
): void {
  const latencies = [...latenciesByPhase.values()].flat();
  latencies.sort((a, b) => a - b);
  ledger.timings.deliveryMs = {
    p50: percentile(latencies, 50),
    p90: percentile(latencies, 90),
    p99: percentile(latencies, 99),
    max: latencies[latencies.length - 1] ?? 0,
  };
  for (const [phase, list] of latenciesByPhase) {
    list.sort((a, b) => a - b);
    ledger.timings.deliveryMsByPhase.push({
      phase,
      recipients: list.length,
      p50: percentile(list, 50),
      max: list[list.length - 1] ?? 0,
    });
  }
  const start = Math.min(...obs.phases.map((p) => p.from));
  const lastSend = Math.max(...obs.sends.map((s) => s.answeredAt));
  ledger.timings.totalMs = obs.finishedAt - start;
  ledger.timings.drainMs = obs.finishedAt - lastSend;
}

function classifyDuplicate(
  view: RelayView,
  recipient: string,
  state: RelayRecipient | undefined,
  list: Copy[],
  obs: Observations,
): DuplicateRecord {
  // The copy the relay recorded: the last one that arrived before the relay stamped the recipient
  // delivered. Every other copy needs a cause.
  const recordedAt =
    state?.status === "delivered" && state.at !== null ? Date.parse(state.at) : undefined;
  let recorded = -1;
  if (recordedAt !== undefined) {
    list.forEach((c, i) => {
      if (c.at <= recordedAt + SAME_MOMENT_MS) recorded = i;
    });
  }
  const deliveries = list.map((c, i) => {
    const entry: DuplicateRecord["deliveries"][number] = {
      at: new Date(c.at).toISOString(),
      generation: c.generation,
      recorded: i === recorded,
    };
    if (i !== recorded) entry.cause = causeOf(c, view.id, obs, recorded >= 0 && i > recorded);
    return entry;
  });
  const allowed =
    recorded === list.length - 1 &&
    deliveries.every((d) => d.recorded || (d.cause !== undefined && ALLOWED.has(d.cause)));
  return {
    emailId: view.id,
    messageId: view.message_id,
    recipient,
    copies: list.length,
    deliveries,
    allowed,
  };
}

function ms(n: number): string {
  return n >= 10_000 ? `${(n / 1000).toFixed(1)} s` : `${Math.round(n)} ms`;
}

/** The ledger as text, for the terminal. */
export function formatLedger(ledger: Ledger, extra: string[] = []): string {
  const l = ledger;
  const lines: string[] = [];
  const row = (label: string, value: string | number, note = "") =>
    lines.push(`  ${label.padEnd(28)} ${String(value).padStart(7)}${note ? `   ${note}` : ""}`);
  const statuses = Object.entries(l.refused.byStatus)
    .map(([status, n]) => `${n}×${status === "0" ? "network error" : status}`)
    .join(", ");
  lines.push("LEDGER");
  row(
    "requests",
    l.requests.total,
    `${l.requests.accepted} answered 2xx, ${l.requests.refused} not`,
  );
  row("sent (2xx) messages", l.sent.messages, `${l.sent.recipients} recipients`);
  row(
    "refused (non-2xx) messages",
    l.refused.messages,
    `${l.refused.recipients} recipients${statuses ? `; ${statuses}` : ""}`,
  );
  row("  refused, delivered anyway", l.refused.deliveredAnyway, "must be 0");
  row("  2xx while store was down", l.refused.acceptedDuringOutage, "must be 0");
  row(
    "delivered recipients",
    l.delivered.recipients,
    `${l.delivered.copies} copies at the SMTP server (by Message-ID and RCPT)`,
  );
  row("failed recipients", l.failed.recipients, "recorded failed by GET /emails/:id");
  for (const [reason, n] of Object.entries(l.failed.reasons)) {
    lines.push(`  ${"".padEnd(28)} ${String(n).padStart(7)}   ${reason}`);
  }
  row(
    "LOST recipients",
    l.lost.recipients,
    l.lost.pendingAtDeadline ? `${l.lost.pendingAtDeadline} still pending at the deadline` : "",
  );
  for (const r of l.lost.records.slice(0, 20)) {
    lines.push(`    ${r.emailId} ${r.recipient} (relay: ${r.relayStatus}, phase ${r.phase})`);
  }
  row(
    "duplicates",
    l.duplicates.pairs,
    `${l.duplicates.extraCopies} extra copies; ${l.duplicates.allowed} allowed (at-least-once), ${l.duplicates.notAllowed} NOT allowed`,
  );
  lines.push(...duplicateLines(l));
  row("failed but delivered", l.failedButDelivered, "must be 0");
  row("stray deliveries", l.strays, "must be 0");
  lines.push(...timingLines(l));
  return [...lines, ...extra].join("\n");
}

/** Duplicates by cause, then the ones not allowed, each copy on its own line. */
function duplicateLines(l: Ledger): string[] {
  const lines: string[] = [];
  for (const [cause, n] of Object.entries(l.duplicates.byCause)) {
    const tag = ALLOWED.has(cause as DuplicateCause) ? "allowed" : "NOT ALLOWED";
    lines.push(`  ${"".padEnd(28)} ${String(n).padStart(7)}   ${cause} (${tag})`);
  }
  for (const d of l.duplicates.records.filter((r) => !r.allowed).slice(0, 20)) {
    lines.push(`    ${d.emailId} ${d.messageId} ${d.recipient}`);
    for (const c of d.deliveries) {
      lines.push(
        `      ${c.at} by ${c.generation}${c.recorded ? " (recorded)" : ""}${c.cause ? `: ${c.cause}` : ""}`,
      );
    }
  }
  return lines;
}

function timingLines(l: Ledger): string[] {
  const lines: string[] = [];
  lines.push("TIMINGS");
  for (const p of l.timings.phases) lines.push(`  ${p.name.padEnd(28)} ${ms(p.ms).padStart(9)}`);
  lines.push(
    `  ${"total".padEnd(28)} ${ms(l.timings.totalMs).padStart(9)}${l.timings.deadlineReached ? "   DEADLINE REACHED" : ""}`,
  );
  lines.push(
    `  ${"after the last send".padEnd(28)} ${ms(l.timings.drainMs).padStart(9)}   until every message was finished`,
  );
  const d = l.timings.deliveryMs;
  lines.push(
    `  ${"2xx to first delivery".padEnd(28)} p50 ${ms(d.p50)}, p90 ${ms(d.p90)}, p99 ${ms(d.p99)}, max ${ms(d.max)}`,
  );
  for (const p of l.timings.deliveryMsByPhase) {
    lines.push(
      `    ${`sent in "${p.phase}"`.padEnd(26)} p50 ${ms(p.p50)}, max ${ms(p.max)} (${p.recipients} recipients)`,
    );
  }
  return lines;
}
