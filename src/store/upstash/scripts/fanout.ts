/**
 * The Lua fragment the enqueue and commit scripts share: it queues events for every endpoint
 * subscribed to their type, in the same atomic step as the message write. Subscriptions are plain
 * strings (" type type "), matched with a plain find, so no cjson is needed.
 */

import { EVENT_LOG_MAX } from "../../shared.ts";
import type { EventDraft } from "../../types.ts";

// fanout(prefix, base, now) reads the events from ARGV from index `base` (see eventArgv) and
// returns how many deliveries it queued.
export const FANOUT = `
local function fanout(prefix, base, now)
  local m = tonumber(ARGV[base])
  if not m or m == 0 then return 0 end
  local subs = redis.call('HGETALL', prefix .. 'wh:subs')
  if #subs == 0 then return 0 end
  local queued = 0
  for i = 0, m - 1 do
    local b = base + 1 + i * 5
    local ev, ty, email, created = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
    for j = 1, #subs, 2 do
      local ep = subs[j]
      if string.find(subs[j + 1], ' ' .. ty .. ' ', 1, true) then
        redis.call('HSET', prefix .. 'wd:' .. ep .. ':' .. ev, 'p', ARGV[b + 4], 't', ty,
          'e', email, 'c', created, 's', 'pending', 'a', '[]', 'na', now, 'l', '', 'lu', 0)
        local chain = ep .. ':' .. email
        if redis.call('RPUSH', prefix .. 'wc:' .. chain, ev) == 1 then
          redis.call('ZADD', prefix .. 'wq', now, chain)
        end
        local log = prefix .. 'wl:' .. ep
        redis.call('ZADD', log, created, ev)
        redis.call('ZREMRANGEBYRANK', log, 0, -${EVENT_LOG_MAX + 1})
        queued = queued + 1
      end
    end
  end
  return queued
end
`;

/** Events as FANOUT reads them: a count, then per event id, type, email id, created (ms), payload. */
export function eventArgv(events: EventDraft[] | undefined): string[] {
  const list = events ?? [];
  const argv = [String(list.length)];
  for (const e of list) argv.push(e.id, e.type, e.emailId, String(e.createdAt), e.payload);
  return argv;
}
