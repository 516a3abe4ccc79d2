/** Extends a message's lease for its holder only (a long SMTP transaction). */
import type { KeyLayout } from "../keys.ts";
import { defineScript } from "./define.ts";

export interface RenewArgs {
  keys: KeyLayout;
  id: string;
  token: string;
  until: number;
}

export const renewScript = defineScript<RenewArgs, number, boolean>({
  name: "RENEW",
  lua: `
if redis.call('HGET', KEYS[2], 'l') ~= ARGV[2] or ARGV[2] == '' then return 0 end
redis.call('HSET', KEYS[2], 'lu', ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
`,
  encode: ({ keys, id, token, until }) => ({
    keys: [keys.queue, keys.message(id)],
    argv: [id, token, String(until)],
  }),
  decode: (renewed) => renewed === 1,
});
