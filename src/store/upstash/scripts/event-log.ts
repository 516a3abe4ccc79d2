/**
 * An endpoint's newest events, newest first, in one command (the log keeps only their ids); with
 * `attempts`, each with its attempts and next attempt too (the dashboard's endpoint page).
 */
import type { EndpointEvent, EventAttempt, EventStatus } from "../../ports.ts";
import type { KeyLayout } from "../keys.ts";
import { defineScript } from "./define.ts";

export interface EventLogArgs {
  keys: KeyLayout;
  endpointId: string;
  limit: number;
  /** Also each event's attempts and next attempt. */
  attempts?: boolean;
  /** The driver's clock, read when the answer arrives (a lease may have run out meanwhile). */
  now: () => number;
}

/** {id, type, email, created, status, lease token, lease end, replay of[, attempts, next]}... */
type EventLogReply = (string | number | null)[][];

export const eventLogScript = defineScript<EventLogArgs, EventLogReply, EndpointEvent[]>({
  name: "EVENT_LOG",
  lua: `
local ids = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1)
local full = ARGV[4] == '1'
local out = {}
for _, ev in ipairs(ids) do
  local key = ARGV[1] .. 'wd:' .. ARGV[2] .. ':' .. ev
  local h
  if full then
    h = redis.call('HMGET', key, 't', 'e', 'c', 's', 'l', 'lu', 'r', 'a', 'na')
  else
    h = redis.call('HMGET', key, 't', 'e', 'c', 's', 'l', 'lu', 'r')
  end
  if h[1] then
    local row = {ev, h[1], h[2], h[3], h[4], h[5] or '', h[6] or 0, h[7] or ''}
    if full then
      row[9] = h[8] or '[]'
      row[10] = h[9] or ''
    end
    out[#out + 1] = row
  end
end
return out
`,
  encode: ({ keys, endpointId, limit, attempts }) => ({
    keys: [keys.eventLog(endpointId)],
    argv: [keys.prefix, endpointId, String(limit), attempts ? "1" : "0"],
  }),
  decode: (rows, { endpointId, now }) => {
    const at = now();
    return rows.map(([id, type, emailId, created, status, lease, until, replayOf, a, next]) => {
      const s = summaryStatus(String(status), String(lease ?? ""), Number(until ?? 0), at);
      return {
        id: String(id),
        type: String(type),
        emailId: String(emailId),
        createdAt: Number(created),
        status: s,
        ...(replayOf ? { replayOf: String(replayOf) } : {}),
        endpointId,
        attempts: a ? (JSON.parse(String(a)) as EventAttempt[]) : [],
        nextAttemptAt: s === "pending" && next ? Number(next) : null,
      };
    });
  },
});

/** A leased event shows as "attempting"; once its lease ran out it is waiting again. */
export function summaryStatus(
  status: string,
  lease: string,
  until: number,
  now: number,
): EventStatus {
  if (status === "attempting" && (lease === "" || until <= now)) return "pending";
  return status as EventStatus;
}
