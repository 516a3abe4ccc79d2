/**
 * Fan-out (src/delivery/fanout.ts, scheduled.ts) on real Redis through the Upstash gateway and the
 * real plain sink, tarpitted so that a run's backlog outlasts its one-second budget: how many
 * helpers a backlog needs, helpers (a second relay, as another invocation is) sharing the work
 * within the connection cap, a helper that fails or dies after claiming, a cap that other runs
 * hold entirely, and what an idle run costs. The service binding itself is exercised in workerd
 * by test/node/fanout-e2e.test.ts.
 */
import { afterEach, describe, expect, it } from "vitest";
import { loadConfig, sendWindowMs } from "../../src/config.ts";
import { type HelperReport, helpersNeeded } from "../../src/delivery/fanout.ts";
import { type ScheduledDeps, scheduledRun } from "../../src/delivery/scheduled.ts";
import { jsonLogger, silentLogger } from "../../src/log.ts";
import type { Relay } from "../../src/relay.ts";
import { createRelay } from "../../src/runtime/compose.ts";
import { createTransport } from "../../src/smtp/factory.ts";
import type { SmtpTarget } from "../../src/smtp/url.ts";
import { newEntry } from "../contract/store/index.ts";
import { gatewayApi, redisSkipReason, services, sinkApi } from "../support/services.ts";
import { upstashEnv } from "../support/worker.ts";

const skip = redisSkipReason();
const sink = () => sinkApi("plain");
const LEASE_MS = 300_000;

/** One relay per invocation, on one key prefix; `offset` moves their clock forward. */
function deployment(vars: Record<string, string> = {}) {
  const env = upstashEnv({
    IMMEDIATE_DELIVERY: "false",
    SMTP_MAX_CONNECTIONS: "1",
    DELIVERY_BATCH_SIZE: "5",
    DELIVERY_RUN_SECONDS: "1",
    DELIVERY_LEASE_SECONDS: String(LEASE_MS / 1000),
    DELIVERY_FANOUT: "3",
    LOG_LEVEL: "info",
    ...vars,
  });
  const config = loadConfig(env);
  const logs: { event: string; [field: string]: unknown }[] = [];
  const clock = { offset: 0 };
  const relay = () =>
    createRelay(config, {
      log: jsonLogger("info", (line) => logs.push(JSON.parse(line))),
      now: () => Date.now() + clock.offset,
    });
  return { env, config, logs, clock, relay, prefix: String(env.REDIS_KEY_PREFIX) };
}

async function accept(relay: Relay, tag: string, count: number): Promise<void> {
  await relay.store.enqueue(
    Array.from({ length: count }, (_, i) => newEntry({ dueAt: 0 }, [`${tag}-${i}@example.com`])),
  );
}

/** Runs until the sink has `count` messages for `tag`; returns them. */
async function drain(relay: Relay, tag: string, count: number) {
  for (let i = 0; i < 30; i++) {
    if ((await sink().messages({ to: `${tag}-` })).length >= count) break;
    await relay.runScheduled();
  }
  return sink().messages({ to: `${tag}-` });
}

function expectOnceEach(messages: { rcptTo: string[] }[], tag: string, count: number) {
  const recipients = messages.map((m) => m.rcptTo[0]);
  expect(recipients).toHaveLength(count);
  expect(new Set(recipients)).toEqual(
    new Set(Array.from({ length: count }, (_, i) => `${tag}-${i}@example.com`)),
  );
}

