/**
 * Deletes an idempotency key only while it holds this request's in-flight marker: never a done
 * record (its messages are stored) nor the marker of a request that claimed the key after this
 * one's lapsed.
 */
import { inFlightMarker } from "../idempotency.ts";
import type { KeyLayout } from "../keys.ts";
import { defineScript } from "./define.ts";

export interface ReleaseIdempotentArgs {
  keys: KeyLayout;
  key: string;
  token: string;
}

export const releaseIdempotentScript = defineScript<ReleaseIdempotentArgs, number, boolean>({
  name: "RELEASE_IDEMPOTENT",
  lua: `
local held = redis.call('GET', KEYS[1])
if held and string.sub(held, 1, #ARGV[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`,
  encode: ({ keys, key, token }) => ({
    keys: [keys.idempotency(key)],
    argv: [inFlightMarker(token)],
  }),
  decode: (released) => Number(released) === 1,
});
