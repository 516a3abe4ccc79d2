/**
 * A scheduled run's delivery loop (src/delivery/run.ts) on the memory store, sending to the real
 * plain sink: it claims the next batch while the current one is still going out, delivers every
 * message once, and stops claiming when a claim fails or the run's budget is spent; the attempt
 * right after accepting (deliverEntries) runs through the same loop and its store-health gate.
 */
import { describe, expect, it } from "vitest";
import { sendWindowMs } from "../../src/config.ts";
import type { DeliveryContext } from "../../src/delivery/deliver.ts";
import { GROUP_COMMIT_MAX_ITEMS, groupCommits } from "../../src/delivery/group-commit.ts";
import { deliverEntries, deliverRun } from "../../src/delivery/run.ts";
import { silentLogger } from "../../src/log.ts";
import { createNodemailerTransport } from "../../src/smtp/nodemailer.ts";
import type { SmtpTransport } from "../../src/smtp/transport.ts";
import { parseSmtpUrl } from "../../src/smtp/url.ts";
import { MemoryStore } from "../../src/store/memory/store.ts";
import { newEntry } from "../contract/store/index.ts";
import { services, sinkApi } from "../support/services.ts";

const POLICY = {
  maxQueueAgeMs: 3_600_000,
  retentionMs: 60_000,
  retry: { firstMs: 1_000, maxMs: 10_000 },
};
const BATCH = 3;

/** The real nodemailer transport to the plain sink, counting the sends under way. */
function countingTransport(): { transport: SmtpTransport; inFlight: () => number } {
  const real = createNodemailerTransport({
    target: parseSmtpUrl(`smtp+insecure://127.0.0.1:${services().sinks.plain.port}`),
    ehloName: "relay.test",
    timeoutMs: 10_000,
    maxConnections: 1,
  });
  let inFlight = 0;
  return {
    transport: {
      async send(envelope, raw) {
        inFlight++;
        try {
          return await real.send(envelope, raw);
        } finally {
          inFlight--;
        }
      },
      close: () => real.close(),
    },
    inFlight: () => inFlight,
  };
}

function context(store: MemoryStore, transport: SmtpTransport): DeliveryContext {
  return {
    store,
    transport,
    policy: POLICY,
    concurrency: 2,
    sendWindowMs: sendWindowMs(10_000),
    leaseMs: 120_000,
    now: Date.now,
    log: silentLogger,
  };
}

/**
 * One send at a time on a 3 s lease whose every write-back fails: the first outcome is retried
 * while the lease has room, then given up, and the run must start no further send.
 */
function storeDown(store: MemoryStore, transport: SmtpTransport): DeliveryContext {
  return {
    ...context(store, transport),
    concurrency: 1,
    sendWindowMs: 500,
    leaseMs: 3_000,
    commit: async () => {
      throw new Error("store unreachable");
    },
  };
}

async function queued(store: MemoryStore, n: number): Promise<string> {
  const tag = crypto.randomUUID().slice(0, 8);
  await store.enqueue(
    Array.from({ length: n }, (_, i) => newEntry({ dueAt: 0 }, [`run-${tag}-${i}@example.com`])),
  );
  return `run-${tag}-`;
}

