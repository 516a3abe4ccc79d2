/**
 * Claims a batch of due messages for one delivery run, in one command, and counts the due webhook
 * event chains on the way so an idle run needs no second command.
 *
 * The answer must stay within Upstash's response limit: sizes are read first (HSTRLEN, O(1)) and
 * a message is taken only while the estimated answer (claimEntryBytes) fits the budget, except
 * the first, which is taken alone however large, so no message is ever passed over. Those left
 * out are not leased: they stay due for the next claim.
 *
 * Each claimed message's recipients (its rc field) are checked against the suppression list on
 * the way, so a scheduled message or a retry honours a suppression added after it was accepted.
 *
 * With connection slots (slot-ports.ts) it first drops lapsed holders from the host's slot set,
 * then takes the slots asked for, only when something is due, and claims nothing when it could
 * take none: the cap and the claim are one atomic step, so two invocations cannot both take the
 * last slot.
 */
import type { ClaimRun } from "../../ports.ts";
import { CLAIM_ENTRY_OVERHEAD } from "../../shared.ts";
import type { ClaimSlots } from "../../slot-ports.ts";
import type { DeliveryState, QueuedMessage } from "../../types.ts";
import type { KeyLayout } from "../keys.ts";
import { defineScript } from "./define.ts";
import { decodeFound, SUPPRESSION } from "./suppressions.ts";

export interface ClaimArgs {
  keys: KeyLayout;
  now: number;
  limit: number;
  leaseMs: number;
  token: string;
  budgetBytes: number;
  slots?: ClaimSlots | undefined;
}

/**
 * {{id, meta, raw, state, version, leaseUntil, {email, origin, ...}}..., due event chains, 1 when
 * it stopped, messages still due, slots taken (-1: none asked), slots free (-1: no slots)}.
 */
type ClaimReply = [(string | string[])[][], number, number, number, number, number];

export const claimScript = defineScript<ClaimArgs, ClaimReply, ClaimRun>({
  name: "CLAIM",
  lua: `${SUPPRESSION}
local function entryBytes(m, r, s)
  local function b64(n) return 4 * math.ceil(n / 3) end
  return b64(m) + b64(r) + b64(s) + ${CLAIM_ENTRY_OVERHEAD}
end
local prefix = ARGV[1]
local now = tonumber(ARGV[2])
local untilMs = now + tonumber(ARGV[4])
local budget = tonumber(ARGV[6])
local limit = tonumber(ARGV[3])
local slotKey = KEYS[2]
local taken = -1
local free = -1
if slotKey then
  local cap = tonumber(ARGV[7])
  redis.call('ZREMRANGEBYSCORE', slotKey, '-inf', now)
  if ARGV[8] ~= '' then
    taken = 0
    if #redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 1) > 0 then
      taken = math.max(0, math.min(tonumber(ARGV[9]), cap - redis.call('ZCARD', slotKey)))
    end
    for i = 1, taken do
      redis.call('ZADD', slotKey, tonumber(ARGV[10]), ARGV[8] .. '#' .. i)
    end
    if taken == 0 then limit = 0 end
  end
  free = math.max(0, cap - redis.call('ZCARD', slotKey))
end
local ids = limit > 0 and redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, limit) or {}
local out = {}
local used = 0
local stopped = 0
for _, id in ipairs(ids) do
  local k = prefix .. 'm:' .. id
  local m = redis.call('HSTRLEN', k, 'm')
  if m == 0 then
    -- The record expired or was removed: drop the orphaned queue entry.
    redis.call('ZREM', KEYS[1], id)
  else
    local size = entryBytes(m, redis.call('HSTRLEN', k, 'r'), redis.call('HSTRLEN', k, 's'))
    if #out > 0 and used + size > budget then
      stopped = 1
      break
    end
    used = used + size
    local v = redis.call('HMGET', k, 'm', 'r', 's', 'v', 'rc')
    redis.call('ZADD', KEYS[1], untilMs, id)
    redis.call('HSET', k, 'l', ARGV[5], 'lu', untilMs)
    local found = v[5] and supCheckLines(prefix, v[5], now) or {}
    out[#out + 1] = {id, v[1], v[2], v[3], v[4], tostring(untilMs), found}
  end
end
return {out, redis.call('ZCOUNT', prefix .. 'wq', '-inf', now), stopped,
  redis.call('ZCOUNT', KEYS[1], '-inf', now), taken, free}
`,
  encode: ({ keys, now, limit, leaseMs, token, budgetBytes, slots }) => ({
    keys: slots ? [keys.queue, keys.connectionSlots(slots.host)] : [keys.queue],
    argv: [
      keys.prefix,
      String(now),
      String(limit),
      String(leaseMs),
      token,
      String(budgetBytes),
      String(slots?.cap ?? 0),
      slots?.take?.holder ?? "",
      String(slots?.take?.want ?? 0),
      String(slots?.take?.until ?? 0),
    ],
  }),
  decode: ([rows, eventsDue, stopped, dueLeft, taken, free], { token }) => ({
    entries: rows.map(([, meta, raw, state, version, until, found]) => {
      const suppressed = decodeFound(found);
      return {
        message: JSON.parse(String(meta)) as QueuedMessage,
        raw: String(raw),
        state: JSON.parse(String(state)) as DeliveryState,
        version: Number(version),
        leasedUntil: Number(until),
        token,
        ...(suppressed.length ? { suppressed } : {}),
      };
    }),
    eventsDue: Number(eventsDue),
    stoppedAtBudget: Number(stopped) === 1,
    dueLeft: Number(dueLeft),
    ...(Number(free) >= 0
      ? { slots: { free: Number(free), ...(Number(taken) >= 0 ? { taken: Number(taken) } : {}) } }
      : {}),
  }),
});
