/**
 * Message sizes are counted as stored (issue 11 item 8): a raw message travels to Upstash as a
 * binary string inside a JSON body, where each 8-bit byte takes two bytes. Through the Workers
 * entry against the real gateway (which enforces Upstash's 10 MB request limit) and the sink.
 */
import { describe, expect, it } from "vitest";
import { bytesToLatin1, storedSize } from "../../src/mail/bytes.ts";
import { redisSkipReason, sinkApi } from "../support/services.ts";
import { call, testEnv, tick, upstashEnv } from "../support/worker.ts";

const sink = sinkApi("plain");
const MiB = 1024 * 1024;
const encoder = new TextEncoder();

/** A raw message of about `size` bytes whose body lines are 76 bytes of `fill`. */
function rawMessage(to: string, size: number, fill: number, headers: string[] = []): Uint8Array {
  const head = encoder.encode(
    [`From: sender@example.com`, `To: ${to}`, "Subject: big", ...headers, "", ""].join("\r\n"),
  );
  const line = new Uint8Array(78).fill(fill);
  line[76] = 13;
  line[77] = 10;
  const lines = Math.ceil((size - head.length) / line.length);
  const out = new Uint8Array(head.length + lines * line.length);
  out.set(head);
  for (let i = 0; i < lines; i++) out.set(line, head.length + i * line.length);
  return out;
}

const rfc822 = { "content-type": "message/rfc822" };

describe("storedSize", () => {
  it("is the UTF-8 length of the JSON string the store request carries, for every byte value", () => {
    for (let b = 0; b < 256; b++) {
      const raw = bytesToLatin1(Uint8Array.of(b, 0x41, b));
      const sent = encoder.encode(JSON.stringify(raw)).length - 2;
      expect(storedSize(raw), `byte 0x${b.toString(16)}`).toBe(sent);
    }
  });
});

describe.skipIf(Boolean(redisSkipReason()))("raw messages on Upstash", () => {
  it("refuses a 6 MiB 8-bit raw message with 413 naming its stored size (it would not fit the store request)", async () => {
    const to = `koi8.${crypto.randomUUID().slice(0, 8)}@example.com`;
    const body = rawMessage(to, 6 * MiB, 0xc1, [
      "MIME-Version: 1.0",
      "Content-Type: text/plain; charset=koi8-r",
      "Content-Transfer-Encoding: 8bit",
    ]);
    const res = await call(upstashEnv(), "POST", "/emails", { body, headers: rfc822 });
    expect(res.status).toBe(413);
    expect(res.body.name).toBe("validation_error");
    const stored = Number(/is (\d+) bytes as stored/.exec(res.body.message)?.[1]);
    expect(stored).toBeGreaterThan(2 * 6 * MiB);
    expect(res.body.message).toMatch(/limit of 7340032 .*8-bit byte counts twice/);
    expect(await sink.messages({ to })).toEqual([]);
  });

  it("accepts and delivers a 6 MiB ASCII raw message", async () => {
    const to = `ascii.${crypto.randomUUID().slice(0, 8)}@example.com`;
    const body = rawMessage(to, 6 * MiB, 0x61);
    const env = upstashEnv();
    const res = await call(env, "POST", "/emails", { body, headers: rfc822 });
    expect(res.status).toBe(200);
    const [got] = await sink.waitFor(1, 60_000, { to });
    expect(got?.rcptTo).toEqual([to]);
    expect(got?.size).toBeGreaterThan(6 * MiB);
    expect((await call(env, "GET", `/emails/${res.body.id}`)).body.last_event).toBe("delivered");
  }, 120_000);

  it("claims and delivers a message at the limit (7 MiB as stored, 50 recipients) within Upstash's 10 MB answer", async () => {
    const tag = crypto.randomUUID().slice(0, 8);
    const rcpts = Array.from({ length: 50 }, (_, i) => `limit.${tag}.${i}@example.com`);
    // Each 78-byte line is stored as 80 (its CRLF is escaped): just under the limit as stored.
    const body = rawMessage(rcpts.join(",\r\n "), Math.floor((7 * MiB * 78) / 80) - 8 * 1024, 0x61);
    expect(storedSize(bytesToLatin1(body))).toBeLessThanOrEqual(7 * MiB);
    expect(storedSize(bytesToLatin1(body))).toBeGreaterThan(7 * MiB - 32 * 1024);
    // Only the scheduled run's claim reads it back: that answer is what must fit.
    const env = upstashEnv({ IMMEDIATE_DELIVERY: "false" });
    const res = await call(env, "POST", "/emails", { body, headers: rfc822 });
    expect(res.status).toBe(200);
    await tick(env);
    const [got] = await sink.waitFor(1, 60_000, { to: `limit.${tag}.` });
    expect(got?.rcptTo).toHaveLength(50);
    expect((await call(env, "GET", `/emails/${res.body.id}`)).body.last_event).toBe("delivered");
  }, 120_000);
});

describe("a key's max_message_bytes", () => {
  it("counts the stored size too: 8-bit bytes twice", async () => {
    const env = testEnv();
    const key = await call(env, "POST", "/api-keys", {
      json: { name: "small", permission: "sending_access", max_message_bytes: 3000 },
    });
    const to = `cap.${crypto.randomUUID().slice(0, 8)}@example.com`;
    const send = (fill: number) =>
      call(env, "POST", "/emails", {
        token: key.body.token,
        body: rawMessage(to, 2000, fill, ["Content-Type: text/plain; charset=koi8-r"]),
        headers: rfc822,
      });
    expect((await send(0x61)).status).toBe(200);
    const eightBit = await send(0xc1);
    expect(eightBit.status).toBe(413);
    expect(eightBit.body.message).toMatch(/bytes as stored, over this API key's limit of 3000/);
  });
});
