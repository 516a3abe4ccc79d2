/**
 * One email's webhook events as queued for every endpoint, with their attempts, in one command:
 * the caller derives the email's possible event ids (they are deterministic, events/events.ts);
 * the script looks each up under every endpoint and follows the replays each one lists.
 */
import type { EndpointEvent, EventAttempt } from "../../ports.ts";
import type { KeyLayout } from "../keys.ts";
import { defineScript } from "./define.ts";
import { summaryStatus } from "./event-log.ts";

export interface EmailEventsArgs {
  keys: KeyLayout;
  eventIds: string[];
  now: () => number;
}

/** {endpoint, id, type, email, created, status, attempts, next, lease, until, replay of}... */
type EmailEventsReply = (string | number | null)[][];

/** At most this many rows: a page, not an export (replays of replays cannot run away). */
const MAX_ROWS = 500;

export const emailEventsScript = defineScript<EmailEventsArgs, EmailEventsReply, EndpointEvent[]>({
  name: "EMAIL_EVENTS",
  lua: `
local eps = redis.call('HKEYS', KEYS[1])
local out = {}
for _, ep in ipairs(eps) do
  local ids = {}
  for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
  local n = 1
  while n <= #ids and #out < ${MAX_ROWS} do
    local h = redis.call('HMGET', ARGV[1] .. 'wd:' .. ep .. ':' .. ids[n],
      't', 'e', 'c', 's', 'a', 'na', 'l', 'lu', 'r', 'rp')
    if h[1] then
      out[#out + 1] = {ep, ids[n], h[1], h[2], h[3], h[4], h[5] or '[]', h[6] or '', h[7] or '',
        h[8] or 0, h[9] or ''}
      if h[10] then
        for rp in string.gmatch(h[10], '%S+') do ids[#ids + 1] = rp end
      end
    end
    n = n + 1
  end
end
return out
`,
  encode: ({ keys, eventIds }) => ({
    keys: [keys.records("webhook")],
    argv: [keys.prefix, ...eventIds],
  }),
  decode: (rows, { now }) => {
    const at = now();
    return rows.map(
      ([ep, id, type, emailId, created, status, attempts, next, lease, until, replayOf]) => {
        const s = summaryStatus(String(status), String(lease ?? ""), Number(until ?? 0), at);
        return {
          endpointId: String(ep),
          id: String(id),
          type: String(type),
          emailId: String(emailId),
          createdAt: Number(created),
          status: s,
          attempts: JSON.parse(String(attempts || "[]")) as EventAttempt[],
          nextAttemptAt: s === "pending" && next ? Number(next) : null,
          ...(replayOf ? { replayOf: String(replayOf) } : {}),
        };
      },
    );
  },
});
