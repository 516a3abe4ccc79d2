/**
 * Reading a body within a limit, whoever carries it (an HTTP request, later an SMTP DATA
 * stream): refused before it is buffered when the declared length says it is over, cut off while
 * streaming when there is none. What comes back is a fresh ArrayBuffer-backed copy (never a
 * shared buffer), as WebCrypto and the multipart parser want.
 */
import { MalformedBodyError, TooLargeError } from "./errors.ts";

export async function readWithin(
  stream: ReadableStream<Uint8Array> | null,
  contentLength: string | undefined,
  maxBytes: number,
): Promise<Uint8Array<ArrayBuffer>> {
  const declared = Number(contentLength ?? Number.NaN);
  if (Number.isFinite(declared) && declared > maxBytes) {
    throw new TooLargeError(`request body is ${declared} bytes, over the limit of ${maxBytes}`);
  }
  if (!stream) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = stream.getReader();
  for (;;) {
    let chunk: ReadableStreamReadResult<Uint8Array>;
    try {
      chunk = await reader.read();
    } catch {
      // The client went away or the upload broke off: nothing was stored.
      throw new MalformedBodyError("the request body could not be read to its end");
    }
    const { done, value } = chunk;
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      throw new TooLargeError(`request body is over the limit of ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  const out = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}
