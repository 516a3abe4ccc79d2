/**
 * Idempotency-Key on POST /emails and /emails/batch, as Resend defines it, on both drivers; and
 * what a lost store reply does to it, with request faults in the Upstash gateway.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";
import { createApp } from "../../src/http/app.ts";
import { IN_FLIGHT_TTL_MS, SEAL_DEADLINE_MS } from "../../src/idempotency.ts";
import { silentLogger } from "../../src/log.ts";
import { createRelay } from "../../src/runtime/compose.ts";
import { MemoryStore } from "../../src/store/memory/store.ts";
import { gatewayApi, redisSkipReason, services, sinkApi } from "../support/services.ts";
import { ADMIN, call, email, type TestEnv, testEnv, tick, upstashEnv } from "../support/worker.ts";

const sink = sinkApi("plain");

const drivers: [string, () => TestEnv, string | false][] = [
  ["memory", () => testEnv(), false],
  ["upstash", () => upstashEnv(), redisSkipReason()],
];

for (const [name, makeEnv, skip] of drivers) {
  describe.skipIf(Boolean(skip))(
    `Idempotency-Key (${name})${skip ? ` (skipped: ${skip})` : ""}`,
    () => {
      let env: TestEnv;
      let tag: string;
      beforeEach(() => {
        env = makeEnv();
        tag = crypto.randomUUID().slice(0, 8);
      });

      it("answers a repeated request with the first response and sends once", async () => {
        const body = email({ to: [`idem-${tag}@example.com`] });
        const headers = { "idempotency-key": `order-${tag}` };
        const first = await call(env, "POST", "/emails", { json: body, headers });
        const second = await call(env, "POST", "/emails", { json: body, headers });
        expect(first.status).toBe(200);
        expect(second.status).toBe(200);
        expect(second.body).toEqual(first.body);
        await sink.waitFor(1, 5_000, { to: `idem-${tag}@` });
        await new Promise((r) => setTimeout(r, 200));
        expect(await sink.messages({ to: `idem-${tag}@` })).toHaveLength(1);
      });

      it("refuses the same key with a different body (409 invalid_idempotent_request)", async () => {
        const headers = { "idempotency-key": `k-${tag}` };
        await call(env, "POST", "/emails", { json: email({ subject: "one" }), headers });
        const res = await call(env, "POST", "/emails", {
          json: email({ subject: "two" }),
          headers,
        });
        expect(res.status).toBe(409);
        expect(res.body.name).toBe("invalid_idempotent_request");
      });

      it("refuses a second request while the first is in flight (409 concurrent_idempotent_requests)", async () => {
        const headers = { "idempotency-key": `race-${tag}` };
        const body = email({ to: [`race-${tag}@example.com`] });
        const results = await Promise.all(
          [1, 2, 3].map(() => call(env, "POST", "/emails", { json: body, headers })),
        );
        const statuses = results.map((r) => r.status).sort();
        // However the three interleave, exactly one message is accepted and sent.
        expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(1);
        for (const r of results.filter((r) => r.status === 409))
          expect(r.body.name).toBe("concurrent_idempotent_requests");
        const ids = new Set(results.filter((r) => r.status === 200).map((r) => r.body.id));
        expect(ids.size).toBe(1);
        await sink.waitFor(1, 5_000, { to: `race-${tag}@` });
        await new Promise((r) => setTimeout(r, 200));
        expect(await sink.messages({ to: `race-${tag}@` })).toHaveLength(1);
      });

      it("frees the key when the request fails, so a corrected retry goes through", async () => {
        const headers = { "idempotency-key": `fix-${tag}` };
        const bad = await call(env, "POST", "/emails", {
          json: email({ to: ["broken"] }),
          headers,
        });
        expect(bad.status).toBe(422);
        const good = await call(env, "POST", "/emails", { json: email(), headers });
        expect(good.status).toBe(200);
      });

      it("scopes keys to the API key that used them", async () => {
        const other = (
          await call(env, "POST", "/api-keys", {
            json: { name: "other", permission: "sending_access" },
          })
        ).body.token;
        const headers = { "idempotency-key": `shared-${tag}` };
        const a = await call(env, "POST", "/emails", { json: email({ subject: "a" }), headers });
        const b = await call(env, "POST", "/emails", {
          token: other,
          json: email({ subject: "b" }),
          headers,
        });
        expect(a.status).toBe(200);
        expect(b.status).toBe(200);
        expect(b.body.id).not.toBe(a.body.id);
      });

      it("works for batches too", async () => {
        const headers = { "idempotency-key": `batch-${tag}` };
        const body = [
          email({ to: [`b1-${tag}@example.com`] }),
          email({ to: [`b2-${tag}@example.com`] }),
        ];
        const first = await call(env, "POST", "/emails/batch", { json: body, headers });
        const second = await call(env, "POST", "/emails/batch", { json: body, headers });
        expect(second.body).toEqual(first.body);
        expect(first.body.data).toHaveLength(2);
      });

      it("rejects a key longer than 256 characters (400 invalid_idempotency_key)", async () => {
        const res = await call(env, "POST", "/emails", {
          json: email(),
          headers: { "idempotency-key": "x".repeat(257) },
        });
        expect(res.status).toBe(400);
        expect(res.body.name).toBe("invalid_idempotency_key");
      });
    },
  );
}

/** One Redis command straight to the gateway, as the relay's store would send it. */
async function redisCommand(...command: (string | number)[]): Promise<unknown> {
  const { upstash } = services();
  const res = await fetch(upstash.url, {
    method: "POST",
    headers: { authorization: `Bearer ${upstash.token}`, "content-type": "application/json" },
    body: JSON.stringify(command.map(String)),
  });
  return ((await res.json()) as { result: unknown }).result;
}

