/** An endpoint's newest events, newest first, in one command (the log keeps only their ids). */
import type { EventStatus, EventSummary } from "../../ports.ts";
import type { KeyLayout } from "../keys.ts";
import { defineScript } from "./define.ts";

export interface EventLogArgs {
  keys: KeyLayout;
  endpointId: string;
  limit: number;
  /** The driver's clock, read when the answer arrives (a lease may have run out meanwhile). */
  now: () => number;
}

/** {id, type, email, created, status, lease token, lease end, replay of}... */
type EventLogReply = (string | number | null)[][];

export const eventLogScript = defineScript<EventLogArgs, EventLogReply, EventSummary[]>({
  name: "EVENT_LOG",
  lua: `
local ids = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1)
local out = {}
for _, ev in ipairs(ids) do
  local h = redis.call('HMGET', ARGV[1] .. 'wd:' .. ARGV[2] .. ':' .. ev, 't', 'e', 'c', 's', 'l', 'lu', 'r')
  if h[1] then out[#out + 1] = {ev, h[1], h[2], h[3], h[4], h[5] or '', h[6] or 0, h[7] or ''} end
end
return out
`,
  encode: ({ keys, endpointId, limit }) => ({
    keys: [keys.eventLog(endpointId)],
    argv: [keys.prefix, endpointId, String(limit)],
  }),
  decode: (rows, { now }) =>
    rows.map(([id, type, emailId, created, status, lease, until, replayOf]) => ({
      id: String(id),
      type: String(type),
      emailId: String(emailId),
      createdAt: Number(created),
      status: summaryStatus(String(status), String(lease ?? ""), Number(until ?? 0), now()),
      ...(replayOf ? { replayOf: String(replayOf) } : {}),
    })),
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
