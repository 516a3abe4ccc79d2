/**
 * Reserves the heads of up to `limit` due event chains, each with its endpoint's record and
 * whether it is enabled. A chain with no head left is dropped from the queue; a head whose record
 * expired is skipped for the next event of its chain.
 */
import type { ClaimedEvent, EventAttempt } from "../../ports.ts";
import type { KeyLayout } from "../keys.ts";
import { defineScript } from "./define.ts";

export interface ClaimEventsArgs {
  keys: KeyLayout;
  now: number;
  limit: number;
  leaseMs: number;
  token: string;
}

/**
 * Per claimed chain head: {chain, event id, endpoint id, payload, type, email id, created,
 * attempts JSON, endpoint record or "", enabled 1/0, lease end}.
 */
type ClaimEventsReply = (string | number | null)[][];

export const claimEventsScript = defineScript<ClaimEventsArgs, ClaimEventsReply, ClaimedEvent[]>({
  name: "CLAIM_EVENTS",
  lua: `
local prefix = ARGV[1]
local now = tonumber(ARGV[2])
local untilMs = now + tonumber(ARGV[4])
local chains = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, chain in ipairs(chains) do
  local ck = prefix .. 'wc:' .. chain
  local ev = redis.call('LINDEX', ck, 0)
  local ep = string.match(chain, '^([^:]+):')
  if not ev or not ep then
    redis.call('ZREM', KEYS[1], chain)
  else
    local d = prefix .. 'wd:' .. ep .. ':' .. ev
    local h = redis.call('HMGET', d, 'p', 't', 'e', 'c', 'a')
    if not h[1] then
      -- Its record is gone: move on to the next event of the chain.
      redis.call('LPOP', ck)
      if redis.call('LLEN', ck) > 0 then
        redis.call('ZADD', KEYS[1], now, chain)
      else
        redis.call('ZREM', KEYS[1], chain)
      end
    else
      redis.call('ZADD', KEYS[1], untilMs, chain)
      redis.call('HSET', d, 's', 'attempting', 'l', ARGV[5], 'lu', untilMs)
      local rec = redis.call('HGET', prefix .. 'rec:webhook', ep) or ''
      local enabled = redis.call('HEXISTS', prefix .. 'wh:subs', ep)
      out[#out + 1] = {chain, ev, ep, h[1], h[2], h[3], h[4], h[5], rec, enabled, tostring(untilMs)}
    end
  end
end
return out
`,
  encode: ({ keys, now, limit, leaseMs, token }) => ({
    keys: [keys.eventQueue],
    argv: [keys.prefix, String(now), String(limit), String(leaseMs), token],
  }),
  decode: (rows, { token }) =>
    rows.map(
      ([, id, endpointId, payload, type, emailId, created, attempts, rec, enabled, until]) => ({
        id: String(id),
        endpointId: String(endpointId),
        payload: String(payload),
        type: String(type),
        emailId: String(emailId),
        createdAt: Number(created),
        status: "attempting" as const,
        attempts: JSON.parse(String(attempts ?? "[]")) as EventAttempt[],
        nextAttemptAt: null,
        endpoint: rec ? String(rec) : null,
        enabled: Number(enabled) === 1,
        token,
        leasedUntil: Number(until),
      }),
    ),
});
