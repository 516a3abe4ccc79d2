/**
 * A delivery run never starts an SMTP transaction it cannot finish inside its lease: past the
 * lease another run may hold the message, and sending it too would deliver it twice.
 */
import { describe, expect, it } from "vitest";
import { sendWindowMs } from "../../src/config.ts";
import { deliverEntries } from "../../src/delivery/run.ts";
import { silentLogger } from "../../src/log.ts";
import { createNodemailerTransport } from "../../src/smtp/nodemailer.ts";
import { parseSmtpUrl } from "../../src/smtp/url.ts";
import { MemoryStore } from "../../src/store/memory/store.ts";
import { newEntry } from "../contract/store/index.ts";
import { services, sinkApi } from "../support/services.ts";

const POLICY = {
  maxQueueAgeMs: 3_600_000,
  retentionMs: 60_000,
  retry: { firstMs: 1_000, maxMs: 10_000 },
};

function plainTransport(timeoutMs: number) {
  return createNodemailerTransport({
    target: parseSmtpUrl(`smtp+insecure://127.0.0.1:${services().sinks.plain.port}`),
    ehloName: "relay.test",
    timeoutMs,
    maxConnections: 1,
  });
}

describe("lease-aware delivery", () => {
  it("sends what the lease has room for and leaves the rest to come back", async () => {
    const tag = crypto.randomUUID().slice(0, 8);
    const store = new MemoryStore();
    const roomy = newEntry({ dueAt: 0 }, [`roomy-${tag}@example.com`]);
    const tight = newEntry({ dueAt: 0 }, [`tight-${tag}@example.com`]);
    await store.enqueue([roomy, tight]);
    const now = Date.now();
    const window = sendWindowMs(2_000);
    const [a] = (await store.claimRun(now, 1, 10 * window)).entries;
    const [b] = (await store.claimRun(now, 1, window / 2)).entries;
    if (!a || !b) throw new Error("nothing claimed");
    const transport = plainTransport(2_000);
    try {
      const { report } = await deliverEntries([a, b], {
        store,
        transport,
        policy: POLICY,
        concurrency: 1,
        sendWindowMs: window,
        leaseMs: 10 * window,
        now: Date.now,
        log: silentLogger,
      });
      expect(report).toMatchObject({ messages: 1, delivered: 1, skipped: 1 });
    } finally {
      await transport.close();
    }
    await sinkApi("plain").waitFor(1, 5_000, { to: `roomy-${tag}@` });
    expect(await sinkApi("plain").messages({ to: `tight-${tag}@` })).toEqual([]);
    // The skipped message was not written back: it is still leased, and due again when that ends.
    expect((await store.get(tight.message.id))?.state.attempts).toBe(0);
    expect((await store.claimRun(now + window / 2 - 1, 10, 60_000)).entries).toEqual([]);
    expect(
      (await store.claimRun(now + window / 2, 10, 60_000)).entries.map((c) => c.message.id),
    ).toEqual([tight.message.id]);
  });

  it("renews the lease while a slow server drags a transaction past it", async () => {
    const tag = crypto.randomUUID().slice(0, 8);
    const sink = sinkApi("plain");
    const store = new MemoryStore();
    const recipients = Array.from({ length: 6 }, (_, i) => `slow-${tag}-${i}@example.com`);
    const e = newEntry({ dueAt: 0 }, recipients);
    await store.enqueue([e]);
    // Every reply 250 ms late: MAIL, six RCPTs, DATA and its end take about 2.3 s, well past
    // the 1.2 s lease this run claims with; no single wait comes near the 500 ms timeout.
    const timeoutMs = 500;
    const window = sendWindowMs(timeoutMs);
    const lease = 1_200;
    const [claimed] = (await store.claimRun(Date.now(), 1, lease)).entries;
    if (!claimed) throw new Error("nothing claimed");
    const transport = plainTransport(timeoutMs);
    await sink.setFaults({ rules: [], tarpitMs: 250 });
    const rival: string[][] = [];
    const watcher = setInterval(async () => {
      rival.push((await store.claimRun(Date.now(), 10, 60_000)).entries.map((c) => c.message.id));
    }, 200);
    try {
      const { report } = await deliverEntries([claimed], {
        store,
        transport,
        policy: POLICY,
        concurrency: 1,
        sendWindowMs: window,
        leaseMs: lease,
        now: Date.now,
        log: silentLogger,
      });
      expect(report).toMatchObject({ messages: 1, delivered: 6, unrecorded: 0 });
    } finally {
      clearInterval(watcher);
      await sink.clearFaults();
      await transport.close();
    }
    // Another run looked all along and never got the message: the lease was renewed in time.
    expect(rival.length).toBeGreaterThan(5);
    expect(rival.flat()).toEqual([]);
    expect((await sink.messages({ to: `slow-${tag}-` })).length).toBe(1);
    expect(
      (await store.get(e.message.id))?.state.recipients.every((r) => r.status === "delivered"),
    ).toBe(true);
  });

  it("refuses a lease too short for three transactions, naming the variable", async () => {
    const { loadConfig } = await import("../../src/config.ts");
    expect(() => loadConfig({ SMTP_TIMEOUT_SECONDS: "10", DELIVERY_LEASE_SECONDS: "30" })).toThrow(
      /^DELIVERY_LEASE_SECONDS: must be at least 6 × SMTP_TIMEOUT_SECONDS/,
    );
  });
});
