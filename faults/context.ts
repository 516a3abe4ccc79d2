/**
 * What the phases of a fault run share: the SMTP server, the store's gateway, the relay's
 * instances and the cron, plus the record of every send, phase and outage for the ledger, and the
 * helpers that send messages and wait for them.
 */
import type { Redis } from "ioredis";
import type { SmtpSink } from "../dev/smtp-sink/index.ts";
import type { UpstashGateway } from "../dev/upstash-gateway.ts";
import { pool, sleep } from "./async.ts";
import type { PlannedMessage, RelayView, SendRecord, Window } from "./ledger.ts";
import type { RelayGenerations } from "./relay.ts";
import type { Ticker } from "./ticker.ts";

export interface FaultRunParts {
  started: number;
  deadline: number;
  runId: string;
  /** The relay's REDIS_KEY_PREFIX, unique to the run. */
  prefix: string;
  /** The seeded message mix. */
  random: () => number;
  progress: (line: string) => void;
  smtp: SmtpSink;
  gateway: UpstashGateway;
  /** Read-only looks at the store behind the relay's back (leases after the kill). */
  store: Redis;
  relay: RelayGenerations;
  ticker: Ticker;
}

export function isFinished(view: RelayView | undefined): boolean {
  return view?.delivery.recipients.every((r) => r.status !== "pending") ?? false;
}

/** Tried at least once (or finished without a try). */
export function attempted(view: RelayView | undefined): boolean {
  return view !== undefined && (view.delivery.attempts > 0 || isFinished(view));
}

/** The ids the relay gave the messages of these requests. */
export function idsOf(batch: SendRecord[]): string[] {
  return batch.flatMap((s) => s.messages.flatMap((m) => (m.id ? [m.id] : [])));
}

export class FaultRun {
  readonly sends: SendRecord[] = [];
  readonly phases: Window[] = [];
  readonly storeOutages: Window[] = [];
  readonly views = new Map<string, RelayView>();
  readonly deadline: number;
  readonly runId: string;
  readonly prefix: string;
  readonly smtp: SmtpSink;
  readonly gateway: UpstashGateway;
  readonly store: Redis;
  readonly relay: RelayGenerations;
  readonly ticker: Ticker;
  readonly #started: number;
  readonly #random: () => number;
  readonly #progress: (line: string) => void;
  #counter = 0;

  constructor(parts: FaultRunParts) {
    this.#started = parts.started;
    this.deadline = parts.deadline;
    this.runId = parts.runId;
    this.prefix = parts.prefix;
    this.#random = parts.random;
    this.#progress = parts.progress;
    this.smtp = parts.smtp;
    this.gateway = parts.gateway;
    this.store = parts.store;
    this.relay = parts.relay;
    this.ticker = parts.ticker;
  }

  say(line: string): void {
    this.#progress(`[faults +${((Date.now() - this.#started) / 1000).toFixed(1)}s] ${line}`);
  }

  budgetLeft(): number {
    return this.deadline - Date.now();
  }

  /** Every message the relay accepted so far, with its id. */
  accepted(): (PlannedMessage & { id: string })[] {
    return this.sends
      .flatMap((s) => s.messages)
      .filter((m): m is PlannedMessage & { id: string } => !!m.id);
  }

  acceptedIds(): string[] {
    return this.accepted().map((m) => m.id);
  }

  async readViews(ids: string[]): Promise<void> {
    await pool(ids, 8, async (id) => {
      const res = await this.relay.request("GET", `/emails/${id}`);
      if (res.status === 200) this.views.set(id, res.json as RelayView);
    });
  }

  /** Waits until every id satisfies `done` (re-reading views), or until `until`; returns how many did not. */
  async waitUntil(
    ids: string[],
    done: (view: RelayView | undefined) => boolean,
    until: number,
  ): Promise<number> {
    let open = ids.filter((id) => !done(this.views.get(id)));
    while (open.length > 0 && Date.now() < until) {
      await this.readViews(open);
      open = open.filter((id) => !done(this.views.get(id)));
      if (open.length > 0) await sleep(400);
    }
    return open.length;
  }

