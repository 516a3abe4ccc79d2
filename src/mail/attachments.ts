/**
 * The attachments of a stored message, read back from its raw MIME with postal-mime (the same
 * parser that checks raw sends). A message never changes after acceptance, so an attachment's
 * position is stable, and its id is derived from the email id and that position: the same id on
 * every read, in every isolate, with nothing stored for it.
 */
import PostalMime from "postal-mime";
import { latin1ToBytes } from "./bytes.ts";
import { MAX_HEADER_BYTES, MAX_MIME_DEPTH } from "./raw.ts";

export interface StoredAttachment {
  id: string;
  filename: string | null;
  /** A lowercase type/subtype; application/octet-stream when the part's own is not one. */
  contentType: string;
  disposition: "inline" | "attachment";
  /** Without angle brackets, as Resend's content_id. */
  contentId: string | null;
  content: Uint8Array<ArrayBuffer>;
}

/** type/subtype made of RFC 6838 name characters: safe in a Content-Type header as it is. */
const MEDIA_TYPE = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$/;

/** A UUID-shaped id from SHA-256 of the email id and the attachment's position. */
async function attachmentId(emailId: string, index: number): Promise<string> {
  const data = new TextEncoder().encode(`attachment:${emailId}:${index}`);
  const hex = Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", data)), (b) =>
    b.toString(16).padStart(2, "0"),
  ).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/** postal-mime's content (an ArrayBuffer, as asked) as bytes a Response can take. */
function bytesOf(content: ArrayBuffer | Uint8Array | string): Uint8Array<ArrayBuffer> {
  if (typeof content === "string") return Uint8Array.from(new TextEncoder().encode(content));
  if (content instanceof ArrayBuffer) return new Uint8Array(content);
  return Uint8Array.from(content);
}

/** Every attachment of the stored message `raw` (latin1), in message order; none if unreadable. */
export async function storedAttachments(emailId: string, raw: string): Promise<StoredAttachment[]> {
  let parsed: Awaited<ReturnType<typeof PostalMime.parse>>;
  try {
    parsed = await PostalMime.parse(latin1ToBytes(raw), {
      maxNestingDepth: MAX_MIME_DEPTH,
      maxHeadersSize: MAX_HEADER_BYTES,
    });
  } catch {
    return [];
  }
  return Promise.all(
    parsed.attachments.map(async (a, index) => {
      const type = a.mimeType.toLowerCase();
      const content = bytesOf(a.content);
      return {
        id: await attachmentId(emailId, index),
        filename: a.filename || null,
        contentType: MEDIA_TYPE.test(type) ? type : "application/octet-stream",
        disposition: a.disposition === "inline" ? "inline" : "attachment",
        contentId: a.contentId ? a.contentId.replace(/^<|>$/g, "") : null,
        content,
      };
    }),
  );
}
