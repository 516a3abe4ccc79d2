/**
 * Records an event attempt's outcome under its lease: the next attempt of a retry, the end of a
 * chain's head (success or failure, then the chain's next event is due), or the whole chain
 * dropped. It also keeps each endpoint's run of failures, and disables an endpoint whose event
 * failed for good with no success since its failures began (or at once, for 410 Gone).
 */
import type { ClaimedEvent, EventCommitResult, EventOutcome } from "../../ports.ts";
import type { KeyLayout } from "../keys.ts";
import { defineScript } from "./define.ts";

export interface CommitEventArgs {
  keys: KeyLayout;
  event: ClaimedEvent;
  outcome: EventOutcome;
}

/** {1, disabled 1/0}, or 0 when the lease is no longer the caller's. */
type CommitEventReply = number | [number, number];

export const commitEventScript = defineScript<CommitEventArgs, CommitEventReply, EventCommitResult>(
  {
    name: "COMMIT_EVENT",
    lua: `
local prefix, chain, ev, ep = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local outcome = ARGV[6]
local d = prefix .. 'wd:' .. ep .. ':' .. ev
if ARGV[5] == '' or redis.call('HGET', d, 'l') ~= ARGV[5] then return 0 end
local ck = prefix .. 'wc:' .. chain
local failing = prefix .. 'wh:failing'
local disabled = 0
if outcome == 'retry' then
  redis.call('HSET', d, 's', 'pending', 'a', ARGV[7], 'na', ARGV[8], 'l', '', 'lu', 0)
  redis.call('ZADD', KEYS[1], ARGV[8], chain)
  redis.call('HSETNX', failing, ep, ARGV[10])
  return {1, 0}
end
if outcome == 'dropped' then
  for _, other in ipairs(redis.call('LRANGE', ck, 0, -1)) do
    local od = prefix .. 'wd:' .. ep .. ':' .. other
    redis.call('HSET', od, 's', 'dropped', 'na', '', 'l', '', 'lu', 0)
    redis.call('PEXPIRE', od, ARGV[9])
  end
  redis.call('DEL', ck)
  redis.call('ZREM', KEYS[1], chain)
  return {1, 0}
end
redis.call('HSET', d, 's', outcome, 'a', ARGV[7], 'na', '', 'l', '', 'lu', 0)
redis.call('PEXPIRE', d, ARGV[9])
if redis.call('LINDEX', ck, 0) == ev then redis.call('LPOP', ck) end
if redis.call('LLEN', ck) > 0 then
  redis.call('ZADD', KEYS[1], ARGV[10], chain)
else
  redis.call('ZREM', KEYS[1], chain)
end
if outcome == 'success' then
  redis.call('HDEL', failing, ep)
else
  local since = redis.call('HGET', failing, ep)
  if ARGV[11] == '1' or since then
    if redis.call('HDEL', prefix .. 'wh:subs', ep) == 1 then disabled = 1 end
    redis.call('HDEL', failing, ep)
  else
    redis.call('HSET', failing, ep, ARGV[10])
  end
end
return {1, disabled}
`,
    encode: ({ keys, event, outcome }) => ({
      keys: [keys.eventQueue],
      argv: [
        keys.prefix,
        `${event.endpointId}:${event.emailId}`, // the chain
        event.id,
        event.endpointId,
        event.token,
        outcome.kind,
        outcome.kind === "dropped" ? "[]" : JSON.stringify(outcome.attempts),
        outcome.kind === "retry" ? String(Math.round(outcome.at)) : "", // next attempt
        outcome.kind === "retry" ? "0" : String(Math.max(1, Math.round(outcome.retainMs))),
        String(outcome.now),
        outcome.kind === "failed" && outcome.disable ? "1" : "0",
      ],
    }),
    decode: (reply) =>
      Array.isArray(reply) ? { ok: true, disabled: Number(reply[1]) === 1 } : { ok: false },
  },
);
