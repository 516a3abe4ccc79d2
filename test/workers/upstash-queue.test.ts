/**
 * The queue on the Upstash driver through the real Worker entry, the gateway's size limits and
 * request faults, and the SMTP sink: a claim never exceeds Upstash's response limit, a retried
 * store command never sends or queues anything twice, and queue age counts from when a message
 * became due.
 */
import { Redis } from "@upstash/redis";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { relayFor } from "../../src/runtime/isolate.ts";
import { gatewayApi, redisSkipReason, services, sinkApi } from "../support/services.ts";
import { call, email, type TestEnv, tick, upstashEnv } from "../support/worker.ts";

const sink = sinkApi("plain");
const gateway = gatewayApi();

/** A raw message of about `bytes` bytes of 7-bit text, in 76-character lines. */
function bigRaw(to: string, bytes: number): string {
  const line = `${"0123456789abcdefghijklmnopqrstuvwxyz".repeat(3).slice(0, 76)}\r\n`;
  return [
    "From: Big <big@example.com>",
    `To: ${to}`,
    "Subject: a large message",
    "Content-Type: text/plain; charset=us-ascii",
    "",
    line.repeat(Math.ceil(bytes / line.length)),
  ].join("\r\n");
}

/** Redis as the relay's store sees it, for looking at (and, to age a message, editing) its keys. */
function redis(): Redis {
  const { upstash } = services();
  return new Redis({ url: upstash.url, token: upstash.token, automaticDeserialization: false });
}

/** A webhook endpoint for `events` (the sink's control API answers 404: attempts are recorded). */
async function endpointFor(env: TestEnv, events: string[]): Promise<string> {
  const endpoint = `${services().sinks.plain.api}/api/no-webhooks-here`;
  const created = await call(env, "POST", "/webhooks", { json: { endpoint, events } });
  expect(created.status).toBe(201);
  return created.body.id as string;
}

async function eventTypes(env: TestEnv, endpointId: string): Promise<string[]> {
  const log = await call(env, "GET", `/webhooks/${endpointId}/events`);
  return (log.body.data as { type: string }[]).map((e) => e.type);
}

