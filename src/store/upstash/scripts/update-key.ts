/**
 * Replaces an API key's record (PATCH /api-keys/:id) only while it still holds the record the
 * caller read and checked, in the hash of keys and under its digest alike. Safe to run twice: a
 * record that already is the new one answers "updated".
 */
import type { KeyUpdate } from "../../ports.ts";
import type { ApiKeyRecord } from "../../types.ts";
import type { KeyLayout } from "../keys.ts";
import { defineScript } from "./define.ts";

export interface UpdateKeyArgs {
  keys: KeyLayout;
  previous: ApiKeyRecord;
  next: ApiKeyRecord;
}

const REPLIES: Record<number, KeyUpdate> = { 0: "missing", 1: "updated", 2: "changed" };

export const updateKeyScript = defineScript<UpdateKeyArgs, number, KeyUpdate>({
  name: "UPDATE_KEY",
  lua: `
local held = redis.call('HGET', KEYS[1], ARGV[1])
if not held then return 0 end
if held == ARGV[3] then return 1 end
if held ~= ARGV[2] then return 2 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('SET', KEYS[2], ARGV[3])
return 1
`,
  encode: ({ keys, previous, next }) => ({
    keys: [keys.keyList, keys.keyByDigest(previous.digest)],
    argv: [previous.id, JSON.stringify(previous), JSON.stringify(next)],
  }),
  decode: (reply) => REPLIES[Number(reply)] ?? "changed",
});
