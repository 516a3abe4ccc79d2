/**
 * POST /emails/batch with `x-batch-validation` (resend.batch.send(..., { batchValidation })):
 * permissive queues the valid emails and reports the others by index; strict (the default) stays
 * all-or-nothing; an idempotent replay answers the same. With the SDK, on both drivers.
 */
import { beforeEach, describe, expect, it } from "vitest";
import { sdk } from "../support/sdk.ts";
import { call, email, type TestEnv, testEnv, upstashEnv } from "../support/worker.ts";

const mixed = () => [
  email({ to: ["one@example.com"] }),
  email({ to: ["not an address"] }),
  email({ to: ["three@example.com"] }),
  email({ subject: undefined }),
  email({ from: "outside@example.net" }),
];

for (const [driver, makeEnv] of [
  ["memory", testEnv],
  ["upstash", upstashEnv],
] as const) {
  describe(`x-batch-validation (${driver})`, () => {
    let env: TestEnv;
    beforeEach(() => {
      env = makeEnv();
    });

    async function restrictedKey(): Promise<string> {
      const res = await call(env, "POST", "/api-keys", {
        json: { name: "b", permission: "sending_access", allowed_from: ["*@example.com"] },
      });
      return res.body.token;
    }

    it("permissive: queues the valid emails and reports each invalid one by index", async () => {
      const token = await restrictedKey();
      const res = await sdk(env, token).batch.send(mixed(), { batchValidation: "permissive" });
      expect(res.error).toBeNull();
      const body = res.data as unknown as {
        data: { id: string }[];
        errors: { index: number; message: string }[];
      };
      expect(body.data).toHaveLength(2);
      expect(body.errors.map((e) => e.index)).toEqual([1, 3, 4]);
      expect(body.errors[0]?.message).toMatch(/^\[1\]\.to\[0\]: /);
      expect(body.errors[1]?.message).toMatch(/^\[3\]\.subject: /);
      expect(body.errors[2]?.message).toMatch(/^from: outside@example\.net is not a sender/);
      // Queued and readable: the ids are the first and third emails.
      const first = await call(env, "GET", `/emails/${body.data[0]?.id}`, { token });
      expect(first.status).toBe(200);
      expect(first.body.to).toEqual(["one@example.com"]);
      const second = await call(env, "GET", `/emails/${body.data[1]?.id}`, { token });
      expect(second.body.to).toEqual(["three@example.com"]);
    });

    it("permissive: a batch with no valid email answers 200 with no ids and every error", async () => {
      const res = await call(env, "POST", "/emails/batch", {
        headers: { "x-batch-validation": "permissive", "idempotency-key": "none-valid" },
        json: [email({ to: [] }), email({ from: "" })],
      });
      expect(res.status).toBe(200);
      expect(res.body.data).toEqual([]);
      expect(res.body.errors.map((e: { index: number }) => e.index)).toEqual([0, 1]);
      const again = await call(env, "POST", "/emails/batch", {
        headers: { "x-batch-validation": "permissive", "idempotency-key": "none-valid" },
        json: [email({ to: [] }), email({ from: "" })],
      });
      expect(again.body).toEqual(res.body);
    });

    it("permissive: an unknown template or wrong variables leave out that email, not the batch", async () => {
      const created = await call(env, "POST", "/templates", {
        json: {
          name: "hi",
          alias: "hi",
          from: "Acme <hi@example.com>",
          subject: "Hi {{{NAME}}}",
          html: "<p>Hi {{{NAME}}}</p>",
          variables: [{ key: "NAME", type: "string" }],
        },
      });
      expect((await call(env, "POST", `/templates/${created.body.id}/publish`)).status).toBe(200);
      const res = await sdk(env).batch.send(
        [
          { to: ["one@example.com"], template: { id: "hi", variables: { NAME: "One" } } },
          { to: ["two@example.com"], template: { id: "nope" } },
          { to: ["three@example.com"], template: { id: "hi", variables: { NAME: 3 } } },
          email({ to: ["not an address"] }),
          { to: ["five@example.com"], template: { id: "hi" } },
          email({ to: ["six@example.com"] }),
        ],
        { batchValidation: "permissive" },
      );
      expect(res.error).toBeNull();
      const body = res.data as unknown as {
        data: { id: string }[];
        errors: { index: number; message: string }[];
      };
      expect(body.errors).toEqual([
        { index: 1, message: "[1].template: Template not found" },
        { index: 2, message: expect.stringMatching(/^\[2\]\.template\.variables\.NAME: /) },
        { index: 3, message: expect.stringMatching(/^\[3\]\.to\[0\]: /) },
        { index: 4, message: expect.stringMatching(/^\[4\]\.template\.variables\.NAME: /) },
      ]);
      const sent = await Promise.all(
        body.data.map(async ({ id }) => (await call(env, "GET", `/emails/${id}`)).body),
      );
      expect(sent.map((e) => [e.to, e.subject])).toEqual([
        [["one@example.com"], "Hi One"],
        [["six@example.com"], email().subject],
      ]);
      // Strict still refuses the whole batch, naming the first failing email.
      const strict = await sdk(env).batch.send([
        { to: ["one@example.com"], template: { id: "hi", variables: { NAME: "One" } } },
        { to: ["two@example.com"], template: { id: "nope" } },
      ]);
      expect(strict.error).toMatchObject({
        statusCode: 404,
        message: "[1].template: Template not found",
      });
    });

    it("strict (the SDK's default): one invalid email refuses the whole batch", async () => {
      const token = await restrictedKey();
      const res = await sdk(env, token).batch.send(mixed());
      expect(res.data).toBeNull();
      expect(res.error?.statusCode).toBe(422);
      // Every email's fields are checked before any is composed, so the schema error comes first.
      expect(res.error?.message).toMatch(/^\[3\]\.subject: /);
      const ok = await sdk(env, token).batch.send([email(), email()]);
      expect(ok.error).toBeNull();
      expect(ok.data).toEqual({ data: [{ id: expect.any(String) }, { id: expect.any(String) }] });
    });

    it("permissive with an Idempotency-Key: the replay answers the same ids and errors, sending nothing again", async () => {
      const client = sdk(env);
      const options = { batchValidation: "permissive", idempotencyKey: "batch-1" } as const;
      const first = await client.batch.send(mixed(), options);
      const replay = await client.batch.send(mixed(), options);
      expect(first.error).toBeNull();
      expect(replay.data).toEqual(first.data);
      // The same key in the other mode is another request: refused, not answered with the first.
      const strict = await client.batch.send(mixed(), { idempotencyKey: "batch-1" });
      expect(strict.error?.statusCode).toBe(409);
      expect(strict.error?.name).toBe("invalid_idempotent_request");
    });

    it("permissive still refuses a body that is not a list, an empty list, or too many emails", async () => {
      const headers = { "x-batch-validation": "permissive" };
      for (const json of [{}, [], Array.from({ length: 101 }, () => email())]) {
        const res = await call(env, "POST", "/emails/batch", { headers, json });
        expect(res.status).toBe(422);
      }
    });

    it("an unknown mode is 422 naming the header", async () => {
      const res = await call(env, "POST", "/emails/batch", {
        headers: { "x-batch-validation": "lenient" },
        json: [email()],
      });
      expect(res.status).toBe(422);
      expect(res.body.message).toMatch(/^x-batch-validation: /);
    });
  });
}

describe("x-batch-validation: permissive and the stored-size limit", () => {
  it("leaves out the emails that would take the batch over MAX_MESSAGE_BYTES", async () => {
    const env = testEnv({ MAX_MESSAGE_BYTES: "200000" });
    const big = "x".repeat(90_000);
    const res = await call(env, "POST", "/emails/batch", {
      headers: { "x-batch-validation": "permissive" },
      json: [email({ text: big }), email({ text: big }), email({ text: big }), email()],
    });
    expect(res.status).toBe(200);
    expect(res.body.data).toHaveLength(3);
    expect(res.body.errors).toEqual([{ index: 2, message: expect.stringMatching(/in total/) }]);
  });
});
