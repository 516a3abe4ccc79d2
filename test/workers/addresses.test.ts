/**
 * Addresses that forms and hooks save go through the same one-mailbox parser as a JSON send
 * (issue 11 item 5), through the Workers entry on the in-memory store.
 */
import { describe, expect, it } from "vitest";
import { call, testEnv } from "../support/worker.ts";

const env = testEnv();

const form = (over: Record<string, unknown>) => ({
  name: "Contact",
  from: "Website <forms@example.com>",
  to: ["team@example.com"],
  subject: "Contact",
  text: "{{message}}",
  fields: [{ name: "message", required: true, max_length: 2000 }],
  allowed_origins: ["https://site.example"],
  min_fill_seconds: 0,
  ...over,
});

const hook = (over: Record<string, unknown>) => ({
  name: "hook",
  from: "Hooks <hooks@example.com>",
  to: ["ops@example.com"],
  subject: "event",
  text: "an event",
  verify: { type: "url_secret" },
  ...over,
});

describe("saved recipients are exactly one address each", () => {
  it.each([
    ["/forms", { to: ["team@example.com", "vic tim@example.org"] }, "to[1]"],
    ["/forms", { from: "Website forms@example.com" }, "from"],
    ["/hooks", { to: ["vic tim@example.org"] }, "to[0]"],
    ["/hooks", { cc: ["ops@example.com (on call)"] }, "cc[0]"],
    ["/hooks", { reply_to: ["Ops, ceo@bank.example <ops@example.com>"] }, "reply_to[0]"],
  ])("POST %s refuses %j naming %s", async (path, over, field) => {
    const json = path === "/forms" ? form(over) : hook(over);
    const res = await call(env, "POST", path, { json });
    expect(res.status).toBe(422);
    expect(res.body.message.startsWith(`${field}: `)).toBe(true);
  });

  it("saves a form and a hook whose addresses are in the accepted forms", async () => {
    const to = ['"Team, Support" <team@example.com>', "Jörg <j@example.com>", "ops@example.com"];
    expect((await call(env, "POST", "/forms", { json: form({ to }) })).status).toBe(201);
    expect((await call(env, "POST", "/hooks", { json: hook({ to }) })).status).toBe(201);
  });
});
