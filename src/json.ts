/**
 * Parsing JSON from raw bytes the way every body the relay reads is parsed: strict UTF-8, not
 * empty, nested no deeper than a real request needs. Pure (no HTTP), so the intake sources
 * (form JSON, hook payloads) and the HTTP layer share it.
 */
import { MalformedBodyError } from "./errors.ts";

/** JSON nested deeper than this is refused before parsing: no real request needs it. */
export const MAX_JSON_DEPTH = 32;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** +1 for an opening bracket or brace, -1 for a closing one, 0 for anything else. */
function nesting(ch: number): number {
  if (ch === 0x7b || ch === 0x5b) return 1;
  if (ch === 0x7d || ch === 0x5d) return -1;
  return 0;
}

/** Counted over the text before parsing, skipping strings, so a deep value costs no recursion. */
function jsonDepthExceeds(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (inString) {
      if (ch === BACKSLASH) i++;
      else if (ch === QUOTE) inString = false;
      continue;
    }
    if (ch === QUOTE) inString = true;
    depth += nesting(ch);
    if (depth > max) return true;
  }
  return false;
}

export function parseJson(bytes: Uint8Array): unknown {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw new MalformedBodyError("request body is not valid UTF-8");
  }
  if (text.trim() === "") throw new MalformedBodyError("request body is empty; expected JSON");
  if (jsonDepthExceeds(text, MAX_JSON_DEPTH)) {
    throw new MalformedBodyError(`request body nests deeper than ${MAX_JSON_DEPTH} levels`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new MalformedBodyError(`request body is not valid JSON: ${(err as Error).message}`);
  }
}
