/**
 * Secrets stay secret (issue "Who may send what", part 6). A relay configured with distinctive
 * secrets (ADMIN_TOKEN, an SMTP_URL whose password the STARTTLS sink checks, the Upstash token) runs
 * through sends, a failed delivery, a refused SMTP login, configuration errors, an unreachable
 * Redis, reads and key management, while everything it writes to the console is captured. No API
 * key token (outside the one response that creates it), SMTP password or Redis token may appear in
 * a log line, an error message, a response body or header, or an email's details; log lines are
 * JSON objects that carry email_id and key_id where an email or a key is concerned.
 *
 * The console is spied on before the relay is built: the relay's logger keeps the console.log it
 * found when it was made, and every env below has its own key prefix, so each builds its relay
 * while the spies are in place.
 */
import { afterAll, beforeAll, describe, expect, it, type MockInstance, vi } from "vitest";
import { requireRedis, services, sinkApi } from "../support/services.ts";
import {
  type CallOptions,
  type CallResult,
  call,
  type TestEnv,
  testEnv,
  tick,
  upstashEnv,
} from "../support/worker.ts";

const redis = requireRedis();
const starttls = sinkApi("starttls");

interface Answer {
  label: string;
  status: number;
  /** The body as received, and every header, as one text to search. */
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: the relay's JSON answer
  body: any;
}

interface Run {
  secrets: Record<string, string>;
  answers: Answer[];
  /** One entry per console call: the call's arguments, as written. */
  logs: { method: string; args: unknown[] }[];
  /** The labels of the answers that are allowed to carry a token, and which one. */
  creations: Map<string, string>;
  ids: { email: string[]; keys: string[] };
}

const random = () => crypto.randomUUID().replace(/-/g, "");

