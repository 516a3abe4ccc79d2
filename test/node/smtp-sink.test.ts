/**
 * The recording SMTP sink (dev/smtp-sink/) with nodemailer as the client: what it records, the
 * TLS and AUTH it demands, the failures it can be told to produce, and its HTTP control API and
 * inbox page. Each test file starts its own sinks, so nothing here races with other test files.
 */

import { mkdtempSync, rmSync } from "node:fs";
import { connect as netConnect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { fileURLToPath } from "node:url";
import nodemailer from "nodemailer";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  type SinkHttp,
  type SmtpSink,
  startSinkHttp,
  startSmtpSink,
} from "../../dev/smtp-sink/index.ts";
import { makeTestCertificates } from "../../dev/test-ca.ts";
import { services } from "../support/services.ts";

const USER = "relay@example.com";
const PASS = "s3cret pass";

/** A minimal SMTP client for dialogues nodemailer will not have (e.g. AUTH before STARTTLS). */
class Dialogue {
  socket: Socket;
  buffer = "";
  waiting: (() => void) | undefined;
  closed = false;

  constructor(socket: Socket) {
    this.socket = socket;
    socket.setEncoding("utf8");
    socket.on("data", (data: string) => {
      this.buffer += data;
      this.waiting?.();
    });
    socket.on("close", () => {
      this.closed = true;
      this.waiting?.();
    });
  }

  static open(port: number): Promise<Dialogue> {
    return new Promise((resolve, reject) => {
      const socket = netConnect(port, "127.0.0.1", () => resolve(new Dialogue(socket)));
      socket.once("error", reject);
    });
  }

  /** The next complete reply (all its lines), e.g. "250-a\r\n250 b". */
  async reply(): Promise<string> {
    const deadline = Date.now() + 5_000;
    for (;;) {
      const end = /^\d{3} .*\r\n/m.exec(this.buffer);
      if (end) {
        const length = end.index + end[0].length;
        const reply = this.buffer.slice(0, length).trimEnd();
        this.buffer = this.buffer.slice(length);
        return reply;
      }
      if (this.closed) throw new Error(`connection closed; had ${JSON.stringify(this.buffer)}`);
      if (Date.now() > deadline) throw new Error(`no reply; had ${JSON.stringify(this.buffer)}`);
      await new Promise<void>((resolve) => {
        this.waiting = resolve;
        setTimeout(resolve, 100);
      });
    }
  }

  async send(line: string): Promise<string> {
    this.socket.write(`${line}\r\n`);
    return this.reply();
  }

