/**
 * Writes a delivery's new state and releases its lease, if the guard still holds, and queues the
 * events the change emits in the same step (only if the write succeeds).
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
import type { CommitResult, NextStep, WriteGuard } from "../../ports.ts";
import { INDEX_TRIM_PER_COMMIT } from "../../shared.ts";
import { hostOutcomes } from "../../smart-host.ts";
import type { Suppression } from "../../suppression-ports.ts";
import type { DeliveryState, EventDraft } from "../../types.ts";
import type { KeyLayout } from "../keys.ts";
import { defineScript } from "./define.ts";
import { eventArgv, FANOUT } from "./fanout.ts";
import { INDEX } from "./index-fragment.ts";
import { SUPPRESSION, suppressionArgv } from "./suppressions.ts";

/** ARGV[10..13]: the smart host's success and refusal this state carries ("" when none). */
function outcomeArgv(id: string, state: DeliveryState): string[] {
  const { success, refusal } = hostOutcomes(id, state);
  return [success, refusal].flatMap((o) => (o ? [JSON.stringify(o), String(o.at)] : ["", "0"]));
}

export interface CommitArgs {
  keys: KeyLayout;
  id: string;
  guard: WriteGuard;
  state: DeliveryState;
  next: NextStep;
  events?: EventDraft[] | undefined;
  suppress?: Suppression[] | undefined;
  now: number;
}

/** {1, deliveries queued} ok, 0 conflict, -1 missing. */
type CommitReply = number | [number, number];

export const commitScript = defineScript<
  CommitArgs,
  CommitReply,
  { result: CommitResult; queued: number }
>({
  name: "COMMIT",
  lua: `${FANOUT}${INDEX}${SUPPRESSION}
local k = KEYS[2]
local h = redis.call('HMGET', k, 'v', 'l', 'lu', 'ct', 'k')
if not h[1] then return -1 end
if ARGV[2] ~= '' then
  if h[2] ~= ARGV[2] then
    if h[4] == ARGV[2] then return {1, 0} end
    return 0
  end
else
  if (h[2] and h[2] ~= '' and tonumber(h[3] or '0') > tonumber(ARGV[4])) or h[1] ~= ARGV[3] then
    return 0
  end
end
redis.call('HSET', k, 's', ARGV[5], 'v', tonumber(h[1]) + 1, 'l', '', 'lu', 0, 'ct', ARGV[2])
if ARGV[6] == 'due' then
  redis.call('ZADD', KEYS[1], ARGV[7], ARGV[1])
else
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('PEXPIRE', k, ARGV[7])
  indexExpire(ARGV[8], ARGV[1], h[5] or '', tonumber(ARGV[9]) + tonumber(ARGV[7]))
end
local keyId = h[5] or ''
countEvents(ARGV[8], 14, function() return keyId end)
indexTrim(ARGV[8], ARGV[9], ${INDEX_TRIM_PER_COMMIT})
-- The smart host's latest outcomes (smart-host.ts), each kept only over an older one.
for i, f in ipairs({'ok', 'no'}) do
  local v, at = ARGV[8 + 2 * i], tonumber(ARGV[9 + 2 * i])
  if v ~= '' and at >= tonumber(redis.call('HGET', ARGV[8] .. 'sh', f .. '_at') or '-1') then
    redis.call('HSET', ARGV[8] .. 'sh', f, v, f .. '_at', at)
  end
end
-- The addresses to suppress follow the events (suppressionArgv): count, then email, id, value.
local sb = 15 + 5 * tonumber(ARGV[14])
for i = 0, tonumber(ARGV[sb]) - 1 do
  supAdd(ARGV[8], ARGV[sb + 1 + i * 3], ARGV[sb + 2 + i * 3], ARGV[sb + 3 + i * 3], tonumber(ARGV[9]))
end
return {1, fanout(ARGV[8], 14, ARGV[9])}
`,
  encode({ keys, id, guard, state, next, events, suppress, now }) {
    const byToken = "token" in guard;
    return {
      keys: [keys.queue, keys.message(id)],
      argv: [
        id,
        byToken ? guard.token : "", // "" for a version guard
        byToken ? "" : String(guard.version),
        byToken ? "0" : String(guard.now),
        JSON.stringify(state),
        next.kind,
        String(next.kind === "due" ? Math.round(next.at) : Math.max(1, Math.round(next.retainMs))),
        keys.prefix,
        String(now), // for the events
        ...outcomeArgv(id, state),
        ...eventArgv(events),
        ...suppressionArgv(suppress),
      ],
    };
  },
  decode(reply) {
    if (Array.isArray(reply)) return { result: "ok", queued: Number(reply[1]) || 0 };
    return { result: reply === 0 ? "conflict" : "missing", queued: 0 };
  },
});
