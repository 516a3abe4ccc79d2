/**
 * The attachments of sent emails, as Resend's `emails.attachments.list/get` answer them, and the
 * signed links that download them.
 *
 * The signing key is the relay's own secret "attachment-download" (src/relay-secrets.ts: made in
 * the store on first use, nothing to configure). To invalidate every link at once, delete
 * `<prefix>secret:attachment-download`;
 * isolates that cached the old secret keep honouring links until they are recycled, which the
 * links' own lifetime bounds anyway.
 */
import type { Principal } from "./auth/keys.ts";
import { type DownloadGrant, signDownload, verifyDownload } from "./auth/signed-url.ts";
import { NotFoundError, RelayError, StoreUnavailableError } from "./errors.ts";
import { type StoredAttachment, storedAttachments } from "./mail/attachments.ts";
import type { Relay } from "./relay.ts";
import { relaySecret } from "./relay-secrets.ts";
import type { RelayStore } from "./store/store.ts";

/** How long a download_url works: long enough to follow at once, short enough to leak little. */
export const DOWNLOAD_URL_TTL_SECONDS = 15 * 60;

const SECRET_NAME = "attachment-download";

export interface AttachmentInfo {
  id: string;
  filename: string | null;
  contentType: string;
  disposition: "inline" | "attachment";
  contentId: string | null;
  size: number;
  /** The query string of the signed download link. */
  download: string;
  /** When the link stops working (ms since epoch). */
  expiresAt: number;
}

const signingSecret = (relay: Relay) => relaySecret(relay, SECRET_NAME);

async function describe(
  relay: Relay,
  emailId: string,
  attachment: StoredAttachment,
): Promise<AttachmentInfo> {
  const expires = Math.floor(relay.now() / 1000) + DOWNLOAD_URL_TTL_SECONDS;
  const grant: DownloadGrant = { emailId, attachmentId: attachment.id, expires };
  return {
    id: attachment.id,
    filename: attachment.filename,
    contentType: attachment.contentType,
    disposition: attachment.disposition,
    contentId: attachment.contentId,
    size: attachment.content.byteLength,
    download: await signDownload(await signingSecret(relay), grant),
    expiresAt: expires * 1000,
  };
}

/** An email's attachments, in message order; 404 for an email the principal may not read. */
export async function listAttachments(
  relay: Relay,
  emailId: string,
  principal: Principal,
): Promise<AttachmentInfo[]> {
  const entry = await relay.get(emailId, principal);
  const all = await storedAttachments(emailId, entry.raw);
  return Promise.all(all.map((a) => describe(relay, emailId, a)));
}

export async function getAttachment(
  relay: Relay,
  emailId: string,
  attachmentId: string,
  principal: Principal,
): Promise<AttachmentInfo> {
  const entry = await relay.get(emailId, principal);
  const found = (await storedAttachments(emailId, entry.raw)).find((a) => a.id === attachmentId);
  if (!found) throw new NotFoundError("Attachment");
  return describe(relay, emailId, found);
}

/**
 * The file a signed link names. A link that is not one the relay signed, or has expired, is 403
 * (nothing is read for it); an email or attachment gone since (retention, deletion) is 404.
 */
export async function downloadAttachment(
  relay: Relay,
  query: URLSearchParams,
): Promise<StoredAttachment> {
  const check = await verifyDownload(
    await signingSecret(relay),
    query,
    Math.floor(relay.now() / 1000),
  );
  if (!check.ok) {
    throw new RelayError(
      403,
      "invalid_signature",
      check.reason === "expired"
        ? "This download link has expired; get a new one from GET /emails/:id/attachments/:id"
        : "This download link is not valid",
    );
  }
  const { emailId, attachmentId } = check.grant;
  let entry: Awaited<ReturnType<RelayStore["get"]>>;
  try {
    entry = await relay.store.get(emailId);
  } catch (err) {
    throw new StoreUnavailableError(err);
  }
  const found = entry
    ? (await storedAttachments(emailId, entry.raw)).find((a) => a.id === attachmentId)
    : undefined;
  if (!found) throw new NotFoundError("Attachment");
  return found;
}
