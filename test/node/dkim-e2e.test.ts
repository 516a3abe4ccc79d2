/**
 * Domains and DKIM end to end: the relay runs in workerd from wrangler.toml (so the signing is
 * workerd's WebCrypto), on real Redis through the Upstash gateway, and delivers to the plain SMTP
 * sink; DOH_URL points at the DoH stand-in, where each test publishes the records the relay
 * answered. The unmodified `resend` SDK creates, lists, gets, verifies, rotates and removes
 * domains; what the sink received is checked with mailauth's verifier against the published
 * records, for JSON and raw messages, RSA and Ed25519, and across a key rotation.
 */
import { Redis as IORedis } from "ioredis";
import { dkimVerify } from "mailauth";
import { Resend } from "resend";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RelayWorker, startRelayWorker } from "../support/harness.ts";
import { dohApi, redisSkipReason, services, sinkApi } from "../support/services.ts";

const ADMIN = `e2e-admin-${crypto.randomUUID()}`;
const skip = redisSkipReason();
const sink = sinkApi("plain");
const doh = dohApi();

interface DnsRecord {
  record: string;
  name: string;
  type: string;
  value: string;
  status: string;
  purpose?: string;
}

/** mailauth's resolver over the stand-in: what a real verifier would find in DNS. */
async function resolver(name: string, type: string): Promise<string[][]> {
  const res = await fetch(`${services().doh.url}?name=${encodeURIComponent(name)}&type=${type}`, {
    headers: { accept: "application/dns-json" },
  });
  const body = (await res.json()) as { Answer?: { data: string }[] };
  if (!body.Answer?.length) {
    const err = new Error(`no ${type} at ${name}`) as Error & { code: string };
    err.code = "ENOTFOUND";
    throw err;
  }
  return body.Answer.map((a) => [...a.data.matchAll(/"([^"]*)"/g)].map((m) => m[1] ?? ""));
}

async function dkimOf(raw: string) {
  const result = await dkimVerify(Buffer.from(raw, "utf8"), { resolver });
  return result.results.map(
    (r: { status: { result: string }; signingDomain?: string; selector?: string }) => ({
      result: r.status.result,
      domain: r.signingDomain,
      selector: r.selector,
    }),
  );
}

describe.skipIf(Boolean(skip))(
  `domains and DKIM through the SDK, signed in workerd${skip ? ` (skipped: ${skip})` : ""}`,
  () => {
    let relay: RelayWorker;
    let admin: Resend;
    const prefix = `e2e:${crypto.randomUUID()}:`;

    beforeAll(async () => {
      relay = await startRelayWorker({
        adminToken: ADMIN,
        sink: "plain",
        vars: {
          REDIS_KEY_PREFIX: prefix,
          DOH_URL: services().doh.url,
          BOUNCE_DOMAIN: "bounces.relay.test",
          KEY_CACHE_SECONDS: "0",
          RATE_LIMIT: "10000/1s",
          DOH_TIMEOUT_SECONDS: "2",
          LOG_LEVEL: "error",
        },
      });
      admin = new Resend(ADMIN, { baseUrl: relay.url });
    }, 60_000);

    afterAll(async () => {
      await relay?.close();
    });

    /** Creates a domain, publishes its DKIM record at the stand-in and verifies it. */
    async function verifiedDomain(name: string, algorithm?: string) {
      const created: { id: string; status: string; records: unknown } = algorithm
        ? await (
            await fetch(`${relay.url}/domains`, {
              method: "POST",
              headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
              body: JSON.stringify({ name, dkim_algorithm: algorithm }),
            })
          ).json()
        : ((await admin.domains.create({ name })).data as {
            id: string;
            status: string;
            records: unknown;
          });
      expect(created.status).toBe("not_started");
      const dkim = (created.records as DnsRecord[]).find((r) => r.record === "DKIM") as DnsRecord;
      await doh.publish(dkim.name, [dkim.value]);
      expect((await admin.domains.verify(created.id)).error).toBeNull();
      const got = await admin.domains.get(created.id);
      expect(got.data?.status).toBe("verified");
      return { id: created.id as string, dkim };
    }

    async function send(from: string, to: string) {
      const sent = await admin.emails.send({ from, to, subject: "Signed?", text: "Body  text.\n" });
      expect(sent.error).toBeNull();
      const [received] = await sink.waitFor(1, 15_000, { to });
      return received?.raw ?? "";
    }

    it("creates a domain in Resend's shape with the records to publish, lists, gets and removes it", async () => {
      const created = await admin.domains.create({ name: "Shape.Example.test" });
      expect(created.error).toBeNull();
      const d = created.data as NonNullable<typeof created.data>;
      expect(d).toMatchObject({ name: "shape.example.test", status: "not_started" });
      const records = d.records as unknown as DnsRecord[];
      const dkim = records.find((r) => r.record === "DKIM") as DnsRecord;
      expect(dkim.name).toMatch(/^relay1-[0-9a-f]{6}\._domainkey\.shape\.example\.test$/);
      expect(dkim.value).toMatch(/^v=DKIM1; k=rsa; p=MIIBIjAN[A-Za-z0-9+/=]+$/);
      // BOUNCE_DOMAIN is set: the return path's MX and SPF, and the SPF names the smart host.
      expect(
        records.filter((r) => r.type === "MX").every((r) => r.name === "bounces.relay.test"),
      ).toBe(true);
      expect(records.find((r) => r.record === "SPF" && r.type === "TXT")).toMatchObject({
        name: "bounces.relay.test",
        value: "v=spf1 ip4:127.0.0.1 ~all",
      });
      expect(JSON.stringify(d)).not.toMatch(/sealed|private/i);

      const again = await admin.domains.create({ name: "shape.example.test" });
      expect(again.error?.statusCode).toBe(409);
      const bad = await admin.domains.create({ name: "not a domain" });
      expect(bad.error?.message).toMatch(/name/);

      const list = await admin.domains.list();
      expect(list.data?.data.map((x) => x.id)).toContain(d.id);
      const got = await admin.domains.get(d.id);
      expect(got.data).toMatchObject({ object: "domain", id: d.id, status: "not_started" });
      expect(JSON.stringify(got.data)).not.toMatch(/sealed|private/i);

      // Not published yet: verify leaves it pending.
      await admin.domains.verify(d.id);
      expect((await admin.domains.get(d.id)).data?.status).toBe("pending");

      const removed = await admin.domains.remove(d.id);
      expect(removed.data).toEqual({ object: "domain", id: d.id, deleted: true });
      expect((await admin.domains.get(d.id)).error?.statusCode).toBe(404);
    });

    it("keeps only the sealed private key in Redis", async () => {
      const { id } = await verifiedDomain("sealed.example.test");
      const redis = new IORedis("redis://127.0.0.1:6379", { lazyConnect: true });
      try {
        await redis.connect();
        const stored = await redis.hget(`${prefix}rec:domain`, id);
        expect(stored).toMatch(/"sealed_private_key":"v1\./);
        expect(stored).not.toMatch(/PRIVATE KEY|"pkcs8"|MIIE/);
      } finally {
        redis.disconnect();
      }
    });

    for (const algorithm of ["rsa-sha256", "ed25519-sha256"]) {
      it(`${algorithm}: a JSON and a raw message from the verified domain reach the sink signed, and mailauth passes them`, async () => {
        const name = `${algorithm.slice(0, 3)}.example.test`;
        const { dkim } = await verifiedDomain(name, algorithm);
        const selector = dkim.name.split(".")[0];

        const jsonRaw = await send(`Acme <news@${name}>`, `json-${algorithm}@example.com`);
        expect(jsonRaw).toMatch(new RegExp(`^DKIM-Signature: v=1; a=${algorithm}`));
        expect(await dkimOf(jsonRaw)).toEqual([{ result: "pass", domain: name, selector }]);

        const to = `raw-${algorithm}@example.com`;
        const message = [
          `From: Acme <news@${name}>`,
          `To: ${to}`,
          "Subject: raw",
          "",
          "A raw  message.",
          "",
        ].join("\r\n");
        const res = await fetch(`${relay.url}/emails`, {
          method: "POST",
          headers: { authorization: `Bearer ${ADMIN}`, "content-type": "message/rfc822" },
          body: message,
        });
        expect(res.status).toBe(200);
        const [received] = await sink.waitFor(1, 15_000, { to });
        expect(await dkimOf(received?.raw ?? "")).toEqual([
          { result: "pass", domain: name, selector },
        ]);
      });
    }

    it("does not sign for a domain that is not verified, nor for one it does not know", async () => {
      await admin.domains.create({ name: "unverified.example.test" });
      const a = await send("a@unverified.example.test", "unverified@example.com");
      expect(a).not.toMatch(/^DKIM-Signature:/im);
      const b = await send("a@elsewhere.example.test", "elsewhere@example.com");
      expect(b).not.toMatch(/^DKIM-Signature:/im);
    });

    it("rotates: the old key signs until the new record is published, then the new one; both verify", async () => {
      const name = "rotate.example.test";
      const { id, dkim: first } = await verifiedDomain(name);
      const before = await send(`news@${name}`, "rotate-before@example.com");

      const rotated = await fetch(`${relay.url}/domains/${id}`, {
        method: "PATCH",
        headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
        body: JSON.stringify({ rotate_key: true, dkim_algorithm: "ed25519-sha256" }),
      });
      expect(rotated.status).toBe(200);
      const pending = (await admin.domains.get(id)).data as unknown as { records: DnsRecord[] };
      const next = pending.records.find((r) => r.purpose === "next") as DnsRecord;
      expect(next.name).toMatch(/^relay2-/);
      expect(next.value).toMatch(/k=ed25519/);

      // Not published yet: still signed with the first key.
      const during = await send(`news@${name}`, "rotate-during@example.com");
      expect((await dkimOf(during))[0]).toMatchObject({
        result: "pass",
        selector: first.name.split(".")[0],
      });

      await doh.publish(next.name, [next.value]);
      await admin.domains.verify(id);
      const after = await send(`news@${name}`, "rotate-after@example.com");
      expect((await dkimOf(after))[0]).toMatchObject({
        result: "pass",
        selector: next.name.split(".")[0],
      });
      // The first key's record stays published (listed as "previous"): old messages still pass.
      const now = (await admin.domains.get(id)).data as unknown as { records: DnsRecord[] };
      expect(now.records.find((r) => r.purpose === "previous")?.name).toBe(first.name);
      expect((await dkimOf(before))[0]?.result).toBe("pass");
    });

    it("a verify that was waiting on DNS while the key rotated answers 409 and loses no key", async () => {
      const { id } = await verifiedDomain("race.example.test");
      await doh.mode("slow");
      try {
        const verifying = admin.domains.verify(id);
        // The verify is now waiting for the stalled resolver; the rotation lands meanwhile.
        await new Promise((r) => setTimeout(r, 300));
        const rotated = await fetch(`${relay.url}/domains/${id}`, {
          method: "PATCH",
          headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
          body: JSON.stringify({ rotate_key: true }),
        });
        expect(rotated.status).toBe(200);
        const late = await verifying;
        expect(late.error).toMatchObject({ statusCode: 409 });
        expect(late.error?.message).toMatch(/changed while this request ran/);
      } finally {
        await doh.mode("normal");
      }
      // The rotation's next key survived the late verify's write.
      const records = (await admin.domains.get(id)).data?.records as DnsRecord[];
      expect(records.filter((r) => r.record === "DKIM").length).toBeGreaterThanOrEqual(2);
    });

    it("survives a resolver that fails or stalls: the status stays, the answer comes in time", async () => {
      const { id } = await verifiedDomain("flaky.example.test");
      for (const mode of ["servfail", "http500", "huge", "slow"] as const) {
        await doh.mode(mode);
        try {
          const res = await admin.domains.verify(id);
          expect(res.error).toBeNull();
        } finally {
          await doh.mode("normal");
        }
        const got = (await admin.domains.get(id)).data as unknown as {
          status: string;
          dkim: { check_error: string };
        };
        expect(got.status).toBe("verified");
        expect(got.dkim.check_error).toMatch(/resolver/);
      }
    });
  },
);