describe("helpersNeeded", () => {
  const base = {
    dueLeft: 1_000,
    sent: 10,
    invocations: 4,
    started: 0,
    elapsedMs: 1_000,
    msLeft: 10_000,
    perInvocation: 3,
  };

  it("waits for a measured rate: nothing before the run has finished two messages per connection", () => {
    expect(helpersNeeded({ ...base, sent: 5 })).toBe(0);
    expect(helpersNeeded({ ...base, sent: 6 })).toBeGreaterThan(0);
    expect(helpersNeeded({ ...base, elapsedMs: 0 })).toBe(0);
  });

  it("starts none when this run sends the backlog in the time left", () => {
    // 10 messages a second for 10 s: 100, which is the whole backlog.
    expect(helpersNeeded({ ...base, dueLeft: 100 })).toBe(0);
  });

  it("starts as many as the backlog needs, within DELIVERY_FANOUT and the free slots", () => {
    expect(helpersNeeded({ ...base, dueLeft: 250 })).toBe(2);
    expect(helpersNeeded({ ...base, dueLeft: 250, started: 1 })).toBe(1);
    expect(helpersNeeded(base)).toBe(3);
    expect(helpersNeeded({ ...base, started: 3 })).toBe(0);
    // 4 free slots at 3 a helper: two helpers (the second with one connection).
    expect(helpersNeeded({ ...base, slotsFree: 4 })).toBe(2);
    expect(helpersNeeded({ ...base, slotsFree: 0 })).toBe(0);
    expect(helpersNeeded({ ...base, msLeft: 0 })).toBe(0);
  });
});