  closedWithin(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      if (this.closed) return resolve(true);
      const timer = setTimeout(() => resolve(false), ms);
      this.socket.once("close", () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }
}

const crlf = (lines: string[]) => `${lines.join("\r\n")}\r\n`;

function rawMessage(subject: string, body = "Hello.") {
  return crlf([
    "From: Sender <sender@example.com>",
    "To: a@example.com",
    `Subject: ${subject}`,
    `Message-ID: <${crypto.randomUUID()}@example.com>`,
    "MIME-Version: 1.0",
    "Content-Type: text/plain; charset=utf-8",
    "Content-Transfer-Encoding: 8bit",
    "",
    body,
  ]);
}

describe("SMTP sink", () => {
  let plain: SmtpSink;
  let starttls: SmtpSink;
  let implicit: SmtpSink;
  let ca: string;

  beforeAll(async () => {
    // The same files global setup made (reused, not regenerated), so the provided CA trusts them.
    const { key, cert } = makeTestCertificates(
      resolve(dirname(fileURLToPath(import.meta.url)), "../../.certs"),
    );
    ca = services().ca;
    plain = await startSmtpSink();
    starttls = await startSmtpSink({
      tls: "starttls",
      key,
      cert,
      auth: { user: USER, pass: PASS },
      requireTls: true,
    });
    implicit = await startSmtpSink({
      tls: "implicit",
      key,
      cert,
      auth: { user: USER, pass: PASS },
    });
  });
  afterEach(async () => {
    for (const sink of [plain, starttls, implicit]) await sink.reset();
  });
  afterAll(async () => {
    await Promise.all([plain, starttls, implicit].map((s) => s?.close()));
  });

  const transport = (sink: SmtpSink, extra: Record<string, unknown> = {}) =>
    nodemailer.createTransport({
      host: "127.0.0.1",
      port: sink.port,
      secure: sink.tls === "implicit",
      requireTLS: sink.tls === "starttls",
      ignoreTLS: sink.tls === "none",
      tls: { ca },
      ...extra,
    });

  it("records a plain delivery with the exact envelope and bytes", async () => {
    const raw = rawMessage("plain ✓", "line one\r\n.leading dot\r\n..two dots\r\nünïcödé body");
    const info = await transport(plain).sendMail({
      envelope: { from: "bounce@example.com", to: ["a@example.com", "b@example.net"] },
      raw,
    });
    expect(info.accepted).toEqual(["a@example.com", "b@example.net"]);
    const [got, ...more] = await plain.waitFor(1);
    expect(more).toEqual([]);
    expect(got).toMatchObject({
      id: 1,
      mailFrom: "bounce@example.com",
      rcptTo: ["a@example.com", "b@example.net"],
      raw,
      size: Buffer.byteLength(raw),
      secure: false,
    });
    expect(got?.authUser).toBeUndefined();
    expect(plain.bytes(1)).toEqual(Buffer.from(raw));
    expect(Date.parse(got?.receivedAt ?? "")).toBeGreaterThan(Date.now() - 10_000);
    expect(plain.url).toBe(`smtp+insecure://127.0.0.1:${plain.port}`);
  });

  it("upgrades with STARTTLS and accepts AUTH PLAIN and AUTH LOGIN", async () => {
    for (const method of ["PLAIN", "LOGIN"]) {
      await transport(starttls, { auth: { user: USER, pass: PASS }, authMethod: method }).sendMail({
        envelope: { from: "s@example.com", to: [`${method.toLowerCase()}@example.com`] },
        raw: rawMessage(method),
      });
    }
    const got = await starttls.waitFor(2);
    expect(got.map((m) => [m.rcptTo[0], m.secure, m.authUser, m.authMethod])).toEqual([
      ["plain@example.com", true, USER, "PLAIN"],
      ["login@example.com", true, USER, "LOGIN"],
    ]);
    expect(starttls.url).toBe(
      `smtp://${encodeURIComponent(USER)}:${encodeURIComponent(PASS)}@127.0.0.1:${starttls.port}`,
    );
  });

  it("speaks implicit TLS with AUTH", async () => {
    await transport(implicit, { auth: { user: USER, pass: PASS } }).sendMail({
      envelope: { from: "s@example.com", to: ["tls@example.com"] },
      raw: rawMessage("implicit"),
    });
    const [got] = await implicit.waitFor(1);
    expect(got).toMatchObject({ rcptTo: ["tls@example.com"], secure: true, authUser: USER });
    expect(implicit.url.startsWith("smtps://")).toBe(true);
  });

  it("refuses AUTH and MAIL before STARTTLS, and a wrong password after it", async () => {
    const d = await Dialogue.open(starttls.port);
    expect(await d.reply()).toMatch(/^220 /);
    const ehlo = await d.send("EHLO client.test");
    for (const ext of ["STARTTLS", "PIPELINING", "8BITMIME", "SMTPUTF8", "SIZE"]) {
      expect(ehlo).toContain(ext);
    }
    const token = Buffer.from(`\0${USER}\0${PASS}`).toString("base64");
    expect(await d.send(`AUTH PLAIN ${token}`)).toMatch(/^538 .*STARTTLS/);
    expect(await d.send("MAIL FROM:<s@example.com>")).toMatch(/^530 /);
    d.socket.destroy();

    const wrong = transport(starttls, { auth: { user: USER, pass: "wrong" } });
    await expect(
      wrong.sendMail({
        envelope: { from: "s@example.com", to: ["x@example.com"] },
        raw: rawMessage("x"),
      }),
    ).rejects.toMatchObject({ responseCode: 535 });
    expect(starttls.messages).toEqual([]);
  });

  it("requires AUTH before MAIL when credentials are configured", async () => {
    await expect(
      transport(implicit).sendMail({
        envelope: { from: "s@example.com", to: ["x@example.com"] },
        raw: rawMessage("no auth"),
      }),
    ).rejects.toMatchObject({ responseCode: 530 });
    expect(implicit.messages).toEqual([]);
  });

  it("rejects one recipient with the given code and accepts the others", async () => {
    plain.rejectRecipient("B@example.com", 550, "5.1.1 No such user");
    const info = await transport(plain).sendMail({
      envelope: { from: "s@example.com", to: ["a@example.com", "b@example.com", "c@example.com"] },
      raw: rawMessage("partial"),
    });
    expect(info.accepted).toEqual(["a@example.com", "c@example.com"]);
    expect(info.rejected).toEqual(["b@example.com"]);
    expect(info.rejectedErrors?.[0]).toMatchObject({ responseCode: 550 });
    expect(info.rejectedErrors?.[0]?.response).toBe("550 5.1.1 No such user");
    const [got] = await plain.waitFor(1);
    expect(got?.rcptTo).toEqual(["a@example.com", "c@example.com"]);
  });

  it("fails DATA with 451 the given number of times, then accepts", async () => {
    plain.failData(451);
    const t = transport(plain);
    const send = () =>
      t.sendMail({
        envelope: { from: "s@example.com", to: ["a@example.com"] },
        raw: rawMessage("451"),
      });
    const error = await send().then(
      () => undefined,
      (e: { responseCode?: number; response?: string }) => e,
    );
    expect(error?.responseCode).toBe(451);
    expect(error?.response).toMatch(/^451 4\.3\.0 /);
    expect(plain.messages).toEqual([]);
    await send();
    expect(await plain.waitFor(1)).toHaveLength(1);
  });

  it("refuses a message over its SIZE limit", async () => {
    const small = await startSmtpSink({ size: 1_000 });
    try {
      const error = await transport(small)
        .sendMail({
          envelope: { from: "s@example.com", to: ["a@example.com"] },
          raw: rawMessage("big", "x".repeat(2_000)),
        })
        .then(
          () => undefined,
          (e: { responseCode?: number }) => e,
        );
      expect(error?.responseCode).toBe(552);
      expect(small.messages).toEqual([]);
    } finally {
      await small.close();
    }
  });

  it("keeps one session id per connection, so reuse is visible", async () => {
    const pooled = transport(plain, { pool: true, maxConnections: 1 });
    for (let i = 0; i < 3; i++) {
      await pooled.sendMail({
        envelope: { from: "s@example.com", to: ["a@example.com"] },
        raw: rawMessage(`reuse ${i}`),
      });
    }
    pooled.close();
    await transport(plain).sendMail({
      envelope: { from: "s@example.com", to: ["a@example.com"] },
      raw: rawMessage("fresh"),
    });
    const got = await plain.waitFor(4);
    expect(new Set(got.slice(0, 3).map((m) => m.sessionId)).size).toBe(1);
    expect(got[3]?.sessionId).not.toBe(got[0]?.sessionId);
  });

  it("goes down (refused, open sessions dropped) and comes back on the same port", async () => {
    const port = plain.port;
    const open = await Dialogue.open(port);
    expect(await open.reply()).toMatch(/^220 /);
    await plain.down();
    expect(await open.closedWithin(2_000)).toBe(true);
    await expect(
      transport(plain).sendMail({
        envelope: { from: "s@example.com", to: ["a@example.com"] },
        raw: rawMessage("down"),
      }),
    ).rejects.toThrow(/ECONNREFUSED/);
    await plain.up();
    expect(plain.port).toBe(port);
    await transport(plain).sendMail({
      envelope: { from: "s@example.com", to: ["a@example.com"] },
      raw: rawMessage("back"),
    });
    expect(await plain.waitFor(1)).toHaveLength(1);
  });

  it("waitFor resolves when mail arrives later and rejects after its timeout", async () => {
    const later = plain.waitFor(1, 5_000);
    await transport(plain).sendMail({
      envelope: { from: "s@example.com", to: ["late@example.com"] },
      raw: rawMessage("later"),
    });
    expect((await later).map((m) => m.rcptTo)).toEqual([["late@example.com"]]);
    await expect(plain.waitFor(2, 200)).rejects.toThrow(/waited 200 ms for 2 message\(s\).*got 1/);
    // With a filter, only matching messages count and come back.
    const mine = plain.waitFor(1, 5_000, { to: "mine-" });
    await transport(plain).sendMail({
      envelope: { from: "s@example.com", to: ["other@example.com", "mine-1@example.com"] },
      raw: rawMessage("mine"),
    });
    expect((await mine).map((m) => m.rcptTo)).toEqual([
      ["other@example.com", "mine-1@example.com"],
    ]);
    await expect(plain.waitFor(2, 100, { to: "mine-" })).rejects.toThrow(/to \*mine-\*.*got 1/);
  });

  it("speaks implicit TLS only to clients that trust the test CA", async () => {
    const handshake = (trusted: string) =>
      new Promise<{ greeting?: string; san?: string; error?: Error }>((done) => {
        const socket = tlsConnect({ host: "127.0.0.1", port: implicit.port, ca: trusted });
        socket.once("data", (d) => {
          done({ greeting: d.toString(), san: socket.getPeerCertificate().subjectaltname });
          socket.destroy();
        });
        socket.once("error", (error) => done({ error }));
      });
    const ok = await handshake(ca);
    expect(ok.greeting).toMatch(/^220 /);
    expect(ok.san).toContain("IP Address:127.0.0.1");
    // NODE_EXTRA_CA_CERTS (set by vitest.config.ts) makes Node trust the test CA by default, so
    // the negative case names another CA explicitly.
    const otherDir = mkdtempSync(join(tmpdir(), "other-ca-"));
    try {
      const refused = await handshake(makeTestCertificates(otherDir).ca);
      expect(refused.error?.message).toMatch(/unable to (get|verify)|self-signed/i);
    } finally {
      rmSync(otherDir, { recursive: true, force: true });
    }
  });
});

describe("SMTP sink HTTP API and inbox page", () => {
  let sink: SmtpSink;
  let http: SinkHttp;
  const send = (raw: string, to = ["a@example.com"]) =>
    nodemailer
      .createTransport({ host: "127.0.0.1", port: sink.port, ignoreTLS: true })
      .sendMail({ envelope: { from: "s@example.com", to }, raw });
  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${http.url}${path}`, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, headers: res.headers, body: await res.text() };
  };

  beforeAll(async () => {
    sink = await startSmtpSink();
    http = await startSinkHttp(sink, { title: "Sink under test" });
  });
  afterEach(async () => {
    await sink.reset();
  });
  afterAll(async () => {
    await http?.close();
    await sink?.close();
  });

  it("lists, waits for and clears messages over JSON", async () => {
    expect(JSON.parse((await api("GET", "/api/messages")).body)).toEqual([]);
    const waiting = api("GET", "/api/messages?wait=1&timeout=5000");
    await send(rawMessage("over http"));
    const waited = await waiting;
    expect(waited.status).toBe(200);
    expect(JSON.parse(waited.body)).toMatchObject([{ id: 1, rcptTo: ["a@example.com"] }]);
    const timedOut = await api("GET", "/api/messages?wait=5&timeout=100");
    expect(timedOut.status).toBe(408);
    expect(JSON.parse(timedOut.body).messages).toHaveLength(1);
    expect(JSON.parse((await api("GET", "/api/messages?to=nobody")).body)).toEqual([]);
    expect(JSON.parse((await api("GET", "/api/messages?to=a@example")).body)).toHaveLength(1);
    expect((await api("GET", "/api/messages?wait=x")).status).toBe(400);
    expect((await api("DELETE", "/api/messages")).status).toBe(200);
    expect(sink.messages).toEqual([]);
  });

  it("sets recipient rejections and DATA failures, and validates them", async () => {
    expect(
      (await api("POST", "/api/reject-recipient", { address: "b@example.com", code: 451 })).status,
    ).toBe(200);
    expect(
      (await api("POST", "/api/fail-data", { code: 554, text: "5.6.0 No", times: 1 })).status,
    ).toBe(200);
    const error = await send(rawMessage("x"), ["a@example.com", "b@example.com"]).then(
      () => undefined,
      (e: { responseCode?: number }) => e,
    );
    expect(error?.responseCode).toBe(554);
    const info = await send(rawMessage("y"), ["a@example.com", "b@example.com"]);
    expect(info.rejectedErrors?.[0]?.response).toMatch(/^451 4\.3\.0 <b@example\.com> rejected/);
    expect(sink.messages.map((m) => m.rcptTo)).toEqual([["a@example.com"]]);

    const bad = await api("POST", "/api/fail-data", { code: 250 });
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body).error).toMatch(/400-599/);
    expect((await api("POST", "/api/reject-recipient", { code: 550 })).status).toBe(400);
    expect((await api("GET", "/api/nothing")).status).toBe(404);
  });

  it("takes the sink down and up", async () => {
    expect((await api("POST", "/api/down")).status).toBe(200);
    await expect(send(rawMessage("down"))).rejects.toThrow(/ECONNREFUSED/);
    expect((await api("POST", "/api/up")).status).toBe(200);
    await send(rawMessage("up"));
    expect(sink.messages).toHaveLength(1);
  });

  it("shows an inbox page that escapes what senders wrote and sandboxes their HTML", async () => {
    const raw = crlf([
      "From: =?UTF-8?B?w4lsaXNl?= <elise@example.com>",
      "To: ann@example.com",
      "Subject: <script>alert(1)</script> & more",
      "MIME-Version: 1.0",
      'Content-Type: multipart/alternative; boundary="b1"',
      "",
      "--b1",
      "Content-Type: text/plain; charset=utf-8",
      "",
      "Plain <b>text</b>",
      "--b1",
      "Content-Type: text/html; charset=utf-8",
      "",
      '<p onclick="x()">Hi "there"</p><script>steal()</script>',
      "--b1--",
    ]);
    await send(raw, ["ann@example.com"]);

    const list = await api("GET", "/");
    expect(list.status).toBe(200);
    expect(list.headers.get("content-type")).toMatch(/^text\/html/);
    expect(list.headers.get("content-security-policy")).toContain("default-src 'none'");
    expect(list.body).toContain('<meta http-equiv="refresh" content="2">');
    expect(list.body).toContain("Sink under test");
    expect(list.body).toContain("&lt;script&gt;alert(1)&lt;/script&gt; &amp; more");
    expect(list.body).toContain("Élise &lt;elise@example.com&gt;");
    expect(list.body).not.toContain("<script");
    // Ids keep counting across clears, so a link never points at a different message.
    const id = sink.messages[0]?.id;
    expect(list.body).toContain(`href="/messages/${id}"`);

    const detail = await api("GET", `/messages/${id}`);
    expect(detail.status).toBe(200);
    expect(detail.body).not.toContain("<script");
    expect(detail.body).toContain(
      '<iframe sandbox srcdoc="&lt;p onclick=&quot;x()&quot;&gt;Hi &quot;there&quot;&lt;/p&gt;&lt;script&gt;steal()&lt;/script&gt;',
    );
    expect(detail.body).toContain("Plain &lt;b&gt;text&lt;/b&gt;");
    expect(detail.body).toContain("ann@example.com");

    const source = await api("GET", `/messages/${id}/raw`);
    expect(source.headers.get("content-type")).toMatch(/^text\/plain/);
    expect(source.body).toBe(raw);

    expect((await api("GET", "/messages/99999")).status).toBe(404);
    const cleared = await fetch(`${http.url}/clear`, { method: "POST", redirect: "manual" });
    expect(cleared.status).toBe(303);
    expect(sink.messages).toEqual([]);
  });
});
