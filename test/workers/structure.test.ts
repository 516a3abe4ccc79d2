/**
 * The raw-message structure scan (src/mail/structure.ts): line lengths and MIME depth in one
 * linear pass. The relay's answers are pinned by rows in corpus.test.ts; these pin the scan's
 * cost on the shapes that make it work hardest (every line a boundary candidate, 49 boundaries
 * open) and how it closes parts.
 */
import { describe, expect, it } from "vitest";
import { ValidationError } from "../../src/errors.ts";
import { checkStructure } from "../../src/mail/structure.ts";

const MiB = 1024 * 1024;

/** A header opening `depth` nested multiparts, then `line` repeated to about `size` bytes. */
function nestedThen(depth: number, line: string, size: number): string {
  let head = "From: a@example.com\r\nMIME-Version: 1.0\r\n";
  for (let i = 0; i < depth; i++) {
    head += `Content-Type: multipart/mixed; boundary=b${i}\r\n\r\n--b${i}\r\n`;
  }
  head += "Content-Type: text/plain\r\n\r\n";
  return head + `${line}\r\n`.repeat(Math.ceil((size - head.length) / (line.length + 2)));
}

function timed(run: () => void): number {
  const start = performance.now();
  run();
  return performance.now() - start;
}

describe("checkStructure", () => {
  it("scans 7 MiB of boundary-like lines under 49 open multiparts in linear time", () => {
    const lines = [`--${" ".repeat(990)}x`, "--b3-- trailing", `--${"b1".repeat(400)}--`, "--"];
    for (const line of lines) {
      const text = nestedThen(49, line, 7 * MiB);
      // About 30 ms each on the test machine; the bound leaves room for a loaded one.
      expect(
        timed(() => checkStructure(text, 50)),
        JSON.stringify(line.slice(0, 12)),
      ).toBeLessThan(3000);
    }
  });

  it("closes inner parts when an outer boundary comes first", () => {
    // 60 siblings, each opening a multipart never closed by its own boundary: depth stays 2.
    let text = "Content-Type: multipart/mixed; boundary=out\r\n\r\n";
    for (let i = 0; i < 60; i++) {
      text += `--out\r\nContent-Type: multipart/mixed; boundary=in${i}\r\n\r\n--in${i}\r\nContent-Type: text/plain\r\n\r\nx\r\n`;
    }
    expect(() => checkStructure(`${text}--out--\r\n`, 2)).not.toThrow();
    expect(() => checkStructure(`${text}--out--\r\n`, 1)).toThrow(ValidationError);
  });
});
