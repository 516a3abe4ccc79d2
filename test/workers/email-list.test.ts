/**
 * `GET /emails` and `GET /emails/metrics` driven by the unmodified `resend` SDK (its own paths and
 * query strings), in workerd through the real Workers entry: on the in-memory store, and on real
 * Redis through the Upstash gateway. Pagination while mail arrives, a sending key seeing only its
 * own emails and counters, the operator's filters, and 422s naming the parameter.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { Resend } from "resend";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import worker from "../../src/runtime/workers.ts";
import { redisSkipReason, sinkApi } from "../support/services.ts";
import { ADMIN, call, email, type TestEnv, testEnv, tick, upstashEnv } from "../support/worker.ts";

const BASE = "https://relay.test";
const sink = sinkApi("plain");
const realFetch = globalThis.fetch;

/** The SDK's fetch, answered by the Worker in-process (anything else goes out as usual). */
function routeSdkTo(env: TestEnv): void {
  globalThis.fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = new Request(input, init);
    if (!request.url.startsWith(BASE)) return realFetch(input, init);
    const ctx = createExecutionContext();
    const res = await worker.fetch(request, env, ctx);
    await waitOnExecutionContext(ctx);
    return res;
  }) as typeof fetch;
}

async function sendingKey(env: TestEnv, name: string): Promise<{ id: string; token: string }> {
  const res = await call(env, "POST", "/api-keys", {
    json: { name, permission: "sending_access" },
  });
  expect(res.status).toBe(201);
  return res.body;
}

async function send(resend: Resend, overrides: Record<string, unknown> = {}): Promise<string> {
  const { data, error } = await resend.emails.send({
    ...email(),
    ...overrides,
  } as Parameters<Resend["emails"]["send"]>[0]);
  expect(error).toBeNull();
  return data?.id as string;
}

