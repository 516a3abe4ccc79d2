/**
 * Records when an API key was last used, only while the key still holds the record that was read:
 * a plain write could bring back a key deleted meanwhile, or undo an update (PATCH /api-keys/:id
 * narrowing the key) made between the read and this write. A skipped touch only loses a
 * last_used_at, which the next cache miss writes again.
 */
import type { ApiKeyRecord } from "../../types.ts";
import type { KeyLayout } from "../keys.ts";
import { defineScript } from "./define.ts";

export interface TouchKeyArgs {
  keys: KeyLayout;
  record: ApiKeyRecord;
  at: number;
}

export const touchKeyScript = defineScript<TouchKeyArgs, number, boolean>({
  name: "TOUCH_KEY",
  lua: `
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[2])
return 1
`,
  encode: ({ keys, record, at }) => ({
    keys: [keys.keyList, keys.keyByDigest(record.digest)],
    argv: [record.id, JSON.stringify({ ...record, lastUsedAt: at }), JSON.stringify(record)],
  }),
  decode: (touched) => Number(touched) === 1,
});
