/**
 * Fault injection. First the SMTP sink's fault modes themselves (dev/smtp-sink/), with nodemailer
 * as the client and through the HTTP control API; then a reduced fault run (faults/scenario.ts, the
 * scenario behind `npm run faults`): the real Worker in workerd against a Redis gateway and an SMTP
 * server that fail on purpose, reconciled by the ledger (faults/ledger.ts).
 */
import nodemailer from "nodemailer";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { parseFaultPlan, type SmtpSink, startSmtpSink } from "../../dev/smtp-sink/index.ts";
import {
  buildLedger,
  type Generation,
  type Observations,
  type RelayLog,
  type RelayRecipient,
  type RelayView,
  type SendRecord,
} from "../../faults/ledger.ts";
import { parseFaultArgs } from "../../faults/run.ts";
import { type FaultRunResult, runFaultScenario, TIMINGS } from "../../faults/scenario.ts";
import { requireRedis, services, sinkApi } from "../support/services.ts";

const raw = (subject: string, body = "Hello.") =>
  [
    "From: s@example.com",
    "To: a@example.com",
    `Subject: ${subject}`,
    `Message-ID: <${subject.replaceAll(" ", "-")}@faults.test>`,
    "",
    body,
    "",
  ].join("\r\n");

type SendError = { code?: string; responseCode?: number; response?: string; message: string };

/** One message over a fresh connection; resolves with nodemailer's info or its error. */
async function deliver(
  port: number,
  to: string[],
  subject: string,
  options: Record<string, unknown> = {},
  body?: string,
) {
  const transport = nodemailer.createTransport({
    host: "127.0.0.1",
    port,
    ignoreTLS: true,
    ...options,
  });
  try {
    const info = await transport.sendMail({
      envelope: { from: "s@example.com", to },
      raw: raw(subject, body),
    });
    return { info, error: undefined };
  } catch (error) {
    return { info: undefined, error: error as SendError };
  } finally {
    transport.close();
  }
}

