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

const CONTAINERS = new Set(["message/rfc822", "message/global"]);

function isContainer(type: string): boolean {
  return type.startsWith("multipart/") || CONTAINERS.has(type);
}

function lineTooLong(lineNo: number, length: number): ValidationError {
  return new ValidationError(
    `line ${lineNo} is ${length} octets long, over the ${MAX_LINE} RFC 5322 allows (the relay does not rewrap it: that would change a signed message; send long lines quoted-printable or base64)`,
    "body",
  );
}

/**
 * `line` without the white space allowed after a boundary (RFC 2046 5.1.1); trimmed by hand, so
 * no regex with backtracking runs over a line the sender shaped. Never cuts into the leading "--".
 */
function trimBoundaryLine(line: string): string {
  let cut = line.length;
  while (cut > 2 && (line[cut - 1] === " " || line[cut - 1] === "\t")) cut--;
  return line.slice(0, cut);
}

function last(list: number[] | undefined): number | undefined {
  return list?.length ? list[list.length - 1] : undefined;
}

/** The scan's state between lines: open boundaries and the entity whose header is being read. */
class StructureScan {
  // Open multipart boundaries, innermost last, and where each boundary string sits in the stack.
  readonly #stack: { boundary: string; depth: number }[] = [];
  readonly #open = new Map<string, number[]>();
  #inHeader = true;
  #entity: Entity = { depth: 0, contentType: "" };
  #lastField = "";
  readonly #maxDepth: number;

  constructor(maxDepth: number) {
    this.#maxDepth = maxDepth;
  }

  /** Whether a line starting at `lineStart` must be looked at; most are never copied. */
  wants(text: string, lineStart: number): boolean {
    return this.#inHeader || this.#mayBeBoundary(text, lineStart);
  }

  line(text: string, lineStart: number, stop: number): void {
    const line = text.slice(lineStart, stop);
    if (this.#mayBeBoundary(text, lineStart) && this.#boundary(line)) return;
    if (this.#inHeader) this.#headerLine(line);
  }

  #mayBeBoundary(text: string, lineStart: number): boolean {
    return text.startsWith("--", lineStart) && this.#stack.length > 0;
  }

  /** Handles `line` if it opens the next part of, or closes, an open multipart; says whether it did. */
  #boundary(line: string): boolean {
    const rest = trimBoundaryLine(line).slice(2);
    const index = last(this.#open.get(rest));
    if (index !== undefined) {
      const part = this.#stack[index];
      this.#closeTo(index + 1);
      this.#startEntity(part?.depth ?? 0);
      return true;
    }
    const closing = rest.endsWith("--") ? last(this.#open.get(rest.slice(0, -2))) : undefined;
    if (closing === undefined) return false;
    this.#closeTo(closing);
    this.#inHeader = false;
    return true;
  }

  #headerLine(line: string): void {
    if (line === "") {
      this.#endHeader();
    } else if (/^[ \t]/.test(line)) {
      if (this.#lastField === "content-type") this.#entity.contentType += line;
    } else {
      const colon = line.indexOf(":");
      this.#lastField = colon > 0 ? line.slice(0, colon).trim().toLowerCase() : "";
      if (this.#lastField === "content-type") this.#entity.contentType = line.slice(colon + 1);
    }
  }

  #startEntity(depth: number): void {
    this.#inHeader = true;
    this.#entity = { depth, contentType: "" };
    this.#lastField = "";
  }

  #closeTo(index: number): void {
    while (this.#stack.length > index) {
      const top = this.#stack.pop();
      if (top) this.#open.get(top.boundary)?.pop();
    }
  }

  #endHeader(): void {
    this.#inHeader = false;
    const { type, boundary } = mediaOf(this.#entity.contentType);
    if (!isContainer(type)) return;
    const depth = this.#entity.depth + 1;
    if (depth > this.#maxDepth) {
      throw new ValidationError(`MIME parts nest deeper than ${this.#maxDepth} levels`, "body");
    }
    if (!type.startsWith("multipart/")) {
      // The body of a message/* part is a message: its header starts on the next line.
      this.#startEntity(depth);
      return;
    }
    if (!boundary) return;
    this.#stack.push({ boundary, depth });
    const at = this.#open.get(boundary) ?? [];
    at.push(this.#stack.length - 1);
    this.#open.set(boundary, at);
  }
}

/**
 * Throws a 422 naming "body" when a line is over MAX_LINE octets or entities nest deeper than
 * `maxDepth` containers. `text` is the message as a binary string, LF or CRLF line ends.
 */
export function checkStructure(text: string, maxDepth: number): void {
  const scan = new StructureScan(maxDepth);
  let lineNo = 0;
  let start = 0;
  while (start <= text.length) {
    let end = text.indexOf("\n", start);
    if (end === -1) end = text.length;
    const stop = end > start && text.charCodeAt(end - 1) === 13 ? end - 1 : end;
    const lineStart = start;
    lineNo++;
    start = end + 1;
    if (stop - lineStart > MAX_LINE) throw lineTooLong(lineNo, stop - lineStart);
    if (scan.wants(text, lineStart)) scan.line(text, lineStart, stop);
  }
}
