/**
 * One window of the email list index (GET /emails), in one command: it first trims up to
 * INDEX_TRIM_PER_READ emails whose record expired from the index, then finds the cursor's rank
 * and reads the metadata and state (never the raw message) of up to `count` emails next to it,
 * within LIST_BUDGET_BYTES (stopping early says `more`).
 * Newest first: ZREVRANGE order, by created time and then by id. A read only: safe to repeat.
 */
import type { EmailListQuery, EmailListWindow, ListedEntry } from "../../history-ports.ts";
import { INDEX_TRIM_PER_READ } from "../../shared.ts";
import type { DeliveryState, QueuedMessage } from "../../types.ts";
import type { KeyLayout } from "../keys.ts";
import { defineScript } from "./define.ts";
import { INDEX } from "./index-fragment.ts";

export interface ListEmailsArgs {
  keys: KeyLayout;
  query: EmailListQuery;
  /** LIST_BUDGET_BYTES unless a test wants a small one. */
  budgetBytes: number;
}

/** {0}: cursor not found; {1, more, edge, id, m, s, id, m, s, ...}. */
type ListReply = (string | number | null)[];

export const listEmailsScript = defineScript<ListEmailsArgs, ListReply, EmailListWindow>({
  name: "LIST_EMAILS",
  lua: `${INDEX}
local prefix, ix = ARGV[1], KEYS[1]
indexTrim(prefix, ARGV[2], ${INDEX_TRIM_PER_READ})
local mode, cursor, since, untl, count = ARGV[3], ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7])
local lo = 0
if untl ~= '+inf' then lo = redis.call('ZCOUNT', ix, '(' .. untl, '+inf') end
local first, last
if mode == '' then
  first, last = lo, lo + count
else
  local r = redis.call('ZREVRANK', ix, cursor)
  if not r then return {0} end
  if mode == 'after' then
    first = math.max(lo, r + 1)
    last = first + count
  else
    first, last = math.max(lo, r - count), r - 1
  end
end
local out = {1, 0, ''}
if last < first then return out end
local got = redis.call('ZREVRANGE', ix, first, last, 'WITHSCORES')
local n = #got / 2
local floor = nil
if since ~= '-inf' then floor = tonumber(since) end
if mode == 'before' then
  if first > lo then out[2] = 1 end
elseif n > count then
  n = count
  if not floor or tonumber(got[2 * count + 2]) >= floor then out[2] = 1 end
end
-- Nearest the cursor first: walking to newer emails, from the window's end.
local from, to, step = 1, n, 1
if mode == 'before' then from, to, step = n, 1, -1 end
local budget, used, picked = tonumber(ARGV[8]), 0, {}
for i = from, to, step do
  local id = got[2 * i - 1]
  local key = prefix .. 'm:' .. id
  if floor and tonumber(got[2 * i]) < floor then
    if mode ~= 'before' then
      out[2] = 0
      break
    end
    out[3] = id -- older than since: passed over, newer ones may follow
  else
    local size = redis.call('HSTRLEN', key, 'm') + redis.call('HSTRLEN', key, 's')
    if used > 0 and used + size > budget then
      out[2] = 1
      break
    end
    used = used + size
    out[3] = id
    local h = redis.call('HMGET', key, 'm', 's')
    if h[1] and h[2] then picked[#picked + 1] = {id, h[1], h[2]} end
  end
end
local a, b, s = 1, #picked, 1
if mode == 'before' then a, b, s = #picked, 1, -1 end
for i = a, b, s do
  out[#out + 1] = picked[i][1]
  out[#out + 1] = picked[i][2]
  out[#out + 1] = picked[i][3]
end
return out
`,
  encode({ keys, query, budgetBytes }) {
    const mode = query.after ? "after" : query.before ? "before" : "";
    return {
      keys: [query.keyId === undefined ? keys.index : keys.keyIndex(query.keyId)],
      argv: [
        keys.prefix,
        String(query.now),
        mode,
        query.after ?? query.before ?? "",
        query.since === undefined ? "-inf" : String(query.since),
        query.until === undefined ? "+inf" : String(query.until),
        String(query.count),
        String(budgetBytes),
      ],
    };
  },
  decode(reply) {
    if (Number(reply[0]) !== 1) return { found: false };
    const entries: ListedEntry[] = [];
    for (let i = 3; i + 2 < reply.length; i += 3) {
      entries.push({
        message: JSON.parse(String(reply[i + 1])) as QueuedMessage,
        state: JSON.parse(String(reply[i + 2])) as DeliveryState,
      });
    }
    const edge = reply[2] ? String(reply[2]) : null;
    return { found: true, entries, more: Number(reply[1]) === 1, edge };
  },
});

export interface MetricsArgs {
  keys: KeyLayout;
  fromHour: number;
  toHour: number;
  /** The hash fields to read from each hour's bucket. */
  fields: string[];
}

/** The counters of a run of hours, in one command: per hour, HMGET of the fields asked for. */
export const metricsScript = defineScript<MetricsArgs, (string | null)[], (number | null)[]>({
  name: "EMAIL_METRICS",
  lua: `
local out = {}
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
for hour = tonumber(ARGV[2]), tonumber(ARGV[3]) do
  local got = redis.call('HMGET', ARGV[1] .. 'mx:' .. string.format('%d', hour), unpack(fields))
  for i = 1, #fields do out[#out + 1] = got[i] or '' end
end
return out
`,
  encode: ({ keys, fromHour, toHour, fields }) => ({
    keys: [],
    argv: [keys.prefix, String(fromHour), String(toHour), ...fields],
  }),
  decode: (reply) => reply.map((v) => (v === null || v === "" ? null : Number(v))),
});