describe.skipIf(redis.skip)(`secrets never leak${redis.label}`, () => {
  const run: Run = {
    secrets: {},
    answers: [],
    logs: [],
    creations: new Map(),
    ids: { email: [], keys: [] },
  };
  const spies: [string, MockInstance][] = [];

  async function ask(
    label: string,
    env: TestEnv,
    method: string,
    path: string,
    options: CallOptions = {},
  ): Promise<CallResult> {
    const res = await call(env, method, path, options);
    const headers = [...res.headers.entries()].map(([k, v]) => `${k}: ${v}`).join("\n");
    const body = typeof res.body === "string" ? res.body : JSON.stringify(res.body);
    run.answers.push({ label, status: res.status, text: `${headers}\n\n${body}`, body: res.body });
    return res;
  }

  beforeAll(async () => {
    for (const method of ["log", "error", "warn", "info", "debug"] as const) {
      spies.push([method, vi.spyOn(console, method)]);
    }

    const { sinks, upstash } = services();
    const smtpUser = sinks.starttls.user ?? "";
    const smtpPass = sinks.starttls.pass ?? "";
    const admin = `admin-SECRET-${random()}`;
    const wrongSmtpPass = `wrongpass-SECRET-${random()}`;
    const wrongToken = `re_WRONG_SECRET_${random()}`;
    const shortAdmin = `s-${random().slice(0, 8)}`;
    run.secrets = {
      ADMIN_TOKEN: admin,
      "SMTP password": smtpPass,
      "SMTP AUTH PLAIN": btoa(`\u0000${smtpUser}\u0000${smtpPass}`),
      "SMTP AUTH LOGIN password": btoa(smtpPass),
      "Upstash token": upstash.token,
      "a wrong SMTP password": wrongSmtpPass,
      "a wrong API key": wrongToken,
      "a too-short ADMIN_TOKEN": shortAdmin,
    };
    expect(smtpPass).not.toBe("");

    const env = upstashEnv({ ADMIN_TOKEN: admin, SMTP_URL: sinks.starttls.url, LOG_LEVEL: "info" });
    const u = `sec${random().slice(0, 10)}`;
    const to = (who: string) => `${who}.${u}@example.com`;
    const mail = (who: string, over: Record<string, unknown> = {}) => ({
      from: "Acme <sender@example.com>",
      to: [to(who)],
      subject: "Your invoice",
      text: "Total: 42 EUR",
      ...over,
    });

    // Keys: two creations (the only answers that may carry a token), a list, a refused list.
    await ask("health", env, "GET", "/health", { token: null });
    const app = await ask("create sending key", env, "POST", "/api-keys", {
      token: admin,
      json: {
        name: "billing",
        permission: "sending_access",
        allowed_recipients: ["*@example.com"],
      },
    });
    const ops = await ask("create full key", env, "POST", "/api-keys", {
      token: admin,
      json: { name: "ops", permission: "full_access", rate_limit: "100/1m" },
    });
    expect([app.status, ops.status]).toEqual([201, 201]);
    run.secrets["the sending key"] = app.body.token;
    run.secrets["the full-access key"] = ops.body.token;
    run.creations.set("create sending key", app.body.token);
    run.creations.set("create full key", ops.body.token);
    run.ids.keys.push(app.body.id, ops.body.id);
    await ask("list keys (admin)", env, "GET", "/api-keys", { token: admin });
    await ask("list keys (full key)", env, "GET", "/api-keys", { token: ops.body.token });
    await ask("list keys (sending key)", env, "GET", "/api-keys", { token: app.body.token });
    await ask("a wrong API key", env, "POST", "/emails", { token: wrongToken, json: mail("ann") });

    // Sends: JSON, raw, batch, each delivered over STARTTLS with the password.
    const sent = await ask("send JSON", env, "POST", "/emails", {
      token: app.body.token,
      json: mail("ann", { bcc: [to("bob")] }),
    });
    const rawSent = await ask("send raw", env, "POST", "/emails", {
      token: app.body.token,
      body: `From: sender@example.com\r\nTo: ${to("raw")}\r\nSubject: raw\r\n\r\nhi\r\n`,
      headers: { "content-type": "message/rfc822" },
    });
    const batch = await ask("send batch", env, "POST", "/emails/batch", {
      token: admin,
      json: [mail("b1"), mail("b2")],
    });
    const refused = await ask("send refused by policy", env, "POST", "/emails", {
      token: app.body.token,
      json: mail("ann", { to: [`x.${u}@other.example`] }),
    });
    expect([sent.status, rawSent.status, batch.status, refused.status]).toEqual([
      200, 200, 200, 403,
    ]);
    await starttls.waitFor(4, 10_000, { to: u });
    run.ids.email.push(
      sent.body.id,
      rawSent.body.id,
      ...batch.body.data.map((d: { id: string }) => d.id),
    );

    // A scheduled email, cancelled.
    const later = await ask("send scheduled", env, "POST", "/emails", {
      token: app.body.token,
      json: mail("later", { scheduled_at: "in 1 hour" }),
    });
    run.ids.email.push(later.body.id);
    await ask("cancel", env, "POST", `/emails/${later.body.id}/cancel`, { token: app.body.token });

    // A failed delivery (the smart host is down), then the retry that delivers it.
    let failedId = "";
    await starttls.down();
    try {
      const failed = await ask("send while SMTP is down", env, "POST", "/emails", {
        token: app.body.token,
        json: mail("down"),
      });
      failedId = failed.body.id;
      run.ids.email.push(failedId);
      const view = await ask("GET the deferred email", env, "GET", `/emails/${failedId}`, {
        token: app.body.token,
      });
      expect(view.body.last_event).toBe("delivery_delayed");
    } finally {
      await starttls.up();
    }
    const due = Date.parse(
      (await ask("GET before retry", env, "GET", `/emails/${failedId}`, { token: admin })).body
        .delivery.next_attempt_at,
    );
    await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now() + 100)));
    await tick(env);
    await starttls.waitFor(1, 10_000, { to: to("down") });

    // A refused SMTP login: the same sink with a wrong password.
    const wrongSmtp = {
      ...env,
      SMTP_URL: sinks.starttls.url.replace(`:${smtpPass}@`, `:${wrongSmtpPass}@`),
    };
    expect(wrongSmtp.SMTP_URL).toContain(wrongSmtpPass);
    const authFailed = await ask("send with a wrong SMTP password", wrongSmtp, "POST", "/emails", {
      token: admin,
      json: mail("auth"),
    });
    run.ids.email.push(authFailed.body.id);
    const authView = await ask(
      "GET the email whose login failed",
      wrongSmtp,
      "GET",
      `/emails/${authFailed.body.id}`,
      {
        token: admin,
      },
    );
    expect(authView.body.delivery.recipients[0].reply.code).toBe(535);
    await tick(wrongSmtp);

    // Every email, read with each key that may read it.
    for (const id of run.ids.email) {
      await ask(`GET /emails/${id} (admin)`, env, "GET", `/emails/${id}`, { token: admin });
      await ask(`GET /emails/${id} (full key)`, env, "GET", `/emails/${id}`, {
        token: ops.body.token,
      });
    }
    await ask("GET own email (sending key)", env, "GET", `/emails/${sent.body.id}`, {
      token: app.body.token,
    });
    await ask("GET /emails/:id with an odd id", env, "GET", "/emails/..%2F..%2Fapi-keys", {
      token: admin,
    });

    // Configuration errors: they name the variable, never its value.
    const configErrors: [string, TestEnv][] = [
      [
        "SMTP_URL with credentials over smtp+insecure",
        testEnv({ SMTP_URL: `smtp+insecure://${smtpUser}:${smtpPass}@127.0.0.1:2525` }),
      ],
      ["SMTP_URL that is not a URL", testEnv({ SMTP_URL: `smtps://${smtpUser}:${smtpPass}@` })],
      [
        "SMTP_URL with an unknown scheme",
        testEnv({ SMTP_URL: `https://${smtpUser}:${smtpPass}@smtp.example.com` }),
      ],
      [
        "SMTP_URL with a user and no password",
        testEnv({ SMTP_URL: `smtps://${smtpPass}@smtp.example.com` }),
      ],
      ["a too-short ADMIN_TOKEN", testEnv({ ADMIN_TOKEN: shortAdmin })],
      [
        "an Upstash URL that is not a URL",
        testEnv({
          UPSTASH_REDIS_REST_URL: "redis-host:6379",
          UPSTASH_REDIS_REST_TOKEN: upstash.token,
        }),
      ],
      ["an Upstash token without its URL", testEnv({ UPSTASH_REDIS_REST_TOKEN: upstash.token })],
    ];
    for (const [label, bad] of configErrors) {
      const res = await ask(`config: ${label}`, bad, "POST", "/emails", {
        token: admin,
        json: mail("cfg"),
      });
      expect(res.status).toBe(500);
      expect(res.body.message).toMatch(/^The relay is misconfigured: [A-Z_]+: /);
    }

    // An unreachable Redis: 503 with Retry-After, for every kind of request.
    const down = upstashEnv({
      ADMIN_TOKEN: admin,
      SMTP_URL: sinks.starttls.url,
      LOG_LEVEL: "info",
      UPSTASH_REDIS_REST_URL: "http://127.0.0.1:9",
    });
    for (const [label, token, method, path, json] of [
      ["send (admin)", admin, "POST", "/emails", mail("503")],
      ["send (sending key)", app.body.token, "POST", "/emails", mail("503")],
      ["GET email", admin, "GET", `/emails/${sent.body.id}`, undefined],
      ["list keys", admin, "GET", "/api-keys", undefined],
      ["create key", admin, "POST", "/api-keys", { name: "x" }],
    ] as const) {
      const res = await ask(`Redis down: ${label}`, down, method, path, {
        token,
        ...(json ? { json } : {}),
      });
      expect(res.status).toBe(503);
      expect(res.headers.get("retry-after")).toMatch(/^\d+$/);
    }
    await tick(down);

    // Deleting a key ends the run.
    await ask("delete the full key", env, "DELETE", `/api-keys/${ops.body.id}`, { token: admin });

    for (const [method, spy] of spies) {
      for (const args of spy.mock.calls) run.logs.push({ method, args });
    }
  }, 120_000);

  afterAll(async () => {
    for (const [, spy] of spies) spy.mockRestore();
    await starttls.up();
  });

  /** Where each secret appears, outside the answers allowed to carry it. */
  function leaks(texts: { where: string; text: string }[], allowed?: Map<string, string>) {
    const found: string[] = [];
    for (const { where, text } of texts) {
      for (const [name, secret] of Object.entries(run.secrets)) {
        if (!secret || !text.includes(secret)) continue;
        if (allowed?.get(where) === secret) continue;
        found.push(`${name} in ${where}`);
      }
    }
    return found;
  }

  const logText = (args: unknown[]) =>
    args
      .map((a) =>
        typeof a === "string"
          ? a
          : a instanceof Error
            ? `${a.name}: ${a.message} ${a.stack}`
            : JSON.stringify(a),
      )
      .join(" ");

  it("ran every step and logged it", () => {
    expect(run.answers.length).toBeGreaterThan(40);
    const events = run.logs.map((l) => {
      try {
        return JSON.parse(String(l.args[0])).event;
      } catch {
        return null;
      }
    });
    expect(events).toEqual(
      expect.arrayContaining([
        "api_key.created",
        "api_key.deleted",
        "email.accepted",
        "email.canceled",
        "delivery.attempt",
        "delivery.run",
        "config.invalid",
        "store.unavailable",
        "smtp.target",
      ]),
    );
  });

  it("writes no token, password or Redis token to the log", () => {
    expect(
      leaks(
        run.logs.map((l, i) => ({
          where: `console.${l.method} #${i}: ${logText(l.args).slice(0, 200)}`,
          text: logText(l.args),
        })),
      ),
    ).toEqual([]);
  });

  it("answers no token, password or Redis token, in bodies or headers, except the token just created", () => {
    expect(
      leaks(
        run.answers.map((a) => ({ where: a.label, text: a.text })),
        run.creations,
      ),
    ).toEqual([]);
    // The creation answers carry their own token and nothing else secret.
    for (const [label, token] of run.creations) {
      const answer = run.answers.find((a) => a.label === label);
      expect(answer?.body).toEqual({ id: expect.any(String), token });
    }
  });

  it("shows no secret in GET /emails/:id, including the SMTP replies of failed attempts", () => {
    const views = run.answers.filter((a) => a.label.startsWith("GET") && a.status === 200);
    expect(views.length).toBeGreaterThanOrEqual(run.ids.email.length * 2);
    expect(leaks(views.map((a) => ({ where: a.label, text: a.text })))).toEqual([]);
    const replies = views.flatMap((v) =>
      (v.body.delivery?.recipients ?? []).map(
        (r: { reply: { text: string } | null }) => r.reply?.text ?? "",
      ),
    );
    expect(replies.join("\n")).toMatch(/535|ECONNREFUSED|connect/i);
  });

  it("names the variable in configuration errors, never its value", () => {
    const errors = run.answers.filter((a) => a.label.startsWith("config:"));
    expect(errors).toHaveLength(7);
    for (const e of errors)
      expect(e.body.message).toMatch(
        /(SMTP_URL|ADMIN_TOKEN|UPSTASH_REDIS_REST_URL|UPSTASH_REDIS_REST_TOKEN): /,
      );
    const logged = run.logs
      .map((l) => String(l.args[0]))
      .filter((line) => line.includes('"config.invalid"'))
      .map((line) => JSON.parse(line));
    expect(logged.length).toBeGreaterThanOrEqual(7);
    for (const line of logged) expect(line.variable).toMatch(/^[A-Z_]+$/);
  });

  it("writes every log line as one JSON object with a level and an event", () => {
    const bad = run.logs.filter((l) => {
      if (l.args.length !== 1 || typeof l.args[0] !== "string") return true;
      try {
        const line = JSON.parse(l.args[0]);
        return (
          typeof line !== "object" ||
          typeof line.level !== "string" ||
          typeof line.event !== "string"
        );
      } catch {
        return true;
      }
    });
    expect(bad.map((l) => `console.${l.method}: ${logText(l.args).slice(0, 300)}`)).toEqual([]);
  });

  const lines = () =>
    run.logs.flatMap((l) => {
      try {
        return [JSON.parse(String(l.args[0])) as Record<string, unknown>];
      } catch {
        return [];
      }
    });

  it("carries email_id and key_id on email lines, email_id on delivery lines, key_id on key lines", () => {
    const all = lines();
    const accepted = all.filter((l) => l.event === "email.accepted");
    expect(accepted.map((l) => l.email_id)).toEqual(expect.arrayContaining(run.ids.email));
    for (const l of accepted) expect(l.key_id).toEqual(expect.any(String));
    const sendingKey = run.ids.keys[0];
    expect(accepted.filter((l) => l.key_id === sendingKey).length).toBeGreaterThanOrEqual(3);
    for (const l of all.filter((l) => l.event === "email.canceled")) {
      expect(l).toMatchObject({ email_id: expect.any(String), key_id: sendingKey });
    }
    const attempts = all.filter((l) => l.event === "delivery.attempt");
    expect(attempts.length).toBeGreaterThanOrEqual(6);
    for (const l of attempts) expect(run.ids.email).toContain(l.email_id);
    const keyLines = all.filter((l) => String(l.event).startsWith("api_key."));
    expect(keyLines.map((l) => l.key_id)).toEqual(expect.arrayContaining(run.ids.keys));
  });

  it("carries key_id on delivery lines too, so a bounce can be traced to the key that sent it", () => {
    const attempts = lines().filter((l) => l.event === "delivery.attempt");
    expect(attempts.length).toBeGreaterThan(0);
    for (const l of attempts) expect(l.key_id).toEqual(expect.any(String));
  });
});