describe("SMTP sink fault modes", () => {
  let sink: SmtpSink;

  beforeAll(async () => {
    sink = await startSmtpSink();
  });
  afterEach(async () => {
    await sink.reset();
  });
  afterAll(async () => {
    await sink?.close();
  });

  it("answers 421 at MAIL to every k-th transaction and closes that connection", async () => {
    sink.setFaults({ rules: [{ at: "mail", action: "reply", code: 421, every: 2 }] });
    const results = [];
    for (let i = 1; i <= 4; i++)
      results.push(await deliver(sink.port, ["a@example.com"], `m ${i}`));
    expect(results.map((r) => r.error?.responseCode ?? 250)).toEqual([250, 421, 250, 421]);
    expect(results[1]?.error?.response).toMatch(/^421 4\.4\.2 /);
    expect(sink.messages.map((m) => m.raw)).toEqual([raw("m 1"), raw("m 3")]);
    expect(sink.faults().stats).toMatchObject({ transactions: 4, hits: [2] });
  });

  it("answers 451 to the first RCPT of a selected transaction and accepts the others", async () => {
    sink.setFaults({ rules: [{ at: "rcpt", action: "reply", code: 451, every: 1 }] });
    const { info } = await deliver(sink.port, ["a@example.com", "b@example.com"], "rcpt");
    expect(info?.rejected).toEqual(["a@example.com"]);
    expect(info?.accepted).toEqual(["b@example.com"]);
    expect(sink.messages.map((m) => m.rcptTo)).toEqual([["b@example.com"]]);
  });

  it("answers 451 after DATA, taking nothing", async () => {
    sink.setFaults({ rules: [{ at: "data", action: "reply", code: 451, text: "4.3.0 Busy" }] });
    const { error } = await deliver(sink.port, ["a@example.com"], "data");
    expect(error?.responseCode).toBe(451);
    expect(error?.response).toBe("451 4.3.0 Busy");
    expect(sink.messages).toEqual([]);
  });

  it("drops the connection mid-DATA without a reply and takes nothing", async () => {
    sink.setFaults({ rules: [{ at: "data", action: "drop", afterBytes: 2_000 }] });
    const { error } = await deliver(
      sink.port,
      ["a@example.com"],
      "dropped",
      {},
      "x".repeat(50_000),
    );
    expect(error?.code).toBe("ECONNECTION");
    expect(error?.responseCode).toBeUndefined();
    expect(sink.messages).toEqual([]);
    expect(sink.faults().stats).toMatchObject({ drops: 1, hits: [1] });
  });

  it("stalls past the client's timeout, then closes, and records when the client gave up", async () => {
    sink.setFaults({
      rules: [
        { at: "connect", action: "stall", ms: 1_000, limit: 1 },
        { at: "data", action: "stall", ms: 1_000, limit: 1 },
      ],
    });
    const timeouts = { greetingTimeout: 300, socketTimeout: 300 };
    const greeting = await deliver(sink.port, ["a@example.com"], "stall 1", timeouts);
    const data = await deliver(sink.port, ["a@example.com"], "stall 2", timeouts);
    expect(greeting.error?.code).toBe("ETIMEDOUT");
    expect(data.error?.code).toBe("ETIMEDOUT");
    expect(sink.messages).toEqual([]);
    // The server sees the client's close a moment after the client reported its timeout.
    await new Promise((r) => setTimeout(r, 100));
    const { stalls } = sink.faults().stats;
    expect(stalls.map((s) => s.at)).toEqual(["connect", "data"]);
    for (const s of stalls) {
      // nodemailer's socket timeout counts from its last write, a little before the stall began.
      expect(s.clientGaveUpAfterMs).toBeGreaterThanOrEqual(150);
      expect(s.clientGaveUpAfterMs).toBeLessThan(900);
    }
    // A client without a timeout waits out the stall and loses the connection.
    sink.setFaults({ rules: [{ at: "mail", action: "stall", ms: 300 }] });
    const patient = await deliver(sink.port, ["a@example.com"], "stall 3");
    expect(patient.error?.code).toMatch(/^E(CONNECTION|PROTOCOL|SOCKET)$/);
    expect(sink.faults().stats.stalls).toEqual([{ at: "mail", clientGaveUpAfterMs: null }]);
    // A stall that down() ends is not the client giving up.
    sink.setFaults({ rules: [{ at: "mail", action: "stall", ms: 5_000 }] });
    const cut = deliver(sink.port, ["a@example.com"], "stall 4");
    await new Promise((r) => setTimeout(r, 200));
    await sink.down();
    expect((await cut).error).toBeDefined();
    await sink.up();
    await new Promise((r) => setTimeout(r, 100));
    expect(sink.faults().stats.stalls).toEqual([
      { at: "mail", clientGaveUpAfterMs: null, cutByDown: true },
    ]);
  });

  it("counts offset and limit, and refuses greetings with a connect rule", async () => {
    sink.setFaults({
      rules: [
        { at: "connect", action: "reply", code: 421, every: 3 },
        { at: "mail", action: "reply", code: 451, offset: 1, limit: 2 },
      ],
    });
    const codes = [];
    for (let i = 1; i <= 6; i++) {
      const r = await deliver(sink.port, ["a@example.com"], `n ${i}`);
      codes.push(r.error?.responseCode ?? 250);
    }
    // Connections 3 and 6 are refused at the greeting; of the four transactions, the 2nd and 3rd
    // get 451 (offset 1, limit 2).
    expect(codes).toEqual([250, 451, 421, 451, 250, 421]);
    expect(sink.faults().stats).toMatchObject({ connections: 6, transactions: 4, hits: [2, 2] });
  });

  it("picks the same transactions for the same seed, other ones for another seed", async () => {
    const failing = async (seed: number) => {
      sink.setFaults({
        rules: [{ at: "mail", action: "reply", code: 451, probability: 0.3, seed }],
      });
      const pooled = nodemailer.createTransport({
        host: "127.0.0.1",
        port: sink.port,
        ignoreTLS: true,
        pool: true,
        maxConnections: 1,
      });
      const out: number[] = [];
      try {
        for (let i = 1; i <= 40; i++) {
          const failed = await pooled
            .sendMail({ envelope: { from: "s@example.com", to: ["a@example.com"] }, raw: raw("p") })
            .then(
              () => false,
              () => true,
            );
          if (failed) out.push(i);
        }
      } finally {
        pooled.close();
      }
      return out;
    };
    const first = await failing(42);
    const again = await failing(42);
    const other = await failing(43);
    expect(again).toEqual(first);
    expect(other).not.toEqual(first);
    expect(first.length).toBeGreaterThanOrEqual(4);
    expect(first.length).toBeLessThanOrEqual(20);
  });

  it("answers late with latencyMs, and marks a message whose 250 found the client gone", async () => {
    sink.setFaults({ rules: [], latencyMs: 600 });
    const slow = await deliver(sink.port, ["a@example.com"], "slow");
    expect(slow.info?.accepted).toEqual(["a@example.com"]);
    const left = await deliver(sink.port, ["b@example.com"], "left", { socketTimeout: 200 });
    expect(left.error?.code).toBe("ETIMEDOUT");
    await new Promise((r) => setTimeout(r, 700));
    // Taken (recorded before the reply), though the client never heard the 250.
    expect(sink.messages.map((m) => [m.rcptTo[0], m.unanswered ?? false])).toEqual([
      ["a@example.com", false],
      ["b@example.com", true],
    ]);
    expect(sink.faults().stats.unanswered).toBe(1);
    expect(sink.messages[0]?.clientName).not.toBe("");
  });

  it("tarpits: every MAIL, RCPT and end-of-DATA reply late, none failing", async () => {
    sink.setFaults({ rules: [], tarpitMs: 150 });
    const started = Date.now();
    const { info } = await deliver(sink.port, ["a@example.com", "b@example.com"], "tarpit", {
      socketTimeout: 1_000,
    });
    // MAIL, two RCPTs and the end of DATA: four late replies.
    expect(Date.now() - started).toBeGreaterThanOrEqual(4 * 150);
    expect(info?.accepted).toEqual(["a@example.com", "b@example.com"]);
    expect(sink.messages).toHaveLength(1);
  });

  it("validates fault plans, naming the field", () => {
    const bad: [unknown, RegExp][] = [
      [{}, /rules must be an array/],
      [{ rules: [{ at: "quit", action: "reply", code: 421 }] }, /rules\[0\]\.at/],
      [{ rules: [{ at: "mail", action: "reply" }] }, /rules\[0\]\.code is required/],
      [{ rules: [{ at: "mail", action: "reply", code: 250 }] }, /400-599/],
      [{ rules: [{ at: "mail", action: "stall" }] }, /rules\[0\]\.ms is required/],
      [
        { rules: [{ at: "mail", action: "drop", every: 2, probability: 0.5 }] },
        /every or probability/,
      ],
      [{ rules: [{ at: "mail", action: "drop", probability: 2 }] }, /probability/],
      [{ rules: [{ at: "mail", action: "drop", every: 0 }] }, /rules\[0\]\.every/],
      [{ rules: [{ at: "mail", action: "reply", code: 451, text: "a\r\nb" }] }, /one line/],
      [{ rules: [], latencyMs: -1 }, /latencyMs/],
      [{ rules: [], tarpitMs: 1.5 }, /tarpitMs/],
    ];
    for (const [plan, message] of bad) expect(() => parseFaultPlan(plan)).toThrow(message);
    expect(parseFaultPlan({ rules: [{ at: "data", action: "drop" }], latencyMs: 0 })).toEqual({
      rules: [{ at: "data", action: "drop" }],
    });
  });
});

