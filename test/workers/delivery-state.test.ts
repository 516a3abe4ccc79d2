/** Delivery state transitions and the retry schedule, as pure functions. */
import { describe, expect, it } from "vitest";
import { retryDelayMs, statedWaitMs } from "../../src/delivery/retry.ts";
import { applyOutcomes, initialState, lastEvent } from "../../src/delivery/state.ts";
import type { RecipientOutcome } from "../../src/smtp/transport.ts";
import type { QueuedMessage } from "../../src/store/types.ts";

const policy = {
  maxQueueAgeMs: 96 * 3_600_000,
  retentionMs: 86_400_000,
  retry: { firstMs: 60_000, maxMs: 4 * 3_600_000 },
};
const message = { id: "m", createdAt: 0 } as QueuedMessage;
const ok = (address: string): RecipientOutcome => ({
  address,
  status: "accepted",
  reply: { code: 250, text: "250 ok" },
});
const temp = (address: string): RecipientOutcome => ({
  address,
  status: "temporary",
  reply: { code: 451, text: "451 later" },
});
const perm = (address: string): RecipientOutcome => ({
  address,
  status: "permanent",
  reply: { code: 550, text: "550 no" },
});
const half = () => 0.5;

describe("retry schedule", () => {
  it("starts at one minute, doubles, and stops growing at four hours", () => {
    expect([1, 2, 3, 8, 9, 20].map((n) => retryDelayMs(n, half))).toEqual([
      60_000, 120_000, 240_000, 7_680_000, 14_400_000, 14_400_000,
    ]);
  });

  it("spreads retries by at most 20% either way", () => {
    expect(retryDelayMs(1, () => 0)).toBe(48_000);
    expect(retryDelayMs(1, () => 1)).toBe(72_000);
  });
});

describe("a wait stated by the server", () => {
  it("is read from common greylisting replies", () => {
    expect(statedWaitMs("451 4.7.1 Greylisted, try again in 5 minutes")).toBe(300_000);
    expect(statedWaitMs("450 Please retry after 300 seconds")).toBe(300_000);
    expect(statedWaitMs("421 4.7.0 Try again in 2 h")).toBe(7_200_000);
    expect(statedWaitMs("451 4.3.0 Temporary failure")).toBeNull();
  });

  it("replaces the backoff for the next attempt, within the ceiling", () => {
    const grey: RecipientOutcome = {
      address: "a@x.test",
      status: "temporary",
      reply: { code: 451, text: "451 4.7.1 Greylisted, try again in 5 minutes" },
    };
    const r = applyOutcomes(message, initialState(["a@x.test"], null), [grey], 1_000, policy, half);
    expect(r.next).toEqual({ kind: "due", at: 301_000 });
    const long: RecipientOutcome = {
      ...grey,
      reply: { code: 451, text: "451 try again in 48 hours" },
    };
    const capped = applyOutcomes(
      message,
      initialState(["a@x.test"], null),
      [long],
      0,
      policy,
      half,
    );
    expect(capped.next).toEqual({ kind: "due", at: policy.retry.maxMs });
  });
});

describe("applying outcomes", () => {
  it("delivers accepted recipients, fails rejected ones, and retries only the deferred", () => {
    const state = initialState(["a@x.test", "b@x.test", "c@x.test"], null);
    const r = applyOutcomes(
      message,
      state,
      [ok("a@x.test"), perm("b@x.test"), temp("c@x.test")],
      1_000,
      policy,
      half,
    );
    expect(r.state.recipients.map((x) => x.status)).toEqual(["delivered", "failed", "pending"]);
    expect(r.next).toEqual({ kind: "due", at: 61_000 });
    expect(r.counts).toEqual({ delivered: 1, failed: 1, deferred: 1 });
    expect(lastEvent(r.state, 1_000)).toBe("delivery_delayed");

    const second = applyOutcomes(message, r.state, [ok("c@x.test")], 70_000, policy, half);
    expect(second.state.recipients.map((x) => x.status)).toEqual([
      "delivered",
      "failed",
      "delivered",
    ]);
    expect(second.state.attempts).toBe(2);
    expect(second.next).toEqual({ kind: "done", retainMs: policy.retentionMs });
    expect(lastEvent(second.state, 70_000)).toBe("bounced");
  });

  it("gives up on a temporary failure once the message is older than the maximum age", () => {
    const state = initialState(["a@x.test"], null);
    const r = applyOutcomes(
      message,
      state,
      [temp("a@x.test")],
      policy.maxQueueAgeMs + 1,
      policy,
      half,
    );
    expect(r.state.recipients[0]?.status).toBe("failed");
    expect(r.state.recipients[0]?.reply?.text).toMatch(/gave up/);
    expect(r.next.kind).toBe("done");
  });

  it("counts queue age from the scheduled time, so a message sent days after it was accepted is deferred, not failed", () => {
    const week = 7 * 24 * 3_600_000;
    const scheduled = initialState(["a@x.test"], week);
    const first = applyOutcomes(message, scheduled, [temp("a@x.test")], week + 1, policy, half);
    expect(first.state.recipients[0]?.status).toBe("pending");
    expect(first.next).toEqual({ kind: "due", at: week + 1 + 60_000 });
    // Still given up once it has waited the maximum age since it became due.
    const late = week + policy.maxQueueAgeMs;
    const last = applyOutcomes(message, first.state, [temp("a@x.test")], late, policy, half);
    expect(last.state.recipients[0]?.status).toBe("failed");
    expect(last.state.recipients[0]?.reply?.text).toMatch(/gave up/);
    expect(last.next.kind).toBe("done");
  });

  it("reports scheduled, queued and delivered as Resend does", () => {
    expect(lastEvent(initialState(["a@x.test"], 5_000), 1_000)).toBe("scheduled");
    expect(lastEvent(initialState(["a@x.test"], null), 1_000)).toBe("queued");
    const done = applyOutcomes(
      message,
      initialState(["a@x.test"], null),
      [ok("a@x.test")],
      1,
      policy,
    );
    expect(lastEvent(done.state, 2)).toBe("delivered");
  });

  it("keeps a bounded attempt history", () => {
    let state = initialState(["a@x.test"], null);
    for (let i = 0; i < 30; i++)
      state = applyOutcomes(message, state, [temp("a@x.test")], i, policy).state;
    expect(state.history).toHaveLength(20);
    expect(state.attempts).toBe(30);
  });
});
