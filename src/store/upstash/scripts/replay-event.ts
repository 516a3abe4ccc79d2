/**
 * Replaying a webhook event: a copy of it, under a new id, queued for the same endpoint behind
 * whatever of its email's chain is still pending, in one command; none while the event's last
 * replay is still unfinished. The original keeps its
 * attempts and lists the copy ('rp'), so the email page finds replays from the ids it derives.
 */
import type { ReplayResult } from "../../ports.ts";
import { EVENT_LOG_MAX } from "../../shared.ts";
import type { KeyLayout } from "../keys.ts";
import { defineScript } from "./define.ts";

export interface ReplayEventArgs {
  keys: KeyLayout;
  endpointId: string;
  eventId: string;
  newId: string;
  now: number;
}

/**
 * "queued", "again" (this replay id was queued before: a repeat), "pending:<id>" (the last replay
 * is unfinished), "missing" or "disabled".
 */
type ReplayReply = string;

export const replayEventScript = defineScript<
  ReplayEventArgs,
  ReplayReply,
  { result: ReplayResult; queued: number }
>({
  name: "REPLAY_EVENT",
  lua: `
local h = redis.call('HMGET', KEYS[1], 'p', 't', 'e')
if not h[1] then return 'missing' end
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 0 then return 'disabled' end
local copy = ARGV[1] .. 'wd:' .. ARGV[2] .. ':' .. ARGV[4]
if redis.call('EXISTS', copy) == 1 then return 'again' end
local replays = redis.call('HGET', KEYS[1], 'rp')
local last = replays and string.match(replays, '(%S+)%s*$')
if last then
  local status = redis.call('HGET', ARGV[1] .. 'wd:' .. ARGV[2] .. ':' .. last, 's')
  if status == 'pending' or status == 'attempting' then return 'pending:' .. last end
end
redis.call('HSET', copy, 'p', h[1], 't', h[2], 'e', h[3], 'c', ARGV[5], 's', 'pending',
  'a', '[]', 'na', ARGV[5], 'l', '', 'lu', 0, 'r', ARGV[3])
redis.call('HSET', KEYS[1], 'rp', (replays or '') .. ' ' .. ARGV[4])
local chain = ARGV[2] .. ':' .. h[3]
if redis.call('RPUSH', ARGV[1] .. 'wc:' .. chain, ARGV[4]) == 1 then
  redis.call('ZADD', KEYS[3], ARGV[5], chain)
end
redis.call('ZADD', KEYS[4], ARGV[5], ARGV[4])
redis.call('ZREMRANGEBYRANK', KEYS[4], 0, -${EVENT_LOG_MAX + 1})
return 'queued'
`,
  encode: ({ keys, endpointId, eventId, newId, now }) => ({
    keys: [
      keys.event(endpointId, eventId),
      keys.subscriptions,
      keys.eventQueue,
      keys.eventLog(endpointId),
    ],
    argv: [keys.prefix, endpointId, eventId, newId, String(now)],
  }),
  decode: (reply) => {
    const r = String(reply);
    if (r === "queued") return { result: "queued", queued: 1 };
    if (r === "again") return { result: "queued", queued: 0 };
    if (r.startsWith("pending:")) return { result: { pending: r.slice(8) }, queued: 0 };
    return { result: r === "disabled" ? "disabled" : "missing", queued: 0 };
  },
});