describe("a scheduled run's delivery loop", () => {
  it("claims the next batch while the current one is still being sent, and sends each once", async () => {
    const store = new MemoryStore();
    const to = await queued(store, 7);
    const { transport, inFlight } = countingTransport();
    const atClaim: number[] = [];
    try {
      const run = await deliverRun(
        async () => {
          atClaim.push(inFlight());
          const claimed = await store.claimRun(Date.now(), BATCH, 120_000);
          return { entries: claimed.entries, more: claimed.entries.length === BATCH };
        },
        context(store, transport),
        () => true,
      );
      expect(run.batches).toBe(3);
      expect(run.claimError).toBeUndefined();
      expect(run.report).toMatchObject({ messages: 7, delivered: 7, unrecorded: 0 });
    } finally {
      await transport.close();
    }
    // The first claim had nothing going out; every later one overlapped a send under way.
    expect(atClaim[0]).toBe(0);
    expect(atClaim.slice(1).length).toBeGreaterThanOrEqual(2);
    expect(atClaim.slice(1).every((n) => n > 0)).toBe(true);
    const got = await sinkApi("plain").waitFor(7, 10_000, { to });
    expect(new Set(got.flatMap((m) => m.rcptTo)).size).toBe(7);
    expect(await sinkApi("plain").messages({ to })).toHaveLength(7);
    expect((await store.claimRun(Date.now() + 3_600_000, 10, 1_000)).entries).toEqual([]);
  });

  it("stops claiming when a claim fails and still delivers what it had claimed", async () => {
    const store = new MemoryStore();
    const to = await queued(store, 5);
    const { transport } = countingTransport();
    let calls = 0;
    try {
      const run = await deliverRun(
        async () => {
          if (++calls > 1) throw new Error("store unreachable");
          const claimed = await store.claimRun(Date.now(), BATCH, 120_000);
          return { entries: claimed.entries, more: true };
        },
        context(store, transport),
        () => true,
      );
      expect(String(run.claimError)).toContain("store unreachable");
      expect(run.report).toMatchObject({ messages: BATCH, delivered: BATCH });
      expect(calls).toBe(2);
    } finally {
      await transport.close();
    }
    expect(await sinkApi("plain").waitFor(BATCH, 10_000, { to })).toHaveLength(BATCH);
  });

  it("claims no more once the run's budget is spent", async () => {
    const store = new MemoryStore();
    const to = await queued(store, 5);
    const { transport } = countingTransport();
    let claims = 0;
    try {
      const run = await deliverRun(
        async () => {
          claims++;
          const claimed = await store.claimRun(Date.now(), BATCH, 120_000);
          return { entries: claimed.entries, more: true };
        },
        context(store, transport),
        () => claims < 1,
      );
      expect(run.batches).toBe(1);
      expect(run.report.messages).toBe(BATCH);
    } finally {
      await transport.close();
    }
    await sinkApi("plain").waitFor(BATCH, 10_000, { to });
    // The two left are still due for the next run.
    expect((await store.claimRun(Date.now(), 10, 1_000)).entries).toHaveLength(2);
  });

  it("groups write-backs that end within its window into one store command, each with its own result", async () => {
    const store = new MemoryStore();
    await queued(store, 3);
    const claimed = (await store.claimRun(Date.now(), 3, 120_000)).entries;
    const groups: number[] = [];
    const commitMany: MemoryStore["commitMany"] = (items) => {
      groups.push(items.length);
      return store.commitMany(items);
    };
    const commit = groupCommits({ commitMany }, 20);
    const item = (i: number, token: string) => {
      const e = claimed[i];
      if (!e) throw new Error("nothing claimed");
      return {
        id: e.message.id,
        guard: { token },
        state: { ...e.state, attempts: 1 },
        next: { kind: "done", retainMs: 60_000 } as const,
      };
    };
    const results = await Promise.all([
      commit(item(0, claimed[0]?.token ?? "")),
      commit(item(1, "not-the-token")),
      commit(item(2, claimed[2]?.token ?? "")),
    ]);
    expect(results).toEqual(["ok", "conflict", "ok"]);
    expect(groups).toEqual([3]);
    // Past the window a new group starts; a full group goes at once, without waiting.
    await commit(item(1, claimed[1]?.token ?? ""));
    expect(groups).toEqual([3, 1]);
    const full = Array.from({ length: GROUP_COMMIT_MAX_ITEMS }, () => item(0, "stale"));
    const slow = groupCommits({ commitMany }, 60_000);
    expect(new Set(await Promise.all(full.map(slow)))).toEqual(new Set(["conflict"]));
    expect(groups).toEqual([3, 1, GROUP_COMMIT_MAX_ITEMS]);
  });

  it("fails every write-back of a group whose command fails, so each retries on its own", async () => {
    let calls = 0;
    const commit = groupCommits(
      {
        commitMany: async () => {
          calls++;
          throw new Error("store unreachable");
        },
      },
      10,
    );
    const e = newEntry();
    const item = {
      id: e.message.id,
      guard: { token: "t" },
      state: e.state,
      next: { kind: "due", at: 1 } as const,
    };
    const outcomes = await Promise.allSettled([commit(item), commit(item)]);
    expect(outcomes.map((o) => o.status)).toEqual(["rejected", "rejected"]);
    expect(calls).toBe(1);
  });

  it("starts no send while the store cannot take outcomes, and goes on once it can", async () => {
    const store = new MemoryStore();
    const to = await queued(store, 4);
    const { transport } = countingTransport();
    let down = true;
    const starts: boolean[] = [];
    const watched: SmtpTransport = {
      send: (envelope, raw) => {
        starts.push(down);
        return transport.send(envelope, raw);
      },
      close: () => transport.close(),
    };
    setTimeout(() => {
      down = false;
    }, 700);
    try {
      const run = await deliverRun(
        async () => {
          const claimed = await store.claimRun(Date.now(), 4, 120_000);
          return { entries: claimed.entries, more: false };
        },
        {
          ...context(store, watched),
          concurrency: 1,
          commit: async (item) => {
            if (down) throw new Error("store unreachable");
            return (await store.commitMany([item]))[0] ?? "missing";
          },
        },
        () => true,
      );
      expect(run.report).toMatchObject({ messages: 4, delivered: 4, unrecorded: 0 });
      expect(run.halted).toBeUndefined();
    } finally {
      await transport.close();
    }
    // Only the first send went out before the outage showed; none started during it.
    expect(starts).toEqual([true, false, false, false]);
    expect(await sinkApi("plain").waitFor(4, 10_000, { to })).toHaveLength(4);
  });

  it("halts when its write-backs give up, leaving the rest unsent for after their lease", async () => {
    const store = new MemoryStore();
    const to = await queued(store, 4);
    const { transport } = countingTransport();
    try {
      const run = await deliverRun(
        async () => {
          const claimed = await store.claimRun(Date.now(), 4, 3_000);
          return { entries: claimed.entries, more: true };
        },
        storeDown(store, transport),
        () => true,
      );
      expect(run.halted).toBe(3);
      expect(run.report).toMatchObject({ messages: 1, unrecorded: 1, skipped: 3 });
      expect(run.batches).toBe(1);
    } finally {
      await transport.close();
    }
    await sinkApi("plain").waitFor(1, 5_000, { to });
    expect(await sinkApi("plain").messages({ to })).toHaveLength(1);
  });

  it("gives the attempt right after accepting the same gate: no send it could not record", async () => {
    const store = new MemoryStore();
    const to = await queued(store, 4);
    const { entries } = await store.claimRun(Date.now(), 4, 3_000);
    const { transport } = countingTransport();
    try {
      const run = await deliverEntries(entries, storeDown(store, transport));
      expect(run.halted).toBe(3);
      expect(run.report).toMatchObject({ messages: 1, unrecorded: 1, skipped: 3 });
    } finally {
      await transport.close();
    }
    await sinkApi("plain").waitFor(1, 5_000, { to });
    expect(await sinkApi("plain").messages({ to })).toHaveLength(1);
  });

  it("sends every given entry once when the store takes the outcomes", async () => {
    const store = new MemoryStore();
    const to = await queued(store, 5);
    const { entries } = await store.claimRun(Date.now(), 5, 60_000);
    const { transport } = countingTransport();
    try {
      const run = await deliverEntries(entries, context(store, transport));
      expect(run.report).toMatchObject({ messages: 5, delivered: 5, unrecorded: 0 });
      expect(run.batches).toBe(1);
    } finally {
      await transport.close();
    }
    expect(await sinkApi("plain").messages({ to })).toHaveLength(5);
  });
});