describe("SMTP sink faults over the HTTP control API", () => {
  const sink = sinkApi("plain");
  afterAll(async () => {
    await sink.reset();
  });

  it("sets, reports and clears a plan; reset() clears it too; a bad plan is a 400", async () => {
    const { port, api } = services().sinks.plain;
    await sink.reset();
    await sink.setFaults({ rules: [{ at: "mail", action: "reply", code: 421, every: 1 }] });
    const refused = await deliver(port, ["http-fault@example.com"], "over http");
    expect(refused.error?.responseCode).toBe(421);
    expect(await sink.faults()).toMatchObject({
      plan: { rules: [{ at: "mail", action: "reply", code: 421, every: 1 }] },
      stats: { hits: [1] },
    });
    await sink.clearFaults();
    expect((await deliver(port, ["http-fault@example.com"], "cleared")).error).toBeUndefined();
    await sink.setFaults({ rules: [{ at: "mail", action: "drop" }] });
    await sink.reset();
    expect(await sink.faults()).toMatchObject({ plan: { rules: [] }, stats: { hits: [] } });
    const bad = await fetch(`${api}/api/faults`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ rules: [{ at: "mail", action: "stall" }] }),
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/ms is required/);
  });
});

describe("npm run faults arguments", () => {
  it("reads --messages and friends, and refuses what it does not know", () => {
    expect(parseFaultArgs(["--messages", "120", "--seed=9", "--no-lease-overrun"])).toMatchObject({
      messages: 120,
      seed: 9,
      overruns: [],
      deadlineSeconds: 300,
    });
    expect(parseFaultArgs(["--overruns", "tarpit"]).overruns).toEqual(["tarpit"]);
    expect(() => parseFaultArgs(["--overruns", "slow"])).toThrow(/stalls, tarpit/);
    expect(() => parseFaultArgs(["--messages", "3"])).toThrow(/from 40/);
    expect(() => parseFaultArgs(["--fast"])).toThrow(/unknown argument/);
  });
});

