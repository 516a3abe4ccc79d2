/** SMTP replies the sink gives when a test asks it to refuse: checked codes and realistic texts. */

// Enhanced status codes (RFC 3463) that real servers put before the text, so a client that reads
// them (the relay does) sees realistic replies when a test gives only a code.
const ENHANCED: Record<number, string> = {
  421: "4.4.2",
  450: "4.2.1",
  451: "4.3.0",
  452: "4.2.2",
  550: "5.1.1",
  551: "5.1.6",
  552: "5.2.2",
  553: "5.1.3",
  554: "5.6.0",
};

export function replyCode(code: number): number {
  if (!Number.isInteger(code) || code < 400 || code > 599) {
    throw new Error(`SMTP failure code must be 400-599, got ${code}`);
  }
  return code;
}

export function defaultText(code: number, what: string): string {
  const enhanced = ENHANCED[code] ?? `${Math.floor(code / 100)}.0.0`;
  return `${enhanced} ${what} (set by the test sink)`;
}

export function smtpError(code: number, text: string): Error {
  return Object.assign(new Error(text), { responseCode: code });
}
