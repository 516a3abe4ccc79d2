/** Idempotency-Key on POST /emails and /emails/batch, as Resend defines it, on both drivers. */
import { beforeEach, describe, expect, it } from "vitest";
import { redisSkipReason, sinkApi } from "../support/services.ts";
import { call, email, type TestEnv, testEnv, upstashEnv } from "../support/worker.ts";

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
