/**
 * Domains and DKIM inside workerd (the Workers test project), on the in-memory store and on real
 * Redis through the gateway: a domain made and verified through the Worker entry (DOH_URL at the
 * DoH stand-in) signs what reaches the SMTP sink, with both algorithms, and the signature checks
 * out with WebCrypto's verify against the public key the record publishes, over the signed
 * header data rebuilt from the received message. Also: who may manage domains, the refusals
 * (bad name, a Resend option the relay lacks), and the Upstash commands a warm send costs for the domain lookup (0).
 */
import { describe, expect, it } from "vitest";
import { relaxedHeader } from "../../src/dkim/sign.ts";
import { dohApi, gatewayApi, redisSkipReason, services, sinkApi } from "../support/services.ts";
import { call, email, type TestEnv, testEnv, upstashEnv } from "../support/worker.ts";

const sink = sinkApi("plain");
const doh = dohApi();

function fromB64(text: string): Uint8Array<ArrayBuffer> {
  const bin = atob(text);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/** Verifies the top DKIM-Signature's b= with WebCrypto (header hash only; mailauth does the rest in Node). */
async function checkSignature(raw: string, record: string): Promise<boolean> {
  const header = raw.slice(0, raw.indexOf("\r\n\r\n"));
  const fields: string[] = [];
  for (const line of header.split("\r\n")) {
    if (/^[ \t]/.test(line)) fields[fields.length - 1] += `\r\n${line}`;
    else fields.push(line);
  }
  const sig = fields[0] as string;
  const tags = new Map(
    relaxedHeader(sig)
      .slice("dkim-signature:".length)
      .split(";")
      .map((t) => t.trim().split(/=(.*)/s).slice(0, 2) as [string, string]),
  );
  const names = (tags.get("h") ?? "").replace(/\s/g, "").split(":");
  const rest = fields.slice(1);
  const used = new Set<number>();
  const data: string[] = [];
  for (const name of names) {
    for (let i = rest.length - 1; i >= 0; i--) {
      if (used.has(i) || !(rest[i] as string).toLowerCase().startsWith(`${name}:`)) continue;
      used.add(i);
      data.push(`${relaxedHeader(rest[i] as string)}\r\n`);
      break;
    }
  }
  data.push(relaxedHeader(sig.replace(/b=[^;]*$/s, "b=")));
  const bytes = new TextEncoder().encode(data.join(""));
  const p = fromB64(/p=([A-Za-z0-9+/=]+)/.exec(record)?.[1] ?? "");
  const b = fromB64((tags.get("b") ?? "").replace(/\s/g, ""));
  if (tags.get("a") === "rsa-sha256") {
    const key = await crypto.subtle.importKey(
      "spki",
      p,
      { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
      false,
      ["verify"],
    );
    return crypto.subtle.verify("RSASSA-PKCS1-v1_5", key, b, bytes);
  }
  const key = await crypto.subtle.importKey("raw", p, { name: "Ed25519" }, false, ["verify"]);
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return crypto.subtle.verify("Ed25519", key, b, hash);
}

function suite(name: string, makeEnv: () => TestEnv) {
  describe(name, () => {
    for (const algorithm of ["rsa-sha256", "ed25519-sha256"]) {
      it(`${algorithm}: signs a verified domain's messages in workerd`, async () => {
        const env = makeEnv();
        const domain = `${crypto.randomUUID().slice(0, 8)}.workerd.test`;
        const created = await call(env, "POST", "/domains", {
          json: { name: domain, dkim_algorithm: algorithm },
        });
        expect(created.status).toBe(201);
        const dkim = created.body.records.find((r: { record: string }) => r.record === "DKIM");
        await doh.publish(dkim.name, [dkim.value]);
        expect((await call(env, "POST", `/domains/${created.body.id}/verify`)).status).toBe(200);
        const to = `dkim-${crypto.randomUUID()}@example.com`;
        const sent = await call(env, "POST", "/emails", {
          json: email({ from: `news@${domain}`, to: [to] }),
        });
        expect(sent.status).toBe(200);
        const [received] = await sink.waitFor(1, 10_000, { to });
        const raw = received?.raw ?? "";
        expect(raw).toMatch(new RegExp(`^DKIM-Signature: v=1; a=${algorithm};`));
        expect(await checkSignature(raw, dkim.value)).toBe(true);
        expect(
          await checkSignature(raw.replace("Subject: Hello", "Subject: Hellp"), dkim.value),
        ).toBe(false);
      });
    }

    it("gives a name to exactly one of several creates racing for it; a removed name is free again", async () => {
      const env = makeEnv();
      const domain = `race-${crypto.randomUUID().slice(0, 8)}.test`;
      const racers = await Promise.all(
        [1, 2, 3, 4].map(() => call(env, "POST", "/domains", { json: { name: domain } })),
      );
      const won = racers.filter((r) => r.status === 201);
      expect(won).toHaveLength(1);
      for (const lost of racers.filter((r) => r.status !== 201)) {
        expect(lost.status).toBe(409);
        expect(lost.body.message).toMatch(/^name: /);
      }
      const listed = (await call(env, "GET", "/domains?limit=100")).body.data;
      expect(listed.filter((d: { name: string }) => d.name === domain)).toHaveLength(1);
      const id = won[0]?.body.id as string;
      expect((await call(env, "DELETE", `/domains/${id}`)).status).toBe(200);
      expect((await call(env, "POST", "/domains", { json: { name: domain } })).status).toBe(201);
    });

    it("manages domains with full access only, and names the bad field", async () => {
      const env = makeEnv();
      const key = await call(env, "POST", "/api-keys", {
        json: { name: "s", permission: "sending_access" },
      });
      const refused = await call(env, "GET", "/domains", { token: key.body.token });
      expect(refused.status).toBe(401);
      const bad = await call(env, "POST", "/domains", { json: { name: "-bad-.test" } });
      expect(bad.status).toBe(422);
      expect(bad.body.message).toMatch(/name/);
      const tracking = await call(env, "POST", "/domains", {
        json: { name: "ok.test", click_tracking: true },
      });
      expect(tracking.status).toBe(422);
      expect(tracking.body.message).toMatch(/click_tracking/);
      const missing = await call(env, "GET", "/domains/00000000-0000-4000-8000-000000000000");
      expect(missing.status).toBe(404);
    });
  });
}

suite("domains (memory store)", () => testEnv({ DOH_URL: services().doh.url }));

const skip = redisSkipReason();
describe.skipIf(Boolean(skip))(`domains on Upstash${skip ? ` (skipped: ${skip})` : ""}`, () => {
  suite("domains (Upstash)", () => upstashEnv({ DOH_URL: services().doh.url }));

  it("costs no Upstash command for the domain lookup on a warm send", async () => {
    const env = upstashEnv({ DOH_URL: services().doh.url, IMMEDIATE_DELIVERY: "false" });
    const prefix = env.REDIS_KEY_PREFIX as string;
    const gateway = gatewayApi();
    const log = async () =>
      (await gateway.commandLog()).filter((c) => c.join(" ").includes(`${prefix}rec:domain`));
    const send = () =>
      call(env, "POST", "/emails", {
        json: email({ to: [`w-${crypto.randomUUID()}@example.com`] }),
      });
    // The first send in the isolate reads the domain list once (the check can see the command)...
    const cold = (await log()).length;
    await send();
    const before = (await log()).length;
    expect(before - cold).toBe(1);
    // ...and the next one, within KEY_CACHE_SECONDS, reads nothing.
    await send();
    expect((await log()).length - before).toBe(0);
  });
});
