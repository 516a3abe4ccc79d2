/**
 * Accepts a batch of messages in one command: the messages, their place in the queue, the
 * request's idempotency record and the events accepting them emits, all or nothing.
 *
 * It refuses (nothing stored) when the idempotency key no longer holds this request's marker: a
 * write that reaches Redis late (after the marker lapsed, perhaps after another request took the
 * key) must not store a second copy. @upstash/redis re-sends a request after a network error, so
 * this can run twice with the same arguments. Message ids are new for every accept, so an
 * existing first message means it ran already: the repeat writes nothing and queues no event a
 * second time, nor counts its events again.
 *
 * Each message also enters the list index (all emails, and its key's), and each event counts in
 * its hour's metrics bucket (index-fragment.ts).
 */
import type { IdempotencyRecord, NewEntry } from "../../ports.ts";
import { inFlightMarker } from "../idempotency.ts";
import type { KeyLayout } from "../keys.ts";
import { defineScript } from "./define.ts";
import { eventArgv, FANOUT } from "./fanout.ts";
import { INDEX } from "./index-fragment.ts";

export interface EnqueueArgs {
  keys: KeyLayout;
  entries: NewEntry[];
  idempotency?: IdempotencyRecord | undefined;
  now: number;
}

/** Event deliveries queued, or "lapsed" when the idempotency claim no longer held. */
export type EnqueueResult = number | "lapsed";

export const enqueueScript = defineScript<EnqueueArgs, number, EnqueueResult>({
  name: "ENQUEUE",
  lua: `${FANOUT}${INDEX}
local prefix = ARGV[1]
local n = tonumber(ARGV[2])
if n > 0 and redis.call('EXISTS', prefix .. 'm:' .. ARGV[8]) == 1 then return 0 end
if ARGV[3] ~= '' then
  local idem = prefix .. 'idem:' .. ARGV[3]
  local held = redis.call('GET', idem)
  if not held or string.sub(held, 1, #ARGV[7]) ~= ARGV[7] then return -1 end
  redis.call('SET', idem, ARGV[4], 'PX', ARGV[5])
end
local keys = {}
for i = 0, n - 1 do
  local b = 8 + i * 9
  local id = ARGV[b]
  redis.call('HSET', prefix .. 'm:' .. id, 'm', ARGV[b + 1], 'r', ARGV[b + 2], 's', ARGV[b + 3],
    'v', 1, 'l', ARGV[b + 5], 'lu', ARGV[b + 6], 'k', ARGV[b + 7])
  redis.call('ZADD', KEYS[1], ARGV[b + 4], id)
  indexAdd(prefix, id, ARGV[b + 7], ARGV[b + 8])
  keys[id] = ARGV[b + 7]
end
countEvents(prefix, 8 + n * 9, function(email) return keys[email] end)
return fanout(prefix, 8 + n * 9, ARGV[6])
`,
  encode({ keys, entries, idempotency, now }) {
    // ARGV[1..7]; from ARGV[8], 9 per message (the Lua's `8 + i * 9`); then the events.
    const argv = [
      keys.prefix,
      String(entries.length),
      idempotency?.key ?? "",
      idempotency
        ? JSON.stringify({ kind: "done", hash: idempotency.hash, response: idempotency.response })
        : "",
      String(idempotency?.ttlMs ?? 0),
      String(now),
      // The start of the request's in-flight marker, matched as a prefix.
      idempotency ? inFlightMarker(idempotency.token) : "",
    ];
    for (const e of entries) {
      argv.push(
        e.message.id,
        JSON.stringify(e.message),
        e.raw,
        JSON.stringify(e.state),
        String(e.lease ? e.lease.until : e.dueAt),
        e.lease?.token ?? "",
        String(e.lease?.until ?? 0),
        e.message.keyId,
        String(e.message.createdAt),
      );
    }
    argv.push(...eventArgv(entries.flatMap((e) => e.events ?? [])));
    return { keys: [keys.queue], argv };
  },
  decode: (queued) => (Number(queued) < 0 ? "lapsed" : Number(queued) || 0),
});
