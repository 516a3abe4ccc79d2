/**
 * DKIM signing (RFC 6376; ed25519-sha256 from RFC 8463) of a stored message: relaxed/relaxed
 * canonicalization written out here, the signature made with WebCrypto (RSASSA-PKCS1-v1_5 with
 * SHA-256, or Ed25519 over the SHA-256 of the header data as RFC 8463 says).
 *
 * Why not a library: mailauth's RSA signer fails in workerd ("Unknown digest: rsa-sha256"), and
 * nodemailer's signer rides on node:crypto streams, which the Workers compatibility layer
 * provides but Deno and Workers could change under us; WebCrypto is the one API all three
 * runtimes implement natively, for both algorithms. The canonicalizer is small and its output is
 * checked by mailauth's verifier in the tests.
 *
 * What is signed: the headers RFC 6376 section 5.4.1 recommends that the message has, every
 * instance of each, plus one more From than there is (over-signing: a From added on the way
 * breaks the signature instead of being shown). No l= (a body that grows must fail) and no x=
 * (a message may wait in the queue for days and must still verify when it arrives).
 */
import { latin1ToBytes } from "../mail/bytes.ts";
import { type DkimAlgorithm, toBase64 } from "./key-vault.ts";

/** Lower case, in the order they go into h= (the order does not matter to a verifier). */
export const SIGNED_HEADERS = [
  "from",
  "sender",
  "reply-to",
  "subject",
  "date",
  "message-id",
  "to",
  "cc",
  "mime-version",
  "content-type",
  "content-transfer-encoding",
  "content-id",
  "content-description",
  "in-reply-to",
  "references",
  "list-id",
  "list-help",
  "list-unsubscribe",
  "list-unsubscribe-post",
  "list-subscribe",
  "list-post",
  "list-owner",
  "list-archive",
] as const;

export interface DkimSigner {
  domain: string;
  selector: string;
  algorithm: DkimAlgorithm;
  key: CryptoKey;
}

/** Splits at the blank line that ends the header section (CRLF line ends, as stored). */
function split(raw: string): { header: string; body: string } {
  const at = raw.indexOf("\r\n\r\n");
  if (at < 0) return { header: raw.endsWith("\r\n") ? raw.slice(0, -2) : raw, body: "" };
  return { header: raw.slice(0, at), body: raw.slice(at + 4) };
}

/** Each header field with its continuation lines, as it stands. */
function fields(header: string): string[] {
  const out: string[] = [];
  for (const line of header.split("\r\n")) {
    if (/^[ \t]/.test(line) && out.length > 0) out[out.length - 1] += `\r\n${line}`;
    else if (line !== "") out.push(line);
  }
  return out;
}

/** RFC 6376 3.4.2: name in lower case, unfolded, white space runs as one space, none at the ends. */
export function relaxedHeader(field: string): string {
  const colon = field.indexOf(":");
  const name = field.slice(0, colon).trimEnd().toLowerCase();
  const value = field
    .slice(colon + 1)
    .replace(/\r\n(?=[ \t])/g, "")
    .replace(/[ \t]+/g, " ")
    .trim();
  return `${name}:${value}`;
}

/** RFC 6376 3.4.4: white space runs as one space, none at line ends, no empty lines at the end. */
export function relaxedBody(body: string): string {
  const lines = body.split("\r\n").map((l) => l.replace(/[ \t]+/g, " ").replace(/ $/, ""));
  while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  return lines.length === 0 ? "" : `${lines.join("\r\n")}\r\n`;
}

const digest = async (data: Uint8Array<ArrayBuffer> | string) =>
  new Uint8Array(
    await crypto.subtle.digest(
      "SHA-256",
      typeof data === "string" ? (latin1ToBytes(data) as Uint8Array<ArrayBuffer>) : data,
    ),
  );

/** Joins pieces into lines of at most ~76 characters, folding (CRLF TAB) before a piece. */
function fold(first: string, pieces: string[]): string {
  let out = first;
  let line = first.length;
  for (const piece of pieces) {
    if (line + piece.length > 76 && line > 0) {
      out += "\r\n\t";
      line = 1;
    }
    out += piece;
    line += piece.length;
  }
  return out;
}

/**
 * The message with a DKIM-Signature field on top, line ends made CRLF. `given` is a stored
 * message (binary string); `now` becomes t=.
 */
export async function dkimSign(given: string, signer: DkimSigner, now: number): Promise<string> {
  // MailComposer keeps a text's bare LF line ends and SMTP clients send them as CRLF: sign (and
  // store) the wire form, or the body hash would be of other bytes than the ones that arrive.
  const raw = given.replace(/\r?\n/g, "\r\n");
  const { header, body } = split(raw);
  const all = fields(header);
  const byName = new Map<string, string[]>();
  for (const f of all) {
    const name = f
      .slice(0, Math.max(0, f.indexOf(":")))
      .trim()
      .toLowerCase();
    byName.set(name, [...(byName.get(name) ?? []), f]);
  }
  // h= names each present header as often as it occurs; a verifier takes instances from the
  // bottom up, and a name listed once more than it occurs signs "no further instance".
  const names: string[] = [];
  const signed: string[] = [];
  for (const name of SIGNED_HEADERS) {
    const instances = byName.get(name) ?? [];
    for (let i = instances.length - 1; i >= 0; i--) {
      names.push(name);
      signed.push(relaxedHeader(instances[i] as string));
    }
    if (name === "from") names.push("from");
  }
  const bodyHash = toBase64(await digest(relaxedBody(body)));

  const tags = [
    "v=1; ",
    `a=${signer.algorithm}; `,
    "c=relaxed/relaxed; ",
    `d=${signer.domain}; `,
    `s=${signer.selector}; `,
    `t=${Math.floor(now / 1000)}; `,
    ...names.map((n, i) => (i === 0 ? `h=${n}` : `:${n}`)),
    "; ",
    ...(bodyHash.match(/.{1,64}/g) ?? []).map((p, i) => (i === 0 ? `bh=${p}` : p)),
    "; ",
    "b=",
  ];
  const unsignedField = fold("DKIM-Signature: ", tags);
  const data = `${signed.map((h) => `${h}\r\n`).join("")}${relaxedHeader(unsignedField)}`;
  const bytes = latin1ToBytes(data) as Uint8Array<ArrayBuffer>;
  const signature = new Uint8Array(
    signer.algorithm === "rsa-sha256"
      ? await crypto.subtle.sign("RSASSA-PKCS1-v1_5", signer.key, bytes)
      : await crypto.subtle.sign("Ed25519", signer.key, await digest(bytes)),
  );
  // b= is left out of what is signed, with its white space, so folding it changes nothing.
  const sig = toBase64(signature);
  const room = 76 - (unsignedField.length - unsignedField.lastIndexOf("\n") - 1);
  const first = room >= 16 ? sig.slice(0, room) : "";
  const lines = [first, ...(sig.slice(first.length).match(/.{1,72}/g) ?? [])];
  const b = lines.join("\r\n\t");
  return `${unsignedField}${b}\r\n${raw}`;
}
