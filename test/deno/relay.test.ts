/**
 * The relay on Deno, end to end: src/runtime/deno.ts runs in its own process with the permissions
 * of `deno task serve`, stores in real Redis through the Upstash-compatible gateway, and delivers
 * to real SMTP servers, at once and from its Deno.cron run.
 */
import assert from "node:assert/strict";
import { SMTP_CLIENTS } from "../../src/smtp/factory.ts";
import {
  ADMIN,
  api,
  gatewayCommands,
  relayEnv,
  type SinkName,
  services,
  sink,
  startRelay,
  waitForEmail,
} from "./support.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const message = (to: string, subject: string) => ({
  from: "Deno Relay <deno@acme.test>",
  to: [to],
  subject,
  text: "Sent through the relay on Deno.",
});

// worker-mailer is used only if this tree's factory offers it (it came in with its own transport).
const clients = ["nodemailer", "worker-mailer"] as const;
const offered = (SMTP_CLIENTS as readonly string[]).includes.bind(SMTP_CLIENTS);

for (const client of clients) {
  Deno.test({
    name: `${client} delivers over plain SMTP, STARTTLS and implicit TLS with AUTH`,
    ignore: !offered(client),
    fn: async (t) => {
      for (const name of ["plain", "starttls", "implicit"] as SinkName[]) {
        await t.step(name, async () => {
          const target = services().sinks[name];
          const env = relayEnv(target.url, { SMTP_CLIENT: client });
          const relay = await startRelay(env);
          try {
            const health = await api(relay, "GET", "/health");
            assert.deepEqual(health.body, { status: "ok", store: "upstash", smtp: "configured" });

            const to = `deno-${client}-${name}-${crypto.randomUUID()}@example.com`;
            const cc = `deno-cc-${crypto.randomUUID()}@example.org`;
            const sent = await api(relay, "POST", "/emails", {
              ...message(to, `On Deno, ${client} ${name}`),
              cc: [cc],
            });
            assert.equal(sent.status, 200, JSON.stringify(sent.body));

            const [got] = await sink(name).waitFor(1, to);
            assert.ok(got);
            assert.equal(got.mailFrom, "deno@acme.test");
            assert.deepEqual(got.rcptTo, [to, cc]);
            assert.equal(got.secure, name !== "plain");
            assert.equal(got.authUser, target.user);
            // worker-mailer always says EHLO 127.0.0.1 (see src/smtp/worker-mailer/transport.ts).
            if (client === "nodemailer") assert.equal(got.clientName, "relay.deno.test");

            const email = await waitForEmail(
              relay,
              sent.body.id,
              (e) => e.last_event === "delivered",
            );
            assert.equal(email.delivery.attempts, 1);
            assert.ok(got.raw.includes(`Message-ID: ${email.message_id}`));
            // The message and its state went through the gateway into Redis under this prefix.
            assert.ok((await gatewayCommands(env.REDIS_KEY_PREFIX)) > 0);
          } finally {
            await relay.stop();
          }
        });
      }
    },
  });
}

Deno.test("TLS is verified: without the test CA, delivery is deferred, not sent", async () => {
  const target = services().sinks.implicit;
  const relay = await startRelay(relayEnv(target.url), { trustTestCa: false });
  try {
    const to = `deno-untrusted-${crypto.randomUUID()}@example.com`;
    const sent = await api(relay, "POST", "/emails", message(to, "Untrusted"));
    assert.equal(sent.status, 200);
    const email = await waitForEmail(relay, sent.body.id, (e) => e.delivery.attempts >= 1);
    assert.equal(email.last_event, "delivery_delayed");
    const reply = JSON.stringify(email.delivery.recipients[0]?.reply);
    assert.match(reply, /certificate|issuer/i);
    assert.deepEqual(await sink("implicit").messages(to), []);
  } finally {
    await relay.stop();
  }
});

Deno.test("a first attempt that failed is delivered by the Deno.cron run", async () => {
  const plain = sink("plain");
  // One relay per SMTP client, side by side, so one cron tick covers both.
  const relays = await Promise.all(
    clients
      .filter(offered)
      .map((client) =>
        startRelay(
          relayEnv(services().sinks.plain.url, { SMTP_CLIENT: client, LOG_LEVEL: "info" }),
        ),
      ),
  );
  try {
    // Deno.cron fires at the start of each minute. The retry is due a second after the failed
    // attempt; sending early in a minute makes it due by the next tick, so one tick is enough.
    const second = new Date().getUTCSeconds();
    if (second > 45) await sleep((61 - second) * 1000);

    const sent: { id: string; to: string }[] = [];
    await plain.down();
    try {
      for (const relay of relays) {
        const to = `deno-cron-${crypto.randomUUID()}@example.com`;
        const res = await api(relay, "POST", "/emails", message(to, "Retried by Deno.cron"));
        assert.equal(res.status, 200);
        sent.push({ id: res.body.id, to });
        const failed = await waitForEmail(relay, res.body.id, (e) => e.delivery.attempts >= 1);
        assert.equal(failed.last_event, "delivery_delayed");
        assert.equal(failed.delivery.recipients[0]?.status, "pending");
      }
    } finally {
      await plain.up();
    }

    await Promise.all(
      relays.map(async (relay, i) => {
        const { id, to } = sent[i] as { id: string; to: string };
        const delivered = await waitForEmail(
          relay,
          id,
          (e) => e.last_event === "delivered",
          80_000,
        );
        assert.equal(delivered.delivery.attempts, 2);
        const [got] = await plain.waitFor(1, to);
        assert.ok(got?.raw.includes(`Message-ID: ${delivered.message_id}`));
        // It was the cron run, not another immediate attempt, that delivered it.
        assert.ok(
          relay.events().some((e) => e.event === "delivery.run" && e.delivered === 1),
          relay.lines.join("\n"),
        );
      }),
    );
  } finally {
    await Promise.all(relays.map((relay) => relay.stop()));
  }
});

