/**
 * The DKIM signer (src/dkim/sign.ts) against mailauth's verifier, in Node: a message signed with
 * a key made by the key vault verifies for both algorithms, with folded and odd white space in
 * headers and body; changed bytes (a header, the body, an added From) make it fail. The same
 * signer runs in workerd in test/node/dkim-e2e.test.ts and test/workers/domains.test.ts.
 */
import { dkimVerify } from "mailauth";
import { describe, expect, it } from "vitest";
import {
  type DkimAlgorithm,
  dkimRecordValue,
  newDkimKey,
  openDkimKey,
  sealingKey,
} from "../../src/dkim/key-vault.ts";
import { dkimSign, relaxedBody, relaxedHeader } from "../../src/dkim/sign.ts";

const MESSAGE = [
  "From: Acme <news@acme.test>",
  "To: ann@example.com,",
  "  bob@example.com",
  "Subject:   Hello\t there  ",
  "Date: Tue, 01 Dec 2026 10:00:00 +0000",
  "Message-ID: <1@acme.test>",
  "MIME-Version: 1.0",
  "Content-Type: text/plain; charset=utf-8",
  "",
  "Hello  there.   ",
  "Second line\t",
  "bare LF\nend",
  "",
  "",
].join("\r\n");

async function signed(algorithm: DkimAlgorithm, raw = MESSAGE) {
  const sealing = (await sealingKey({ from: "ADMIN_TOKEN", token: "x".repeat(32) })) as CryptoKey;
  const stored = await newDkimKey("acme.test", algorithm, "sel1", sealing, Date.now());
  const key = await openDkimKey("acme.test", stored, sealing);
  const out = await dkimSign(
    raw,
    { domain: "acme.test", selector: "sel1", algorithm, key },
    Date.now(),
  );
  const record = dkimRecordValue(stored);
  const resolver = async (name: string, type: string) => {
    if (type === "TXT" && name === "sel1._domainkey.acme.test") return [[record]];
    const err = new Error("not found") as Error & { code: string };
    err.code = "ENOTFOUND";
    throw err;
  };
  return { out, resolver, stored };
}

async function verdict(raw: string, resolver: (n: string, t: string) => Promise<string[][]>) {
  const result = await dkimVerify(Buffer.from(raw, "latin1"), { resolver });
  return result.results.map((r: { status: { result: string } }) => r.status.result);
}

describe("DKIM signer", () => {
  it("canonicalizes relaxed as RFC 6376 3.4.2 and 3.4.4 say", () => {
    expect(relaxedHeader("SubJect :  a \r\n\t b  ")).toBe("subject:a b");
    expect(relaxedBody("a  b \r\nc\t\r\n\r\n\r\n")).toBe("a b\r\nc\r\n");
    expect(relaxedBody("\r\n\r\n")).toBe("");
  });

  for (const algorithm of ["rsa-sha256", "ed25519-sha256"] as const) {
    it(`${algorithm}: mailauth verifies the signature; a changed header or body fails it`, async () => {
      const { out, resolver } = await signed(algorithm);
      expect(out.startsWith(`DKIM-Signature: v=1; a=${algorithm}`)).toBe(true);
      expect(out).toMatch(/c=relaxed\/relaxed/);
      expect(out).not.toMatch(/[; ]l=/);
      const field = out.slice(0, out.indexOf("\r\nFrom:")).replace(/\r\n\t/g, "");
      expect(field).toMatch(/h=from:from:subject:date:message-id:to:mime-version:content-type;/);
      expect(out.split("\r\n").every((line) => line.length <= 78)).toBe(true);
      expect(await verdict(out, resolver)).toEqual(["pass"]);
      // Relaxed canonicalization tolerates white space changes, not content changes.
      expect(await verdict(out.replace("Subject:   Hello", "Subject: Hello"), resolver)).toEqual([
        "pass",
      ]);
      // mailauth reports a body hash mismatch as "neutral", a bad signature as "fail".
      expect(await verdict(out.replace("Hello  there.", "Hello there!"), resolver)).toEqual([
        "neutral",
      ]);
      expect(await verdict(out.replace("Subject:   Hello", "Subject: Hullo"), resolver)).toEqual([
        "fail",
      ]);
      // Over-signed From: a second From added on the way breaks the signature.
      const [head, ...rest] = out.split("\r\nFrom: ");
      const twoFroms = `${head}\r\nFrom: ceo@bank.test\r\nFrom: ${rest.join("\r\nFrom: ")}`;
      expect(await verdict(twoFroms, resolver)).not.toEqual(["pass"]);
    });
  }

  it("keeps the sealed key unreadable without the secret, and bound to its domain", async () => {
    const { stored } = await signed("rsa-sha256");
    expect(stored.sealed_private_key).not.toMatch(/PRIVATE KEY|MII/);
    const other = (await sealingKey({
      from: "DKIM_ENCRYPTION_KEY",
      bytes: new Uint8Array(32),
    })) as CryptoKey;
    await expect(openDkimKey("acme.test", stored, other)).rejects.toThrow(/another secret/);
    const right = (await sealingKey({ from: "ADMIN_TOKEN", token: "x".repeat(32) })) as CryptoKey;
    await expect(openDkimKey("evil.test", stored, right)).rejects.toThrow(/another secret/);
  });
});
