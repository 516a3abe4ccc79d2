/**
 * Counts the queue for the overview in one command: due (score at or before now), the rest
 * split into leased (a lease token and its end stamped on the message) and scheduled, and the
 * message due longest. Leases end within the lease period, so only the entries scored up to
 * `leaseWindowMs` ahead are looked at, at most QUEUE_LEASE_SCAN_MAX of them. Reads only.
 */
import type { QueueDepth } from "../../insight-ports.ts";
import type { KeyLayout } from "../keys.ts";
import { defineScript } from "./define.ts";

export const QUEUE_LEASE_SCAN_MAX = 1000;

export interface QueueDepthArgs {
  keys: KeyLayout;
  now: number;
  leaseWindowMs: number;
}

/** {due, later, leased, capped, oldest id or "", its score}. */
type QueueDepthReply = [number, number, number, number, string, string];

export const queueDepthScript = defineScript<QueueDepthArgs, QueueDepthReply, QueueDepth>({
  name: "QUEUE_DEPTH",
  lua: `
local now = tonumber(ARGV[2])
local due = redis.call('ZCOUNT', KEYS[1], '-inf', now)
local later = redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, now + tonumber(ARGV[3]),
  'LIMIT', 0, ${QUEUE_LEASE_SCAN_MAX})
local leased = 0
for _, id in ipairs(ids) do
  local h = redis.call('HMGET', ARGV[1] .. 'm:' .. id, 'l', 'lu')
  if h[1] and h[1] ~= '' and tonumber(h[2] or '0') > now then leased = leased + 1 end
end
local capped = 0
if #ids == ${QUEUE_LEASE_SCAN_MAX} then capped = 1 end
local oldest = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, 1)
return {due, later, leased, capped, oldest[1] or '', oldest[2] or '0'}
`,
  encode: ({ keys, now, leaseWindowMs }) => ({
    keys: [keys.queue],
    argv: [keys.prefix, String(now), String(leaseWindowMs)],
  }),
  decode: ([due, later, leased, capped, id, score]) => ({
    due: Number(due),
    scheduled: Number(later) - Number(leased),
    leased: Number(leased),
    leasedCapped: Number(capped) === 1,
    oldestDue: id ? { id: String(id), dueAt: Number(score) } : null,
  }),
});