Deno.test("the client address comes from the connection unless TRUST_PROXY_HEADER names a header", async () => {
  const smtp = services().sinks.plain.url;
  const env = relayEnv(smtp);
  const direct = await startRelay(env);
  // Same prefix: the second relay sees the keys the first one made.
  const proxied = await startRelay({ ...env, TRUST_PROXY_HEADER: "X-Forwarded-For" });
  try {
    const makeKey = async (allowed_ips: string[]) => {
      const res = await api(direct, "POST", "/api-keys", {
        name: `deno-${allowed_ips[0]}`,
        permission: "sending_access",
        allowed_ips,
      });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      return res.body.token as string;
    };
    const loopback = await makeKey(["127.0.0.0/8", "::1/128"]);
    const remote = await makeKey(["203.0.113.0/24"]);
    const send = (relay: typeof direct, token: string, forwardedFor: string) =>
      fetch(`${relay.url}/emails`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${token}`,
          "content-type": "application/json",
          "x-forwarded-for": forwardedFor,
        },
        body: JSON.stringify(message(`deno-ip-${crypto.randomUUID()}@example.com`, "IP")),
      }).then(async (res) => ({ status: res.status, body: await res.json() }));

    // Without the setting, a client cannot claim another address with a header.
    assert.equal((await send(direct, remote, "203.0.113.7")).status, 403);
    assert.equal((await send(direct, loopback, "203.0.113.7")).status, 200);

    // With it, the last entry (the one the proxy appended) is the client; earlier ones are not.
    assert.equal((await send(proxied, remote, "127.0.0.1, 203.0.113.7")).status, 200);
    const spoofed = await send(proxied, remote, "203.0.113.7, 198.51.100.1");
    assert.equal(spoofed.status, 403);
    assert.equal(spoofed.body.name, "invalid_api_key");
  } finally {
    await Promise.all([direct.stop(), proxied.stop()]);
  }
});

Deno.test("a wrong setting stops the relay at start, naming the variable and not its value", async () => {
  const secret = "smtp://user:hunter2-not-a-port@smtp.example.com:notaport";
  const relay = await startRelay(
    { ADMIN_TOKEN: ADMIN, SMTP_URL: secret },
    { waitForListening: false },
  );
  const code = await relay.exited;
  assert.equal(code, 1);
  const output = relay.lines.join("\n");
  assert.match(output, /"event":"config.invalid","variable":"SMTP_URL"/);
  assert.ok(!output.includes("hunter2"), output);
});

Deno.test("the dashboard signs in and serves its pages on Deno", async () => {
  const relay = await startRelay(relayEnv(services().sinks.plain.url));
  try {
    const first = await fetch(`${relay.url}/dashboard`, { redirect: "manual" });
    await first.body?.cancel();
    assert.equal(first.status, 303);
    assert.equal(first.headers.get("location"), "/dashboard/sign-in");
    const signIn = await fetch(`${relay.url}/dashboard/sign-in`, {
      method: "POST",
      redirect: "manual",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        "sec-fetch-site": "same-origin",
      },
      body: new URLSearchParams({ token: ADMIN }),
    });
    await signIn.body?.cancel();
    assert.equal(signIn.status, 303);
    const cookie = (signIn.headers.get("set-cookie") ?? "").split(";")[0] ?? "";
    assert.match(cookie, /^relay_dashboard=/);
    for (const path of [
      "/dashboard",
      "/dashboard/emails",
      "/dashboard/keys",
      "/dashboard/webhooks",
    ]) {
      const page = await fetch(`${relay.url}${path}`, { headers: { cookie } });
      const text = await page.text();
      assert.equal(page.status, 200, `${path}: ${text}`);
      assert.match(page.headers.get("content-security-policy") ?? "", /^default-src 'none'/);
      assert.ok(text.includes("Signed in as ADMIN_TOKEN"), path);
    }
  } finally {
    await relay.stop();
  }
});