  /** Requests for `count` messages; `fixed` recipients each (no bounce), or 2 to 4 and a bounce now and then. */
  plan(phase: string, count: number, fixed?: number): SendRecord[] {
    const out: SendRecord[] = [];
    let left = count;
    while (left > 0) {
      // About a third of the requests are batches of 2 to 5.
      const size = this.#random() < 0.35 ? Math.min(left, 2 + Math.floor(this.#random() * 4)) : 1;
      const messages = Array.from({ length: size }, () => this.#planMessage(phase, fixed));
      out.push({
        phase,
        kind: size > 1 || this.#random() < 0.2 ? "batch" : "single",
        sentAt: 0,
        answeredAt: 0,
        status: -1,
        messages,
      });
      left -= size;
    }
    return out;
  }

  #planMessage(phase: string, fixed: number | undefined): PlannedMessage {
    const tag = `${phase}-${++this.#counter}`;
    const n = fixed ?? 2 + Math.floor(this.#random() * 3);
    const recipients = Array.from({ length: n }, (_, j) => `${tag}-r${j}@run-${this.runId}.test`);
    // One message in eight has a recipient the server refuses for good (550).
    if (fixed === undefined && this.#random() < 0.125) {
      recipients.push(`${tag}-bounce@run-${this.runId}.test`);
    }
    return { tag, recipients };
  }

  /** Sends one request of the plan and records its answer (and the ids it got). */
  async send(record: SendRecord): Promise<void> {
    for (const m of record.messages) {
      for (const r of m.recipients) if (r.includes("-bounce@")) this.smtp.rejectRecipient(r, 550);
    }
    this.sends.push(record);
    record.sentAt = Date.now();
    const res =
      record.kind === "single"
        ? await this.relay.request(
            "POST",
            "/emails",
            this.#emailBody(record.messages[0] as PlannedMessage),
          )
        : await this.relay.request(
            "POST",
            "/emails/batch",
            record.messages.map((m) => this.#emailBody(m)),
          );
    record.answeredAt = Date.now();
    record.status = res.status;
    if (res.status >= 200 && res.status < 300) recordIds(record, res.json);
    else {
      const err = res.json as { name?: string; message?: string } | string;
      record.error = typeof err === "string" ? err : `${err?.name}: ${err?.message}`;
    }
  }

  #emailBody(m: PlannedMessage) {
    const [to, ...rest] = m.recipients;
    const cc = rest.filter((_, i) => i % 2 === 0);
    const bcc = rest.filter((_, i) => i % 2 === 1);
    return {
      from: "Fault Run <faults@acme.test>",
      to: [to],
      ...(cc.length ? { cc } : {}),
      ...(bcc.length ? { bcc } : {}),
      subject: `fault run ${m.tag}`,
      text: `Message ${m.tag} of fault run ${this.runId}.\n${"Lorem ipsum dolor sit amet. ".repeat(8)}`,
      html: `<p>Message <b>${m.tag}</b> of fault run ${this.runId}.</p>`,
    };
  }

  /** Runs a phase and records its window. */
  async phase(name: string, body: () => Promise<void>): Promise<void> {
    const from = Date.now();
    this.say(`${name}…`);
    await body();
    this.phases.push({ name, from, to: Date.now() });
  }

  /** A phase that waits for every accepted message to finish, or until `until`. */
  async drain(name: string, until: number): Promise<void> {
    await this.phase(name, async () => {
      const open = await this.waitUntil(this.acceptedIds(), isFinished, until);
      this.say(`${name}: ${open === 0 ? "every message finished" : `${open} still open`}`);
    });
  }

  /**
   * With the cron paused and the server down, sends `count` messages and waits until each had its
   * first (failed) try, so they are all due together once the server is back.
   */
  async backlog(tag: string, count: number, recipients?: number): Promise<string[]> {
    await this.ticker.pause();
    await this.smtp.down();
    const batch = this.plan(tag, count, recipients);
    await pool(batch, 4, (s) => this.send(s));
    const ids = idsOf(batch);
    await this.waitUntil(ids, attempted, Date.now() + 10_000);
    return ids;
  }
}

function recordIds(record: SendRecord, body: unknown): void {
  const json = body as { id?: string; data?: { id: string }[] };
  const ids = record.kind === "single" ? [json.id] : (json.data ?? []).map((d) => d.id);
  record.messages.forEach((m, i) => {
    const id = ids[i];
    if (id) m.id = id;
  });
}
