/** Composing the stored message from a JSON request, inside workerd (nodemailer's MailComposer
 * under nodejs_compat), checked by parsing the result back with postal-mime. */
import PostalMime from "postal-mime";
import { describe, expect, it } from "vitest";
import { latin1ToBytes } from "../../src/mail/bytes.ts";
import { composeMessage } from "../../src/mail/compose.ts";

const limits = { maxMessageBytes: 1_000_000, maxRecipients: 50 };
const ctx = {
  id: "11111111-2222-4333-8444-555555555555",
  keyId: "k",
  now: Date.UTC(2026, 10, 28, 9, 0, 0),
  limits,
};

describe("composeMessage", () => {
  it("puts every recipient in the envelope and no Bcc in the headers", async () => {
    const { message, raw } = await composeMessage(
      {
        from: "Ann <ann@example.com>",
        to: ["b@example.com", "B@Example.com"],
        cc: "c@example.com",
        bcc: ["d@example.com"],
        subject: "s",
        text: "t",
      },
      ctx,
    );
    expect(message.envelope).toEqual({
      from: "ann@example.com",
      to: ["b@example.com", "c@example.com", "d@example.com"],
    });
    expect(raw).not.toMatch(/^bcc:/im);
    expect(raw).not.toContain("d@example.com");
  });

  it("fixes Message-ID and Date at acceptance", async () => {
    const { message, raw } = await composeMessage(
      { from: "a@example.com", to: "b@example.com", subject: "s", text: "t" },
      ctx,
    );
    expect(message.messageId).toBe(`<${ctx.id}@example.com>`);
    const parsed = await PostalMime.parse(latin1ToBytes(raw));
    expect(parsed.messageId).toBe(message.messageId);
    expect(new Date(parsed.date ?? "").getTime()).toBe(ctx.now);
  });

  it("encodes non-ASCII subjects and names and keeps header lines short", async () => {
    const subject = `Grüße — ${"é".repeat(200)}`;
    const { raw } = await composeMessage(
      { from: "Zoë Ünal <z@example.com>", to: "b@example.com", subject, html: "<p>x</p>" },
      ctx,
    );
    const header = raw.slice(0, raw.indexOf("\r\n\r\n"));
    expect(header).toMatch(/^Subject: =\?UTF-8\?/m);
    for (const line of header.split("\r\n")) expect(line.length).toBeLessThanOrEqual(998);
    const parsed = await PostalMime.parse(latin1ToBytes(raw));
    expect(parsed.subject).toBe(subject);
    expect(parsed.from?.name).toBe("Zoë Ünal");
  });

  it("attaches files, inline ones by content id", async () => {
    const { raw } = await composeMessage(
      {
        from: "a@example.com",
        to: "b@example.com",
        subject: "s",
        html: '<img src="cid:logo">',
        attachments: [
          {
            filename: "logo.png",
            content: btoa("PNGDATA"),
            content_type: "image/png",
            content_id: "logo",
          },
          { filename: "notes.txt", content: btoa("hello") },
        ],
      },
      ctx,
    );
    const parsed = await PostalMime.parse(latin1ToBytes(raw));
    const byName = Object.fromEntries(parsed.attachments.map((a) => [a.filename, a]));
    expect(byName["logo.png"]?.contentId).toBe("<logo>");
    expect(byName["logo.png"]?.disposition).toBe("inline");
    expect(new TextDecoder().decode(byName["notes.txt"]?.content as ArrayBuffer)).toBe("hello");
  });

  it("puts internationalised domains into the envelope as punycode", async () => {
    const { message } = await composeMessage(
      { from: "a@bücher.example", to: "b@münchen.example", subject: "s", text: "t" },
      ctx,
    );
    expect(message.envelope).toEqual({
      from: "a@xn--bcher-kva.example",
      to: ["b@xn--mnchen-3ya.example"],
    });
  });

  it("refuses a non-ASCII local part unless the smart host has SMTPUTF8", async () => {
    const req = { from: "a@example.com", to: "jörg@example.com", subject: "s", text: "t" };
    await expect(composeMessage(req, ctx)).rejects.toThrow(/^to\[0\]: .*SMTPUTF8/);
    const { message } = await composeMessage(req, {
      ...ctx,
      limits: { ...limits, smtpUtf8: true },
    });
    expect(message.envelope.to).toEqual(["jörg@example.com"]);
  });

  it("refuses bidirectional controls in a display name", async () => {
    await expect(
      composeMessage(
        { from: "Bank \u202eknab <a@example.com>", to: "b@example.com", subject: "s", text: "t" },
        ctx,
      ),
    ).rejects.toThrow(/^from: must not contain bidirectional/);
  });
});
