/**
 * What this transport writes on the wire itself, checked or converted first: envelope addresses
 * (written into command lines), the DATA payload (dot-stuffed, line ends made CRLF) and the
 * credentials handed to worker-mailer.
 */

const CR = 13;
const LF = 10;
const DOT = 46;

const encoder = new TextEncoder();

/**
 * Why `address` cannot be an SMTP command argument, or undefined when it can. The relay validates
 * addresses when it accepts a message; this is the last line, since here the address is written
 * into a command line: no line breaks or other controls, no spaces or angle brackets.
 */
export function envelopeProblem(address: string, isSender: boolean): string | undefined {
  if (address === "") return isSender ? undefined : "an empty address";
  if (/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(address)) {
    return `${JSON.stringify(address)} contains a line break or another control character`;
  }
  if (/[\s<>]/.test(address)) return `${JSON.stringify(address)} contains a space or < >`;
  if (!/^[^@]+@[^@]+$/.test(address)) return `${JSON.stringify(address)} is not local@domain`;
  if (address.length > 254) return `${JSON.stringify(address)} is longer than 254 characters`;
  return undefined;
}

function emitLineEnd(emit: (byte: number) => void): void {
  emit(CR);
  emit(LF);
}

/** Feeds `emit` the DATA payload for `raw`, byte by byte (run twice: to count, then to copy). */
function walkData(raw: Uint8Array, emit: (byte: number) => void): void {
  let lineStart = true;
  for (let i = 0; i < raw.length; i++) {
    const byte = raw[i] as number;
    if (byte === CR || byte === LF) {
      if (byte === CR && raw[i + 1] === LF) i++;
      emitLineEnd(emit);
      lineStart = true;
      continue;
    }
    if (lineStart && byte === DOT) emit(DOT);
    emit(byte);
    lineStart = false;
  }
  if (!lineStart) emitLineEnd(emit);
  emit(DOT);
  emitLineEnd(emit);
}

/**
 * The DATA payload: line ends made CRLF (a bare CR or LF would let some servers see an end of data
 * that others do not: SMTP smuggling), a dot at the start of a line doubled, and the final
 * `.` line. Counted first, so a 7 MiB message is copied once.
 */
export function dataBytes(raw: Uint8Array): Uint8Array {
  let size = 0;
  walkData(raw, () => {
    size++;
  });
  const out = new Uint8Array(size);
  let at = 0;
  walkData(raw, (byte) => {
    out[at++] = byte;
  });
  return out;
}

/** RFC 4616/4954 send credentials as UTF-8; worker-mailer base64-encodes with btoa (Latin-1). */
export function utf8AsBinaryString(value: string): string {
  let out = "";
  for (const byte of encoder.encode(value)) out += String.fromCharCode(byte);
  return out;
}
