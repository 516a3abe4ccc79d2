/** Helpers the in-memory ports share: copying values in and out, and sizing them as Redis would. */

/** Values are copied in and out, as a network store would: callers never share state with it. */
export const copy = <T>(value: T): T => structuredClone(value);

/** Bytes of a string's UTF-8 form: what Redis stores, and what HSTRLEN counts, for it. */
export function utf8Length(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    // A surrogate pair (two code units) is one 4-byte character.
    n += c < 0x80 ? 1 : c < 0x800 || (c >= 0xd800 && c <= 0xdfff) ? 2 : 3;
  }
  return n;
}