describe("fault ledger rules", () => {
  const T = Date.parse("2026-01-01T00:00:00Z");
  const iso = (ms: number) => new Date(T + ms).toISOString();
  const gen1: Generation = {
    name: "gen1",
    startedAt: T,
    killedAt: T + 20_000,
    killedRunStartedAt: T + 19_000,
  };
  const gen2: Generation = { name: "gen2", startedAt: T + 21_000 };

  /** One accepted message `id` to `to`, the relay's record of each recipient, the server's copies. */
  const observe = (
    recipients: { to: string; status: RelayRecipient["status"]; at?: number }[],
    copies: { to: string; at: number; generation: string }[],
    logs: RelayLog[] = [],
    refused: string[] = [],
  ): Observations => {
    const id = "e1";
    const view: RelayView = {
      id,
      message_id: "<e1@test>",
      last_event: "delivered",
      delivery: {
        attempts: 1,
        recipients: recipients.map((r) => ({
          email: r.to,
          status: r.status,
          reply: r.status === "failed" ? { code: 550, text: "550 5.1.1 <x@y.test> no" } : null,
          at: r.at === undefined ? null : iso(r.at),
        })),
      },
    };
    const sends: SendRecord[] = [
      {
        phase: "p",
        kind: "single",
        sentAt: T,
        answeredAt: T + 10,
        status: 200,
        messages: [{ tag: "m1", recipients: recipients.map((r) => r.to), id }],
      },
    ];
    if (refused.length) {
      sends.push({
        phase: "p",
        kind: "single",
        sentAt: T,
        answeredAt: T + 10,
        status: 503,
        messages: [{ tag: "m2", recipients: refused }],
      });
    }
    return {
      sends,
      server: copies.map((c) => ({
        rcptTo: [c.to],
        raw: `Message-ID: ${c.to.startsWith("r") ? "<refused@test>" : "<e1@test>"}\r\n\r\nx`,
        receivedAt: iso(c.at),
        clientName: c.generation,
      })),
      views: new Map([[id, view]]),
      logs,
      generations: [gen1, gen2],
      storeOutages: [],
      phases: [{ name: "p", from: T, to: T + 60_000 }],
      finishedAt: T + 60_000,
      deadlineReached: false,
    };
  };

  it("counts delivered, failed and lost recipients", () => {
    const ledger = buildLedger(
      observe(
        [
          { to: "a@t", status: "delivered", at: 1_000 },
          { to: "b@t", status: "failed", at: 1_000 },
          { to: "c@t", status: "pending" },
          { to: "d@t", status: "delivered", at: 1_000 },
        ],
        [{ to: "a@t", at: 990, generation: "gen1" }],
        [],
        ["refused-1@t"],
      ),
    );
    expect(ledger.delivered.recipients).toBe(1);
    expect(ledger.failed).toEqual({ recipients: 1, reasons: { "550 5.1.1 <…> no": 1 } });
    // c is still pending; d the relay says delivered, but the server never got it.
    expect(ledger.lost.recipients).toBe(2);
    expect(ledger.lost.pendingAtDeadline).toBe(1);
    expect(ledger.lost.records.map((r) => [r.recipient, r.relayStatus])).toEqual([
      ["c@t", "pending"],
      ["d@t", "delivered"],
    ]);
    expect(ledger.refused).toMatchObject({ messages: 1, recipients: 1, deliveredAnyway: 0 });
  });

  it("allows a duplicate only when the recorded copy is the last and the others had no commit", () => {
    const classify = (
      copies: { at: number; generation: string }[],
      at: number,
      logs: RelayLog[] = [],
    ) => {
      const ledger = buildLedger(
        observe(
          [{ to: "a@t", status: "delivered", at }],
          copies.map((c) => ({ to: "a@t", ...c })),
          logs,
        ),
      );
      const [record] = ledger.duplicates.records;
      return {
        allowed: record?.allowed,
        causes: record?.deliveries.map((d) => d.cause ?? "recorded"),
      };
    };
    // Sent by the run that was killed, again after its lease: allowed.
    expect(
      classify(
        [
          { at: 19_500, generation: "gen1" },
          { at: 26_000, generation: "gen2" },
        ],
        26_010,
      ),
    ).toEqual({
      allowed: true,
      causes: ["run killed between the 250 and the commit", "recorded"],
    });
    // Same instance, long before the killed run, commit logged as failed: allowed.
    const failed: RelayLog = {
      generation: "gen1",
      at: T + 5_300,
      event: "delivery.commit_failed",
      emailId: "e1",
    };
    expect(
      classify(
        [
          { at: 5_000, generation: "gen1" },
          { at: 11_000, generation: "gen1" },
        ],
        11_010,
        [failed],
      ),
    ).toEqual({
      allowed: true,
      causes: ["store unreachable when committing", "recorded"],
    });
    // Without that log, gen1 being killed later explains nothing.
    expect(
      classify(
        [
          { at: 5_000, generation: "gen1" },
          { at: 11_000, generation: "gen1" },
        ],
        11_010,
      ).allowed,
    ).toBe(false);
    // The relay recorded the first copy and a live run sent another after its lease ran out.
    const lost: RelayLog = {
      generation: "gen2",
      at: T + 31_010,
      event: "delivery.unrecorded",
      emailId: "e1",
      detail: "conflict",
    };
    expect(
      classify(
        [
          { at: 30_000, generation: "gen2" },
          { at: 31_000, generation: "gen2" },
        ],
        30_010,
        [lost],
      ),
    ).toEqual({
      allowed: false,
      causes: ["recorded", "lease ran out while its run was still delivering"],
    });
    expect(
      classify(
        [
          { at: 30_000, generation: "gen2" },
          { at: 31_000, generation: "gen2" },
        ],
        30_010,
      ).causes,
    ).toEqual(["recorded", "sent again after the relay had recorded it delivered"]);
  });

  it("notices a refused message that was delivered anyway", () => {
    const ledger = buildLedger(
      observe(
        [{ to: "a@t", status: "delivered", at: 1_000 }],
        [
          { to: "a@t", at: 990, generation: "gen1" },
          { to: "refused-1@t", at: 990, generation: "gen1" },
        ],
        [],
        ["refused-1@t"],
      ),
    );
    expect(ledger.refused.deliveredAnyway).toBe(1);
    expect(ledger.strays).toBe(0);
  });
});