describe.skipIf(Boolean(skip))(`fan-out on Upstash${skip ? ` (skipped: ${skip})` : ""}`, () => {
  afterEach(async () => {
    await sink().clearFaults();
  });

  const tarpit = () => sink().setFaults({ rules: [], tarpitMs: 40 });

  it("shares a backlog with helper invocations, each message once, within the connection cap", async () => {
    const d = deployment();
    const run = d.relay();
    const helper = d.relay();
    const tag = `fan-${crypto.randomUUID().slice(0, 8)}`;
    await accept(run, tag, 40);
    await tarpit();
    const outcome = await run.runScheduled({ startHelper: (r) => helper.runHelper(r) });
    expect(outcome.fanout?.helpers).toBeGreaterThan(0);
    expect(outcome.fanout?.failed).toBe(0);
    const reports = outcome.fanout?.reports ?? [];
    expect(reports.some((r) => r.messages > 0)).toBe(true);
    // The default cap is DELIVERY_FANOUT × SMTP_MAX_CONNECTIONS = 3: granted never more.
    const granted = outcome.connections + reports.reduce((sum, r) => sum + r.connections, 0);
    expect(granted).toBeLessThanOrEqual(3);
    // The run's report includes its helpers': it counts what reached the smart host.
    expect((await sink().messages({ to: `${tag}-` })).length).toBe(outcome.delivered);
    await sink().clearFaults();
    expectOnceEach(await drain(run, tag, 40), tag, 40);
  });

  it("loses nothing when a helper cannot start, or dies after claiming", async () => {
    const d = deployment();
    const run = d.relay();
    const tag = `die-${crypto.randomUUID().slice(0, 8)}`;
    await accept(run, tag, 40);
    await tarpit();
    let started = 0;
    let claimedByDead = 0;
    const outcome = await run.runScheduled({
      startHelper: async (request): Promise<HelperReport> => {
        if (started++ === 0) throw new Error("the service binding is gone");
        // Takes its slot and a batch the way a helper does, then dies before sending any.
        const held = await d.relay().store.claimRun(Date.now() + d.clock.offset, 5, LEASE_MS, {
          host: `127.0.0.1:${services().sinks.plain.port}`,
          cap: 3,
          take: { holder: request.holder, want: 1, until: request.until + LEASE_MS },
        });
        claimedByDead += held.entries.length;
        throw new Error("the helper invocation was evicted");
      },
    });
    expect(outcome.fanout?.failed).toBe(outcome.fanout?.helpers);
    expect(claimedByDead).toBeGreaterThan(0);
    expect(d.logs.filter((l) => l.event === "delivery.fanout_helper_failed")).not.toEqual([]);
    await sink().clearFaults();
    // What the dead helper held comes back when its lease (and its slot) lapse.
    d.clock.offset += 2 * LEASE_MS + 5_000;
    expectOnceEach(await drain(run, tag, 40), tag, 40);
  });

  it("sends nothing and says so while other runs hold every connection, then sends all", async () => {
    const d = deployment({ SMTP_HOST_MAX_CONNECTIONS: "2" });
    const run = d.relay();
    const tag = `cap-${crypto.randomUUID().slice(0, 8)}`;
    await accept(run, tag, 6);
    const host = `127.0.0.1:${services().sinks.plain.port}`;
    // Another run (a previous cron tick still going) holds the whole cap; it takes no message.
    const other = await run.store.claimRun(Date.now(), 0, LEASE_MS, {
      host,
      cap: 2,
      take: { holder: "other-run", want: 2, until: Date.now() + LEASE_MS },
    });
    expect(other.slots?.taken).toBe(2);
    const capped = await run.runScheduled();
    expect(capped.messages).toBe(0);
    expect(capped.batches).toBe(0);
    expect(d.logs.find((l) => l.event === "delivery.capped")).toMatchObject({ due: 6, cap: 2 });
    expect(await sink().messages({ to: `${tag}-` })).toEqual([]);
    await run.store.releaseSlots(host, "other-run", 2);
    // Nothing was leased meanwhile: the next run sends every message at once.
    const sent = await run.runScheduled();
    expect(sent.messages).toBe(6);
    expectOnceEach(await sink().messages({ to: `${tag}-` }), tag, 6);
  });

  it("renews its slots while it runs, so they outlive their hold only as long as the run", async () => {
    const d = deployment({ DELIVERY_FANOUT: "1", SMTP_HOST_MAX_CONNECTIONS: "3" });
    const relay = d.relay();
    const tag = `hold-${crypto.randomUUID().slice(0, 8)}`;
    await accept(relay, tag, 12);
    await tarpit();
    const host = `127.0.0.1:${services().sinks.plain.port}`;
    const free = async () =>
      (await relay.store.claimRun(Date.now(), 0, LEASE_MS, { host, cap: 3 })).slots?.free;
    const deps: ScheduledDeps = {
      store: relay.store,
      config: d.config,
      openTransport: (connections) =>
        createTransport(d.config.smtpClient, {
          target: d.config.smtpHosts[0] as SmtpTarget,
          ehloName: "relay.test",
          timeoutMs: 10_000,
          maxConnections: connections,
        }),
      context: (transport, connections) => ({
        store: relay.store,
        transport,
        policy: relay.policy,
        concurrency: connections * 2,
        sendWindowMs: sendWindowMs(d.config.smtpTimeoutMs),
        leaseMs: d.config.leaseMs,
        now: Date.now,
        log: silentLogger,
      }),
      now: Date.now,
      log: silentLogger,
      // Held 300 ms without a renewal; the run takes over a second (12 tarpitted messages).
      slotHoldMs: 300,
    };
    const running = scheduledRun(deps, { kind: "run" });
    await new Promise((resolve) => setTimeout(resolve, 900));
    // Three holds later the run's one slot is still taken: it was renewed.
    expect(await free()).toBe(2);
    const outcome = await running;
    expect(outcome.messages).toBeGreaterThan(6);
    expect(await free()).toBe(3);
  });

  it("costs an idle run one command with the cap kept, and a run gives its slots back", async () => {
    const d = deployment();
    const run = d.relay();
    const gateway = gatewayApi();
    const before = await gateway.commands(d.prefix);
    await run.runScheduled();
    expect((await gateway.commands(d.prefix)) - before).toBe(1);

    const tag = `back-${crypto.randomUUID().slice(0, 8)}`;
    await accept(run, tag, 3);
    await run.runScheduled();
    const after = await run.store.claimRun(Date.now(), 1, LEASE_MS, {
      host: `127.0.0.1:${services().sinks.plain.port}`,
      cap: 3,
    });
    expect(after.slots?.free).toBe(3);
  });
});