describe.skipIf(Boolean(redisSkipReason()))(
  "Idempotency-Key when the store's reply is lost",
  () => {
    const gateway = gatewayApi();
    let env: TestEnv;
    let tag: string;
    let header: string;
    let rcpt: string;
    beforeEach(async () => {
      // No immediate attempt: a tick sends whatever was stored, so copies can be counted at once.
      env = upstashEnv({ IMMEDIATE_DELIVERY: "false" });
      tag = crypto.randomUUID().slice(0, 8);
      header = `lost-${tag}`;
      rcpt = `lost-${tag}@example.com`;
      // Load the scripts, so a struck EVALSHA is the enqueue itself and not a NOSCRIPT round.
      expect((await call(env, "POST", "/emails", { json: email() })).status).toBe(200);
    });
    afterEach(async () => {
      await gateway.clearFaults();
    });

    const send = () =>
      call(env, "POST", "/emails", {
        json: email({ to: [rcpt] }),
        headers: { "idempotency-key": header },
      });
    // The enqueue script's arguments name the Idempotency-Key (scoped to the admin key here).
    const enqueueFault = (mode: "drop" | "lose-reply") =>
      gateway.addFault({ contains: `admin:${header}`, command: "EVALSHA", mode, times: 10 });
    const markerKey = () => `${env.REDIS_KEY_PREFIX}idem:admin:${header}`;
    const copies = async () => {
      await tick(env);
      await new Promise((r) => setTimeout(r, 200));
      return (await sink.messages({ to: rcpt })).length;
    };

    it("answers the stored response when the enqueue ran but every reply was lost, and sends once", async () => {
      await enqueueFault("lose-reply");
      const first = await send();
      const [struck] = await gateway.clearFaults();
      // The store's own retries all failed: the relay's call really failed.
      expect(struck?.struck).toBe(3);
      expect(first.status).toBe(200);
      const retry = await send();
      expect(retry.status).toBe(200);
      expect(retry.body.id).toBe(first.body.id);
      expect(await copies()).toBe(1);
    });

    it("keeps the key after a 503 whose outcome is unknown: the retry gets the first id and one copy is sent", async () => {
      await enqueueFault("lose-reply");
      // The relay's check of what the store holds fails too (the same outage).
      await gateway.addFault({ contains: markerKey(), command: "GET", mode: "drop", times: 10 });
      const first = await send();
      await gateway.clearFaults();
      expect(first.status).toBe(503);
      expect(first.body.name).toBe("application_error");
      const retry = await send();
      expect(retry.status).toBe(200);
      expect((await call(env, "GET", `/emails/${retry.body.id}`)).status).toBe(200);
      expect(await copies()).toBe(1);
      // Retry-After covers the in-flight marker's whole remaining life.
      const retryAfter = Number(first.headers.get("retry-after"));
      expect(retryAfter).toBeGreaterThanOrEqual(IN_FLIGHT_TTL_MS / 1000 - 5);
      expect(retryAfter).toBeLessThanOrEqual(IN_FLIGHT_TTL_MS / 1000);
    });

    it("goes on when the claim's own reply was lost: the store's retry finds this request's marker", async () => {
      await gateway.addFault({
        contains: markerKey(),
        command: "SET",
        mode: "lose-reply",
        times: 1,
      });
      const first = await send();
      const [struck] = await gateway.clearFaults();
      expect(struck?.struck).toBe(1);
      expect(first.status).toBe(200);
      expect((await send()).body.id).toBe(first.body.id);
      expect(await copies()).toBe(1);
    });

    it("holds the key only for the marker's short life when nothing was stored, then accepts the retry as new", async () => {
      await enqueueFault("drop");
      const first = await send();
      await gateway.clearFaults();
      expect(first.status).toBe(503);
      const pttl = Number(await redisCommand("PTTL", markerKey()));
      expect(pttl).toBeGreaterThan(0);
      expect(pttl).toBeLessThanOrEqual(IN_FLIGHT_TTL_MS);
      expect(Number(first.headers.get("retry-after"))).toBeGreaterThanOrEqual(
        Math.floor(pttl / 1000),
      );
      // Before the marker lapses the key is taken: the first request may still be on its way.
      const early = await send();
      expect(early.status).toBe(409);
      expect(early.body.name).toBe("concurrent_idempotent_requests");
      expect(Number(early.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      expect(Number(early.headers.get("retry-after"))).toBeLessThanOrEqual(IN_FLIGHT_TTL_MS / 1000);
      // The marker's life ends (Redis expires it; here at once instead of in a minute).
      await redisCommand("PEXPIRE", markerKey(), 1);
      await new Promise((r) => setTimeout(r, 20));
      const later = await send();
      expect(later.status).toBe(200);
      expect(await copies()).toBe(1);
    });
  },
);

describe("Idempotency-Key deadline", () => {
  /** A store whose claim takes longer than a request may: the clock jumps while it runs. */
  class SlowClaimStore extends MemoryStore {
    readonly clock: { t: number };
    constructor(clock: { t: number }) {
      super({ now: () => clock.t });
      this.clock = clock;
    }
    override async beginIdempotent(
      ...args: Parameters<MemoryStore["beginIdempotent"]>
    ): ReturnType<MemoryStore["beginIdempotent"]> {
      const held = await super.beginIdempotent(...args);
      this.clock.t += SEAL_DEADLINE_MS + 1;
      return held;
    }
  }

  it("refuses to store a request that reaches the store after its deadline, and frees the key", async () => {
    const clock = { t: Date.now() };
    const store = new SlowClaimStore(clock);
    const relay = createRelay(loadConfig({ ADMIN_TOKEN: ADMIN }), {
      store,
      log: silentLogger,
      now: () => clock.t,
    });
    const app = createApp({ relay: () => relay, background: () => {}, clientIp: () => undefined });
    const headers = {
      authorization: `Bearer ${ADMIN}`,
      "content-type": "application/json",
      "idempotency-key": "slow",
    };
    const post = () =>
      app.request("https://relay.test/emails", {
        method: "POST",
        headers,
        body: JSON.stringify(email()),
      });
    const late = await post();
    expect(late.status).toBe(503);
    expect(await store.peekIdempotent("admin:slow")).toEqual({ kind: "new" });
    expect((await store.claimRun(clock.t + 1_000_000, 10, 1_000)).entries).toHaveLength(0);
  });
});
