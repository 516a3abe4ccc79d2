/**
 * One linear pass over a raw message's lines that checks what postal-mime does not: every line's
 * length (RFC 5322 2.1.1, body included) and how deeply MIME entities nest. postal-mime stops
 * parsing message/rfc822 parts after ten levels and keeps deeper ones as attachments, so its own
 * depth limit never sees them; a reader that does descend would. The scan follows multipart
 * boundaries and message/* parts the way a MIME parser does, without backtracking: each line is
 * looked at once, and a line starting with "--" costs two map lookups.
 */
import { ValidationError } from "../errors.ts";

/** RFC 5322 2.1.1: a line holds at most 998 octets, CRLF excluded. */
export const MAX_LINE = 998;

interface Entity {
  /** Container entities (multipart, message) from the top down to this one, this one included. */
  depth: number;
  contentType: string;
}

/** The media type and boundary of a Content-Type field value. */
function mediaOf(value: string): { type: string; boundary: string | undefined } {
  const type = (value.split(";")[0] ?? "").trim().toLowerCase();
  const m = /;\s*boundary\s*=\s*(?:"([^"]*)"|([^\s;]+))/i.exec(value);
  return { type, boundary: m ? (m[1] ?? m[2]) : undefined };
}

/**
 * Throws a 422 naming "body" when a line is over MAX_LINE octets or entities nest deeper than
 * `maxDepth` containers. `text` is the message as a binary string, LF or CRLF line ends.
 */
export function checkStructure(text: string, maxDepth: number): void {
  // Open multipart boundaries, innermost last, and where each boundary string sits in the stack.
  const stack: { boundary: string; depth: number }[] = [];
  const open = new Map<string, number[]>();
  let inHeader = true;
  let entity: Entity = { depth: 0, contentType: "" };
  let lastField = "";
  let lineNo = 0;

  const startEntity = (depth: number) => {
    inHeader = true;
    entity = { depth, contentType: "" };
    lastField = "";
  };
  const closeTo = (index: number) => {
    while (stack.length > index) {
      const top = stack.pop();
      if (top) open.get(top.boundary)?.pop();
    }
  };
  const endHeader = () => {
    inHeader = false;
    const { type, boundary } = mediaOf(entity.contentType);
    const container =
      type.startsWith("multipart/") || type === "message/rfc822" || type === "message/global";
    if (!container) return;
    const depth = entity.depth + 1;
    if (depth > maxDepth) {
      throw new ValidationError(`MIME parts nest deeper than ${maxDepth} levels`, "body");
    }
    if (type.startsWith("multipart/")) {
      if (!boundary) return;
      stack.push({ boundary, depth });
      const at = open.get(boundary) ?? [];
      at.push(stack.length - 1);
      open.set(boundary, at);
    } else {
      // The body of a message/* part is a message: its header starts on the next line.
      startEntity(depth);
    }
  };

  let start = 0;
  while (start <= text.length) {
    let end = text.indexOf("\n", start);
    if (end === -1) end = text.length;
    const stop = end > start && text.charCodeAt(end - 1) === 13 ? end - 1 : end;
    const lineStart = start;
    lineNo++;
    start = end + 1;
    if (stop - lineStart > MAX_LINE) {
      throw new ValidationError(
        `line ${lineNo} is ${stop - lineStart} octets long, over the ${MAX_LINE} RFC 5322 allows (the relay does not rewrap it: that would change a signed message; send long lines quoted-printable or base64)`,
        "body",
      );
    }
    // Most lines are neither a header nor a boundary candidate and are never copied.
    const dashes = text.startsWith("--", lineStart) && stack.length > 0;
    if (!dashes && !inHeader) continue;
    const line = text.slice(lineStart, stop);
    if (dashes) {
      // Trailing white space is allowed after a boundary (RFC 2046 5.1.1); trimmed by hand, so
      // no regex with backtracking runs over a line the sender shaped.
      let cut = line.length;
      while (cut > 2 && (line[cut - 1] === " " || line[cut - 1] === "\t")) cut--;
      const rest = line.slice(2, cut);
      const asOpen = open.get(rest);
      const asClose = rest.endsWith("--") ? open.get(rest.slice(0, -2)) : undefined;
      const index = asOpen?.length ? asOpen[asOpen.length - 1] : undefined;
      const closing =
        index === undefined && asClose?.length ? asClose[asClose.length - 1] : undefined;
      if (index !== undefined) {
        const part = stack[index];
        closeTo(index + 1);
        startEntity(part?.depth ?? 0);
        continue;
      }
      if (closing !== undefined) {
        closeTo(closing);
        inHeader = false;
        continue;
      }
    }
    if (!inHeader) continue;
    if (line === "") {
      endHeader();
    } else if (/^[ \t]/.test(line)) {
      if (lastField === "content-type") entity.contentType += line;
    } else {
      const colon = line.indexOf(":");
      lastField = colon > 0 ? line.slice(0, colon).trim().toLowerCase() : "";
      if (lastField === "content-type") entity.contentType = line.slice(colon + 1);
    }
  }
}
