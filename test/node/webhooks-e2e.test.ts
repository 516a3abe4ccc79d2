/**
 * Delivery events end to end: the relay runs in workerd (wrangler's test harness) on real Redis
 * through the Upstash-compatible gateway, delivers to the plain SMTP sink, and POSTs its events to
 * a real HTTP receiver (node:http, here) that checks every signature with the `standardwebhooks`
 * package. Endpoints are managed with the unmodified `resend` SDK.
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Resend } from "resend";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { TestHarness } from "wrangler";
import { type RelayWorker, startRelayWorker } from "../support/harness.ts";
import { gatewayApi, redisSkipReason, sinkApi } from "../support/services.ts";

const ADMIN = `wh-admin-${crypto.randomUUID()}`;
const PREFIX = `wh:${crypto.randomUUID()}:`;
const skip = redisSkipReason();

interface Received {
  path: string;
  headers: Record<string, string>;
  body: string;
  /** The secret that verified the signature, by endpoint path; null when none did. */
  verified: boolean;
  answered: number | "hang";
  // biome-ignore lint/suspicious/noExplicitAny: event payloads are read as JSON
  payload: any;
}

/** What the receiver answers a request: a status, or silence until the client gives up. */
type Answer = number | "hang";

class Receiver {
  readonly requests: Received[] = [];
  readonly secrets = new Map<string, string>();
  plan: (req: { path: string; n: number }) => Answer = () => 204;
  #server: Server | undefined;
  #hanging = new Set<() => void>();
  url = "";