function describeListing(name: string, makeEnv: () => TestEnv, skip?: string | false) {
  describe.skipIf(Boolean(skip))(
    `GET /emails and /emails/metrics: ${name}${skip ? ` (skipped: ${skip})` : ""}`,
    () => {
      let env: TestEnv;
      let admin: Resend;

      beforeEach(async () => {
        env = makeEnv();
        routeSdkTo(env);
        admin = new Resend(ADMIN, { baseUrl: BASE });
        await sink.reset();
      });

      afterEach(() => {
        globalThis.fetch = realFetch;
      });

      it("lists emails newest first in Resend's item shape (no html, text or tags)", async () => {
        const first = await send(admin, { subject: "one", cc: ["cat@example.org"] });
        const second = await send(admin, { subject: "two", scheduledAt: "in 1 hour" });
        const { data, error } = await admin.emails.list();
        expect(error).toBeNull();
        expect(data?.object).toBe("list");
        expect(data?.has_more).toBe(false);
        expect(data?.data.map((e) => e.id)).toEqual([second, first]);
        expect(data?.data[1]).toEqual({
          id: first,
          from: "Acme <sender@example.com>",
          to: ["ann@example.com"],
          cc: ["cat@example.org"],
          bcc: null,
          reply_to: null,
          subject: "one",
          created_at: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T/),
          scheduled_at: null,
          last_event: "delivered",
          message_id: expect.stringMatching(/^<.+>$/),
        });
        expect(data?.data[0]).toMatchObject({ last_event: "scheduled", subject: "two" });
        expect(data?.data[0]?.scheduled_at).not.toBeNull();
      });

      it("pages with after and before without gaps or repeats while new mail arrives", async () => {
        const sent: string[] = [];
        for (let i = 0; i < 7; i++) sent.push(await send(admin, { subject: `m${i}` }));
        const newestFirst = [...sent].reverse();
        const seen: string[] = [];
        let after: string | undefined;
        for (let page = 0; page < 10; page++) {
          const { data, error } = await admin.emails.list(
            after ? { limit: 3, after } : { limit: 3 },
          );
          expect(error).toBeNull();
          seen.push(...(data?.data.map((e) => e.id) ?? []));
          // Mail keeps arriving between pages: it lands before the first page, never in between.
          await send(admin, { subject: `late${page}` });
          if (!data?.has_more) break;
          after = data.data.at(-1)?.id;
        }
        expect(seen).toEqual(newestFirst);
        // Back towards the newest: the page just newer than the cursor, still newest first.
        const back = await admin.emails.list({ limit: 2, before: sent[2] as string });
        expect(back.data?.data.map((e) => e.id)).toEqual([sent[4], sent[3]]);
        expect(back.data?.has_more).toBe(true);
      });

      it("shows a sending key only its own emails, and refuses another key's id as a cursor or filter", async () => {
        const a = await sendingKey(env, "a");
        const b = await sendingKey(env, "b");
        const ra = new Resend(a.token, { baseUrl: BASE });
        const rb = new Resend(b.token, { baseUrl: BASE });
        const mine = await send(ra, { subject: "a's" });
        const theirs = await send(rb, { subject: "b's" });
        const adminOwn = await send(admin, { subject: "admin's" });

        const listA = await ra.emails.list();
        expect(listA.data?.data.map((e) => e.id)).toEqual([mine]);
        const listB = await rb.emails.list({ limit: 100 });
        expect(listB.data?.data.map((e) => e.id)).toEqual([theirs]);
        const all = await admin.emails.list();
        expect(all.data?.data.map((e) => e.id)).toEqual([adminOwn, theirs, mine]);

        const cursor = await ra.emails.list({ after: theirs });
        expect(cursor.error).toMatchObject({ statusCode: 422, name: "validation_error" });
        expect(cursor.error?.message).toMatch(/^after: /);
        const peek = await call(env, "GET", `/emails?key_id=${b.id}`, { token: a.token });
        expect(peek.status).toBe(403);
        expect(peek.body.message).toMatch(/^key_id: /);
        // A full-access caller filters by key.
        const byKey = await call(env, "GET", `/emails?key_id=${b.id}`);
        expect(byKey.body.data.map((e: { id: string }) => e.id)).toEqual([theirs]);
      });

      it("filters by last_event, recipient, tag and time range", async () => {
        const t0 = new Date(Date.now() - 1000).toISOString();
        const tagged = await send(admin, {
          to: ["Zed@Example.com"],
          tags: [{ name: "kind", value: "invoice" }],
        });
        const scheduled = await send(admin, { scheduledAt: "in 1 hour" });
        const plain = await send(admin);
        const q = async (query: string) => {
          const res = await call(env, "GET", `/emails?${query}`);
          expect(res.status).toBe(200);
          return res.body.data.map((e: { id: string }) => e.id);
        };
        expect(await q("last_event=scheduled")).toEqual([scheduled]);
        expect(await q("last_event=delivered")).toEqual([plain, tagged]);
        expect(await q("to=zed@example.com")).toEqual([tagged]);
        expect(await q("tag=kind:invoice")).toEqual([tagged]);
        expect(await q(`since=${encodeURIComponent(t0)}`)).toEqual([plain, scheduled, tagged]);
        expect(await q("until=2000-01-01")).toEqual([]);
        const page = await call(env, "GET", "/emails?last_event=delivered&limit=1");
        expect(page.body).toMatchObject({ has_more: true, data: [{ id: plain }] });
        const next = await call(env, "GET", `/emails?last_event=delivered&limit=1&after=${plain}`);
        expect(next.body.data.map((e: { id: string }) => e.id)).toEqual([tagged]);
      });

      it("answers 422 naming the parameter for bad values", async () => {
        const cases: [string, string][] = [
          ["limit=0", "limit"],
          ["limit=101", "limit"],
          ["limit=ten", "limit"],
          ["after=nope", "after"],
          [`after=${crypto.randomUUID()}&before=${crypto.randomUUID()}`, "before"],
          ["last_event=exploded", "last_event"],
          ["tag=novalue", "tag"],
          ["since=yesterday", "since"],
          [`after=${crypto.randomUUID()}`, "after"],
        ];
        for (const [query, field] of cases) {
          const res = await call(env, "GET", `/emails?${query}`);
          expect({ query, status: res.status }).toEqual({ query, status: 422 });
          expect(res.body.message.startsWith(`${field}: `)).toBe(true);
        }
        const sdk = await admin.emails.list({ limit: 500 });
        expect(sdk.error).toMatchObject({ statusCode: 422 });
      });

      it("counts events per period with resend.emails.metrics, a sending key only its own", async () => {
        const a = await sendingKey(env, "metrics-a");
        const ra = new Resend(a.token, { baseUrl: BASE });
        await send(ra);
        await send(admin);
        await send(admin, { scheduledAt: "in 1 hour" });

        const { data, error } = await admin.emails.metrics();
        expect(error).toBeNull();
        expect(data).toMatchObject({
          object: "metrics",
          dimensions: [],
          granularity: "daily",
          totals: { sent: 2, delivered: 2, scheduled: 1, bounced: 0, failed: 0 },
        });
        expect(data?.data).toBeUndefined();
        expect(Date.parse(data?.end_date ?? "") - Date.parse(data?.start_date ?? "")).toBe(
          6 * 86_400_000,
        );

        const hourly = await admin.emails.metrics({
          granularity: "hourly",
          dimensions: ["period"],
          metrics: ["sent", "delivered"],
          startDate: new Date(Date.now() - 2 * 3_600_000).toISOString(),
        });
        expect(hourly.error).toBeNull();
        expect(hourly.data?.metrics).toEqual(["sent", "delivered"]);
        expect(hourly.data?.totals).toEqual({ sent: 2, delivered: 2 });
        expect(hourly.data?.data?.length).toBe(3);
        expect(hourly.data?.data?.at(-1)).toMatchObject({ sent: 2, delivered: 2 });
        expect(hourly.data?.data?.[0]?.period).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:00:00\.000Z$/);

        const own = await ra.emails.metrics();
        expect(own.data?.totals).toMatchObject({ sent: 1, delivered: 1, scheduled: 0 });
      });

      it("answers 422 naming unsupported metrics options", async () => {
        const checks: [Parameters<Resend["emails"]["metrics"]>[0], string][] = [
          { dimensions: ["domain"] } as never,
          { metrics: ["opened"] } as never,
          { granularity: "yearly" } as never,
          { timezone: "Europe/Paris" } as never,
          { domainId: ["d1"] } as never,
          { startDate: "2026-13-45" } as never,
          { startDate: "2026-12-05", endDate: "2026-12-01" } as never,
        ].map((o, i) => [
          o,
          [
            "dimensions",
            "metrics",
            "granularity",
            "timezone",
            "domain_id",
            "start_date",
            "start_date",
          ][i] as string,
        ]);
        for (const [options, field] of checks) {
          const { error } = await admin.emails.metrics(options);
          expect({ field, status: error?.statusCode }).toEqual({ field, status: 422 });
          expect(error?.message.startsWith(`${field}: `)).toBe(true);
        }
      });

      it("keeps GET /emails/:id and sending working beside the list routes", async () => {
        const id = await send(admin);
        expect((await admin.emails.get(id)).data?.id).toBe(id);
        await tick(env);
        expect((await call(env, "GET", "/emails/not-a-uuid")).status).toBe(422);
      });
    },
  );
}

describeListing("memory", () => testEnv());
describeListing("upstash", () => upstashEnv(), redisSkipReason());
