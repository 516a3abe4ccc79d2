/**
 * Writes a record only while its field still holds what the caller read (nothing, or that exact
 * JSON): a compare-and-set on one field of the kind's hash. Template aliases claim names this way,
 * so two creates racing for one alias cannot both believe they hold it.
 */
import type { RecordKind } from "../../ports.ts";
import type { KeyLayout } from "../keys.ts";
import { defineScript } from "./define.ts";

export interface SwapRecordArgs {
  keys: KeyLayout;
  kind: RecordKind;
  id: string;
  /** The JSON the field must hold now; null: the field must be absent. */
  expected: string | null;
  value: string;
}

export const swapRecordScript = defineScript<SwapRecordArgs, number, boolean>({
  name: "SWAP_RECORD",
  lua: `
local current = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[3] == '0' then
  if current then return 0 end
elseif current ~= ARGV[4] then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
`,
  encode: ({ keys, kind, id, expected, value }) => ({
    keys: [keys.records(kind)],
    argv: [id, value, expected === null ? "0" : "1", expected ?? ""],
  }),
  decode: (swapped) => Number(swapped) === 1,
});