  async start(): Promise<void> {
    this.#server = createServer(async (req, res) => {
      const body = await readAll(req);
      const path = req.url ?? "/";
      const headers = Object.fromEntries(
        Object.entries(req.headers).map(([k, v]) => [k, String(v)]),
      );
      const secret = this.secrets.get(path);
      let verified = false;
      let payload: unknown = null;
      try {
        payload = secret ? new Webhook(secret).verify(body, headers) : null;
        verified = secret !== undefined;
      } catch {
        verified = false;
      }
      const n = this.requests.filter((r) => r.path === path).length + 1;
      const answered = this.plan({ path, n });
      this.requests.push({ path, headers, body, verified, answered, payload });
      if (answered === "hang") {
        // Answer only after the relay's timeout (1 s here) has given up.
        const done = () => res.writeHead(200).end();
        this.#hanging.add(done);
        setTimeout(() => {
          this.#hanging.delete(done);
          done();
        }, 3_000);
        return;
      }
      res.writeHead(answered, { "content-type": "text/plain" }).end(`answer ${answered}`);
    });
    await new Promise<void>((resolve) => this.#server?.listen(0, "127.0.0.1", resolve));
    const address = this.#server?.address() as AddressInfo;
    this.url = `http://127.0.0.1:${address.port}`;
  }

  async close(): Promise<void> {
    for (const done of this.#hanging) done();
    await new Promise((r) => this.#server?.close(r));
  }

  /** Requests answered 2xx, in arrival order. */
  delivered(path: string): Received[] {
    return this.requests.filter(
      (r) => r.path === path && typeof r.answered === "number" && r.answered < 300,
    );
  }
}

async function readAll(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(Boolean(skip))(
  `webhook events from the relay in workerd${skip ? ` (skipped: ${skip})` : ""}`,
  () => {
    let relay: RelayWorker;
    let harness: TestHarness;
    let admin: Resend;
    let baseUrl: string;
    const receiver = new Receiver();
    const sink = sinkApi("plain");
    const gateway = gatewayApi();

    const tick = () =>
      harness.getWorker().scheduled({ cron: "* * * * *", scheduledTime: new Date() });

    /** Runs cron ticks until `done()` holds (or fails after `ms`). */
    async function tickUntil(done: () => boolean, ms = 40_000): Promise<void> {
      const until = Date.now() + ms;
      while (!done()) {
        if (Date.now() > until) throw new Error("timed out waiting for webhook events");
        await tick();
        await sleep(250);
      }
    }

    async function api(
      method: string,
      path: string,
      body?: unknown,
      token = ADMIN,
      // biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON answers
    ): Promise<{ status: number; body: any }> {
      const res = await fetch(`${baseUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, body: await res.json() };
    }

    async function register(path: string, events: string[]): Promise<string> {
      const created = await admin.webhooks.create({
        endpoint: `${receiver.url}${path}`,
        events: events as never,
      });
      expect(created.error).toBeNull();
      receiver.secrets.set(path, created.data?.signing_secret as string);
      return created.data?.id as string;
    }

    beforeAll(async () => {
      await receiver.start();
      relay = await startRelayWorker({
        adminToken: ADMIN,
        sink: "plain",
        vars: {
          REDIS_KEY_PREFIX: PREFIX,
          RETRY_FIRST_SECONDS: "1",
          RATE_LIMIT: "10000/1s",
          WEBHOOK_ALLOW_LOOPBACK: "true",
          WEBHOOK_RETRY_SCHEDULE: "200ms,200ms,300ms,300ms,500ms,500ms,1s",
          WEBHOOK_TIMEOUT_SECONDS: "1",
          LOG_LEVEL: "error",
        },
      });
      harness = relay.harness;
      baseUrl = relay.url;
      admin = new Resend(ADMIN, { baseUrl });
    }, 60_000);

    afterAll(async () => {
      await relay?.close();
      await receiver.close();
    });

    beforeEach(async () => {
      await sink.reset();
    });

    // First, while no endpoint exists: events must cost nothing.
    it("costs no Upstash command with no endpoint registered: one per idle run, three per sent email", async () => {
      // Only this relay's commands count (its key prefix), and each window opens once the work
      // before it is over: a delivery's last command, the commit, comes after the sink has the
      // message, so "the sink has it" is no sign that the relay is done (a slow machine once put
      // the warm-up's commit into the idle run's window). The sink's latency makes that gap
      // certain here.
      const count = () => gateway.commands(PREFIX);
      const settle = async (expected: number) => {
        const until = Date.now() + 5_000;
        while ((await count()) < expected && Date.now() < until) await sleep(50);
        await sleep(300);
        return count();
      };
      const delivered = async (id: string) => {
        const until = Date.now() + 10_000;
        while ((await admin.emails.get(id)).data?.last_event !== "delivered") {
          if (Date.now() > until) throw new Error(`${id} was not delivered within 10 s`);
          await sleep(50);
        }
      };
      await sink.setFaults({ rules: [], latencyMs: 500 });
      try {
        // Warm up every script the windows use (a script's first use may cost a NOSCRIPT round
        // trip): the send's rate limit, enqueue and commit, and an idle run's claim.
        const warm = await admin.emails.send({
          from: "ops@acme.test",
          to: "ann@example.com",
          subject: "Warm-up",
          text: "Hi",
        });
        expect(warm.error).toBeNull();
        await delivered(warm.data?.id as string);
        let before = await count();
        await tick();
        await settle(before + 1);
        await sink.clear();

        before = await count();
        await tick();
        expect((await settle(before + 1)) - before).toBe(1);

        before = await count();
        const sent = await admin.emails.send({
          from: "ops@acme.test",
          to: "ann@example.com",
          subject: "No subscribers",
          text: "Hi",
        });
        expect(sent.error).toBeNull();
        await sink.waitFor(1);
        // The rate limit check, the enqueue script and the commit script: the same as without
        // the webhook feature.
        const used = (await settle(before + 3)) - before;
        if (used !== 3) console.log(JSON.stringify((await gateway.commandLog()).slice(-8)));
        expect(used).toBe(3);
        await delivered(sent.data?.id as string);

        before = await count();
        await tick();
        expect((await settle(before + 1)) - before).toBe(1);
      } finally {
        await sink.clearFaults();
      }
    });

    it("manages endpoints with the resend SDK: create (secret once), list, get, update, remove", async () => {
      const created = await admin.webhooks.create({
        endpoint: "https://app.example.com/hooks/relay",
        events: ["email.delivered", "email.bounced"],
      });
      expect(created.error).toBeNull();
      expect(created.data?.object).toBe("webhook");
      expect(created.data?.signing_secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
      const id = created.data?.id as string;

      const got = await admin.webhooks.get(id);
      expect(got.data).toMatchObject({
        object: "webhook",
        id,
        endpoint: "https://app.example.com/hooks/relay",
        status: "enabled",
        events: ["email.delivered", "email.bounced"],
      });
      // The secret is shown once only.
      expect(JSON.stringify(got.data)).not.toContain(created.data?.signing_secret as string);

      const list = await admin.webhooks.list();
      expect(list.data?.data.map((w) => w.id)).toContain(id);
      expect(JSON.stringify(list.data)).not.toContain("whsec_");

      const updated = await admin.webhooks.update(id, {
        events: ["email.sent"],
        status: "disabled",
      });
      expect(updated.data).toEqual({ object: "webhook", id });
      const after = await admin.webhooks.get(id);
      expect(after.data).toMatchObject({ status: "disabled", events: ["email.sent"] });

      const rotated = await admin.webhooks.rotateSigningSecret(id);
      expect(rotated.data?.signing_secret).toMatch(/^whsec_/);
      expect(rotated.data?.signing_secret).not.toBe(created.data?.signing_secret);

      const removed = await admin.webhooks.remove(id);
      expect(removed.data).toEqual({ object: "webhook", id, deleted: true });
      const gone = await admin.webhooks.get(id);
      expect(gone.error).toMatchObject({ statusCode: 404, name: "not_found" });
    });

    it("refuses bad endpoints and events with a 422 naming the field, and sending keys with 401", async () => {
      const cases: [unknown, string][] = [
        [
          { endpoint: "http://app.example.com/x", events: ["email.sent"] },
          "endpoint: must be an https URL",
        ],
        [
          { endpoint: "https://10.0.0.7/x", events: ["email.sent"] },
          "endpoint: must be a public host",
        ],
        [
          { endpoint: "https://metadata.internal/x", events: ["email.sent"] },
          "endpoint: must be a public host",
        ],
        [{ endpoint: "not a url", events: ["email.sent"] }, "endpoint: must be an absolute URL"],
        [{ endpoint: "https://app.example.com", events: [] }, "events: must be a non-empty list"],
        [
          { endpoint: "https://app.example.com", events: ["email.sent", "email.opened"] },
          "events[1]: must be one of",
        ],
        [{ events: ["email.sent"] }, "endpoint: is required"],
      ];
      for (const [body, message] of cases) {
        const res = await api("POST", "/webhooks", body);
        expect(res.status, JSON.stringify(body)).toBe(422);
        expect(res.body.name).toBe("validation_error");
        expect(res.body.message.startsWith(message), res.body.message).toBe(true);
      }
      const bad = await api("PATCH", `/webhooks/${crypto.randomUUID()}`, { status: "on" });
      expect(bad.status).toBe(404);

      const key = await admin.apiKeys.create({ name: "sender", permission: "sending_access" });
      const res = await api("GET", "/webhooks", undefined, key.data?.token as string);
      expect(res.status).toBe(401);
      expect(res.body.name).toBe("restricted_api_key");
    });

    it("delivers every event, signed, in order per email, exactly once per event id, through failures and a timeout", async () => {
      const path = "/events";
      const webhookId = await register(path, [
        "email.sent",
        "email.scheduled",
        "email.delivered",
        "email.delivery_delayed",
        "email.bounced",
        "email.failed",
        "email.canceled",
      ]);
      // The receiver is down for its first four requests (500), then hangs past the relay's
      // 1 s timeout once, then recovers.
      receiver.plan = ({ path: p, n }) =>
        p !== path ? 204 : n <= 4 ? 500 : n === 5 ? "hang" : 204;

      await sink.rejectRecipient(
        "hidden@example.net",
        550,
        "5.1.1 <hidden@example.net>: no such user",
      );
      await sink.failData(451, "4.3.0 try again later", 1);

      // C: deferred once (the sink's first DATA answer), then delivered by a scheduled retry.
      const c = await admin.emails.send({
        from: "ops@acme.test",
        to: "carl@example.com",
        subject: "Deferred",
        text: "C",
      });
      // Its immediate attempt takes the 451 before the others are sent.
      for (
        let i = 0;
        (await admin.emails.get(c.data?.id as string)).data?.last_event !== "delivery_delayed";
        i++
      ) {
        if (i > 100) throw new Error("C was not deferred");
        await sleep(50);
      }
      // A: delivered; its Bcc must appear nowhere.
      const a = await admin.emails.send({
        from: "Ops <ops@acme.test>",
        to: "ann@example.com",
        bcc: "auditor@example.net",
        subject: "Delivered",
        text: "A",
        tags: [{ name: "kind", value: "receipt" }],
      });
      // B: the Bcc recipient is refused for good (its address is in the reply), ann gets it.
      const b = await admin.emails.send({
        from: "ops@acme.test",
        to: "ann@example.com",
        bcc: "hidden@example.net",
        subject: "Partly bounced",
        text: "B",
      });
      // D: scheduled, then canceled.
      const d = await admin.emails.send({
        from: "ops@acme.test",
        to: "dan@example.com",
        subject: "Later",
        text: "D",
        scheduledAt: new Date(Date.now() + 3_600_000).toISOString(),
      });
      for (const r of [a, b, c, d]) expect(r.error).toBeNull();
      const [ida, idb, idc, idd] = [a, b, c, d].map((r) => r.data?.id as string);
      expect((await admin.emails.cancel(idd as string)).error).toBeNull();

      const expected: Record<string, string[]> = {
        [ida as string]: ["email.sent", "email.delivered"],
        [idb as string]: ["email.sent", "email.bounced", "email.delivered"],
        [idc as string]: ["email.sent", "email.delivery_delayed", "email.delivered"],
        [idd as string]: ["email.scheduled", "email.canceled"],
      };
      const total = Object.values(expected).flat().length;
      const uniqueDelivered = () =>
        new Set(receiver.delivered(path).map((r) => r.headers["webhook-id"])).size;
      await tickUntil(() => uniqueDelivered() >= total);
      // Let any stray duplicate show up before counting.
      await tick();
      await sleep(500);

      const all = receiver.requests.filter((r) => r.path === path);
      // Every request carried a valid Standard Webhooks signature and the relay's headers.
      expect(all.every((r) => r.verified)).toBe(true);
      expect(all.every((r) => r.headers["content-type"] === "application/json")).toBe(true);
      expect(all.every((r) => /edge-smtp-relay/.test(r.headers["user-agent"] ?? ""))).toBe(true);
      // Resend's receivers read svix-*: the same values, and they verify as Svix's library would
      // (it checks the same HMAC over "id.timestamp.body" under those names).
      for (const r of all) {
        expect(r.headers["svix-id"]).toBe(r.headers["webhook-id"]);
        expect(r.headers["svix-timestamp"]).toBe(r.headers["webhook-timestamp"]);
        expect(r.headers["svix-signature"]).toBe(r.headers["webhook-signature"]);
        const svix = {
          "webhook-id": r.headers["svix-id"] as string,
          "webhook-timestamp": r.headers["svix-timestamp"] as string,
          "webhook-signature": r.headers["svix-signature"] as string,
        };
        expect(new Webhook(receiver.secrets.get(path) as string).verify(r.body, svix)).toEqual(
          r.payload,
        );
      }
      // The failures really happened: four 500s and one timeout before the first success.
      expect(all.slice(0, 5).map((r) => r.answered)).toEqual([500, 500, 500, 500, "hang"]);

      // Exactly once per event id to a 2xx.
      const ok = receiver.delivered(path);
      const ids = ok.map((r) => r.headers["webhook-id"]);
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids.length).toBe(total);

      // In order per email, with the expected types, in Resend's payload shape.
      for (const [emailId, types] of Object.entries(expected)) {
        const got = ok.filter((r) => r.payload.data.email_id === emailId);
        expect(
          got.map((r) => r.payload.type),
          emailId,
        ).toEqual(types);
        // An event was never sent before the earlier one of its email had succeeded.
        const firstSeen = all
          .filter((r) => r.payload.data.email_id === emailId)
          .map((r) => r.payload.type as string)
          .filter((t, i, list) => list.indexOf(t) === i);
        expect(firstSeen).toEqual(types);
      }
      const deliveredA = ok.find(
        (r) => r.payload.data.email_id === ida && r.payload.type === "email.delivered",
      );
      expect(deliveredA?.payload).toMatchObject({
        type: "email.delivered",
        created_at: expect.any(String),
        data: {
          email_id: ida,
          from: "Ops <ops@acme.test>",
          to: ["ann@example.com"],
          subject: "Delivered",
          created_at: expect.any(String),
          message_id: expect.stringMatching(/^<.+>$/),
          tags: { kind: "receipt" },
        },
      });
      const bounced = ok.find((r) => r.payload.type === "email.bounced");
      expect(bounced?.payload.data.bounce).toEqual({
        type: "Permanent",
        subType: "NoEmail",
        message: expect.stringMatching(/^550 5\.1\.1 .*\[bcc recipient\].*no such user/),
        recipients: [],
      });
      // No payload names a Bcc recipient.
      for (const r of all) {
        expect(r.body).not.toContain("auditor@");
        expect(r.body).not.toContain("hidden@");
      }

      // The relay's records agree with what the SMTP sink did.
      expect((await admin.emails.get(idc as string)).data?.last_event).toBe("delivered");
      expect((await admin.emails.get(idb as string)).data?.last_event).toBe("bounced");
      expect((await admin.emails.get(idd as string)).data?.last_event).toBe("canceled");
      const rcpts = (await sink.messages()).flatMap((m) => m.rcptTo).sort();
      expect(rcpts).toEqual([
        "ann@example.com",
        "ann@example.com",
        "auditor@example.net",
        "carl@example.com",
      ]);

      // Each attempt is recorded as the receiver answered it: status, or a timeout without one.
      let recorded = 0;
      for (const eventId of ids) {
        const attempts = await api("GET", `/webhooks/${webhookId}/events/${eventId}/attempts`);
        expect(attempts.status).toBe(200);
        const answers = all
          .filter((r) => r.headers["webhook-id"] === eventId)
          .map((r) => (r.answered === "hang" ? null : r.answered));
        expect(
          attempts.body.data.map((x: { http_status_code: number | null }) => x.http_status_code),
        ).toEqual(answers);
        for (const x of attempts.body.data) {
          if (x.http_status_code === null) expect(x.error).toMatch(/no answer within 1 s/);
          expect(x.duration_ms).toBeGreaterThanOrEqual(0);
        }
        recorded += answers.length;
      }
      expect(recorded).toBe(all.length);
      const firstId = all[0]?.headers["webhook-id"] as string;
      const event = await api("GET", `/webhooks/${webhookId}/events/${firstId}`);
      expect(event.body).toMatchObject({ object: "webhook_event", id: firstId, status: "success" });
      expect(event.body.payload).toEqual(all[0]?.payload);
      const log = await api("GET", `/webhooks/${webhookId}/events?limit=100`);
      expect(log.body.data).toHaveLength(total);
      expect(log.body.data.every((e: { status: string }) => e.status === "success")).toBe(true);

      // resend.webhooks.verify accepts what the relay sent, and refuses a tampered body.
      const sample = ok[0] as Received;
      const verified = admin.webhooks.verify({
        payload: sample.body,
        headers: {
          id: sample.headers["webhook-id"] as string,
          timestamp: sample.headers["webhook-timestamp"] as string,
          signature: sample.headers["webhook-signature"] as string,
        },
        webhookSecret: receiver.secrets.get(path) as string,
      });
      expect(verified).toEqual(sample.payload);
      expect(() =>
        admin.webhooks.verify({
          payload: sample.body.replace("email.", "email.x"),
          headers: {
            id: sample.headers["webhook-id"] as string,
            timestamp: sample.headers["webhook-timestamp"] as string,
            signature: sample.headers["webhook-signature"] as string,
          },
          webhookSecret: receiver.secrets.get(path) as string,
        }),
      ).toThrow(/signature/i);

      await admin.webhooks.remove(webhookId);
    }, 90_000);

    it("gives an event up after the whole retry schedule, and disables an endpoint with no success since", async () => {
      const path = "/down";
      const id = await register(path, ["email.sent"]);
      receiver.plan = ({ path: p }) => (p === path ? 503 : 204);
      const sent = await admin.emails.send({
        from: "ops@acme.test",
        to: "ann@example.com",
        subject: "Nobody listens",
        text: "1",
      });
      expect(sent.error).toBeNull();
      const until = Date.now() + 30_000;
      while ((await admin.webhooks.get(id)).data?.status !== "disabled") {
        if (Date.now() > until) throw new Error("the endpoint was not disabled");
        await tick();
        await sleep(200);
      }
      // One first attempt and seven retries (WEBHOOK_RETRY_SCHEDULE has seven waits), no more.
      const tried = receiver.requests.filter((r) => r.path === path);
      expect(tried.map((r) => r.answered)).toEqual(Array(8).fill(503));
      expect(new Set(tried.map((r) => r.headers["webhook-id"])).size).toBe(1);
      const got = await api("GET", `/webhooks/${id}`);
      expect(got.body.disabled_reason).toMatch(/failed 8 attempts/);
      const [event] = (await api("GET", `/webhooks/${id}/events`)).body.data;
      expect(event).toMatchObject({ type: "email.sent", status: "failed" });
      const attempts = await api("GET", `/webhooks/${id}/events/${event.id}/attempts`);
      expect(attempts.body.data).toHaveLength(8);
      // The waits between attempts follow the schedule (at least; cron ticks add slack).
      const at = attempts.body.data.map((a: { sent_at: string }) => Date.parse(a.sent_at));
      const waits = [200, 200, 300, 300, 500, 500, 1000];
      for (const [i, wait] of waits.entries()) {
        expect((at[i + 1] as number) - (at[i] as number)).toBeGreaterThanOrEqual(wait);
      }
      await admin.webhooks.remove(id);
    }, 60_000);

    it("disables an endpoint that answers 410 Gone, drops its events, and enables it again on request", async () => {
      const path = "/gone";
      const id = await register(path, ["email.sent", "email.delivered"]);
      receiver.plan = ({ path: p }) => (p === path ? 410 : 204);
      const first = await admin.emails.send({
        from: "ops@acme.test",
        to: "ann@example.com",
        subject: "Gone",
        text: "1",
      });
      expect(first.error).toBeNull();
      const until = Date.now() + 20_000;
      while ((await admin.webhooks.get(id)).data?.status !== "disabled") {
        if (Date.now() > until) throw new Error("the endpoint was not disabled");
        await tick();
        await sleep(200);
      }
      const got = await api("GET", `/webhooks/${id}`);
      expect(got.body.disabled_reason).toMatch(/410/);
      const seen = receiver.requests.filter((r) => r.path === path).length;
      expect(seen).toBe(1);

      // Events for a disabled endpoint are not queued, and those queued are dropped.
      await admin.emails.send({
        from: "ops@acme.test",
        to: "ann@example.com",
        subject: "x",
        text: "2",
      });
      await sink.waitFor(2);
      await tick();
      await sleep(300);
      expect(receiver.requests.filter((r) => r.path === path).length).toBe(seen);
      const log = await api("GET", `/webhooks/${id}/events`);
      // The event that met the 410 failed; its email's later events, if queued before the
      // endpoint was disabled, were dropped; the second email queued none.
      const statuses = log.body.data.map((e: { status: string }) => e.status);
      expect(statuses.filter((x: string) => x === "failed")).toEqual(["failed"]);
      expect(statuses.every((x: string) => x === "failed" || x === "dropped")).toBe(true);
      expect(statuses.length).toBeLessThanOrEqual(2);

      receiver.plan = () => 204;
      expect((await admin.webhooks.update(id, { status: "enabled" })).error).toBeNull();
      expect((await admin.webhooks.get(id)).data?.status).toBe("enabled");
      await admin.emails.send({
        from: "ops@acme.test",
        to: "ann@example.com",
        subject: "y",
        text: "3",
      });
      await tickUntil(() => receiver.delivered(path).length >= 2);
      expect(receiver.delivered(path).map((r) => r.payload.type)).toEqual([
        "email.sent",
        "email.delivered",
      ]);
      await admin.webhooks.remove(id);
    }, 60_000);
  },
);
