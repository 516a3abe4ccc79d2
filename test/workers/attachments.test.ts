/**
 * resend.emails.attachments.list/get and the signed download links: parsed from the stored MIME,
 * stable ids, a sending key sees only its own emails' attachments, downloads are always
 * downloads (never rendered), and a tampered or expired link is refused.
 */
import { beforeEach, describe, expect, it } from "vitest";
import { DOWNLOAD_URL_TTL_SECONDS } from "../../src/attachments.ts";
import { loadConfig } from "../../src/config.ts";
import { createApp } from "../../src/http/app.ts";
import { silentLogger } from "../../src/log.ts";
import { createRelay } from "../../src/runtime/compose.ts";
import { sdk } from "../support/sdk.ts";
import { ADMIN, call, email, type TestEnv, testEnv, upstashEnv } from "../support/worker.ts";

const pdf = new Uint8Array(3000).map((_, i) => (i * 7) % 256);
const b64 = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes));
const html = "<script>alert(document.cookie)</script>";

const withAttachments = () =>
  email({
    html: '<p>See <img src="cid:logo"></p>',
    attachments: [
      { filename: "invoice.pdf", content: b64(pdf), content_type: "application/pdf" },
      { filename: "logo.png", content: b64(new Uint8Array([137, 80, 78, 71])), content_id: "logo" },
      { filename: 'évil "name".html', content: btoa(html), content_type: "text/html" },
    ],
  });

/** The same string with its last character changed (never to itself). */
const flipLast = (text: string) => `${text.slice(0, -1)}${text.endsWith("A") ? "B" : "A"}`;

const byName = <T extends { filename?: string }>(list: T[], name: string) =>
  list.find((a) => a.filename === name);

async function sendingKey(env: TestEnv): Promise<string> {
  const res = await call(env, "POST", "/api-keys", {
    json: { name: "s", permission: "sending_access" },
  });
  return res.body.token;
}

