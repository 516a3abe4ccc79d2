/**
 * The `cloudflare:sockets` shim (src/runtime/deno-sockets.ts), spoken to real SMTP servers by hand:
 * the parts of the Socket API that worker-mailer relies on, and TLS verification in both TLS modes.
 * This process must trust the test CA (`--cert`), as test/node/deno.test.ts arranges.
 */

// Through deno.json's import map, as worker-mailer's own import is.
import { connect, type Socket } from "cloudflare:sockets";
import assert from "node:assert/strict";
import { services } from "./support.ts";

/** Reads one SMTP reply (its last line starts with "ddd "). */
async function reply(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<string> {
  const decoder = new TextDecoder();
  let text = "";
  while (!/(^|\r\n)\d{3} [^\r\n]*\r\n$/.test(text)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the stream ended after ${JSON.stringify(text)}`);
    text += decoder.decode(value, { stream: true });
  }
  return text;
}

async function command(socket: Socket, line: string): Promise<string> {
  const writer = socket.writable.getWriter();
  await writer.write(new TextEncoder().encode(`${line}\r\n`));
  writer.releaseLock();
  const reader = socket.readable.getReader();
  try {
    return await reply(reader);
  } finally {
    reader.releaseLock();
  }
}

async function greeting(socket: Socket): Promise<string> {
  const reader = socket.readable.getReader();
  try {
    return await reply(reader);
  } finally {
    reader.releaseLock();
  }
}

Deno.test("plain: opened names both ends; the server's close ends the stream and the socket", async () => {
  const socket = connect(`127.0.0.1:${services().sinks.plain.port}`);
  const info = await socket.opened;
  assert.equal(info.remoteAddress, `127.0.0.1:${services().sinks.plain.port}`);
  assert.match(info.localAddress ?? "", /^127\.0\.0\.1:\d+$/);
  assert.match(await greeting(socket), /^220 /);
  assert.match(await command(socket, "QUIT"), /^221 /);
  const reader = socket.readable.getReader();
  assert.equal((await reader.read()).done, true);
  await socket.closed;
});

Deno.test("starttls: upgrade after 220, EHLO again over TLS, close()", async () => {
  const { port } = services().sinks.starttls;
  const plain = connect({ hostname: "127.0.0.1", port }, { secureTransport: "starttls" });
  assert.match(await greeting(plain), /^220 /);
  const before = await command(plain, "EHLO relay.deno.test");
  assert.match(before, /STARTTLS/);
  assert.match(await command(plain, "STARTTLS"), /^220 /);
  const tls = plain.startTls();
  assert.equal(tls.upgraded, true);
  assert.throws(() => plain.startTls(), /already/);
  // The plain socket handed its connection over: using it now would corrupt the TLS session.
  await assert.rejects(plain.writable.getWriter().write(new Uint8Array([13, 10])), /upgraded/);
  assert.match((await tls.opened).remoteAddress ?? "", /^127\.0\.0\.1:/);
  const after = await command(tls, "EHLO relay.deno.test");
  assert.match(after, /AUTH/);
  assert.doesNotMatch(after, /STARTTLS/, "the server sees a TLS session");
  await tls.close();
  await tls.closed;
  await plain.closed;
});

Deno.test("starttls: a certificate for another name fails the upgrade", async () => {
  const { port } = services().sinks.starttls;
  const plain = connect({ hostname: "127.0.0.1", port }, { secureTransport: "starttls" });
  await greeting(plain);
  await command(plain, "EHLO relay.deno.test");
  await command(plain, "STARTTLS");
  const tls = plain.startTls({ expectedServerHostname: "smtp.example.com" });
  await assert.rejects(tls.opened, /certificate|name/i);
  await assert.rejects(tls.closed);
});

Deno.test("on: TLS from the first byte", async () => {
  const socket = connect(`127.0.0.1:${services().sinks.implicit.port}`, { secureTransport: "on" });
  assert.match(await greeting(socket), /^220 /);
  assert.match(await command(socket, "EHLO relay.deno.test"), /AUTH/);
  await socket.close();
});

Deno.test("a refused connection rejects opened and closed, and nothing goes unhandled", async () => {
  // A port that was free a moment ago: listen, note it, stop listening.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  const socket = connect({ hostname: "127.0.0.1", port });
  await assert.rejects(socket.opened, /refused/i);
  await assert.rejects(socket.closed, /refused/i);
});

Deno.test("startTls() needs a socket opened for it", () => {
  const socket = connect(`127.0.0.1:${services().sinks.implicit.port}`, { secureTransport: "on" });
  assert.throws(() => socket.startTls(), /secureTransport: "starttls"/);
  return socket.close();
});