describe.skipIf(Boolean(redisSkipReason()))(
  `queue on Upstash${redisSkipReason() ? ` (skipped: ${redisSkipReason()})` : ""}`,
  () => {
    beforeEach(async () => {
      await sink.reset();
    });
    afterEach(async () => {
      await gateway.clearFaults();
    });

    it("delivers eight queued 3 MiB messages in one scheduled run, claiming within Upstash's response limit", async () => {
      const tag = crypto.randomUUID().slice(0, 8);
      const env: TestEnv = upstashEnv({ IMMEDIATE_DELIVERY: "false" });
      const ids: string[] = [];
      for (let i = 0; i < 8; i++) {
        const res = await call(env, "POST", "/emails", {
          body: bigRaw(`big-${tag}-${i}@example.com`, 3 * 1024 * 1024),
          headers: { "content-type": "message/rfc822" },
        });
        expect(res.status).toBe(200);
        ids.push(res.body.id);
      }
      // One scheduled run: a claim stops at its byte budget, and the run claims again.
      await tick(env);
      const got = await sink.waitFor(8, 20_000, { to: `big-${tag}-` });
      expect(got.map((m) => m.rcptTo[0]).sort()).toEqual(
        Array.from({ length: 8 }, (_, i) => `big-${tag}-${i}@example.com`).sort(),
      );
      for (const id of ids) {
        expect((await call(env, "GET", `/emails/${id}`)).body.last_event).toBe("delivered");
      }
    });

    it("defers a scheduled message whose first attempt meets a 451, however long ago it was accepted", async () => {
      const tag = crypto.randomUUID().slice(0, 8);
      const to = `later-${tag}@example.com`;
      const env = upstashEnv({ IMMEDIATE_DELIVERY: "false", WEBHOOK_ALLOW_LOOPBACK: "true" });
      const hook = await endpointFor(env, ["email.failed", "email.delivery_delayed"]);
      await sink.rejectRecipient(to, 451, "4.3.0 Temporary failure");
      const res = await call(env, "POST", "/emails", {
        json: email({ to: [to], scheduled_at: new Date(Date.now() + 300).toISOString() }),
      });
      expect(res.status).toBe(200);
      const id = res.body.id as string;
      // Accepted a week ago for today (scheduled_at may be 30 days ahead): longer ago than
      // MAX_QUEUE_AGE_HOURS (96), but due only now.
      const key = `${env.REDIS_KEY_PREFIX}m:${id}`;
      const meta = JSON.parse(String(await redis().hget(key, "m")));
      await redis().hset(key, {
        m: JSON.stringify({ ...meta, createdAt: meta.createdAt - 7 * 86_400_000 }),
      });
      await new Promise((r) => setTimeout(r, 400));
      await tick(env);
      const view = await call(env, "GET", `/emails/${id}`);
      expect(view.body.last_event).toBe("delivery_delayed");
      const types = await eventTypes(env, hook);
      expect(types).toContain("email.delivery_delayed");
      expect(types).not.toContain("email.failed");
    });

    it("sends a message once when its write-back meets a store blip, retrying the commit within the lease", async () => {
      const tag = crypto.randomUUID().slice(0, 8);
      const to = `blip-${tag}@example.com`;
      // A 6 s lease (the least a 1 s SMTP timeout allows), so the test can outlive it.
      const env = upstashEnv({
        IMMEDIATE_DELIVERY: "false",
        SMTP_TIMEOUT_SECONDS: "1",
        DELIVERY_LEASE_SECONDS: "6",
      });
      const res = await call(env, "POST", "/emails", { json: email({ to: [to] }) });
      expect(res.status).toBe(200);
      const id = res.body.id as string;
      // Only the commit names the message id among the run's commands: its three attempts by
      // the store client are dropped unseen.
      await gateway.addFault({ contains: id, mode: "drop", times: 3 });
      await tick(env);
      expect((await gateway.clearFaults()).map((f) => f.struck)).toEqual([3]);
      await sink.waitFor(1, 5_000, { to });
      // Past the lease, a run finds nothing to send again.
      await new Promise((r) => setTimeout(r, 6_500));
      await tick(env);
      expect(await sink.messages({ to })).toHaveLength(1);
      expect((await call(env, "GET", `/emails/${id}`)).body.last_event).toBe("delivered");
    });

    it("records a delivery whose commit replies are lost: one copy, delivered, one email.delivered event", async () => {
      const tag = crypto.randomUUID().slice(0, 8);
      const to = `lost-${tag}@example.com`;
      const env = upstashEnv({ IMMEDIATE_DELIVERY: "false", WEBHOOK_ALLOW_LOOPBACK: "true" });
      const hook = await endpointFor(env, ["email.delivered"]);
      const res = await call(env, "POST", "/emails", { json: email({ to: [to] }) });
      expect(res.status).toBe(200);
      const id = res.body.id as string;
      // The commit is applied, and its reply lost, three times over: the store client gives up,
      // and the delivery's own retry must learn that the outcome is already written.
      await gateway.addFault({ contains: id, mode: "lose-reply", times: 3 });
      const report = await relayFor(env).runScheduled();
      expect((await gateway.clearFaults()).map((f) => f.struck)).toEqual([3]);
      expect(report).toMatchObject({ messages: 1, delivered: 1, unrecorded: 0 });
      await sink.waitFor(1, 5_000, { to });
      expect(await sink.messages({ to })).toHaveLength(1);
      expect((await call(env, "GET", `/emails/${id}`)).body.last_event).toBe("delivered");
      expect(await eventTypes(env, hook)).toEqual(["email.delivered"]);
    });

    it("stores one message and queues one email.sent when the enqueue's reply is lost and re-sent", async () => {
      const tag = crypto.randomUUID().slice(0, 8);
      const to = `enq-${tag}@example.com`;
      const env = upstashEnv({ IMMEDIATE_DELIVERY: "false", WEBHOOK_ALLOW_LOOPBACK: "true" });
      const hook = await endpointFor(env, ["email.sent"]);
      // Another send first, so the enqueue script is loaded and the struck request runs it.
      await call(upstashEnv({ IMMEDIATE_DELIVERY: "false" }), "POST", "/emails", {
        json: email({ to: [`warm-${tag}@example.com`] }),
      });
      await gateway.addFault({ contains: to, mode: "lose-reply", times: 1 });
      // What the API answers is the idempotency layer's business; the store side is pinned here.
      await call(env, "POST", "/emails", { json: email({ to: [to] }) });
      expect((await gateway.clearFaults()).map((f) => f.struck)).toEqual([1]);
      const prefix = env.REDIS_KEY_PREFIX;
      const ids = (await redis().zrange(`${prefix}q`, 0, -1)) as string[];
      expect(ids).toHaveLength(1);
      expect(await redis().llen(`${prefix}wc:${hook}:${ids[0]}`)).toBe(1);
      expect(await eventTypes(env, hook)).toEqual(["email.sent"]);
    });
  },
);
