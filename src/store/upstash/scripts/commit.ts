/**
 * Writes deliveries' new states and releases their leases, each if its guard still holds, and
 * queues the events each change emits in the same step (only if that write succeeds). One
 * message or several (a group commit) per command.
 *
 * A token-guarded commit may run twice (a lost reply, re-sent by @upstash/redis or by the
 * delivery's own retry): the token it applied is kept in ct, and a repeat with it answers ok
 * without writing, queueing or counting its events again.
 *
 * It also counts the events in their hour's metrics bucket, and when the message is finished it
 * schedules its leaving the list index for when its record expires; each commit then trims up to
 * INDEX_TRIM_PER_COMMIT expired emails from the index (index-fragment.ts), and keeps the smart
 * host's latest success and refusal (sh), derived from the state (smart-host.ts), and adds the
 * addresses the attempt found dead to the suppression list (suppressions.ts), all in this one
 * command.
 */
import type { CommitItem, CommitResult } from "../../ports.ts";
import { INDEX_TRIM_PER_COMMIT } from "../../shared.ts";
import { hostOutcomes } from "../../smart-host.ts";
import type { DeliveryState } from "../../types.ts";
import type { KeyLayout } from "../keys.ts";
import { defineScript } from "./define.ts";
import { eventArgv, FANOUT } from "./fanout.ts";
import { INDEX } from "./index-fragment.ts";
import { SUPPRESSION, suppressionArgv } from "./suppressions.ts";

/** The smart host's success and refusal this state carries ("" and "0" when none). */
function outcomeArgv(id: string, state: DeliveryState): string[] {
  const { success, refusal } = hostOutcomes(id, state);
  return [success, refusal].flatMap((o) => (o ? [JSON.stringify(o), String(o.at)] : ["", "0"]));
}

export interface CommitArgs {
  keys: KeyLayout;
  items: CommitItem[];
  now: number;
}

/** Per item: {1, deliveries queued} ok, {0, 0} conflict, {-1, 0} missing. */
type CommitReply = [number, number][];

/**
 * The Lua for one item whose ARGV start at `o` (itemArgv's layout): id, token ("" for a version
 * guard), version, the guard's now, state, next kind, next at or retention, the smart host's
 * success and refusal (value, at; twice), the events (count, 5 each), the addresses to suppress
 * (count, 3 each). Returns its reply and where the next item starts.
 */
const COMMIT_ONE = `
local function commitOne(prefix, now, o)
  local id = ARGV[o]
  local eb = o + 11
  local sb = eb + 1 + 5 * tonumber(ARGV[eb])
  local after = sb + 1 + 3 * tonumber(ARGV[sb])
  local k = prefix .. 'm:' .. id
  local h = redis.call('HMGET', k, 'v', 'l', 'lu', 'ct', 'k')
  if not h[1] then return {-1, 0}, after end
  local token = ARGV[o + 1]
  if token ~= '' then
    if h[2] ~= token then
      if h[4] == token then return {1, 0}, after end
      return {0, 0}, after
    end
  else
    if (h[2] and h[2] ~= '' and tonumber(h[3] or '0') > tonumber(ARGV[o + 3]))
      or h[1] ~= ARGV[o + 2] then
      return {0, 0}, after
    end
  end
  redis.call('HSET', k, 's', ARGV[o + 4], 'v', tonumber(h[1]) + 1, 'l', '', 'lu', 0, 'ct', token)
  if ARGV[o + 5] == 'due' then
    redis.call('ZADD', KEYS[1], ARGV[o + 6], id)
  else
    redis.call('ZREM', KEYS[1], id)
    redis.call('PEXPIRE', k, ARGV[o + 6])
    indexExpire(prefix, id, h[5] or '', tonumber(now) + tonumber(ARGV[o + 6]))
  end
  local keyId = h[5] or ''
  countEvents(prefix, eb, function() return keyId end)
  -- The smart host's latest outcomes (smart-host.ts), each kept only over an older one.
  for i, f in ipairs({'ok', 'no'}) do
    local v, at = ARGV[o + 5 + 2 * i], tonumber(ARGV[o + 6 + 2 * i])
    if v ~= '' and at >= tonumber(redis.call('HGET', prefix .. 'sh', f .. '_at') or '-1') then
      redis.call('HSET', prefix .. 'sh', f, v, f .. '_at', at)
    end
  end
  for i = 0, tonumber(ARGV[sb]) - 1 do
    supAdd(prefix, ARGV[sb + 1 + i * 3], ARGV[sb + 2 + i * 3], ARGV[sb + 3 + i * 3], tonumber(now))
  end
  return {1, fanout(prefix, eb, now)}, after
end
`;

function itemArgv(item: CommitItem): string[] {
  const { id, guard, state, next } = item;
  const byToken = "token" in guard;
  return [
    id,
    byToken ? guard.token : "",
    byToken ? "" : String(guard.version),
    byToken ? "0" : String(guard.now),
    JSON.stringify(state),
    next.kind,
    String(next.kind === "due" ? Math.round(next.at) : Math.max(1, Math.round(next.retainMs))),
    ...outcomeArgv(id, state),
    ...eventArgv(item.events),
    ...suppressionArgv(item.suppress),
  ];
}

/**
 * Several write-backs in one command (a group commit: delivery/group-commit.ts), each guarded
 * on its own, so one that lost its lease does not stop the others. ARGV: prefix, now, the count,
 * then each item as itemArgv lays it out. The index is trimmed as much per item as one commit
 * trims, so grouping leaves the index no larger.
 */
export const commitScript = defineScript<
  CommitArgs,
  CommitReply,
  { result: CommitResult; queued: number }[]
>({
  name: "COMMIT",
  lua: `${FANOUT}${INDEX}${SUPPRESSION}${COMMIT_ONE}
local prefix, now, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
local replies, o = {}, 4
for i = 1, n do
  replies[i], o = commitOne(prefix, now, o)
end
indexTrim(prefix, now, ${INDEX_TRIM_PER_COMMIT} * n)
return replies
`,
  encode({ keys, items, now }) {
    return {
      keys: [keys.queue],
      argv: [keys.prefix, String(now), String(items.length), ...items.flatMap(itemArgv)],
    };
  },
  decode(reply) {
    return (Array.isArray(reply) ? reply : []).map(([status, queued]) => ({
      result: status === 1 ? "ok" : status === 0 ? "conflict" : "missing",
      queued: status === 1 ? Number(queued) || 0 : 0,
    }));
  },
});