const redis = requireRedis();

describe.skipIf(redis.skip)(`reduced fault run (real workerd, Redis, SMTP)${redis.label}`, () => {
  let result: FaultRunResult;

  beforeAll(async () => {
    result = await runFaultScenario({
      messages: 40,
      seed: 7,
      deadlineMs: 100_000,
      flakyHoldMs: 3_000,
      outageMs: 2_000,
      // The stall overrun (which the relay now handles, see test/workers/lease.test.ts) runs in
      // `npm run faults`; here only the tarpit, to keep this run well under a minute.
      overruns: ["tarpit"],
      ...(process.env.TEST_REDIS_URL ? { redisUrl: process.env.TEST_REDIS_URL } : {}),
    });
  }, 150_000);

  it("loses nothing: every accepted recipient was delivered or recorded as failed", () => {
    const { ledger } = result;
    expect(ledger.sent.messages).toBeGreaterThan(30);
    expect(ledger.lost.records).toEqual([]);
    expect(ledger.lost.recipients).toBe(0);
    expect(ledger.delivered.recipients + ledger.failed.recipients).toBe(ledger.sent.recipients);
    // The only permanent failures are the recipients the server refuses for good.
    for (const reason of Object.keys(ledger.failed.reasons)) expect(reason).toMatch(/^550 /);
    expect(ledger.failedButDelivered).toBe(0);
    expect(ledger.strays).toBe(0);
  });

  it("refuses every send while the store is down (503), delivers none of them, and resumes", () => {
    const { ledger, outage } = result;
    expect(outage?.sends).toBeGreaterThan(0);
    expect(Object.keys(outage?.refusedStatuses ?? {})).toEqual(["503"]);
    expect(ledger.refused.acceptedDuringOutage).toBe(0);
    expect(ledger.refused.deliveredAnyway).toBe(0);
    expect(outage?.ticksDuring).toBeGreaterThan(0);
    expect(outage?.firstDeliveryAfterMs).not.toBeNull();
  });

  it("met the SMTP faults, and the relay's client gave up on every stall by itself", () => {
    const stats = result.faults.flaky;
    expect(stats?.transactions).toBeGreaterThan(10);
    expect(stats?.hits.reduce((a, b) => a + b, 0)).toBeGreaterThan(3);
    // A stall that down() cut short (the SMTP-down phase) says nothing about the client.
    for (const stall of (stats?.stalls ?? []).filter((s) => !s.cutByDown)) {
      expect(stall.clientGaveUpAfterMs).not.toBeNull();
      expect(stall.clientGaveUpAfterMs).toBeLessThan(TIMINGS.smtpTimeoutSeconds * 1000 + 500);
    }
  });

  it("brings a killed run's messages back once their lease ran out", () => {
    const { kill, ledger } = result;
    expect(kill?.deliveredBeforeKill).toBeGreaterThan(0);
    // Claimed by the dead run and never committed: each came back, none before its lease ended.
    expect(kill?.held).toBeGreaterThan(0);
    expect(kill?.heldBack).toBe(kill?.held);
    expect(kill?.heldEarly).toBe(0);
    expect(kill?.heldBackAfterLeaseMs.max).toBeLessThan(TIMINGS.leaseSeconds * 1000);
    // The messages the server took while their 250 was pending came again: allowed duplicates.
    expect(kill?.unansweredAtKill).toBeGreaterThan(0);
    expect(ledger.duplicates.byCause["run killed between the 250 and the commit"]).toBeGreaterThan(
      0,
    );
  });

  it("has only allowed duplicates outside the tarpit phase", () => {
    const others = result.ledger.duplicates.records.filter(
      (d) => !d.recipient.startsWith("tarpit-"),
    );
    expect(others.filter((d) => !d.allowed)).toEqual([]);
  });

  // A tarpit (every reply a little under the timeout) once made a transaction outlive its lease,
  // and the next run sent the message again; runs now renew the lease while a transaction runs.
  it("has only duplicates the at-least-once rule allows (a run died between 250 and commit)", () => {
    const { duplicates } = result.ledger;
    expect(
      duplicates.records.filter((d) => !d.allowed),
      `${duplicates.notAllowed} duplicate(s) not allowed: ${JSON.stringify(duplicates.byCause)}`,
    ).toEqual([]);
  });
});
