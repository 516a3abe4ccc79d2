/**
 * The Lua the enqueue and commit scripts share for the email list index and the event counters,
 * so both stay inside commands that already run (README "Performance": the send path gains no
 * command). Key names (under the prefix, see keys.ts): ix and ix:k:<key id> (sorted sets: email id
 * -> created, ms), ix:exp (sorted set: "<email id> <key id>" -> when its record expires, ms),
 * mx:<hour> (hash: event name -> count, and "<key id>|<event name>" -> count).
 *
 * Everything here is safe to repeat with the same arguments: ZADD and ZREM set, and the counters
 * are only reached past the scripts' own repeat checks (an existing message for ENQUEUE, the last
 * applied token or a changed version for COMMIT).
 */
import { METRICS_BUCKET_MS, METRICS_RETENTION_MS } from "../../shared.ts";

export const INDEX = `
local function indexAdd(prefix, id, keyId, created)
  redis.call('ZADD', prefix .. 'ix', created, id)
  if keyId ~= '' then redis.call('ZADD', prefix .. 'ix:k:' .. keyId, created, id) end
end
local function indexExpire(prefix, id, keyId, at)
  redis.call('ZADD', prefix .. 'ix:exp', at, id .. ' ' .. keyId)
end
-- Drops up to max emails whose record has expired from every index they are in.
local function indexTrim(prefix, now, max)
  local exp = prefix .. 'ix:exp'
  local due = redis.call('ZRANGEBYSCORE', exp, '-inf', now, 'LIMIT', 0, max)
  for _, member in ipairs(due) do
    local sp = string.find(member, ' ', 1, true) or (#member + 1)
    local id, keyId = string.sub(member, 1, sp - 1), string.sub(member, sp + 1)
    redis.call('ZREM', prefix .. 'ix', id)
    if keyId ~= '' then redis.call('ZREM', prefix .. 'ix:k:' .. keyId, id) end
    redis.call('ZREM', exp, member)
  end
end
-- Counts the events in ARGV from base (as eventArgv lays them out) in their hour's bucket.
local function countEvents(prefix, base, keyOf)
  local m = tonumber(ARGV[base])
  if not m then return end
  for i = 0, m - 1 do
    local b = base + 1 + i * 5
    local ty = ARGV[b + 1]
    if string.sub(ty, 1, 6) == 'email.' then
      local name = string.sub(ty, 7)
      local hour = math.floor(tonumber(ARGV[b + 3]) / ${METRICS_BUCKET_MS})
      local bucket = prefix .. 'mx:' .. string.format('%d', hour)
      redis.call('HINCRBY', bucket, name, 1)
      local keyId = keyOf(ARGV[b + 2])
      if keyId and keyId ~= '' then redis.call('HINCRBY', bucket, keyId .. '|' .. name, 1) end
      redis.call('PEXPIREAT', bucket,
        string.format('%d', (hour + 1) * ${METRICS_BUCKET_MS} + ${METRICS_RETENTION_MS}))
    end
  end
end
`;
