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
 *
 * Each message keeps its normalised recipients (rc, one a line) for CLAIM's suppression check,
 * and the leased ones (attempted right after this) are checked here, a repeat included: the
 * suppressed recipients come back with the answer (suppressions.ts), at no command of their own.
 */
import type { EnqueueOutcome, IdempotencyRecord, NewEntry } from "../../ports.ts";
import { normalizeAddress } from "../../suppression-ports.ts";
import { inFlightMarker } from "../idempotency.ts";
import type { KeyLayout } from "../keys.ts";
import { defineScript } from "./define.ts";
import { eventArgv, FANOUT } from "./fanout.ts";
import { INDEX } from "./index-fragment.ts";
import { decodeFound, SUPPRESSION } from "./suppressions.ts";

export interface EnqueueArgs {
  keys: KeyLayout;
  entries: NewEntry[];
  idempotency?: IdempotencyRecord | undefined;
  now: number;
}

/** Event deliveries queued and the leased entries' suppressed recipients, or "lapsed". */
export type EnqueueResult = ({ queued: number } & EnqueueOutcome) | "lapsed";

/** -1 lapsed, or {deliveries queued, {id, {email, origin, ...}, ...}}. */
type EnqueueReply = number | [number, (string | string[])[]];

/** Fields per message in ARGV, from ARGV[8] (the Lua's stride). */
const PER_MESSAGE = 10;

export const enqueueScript = defineScript<EnqueueArgs, EnqueueReply, EnqueueResult>({
  name: "ENQUEUE",
  lua: `${FANOUT}${INDEX}${SUPPRESSION}
local prefix = ARGV[1]
local n = tonumber(ARGV[2])
local function checked()
  local out = {}
  for i = 0, n - 1 do
    local b = 8 + i * ${PER_MESSAGE}
    if ARGV[b + 5] ~= '' then
      local found = supCheckLines(prefix, ARGV[b + 9], tonumber(ARGV[6]))
      if #found > 0 then
        out[#out + 1] = ARGV[b]
        out[#out + 1] = found
      end
    end
  end
  return out
end
if n > 0 and redis.call('EXISTS', prefix .. 'm:' .. ARGV[8]) == 1 then return {0, checked()} end
if ARGV[3] ~= '' then
  local idem = prefix .. 'idem:' .. ARGV[3]
  local held = redis.call('GET', idem)
  if not held or string.sub(held, 1, #ARGV[7]) ~= ARGV[7] then return -1 end
  redis.call('SET', idem, ARGV[4], 'PX', ARGV[5])
end
local keys = {}
for i = 0, n - 1 do
  local b = 8 + i * ${PER_MESSAGE}
  local id = ARGV[b]
  redis.call('HSET', prefix .. 'm:' .. id, 'm', ARGV[b + 1], 'r', ARGV[b + 2], 's', ARGV[b + 3],
    'v', 1, 'l', ARGV[b + 5], 'lu', ARGV[b + 6], 'k', ARGV[b + 7], 'rc', ARGV[b + 9])
  redis.call('ZADD', KEYS[1], ARGV[b + 4], id)
  indexAdd(prefix, id, ARGV[b + 7], ARGV[b + 8])
  keys[id] = ARGV[b + 7]
end
countEvents(prefix, 8 + n * ${PER_MESSAGE}, function(email) return keys[email] end)
return {fanout(prefix, 8 + n * ${PER_MESSAGE}, ARGV[6]), checked()}
`,
  encode({ keys, entries, idempotency, now }) {
    // ARGV[1..7]; from ARGV[8], PER_MESSAGE per message; then the events.
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
        e.message.envelope.to.map(normalizeAddress).join("\n"),
      );
    }
    argv.push(...eventArgv(entries.flatMap((e) => e.events ?? [])));
    return { keys: [keys.queue], argv };
  },
  decode(reply) {
    if (!Array.isArray(reply)) return "lapsed";
    const [queued, found] = reply;
    const suppressed: EnqueueOutcome["suppressed"] = {};
    for (let i = 0; i + 1 < found.length; i += 2) {
      suppressed[String(found[i])] = decodeFound(found[i + 1]);
    }
    return { queued: Number(queued) || 0, suppressed };
  },
});