for (const [driver, makeEnv] of [
  ["memory", testEnv],
  ["upstash", upstashEnv],
] as const) {
  describe(`attachments (${driver})`, () => {
    let env: TestEnv;
    let token: string;
    let emailId: string;
    beforeEach(async () => {
      env = makeEnv();
      token = await sendingKey(env);
      const sent = await call(env, "POST", "/emails", { token, json: withAttachments() });
      expect(sent.status).toBe(200);
      emailId = sent.body.id;
    });

    it("lists them with resend.emails.attachments.list, in Resend's shape, with stable ids", async () => {
      const res = await sdk(env, token).emails.attachments.list({ emailId });
      expect(res.error).toBeNull();
      expect(res.data?.object).toBe("list");
      expect(res.data?.has_more).toBe(false);
      const data = res.data?.data ?? [];
      // In message order: MailComposer puts the inline image with the HTML, ahead of the others.
      expect(data.map((a) => a.filename).sort()).toEqual([
        "invoice.pdf",
        "logo.png",
        'évil "name".html',
      ]);
      expect(byName(data, "invoice.pdf")).toMatchObject({
        size: pdf.byteLength,
        content_type: "application/pdf",
        content_disposition: "attachment",
      });
      expect(byName(data, "logo.png")).toMatchObject({
        content_disposition: "inline",
        content_id: "logo",
      });
      for (const a of data) {
        expect(a.id).toMatch(/^[0-9a-f-]{36}$/);
        expect(a.download_url).toMatch(/^https:\/\/relay\.test\/attachments\/download\?/);
        const left = Date.parse(a.expires_at) - Date.now();
        expect(left).toBeGreaterThan((DOWNLOAD_URL_TTL_SECONDS - 60) * 1000);
        expect(left).toBeLessThanOrEqual(DOWNLOAD_URL_TTL_SECONDS * 1000);
      }
      const again = await sdk(env).emails.attachments.list({ emailId });
      expect(again.data?.data.map((a) => a.id)).toEqual(data.map((a) => a.id));
    });

    it("pages with limit and after/before", async () => {
      const client = sdk(env, token);
      const first = await client.emails.attachments.list({ emailId, limit: 2 });
      expect(first.data?.has_more).toBe(true);
      expect(first.data?.data).toHaveLength(2);
      const rest = await client.emails.attachments.list({
        emailId,
        limit: 2,
        after: first.data?.data[1]?.id ?? "",
      });
      expect(rest.data?.has_more).toBe(false);
      expect(rest.data?.data).toHaveLength(1);
      expect(rest.data?.data[0]?.id).toBe(
        (await client.emails.attachments.list({ emailId })).data?.data[2]?.id,
      );
      const back = await client.emails.attachments.list({
        emailId,
        before: rest.data?.data[0]?.id ?? "",
      });
      expect(back.data?.data.map((a) => a.id)).toEqual(first.data?.data.map((a) => a.id));
      const bad = await client.emails.attachments.list({ emailId, limit: 101 });
      expect(bad.error?.statusCode).toBe(422);
      expect(bad.error?.message).toMatch(/^limit: /);
    });

    it("gets one with resend.emails.attachments.get, and downloads its exact bytes", async () => {
      const list = await sdk(env, token).emails.attachments.list({ emailId });
      const id = byName(list.data?.data ?? [], "invoice.pdf")?.id ?? "";
      const got = await sdk(env, token).emails.attachments.get({ emailId, id });
      expect(got.error).toBeNull();
      expect(got.data).toMatchObject({ object: "attachment", id, filename: "invoice.pdf" });
      const res = await fetch(got.data?.download_url ?? "");
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("application/pdf");
      expect(res.headers.get("content-disposition")).toBe(
        `attachment; filename="invoice.pdf"; filename*=UTF-8''invoice.pdf`,
      );
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      expect(new Uint8Array(await res.arrayBuffer())).toEqual(pdf);
    });

    it("serves HTML as a download, sandboxed, with a safe file name", async () => {
      const list = await sdk(env, token).emails.attachments.list({ emailId });
      const res = await fetch(
        byName(list.data?.data ?? [], 'évil "name".html')?.download_url ?? "",
      );
      expect(res.status).toBe(200);
      expect(res.headers.get("content-disposition")).toBe(
        `attachment; filename="_vil _name_.html"; filename*=UTF-8''%C3%A9vil%20%22name%22.html`,
      );
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      expect(res.headers.get("content-security-policy")).toContain("sandbox");
      expect(await res.text()).toBe(html);
    });

    it("refuses a tampered link with 403, reading nothing", async () => {
      const list = await sdk(env, token).emails.attachments.list({ emailId });
      const url = new URL(list.data?.data[0]?.download_url ?? "");
      const other = list.data?.data[1]?.id ?? "";
      const tamper = (name: string, value: string | null) => {
        const u = new URL(url);
        if (value === null) u.searchParams.delete(name);
        else u.searchParams.set(name, value);
        return u.toString();
      };
      const expires = Number(url.searchParams.get("expires"));
      for (const bad of [
        tamper("attachment", other),
        tamper("email", crypto.randomUUID()),
        tamper("expires", String(expires + 3600)),
        tamper("signature", flipLast(url.searchParams.get("signature") ?? "")),
        tamper("signature", ""),
        tamper("signature", null),
        tamper("expires", "soon"),
      ]) {
        const res = await fetch(bad);
        expect(res.status, bad).toBe(403);
        expect(((await res.json()) as { name: string }).name).toBe("invalid_signature");
      }
    });

    it("hides another key's email: 404 for its attachments, as for the email", async () => {
      const other = await sendingKey(env);
      const listed = await sdk(env, other).emails.attachments.list({ emailId });
      expect(listed.error?.statusCode).toBe(404);
      const own = await sdk(env, token).emails.attachments.list({ emailId });
      const got = await sdk(env, other).emails.attachments.get({
        emailId,
        id: own.data?.data[0]?.id ?? "",
      });
      expect(got.error?.statusCode).toBe(404);
      // A full_access key reads every email's, as it reads every email.
      expect((await sdk(env).emails.attachments.list({ emailId })).data?.data).toHaveLength(3);
    });

    it("answers 404 for an unknown attachment id or email, and an empty list without attachments", async () => {
      const client = sdk(env, token);
      const unknown = await client.emails.attachments.get({ emailId, id: crypto.randomUUID() });
      expect(unknown.error?.statusCode).toBe(404);
      const noEmail = await client.emails.attachments.list({ emailId: crypto.randomUUID() });
      expect(noEmail.error?.statusCode).toBe(404);
      const notUuid = await client.emails.attachments.list({ emailId: "not-an-id" });
      expect(notUuid.error?.statusCode).toBe(404);
      const plain = await call(env, "POST", "/emails", { token, json: email() });
      const none = await client.emails.attachments.list({ emailId: plain.body.id });
      expect(none.data).toEqual({ object: "list", has_more: false, data: [] });
    });

    it("needs an API key for the list, and none for a signed link", async () => {
      const res = await call(env, "GET", `/emails/${emailId}/attachments`, { token: null });
      expect(res.status).toBe(401);
    });
  });
}

describe("download link expiry (injected clock)", () => {
  it("works until expires_at and is 403 from then on; a fresh get makes a new link", async () => {
    const clock = { t: Date.now() };
    const relay = createRelay(loadConfig({ ADMIN_TOKEN: ADMIN, LOG_LEVEL: "error" }), {
      log: silentLogger,
      now: () => clock.t,
    });
    const app = createApp({ relay: () => relay, background: () => {}, clientIp: () => undefined });
    const authorization = `Bearer ${ADMIN}`;
    const sent = await app.request("https://relay.test/emails", {
      method: "POST",
      headers: { authorization, "content-type": "application/json" },
      body: JSON.stringify(withAttachments()),
    });
    const { id } = (await sent.json()) as { id: string };
    const list = await app.request(`https://relay.test/emails/${id}/attachments`, {
      headers: { authorization },
    });
    const first = ((await list.json()) as { data: { download_url: string; expires_at: string }[] })
      .data[0];
    const url = first?.download_url ?? "";
    expect(Date.parse(first?.expires_at ?? "")).toBe(
      Math.floor(clock.t / 1000) * 1000 + DOWNLOAD_URL_TTL_SECONDS * 1000,
    );
    clock.t += (DOWNLOAD_URL_TTL_SECONDS - 1) * 1000;
    expect((await app.request(url)).status).toBe(200);
    clock.t += 1000;
    const expired = await app.request(url);
    expect(expired.status).toBe(403);
    expect(((await expired.json()) as { message: string }).message).toMatch(/expired/);
  });
});
