/**
 * Signed, expiring download links (attachment download_url): HMAC-SHA256 over what the link
 * grants, with a secret the relay makes for itself once and keeps in the store (see
 * src/attachments.ts for why not a configured one). The link is the credential: whoever holds it
 * may fetch that one file until it expires, as with Resend's and S3's signed URLs.
 */

import { base64url } from "../base64url.ts";
import { constantTimeEqual } from "./keys.ts";

export interface DownloadGrant {
  emailId: string;
  attachmentId: string;
  /** Seconds since the epoch. */
  expires: number;
}

const encoder = new TextEncoder();

/** HMAC-SHA256 of `message` under `secret`; messages start with their purpose. */
export async function hmac(secret: string, message: string): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(message)));
}

function mac(secret: string, grant: DownloadGrant): Promise<Uint8Array> {
  // A purpose prefix and fixed field order, newline-separated (ids hold no newline).
  return hmac(
    secret,
    `attachment-download\n${grant.emailId}\n${grant.attachmentId}\n${grant.expires}`,
  );
}

/** The query string of a link granting `grant`. */
export async function signDownload(secret: string, grant: DownloadGrant): Promise<string> {
  const query = new URLSearchParams({
    email: grant.emailId,
    attachment: grant.attachmentId,
    expires: String(grant.expires),
    signature: base64url(await mac(secret, grant)),
  });
  return query.toString();
}

export type DownloadCheck =
  | { ok: true; grant: DownloadGrant }
  | { ok: false; reason: "malformed" | "signature" | "expired" };

/** Reads and checks a link's query: the signature first, then the expiry against `nowSeconds`. */
export async function verifyDownload(
  secret: string,
  query: URLSearchParams,
  nowSeconds: number,
): Promise<DownloadCheck> {
  const emailId = query.get("email");
  const attachmentId = query.get("attachment");
  const expiresText = query.get("expires");
  const signature = query.get("signature");
  if (!emailId || !attachmentId || !expiresText || !signature || !/^\d{1,12}$/.test(expiresText)) {
    return { ok: false, reason: "malformed" };
  }
  const grant = { emailId, attachmentId, expires: Number(expiresText) };
  const expected = encoder.encode(base64url(await mac(secret, grant)));
  if (!constantTimeEqual(expected, encoder.encode(signature))) {
    return { ok: false, reason: "signature" };
  }
  if (grant.expires <= nowSeconds) return { ok: false, reason: "expired" };
  return { ok: true, grant };
}
