/**
 * The request log (`GET /logs`): rl:i holds every entry's id with score 0, so the set is ordered
 * by the ids' text, which for UUIDv7 is their time; rl:d holds each entry's JSON. Appending,
 * trimming to the cap and the age bound, and renewing the TTL are one command; a page (with or
 * without a key filter) is another.
 */
import type { RequestLogEntry, RequestLogQuery } from "../../history-ports.ts";
import type { KeyLayout } from "../keys.ts";
import { defineScript } from "./define.ts";

export interface AppendRequestLogArgs {
  keys: KeyLayout;
  entries: RequestLogEntry[];
  max: number;
  since: string;
  ttlMs: number;
}

export const appendRequestLogScript = defineScript<AppendRequestLogArgs, number, void>({
  name: "APPEND_REQUEST_LOG",
  // Safe to run twice: ZADD and HSET of the same id and JSON change nothing, and the trims
  // remove the same ids again (a re-added old entry is the oldest, so it goes at once).
  lua: `
for i = 4, #ARGV, 2 do
  redis.call('ZADD', KEYS[1], 0, ARGV[i])
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
local function drop(ids)
  for i = 1, #ids, 500 do
    redis.call('HDEL', KEYS[2], unpack(ids, i, math.min(i + 499, #ids)))
  end
end
local old = redis.call('ZRANGEBYLEX', KEYS[1], '-', '(' .. ARGV[2])
if #old > 0 then
  drop(old)
  redis.call('ZREMRANGEBYLEX', KEYS[1], '-', '(' .. ARGV[2])
end
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[1])
if over > 0 then
  drop(redis.call('ZRANGE', KEYS[1], 0, over - 1))
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, over - 1)
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
`,
  encode: ({ keys, entries, max, since, ttlMs }) => ({
    keys: [keys.requestLogIndex, keys.requestLogData],
    argv: [
      String(max),
      since,
      String(Math.max(1, Math.round(ttlMs))),
      ...entries.flatMap((e) => [e.id, JSON.stringify(e)]),
    ],
  }),
  decode: () => undefined,
});

export interface ListRequestLogArgs {
  keys: KeyLayout;
  query: RequestLogQuery;
}

/**
 * Walks the index from the cursor (newest first, or oldest first for `before`), skipping other
 * keys' entries when filtered, until it has limit + 1 (the extra one tells `has_more`). A filtered
 * walk reads the log in chunks of 100; it is bounded by the cap (REQUEST_LOG_MAX entries).
 */
export const listRequestLogScript = defineScript<
  ListRequestLogArgs,
  string[],
  { entries: RequestLogEntry[]; hasMore: boolean }
>({
  name: "LIST_REQUEST_LOG",
  lua: `
local want = tonumber(ARGV[1]) + 1
local key = ARGV[5]
local needle = '"keyId":"' .. key .. '"'
local chunk = key == '' and want or 100
local out = {}
local offset = 0
while #out < want do
  local ids
  if ARGV[2] == 'newer' then
    ids = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[3], ARGV[4], 'LIMIT', offset, chunk)
  else
    ids = redis.call('ZREVRANGEBYLEX', KEYS[1], ARGV[4], ARGV[3], 'LIMIT', offset, chunk)
  end
  if #ids == 0 then break end
  local rows = redis.call('HMGET', KEYS[2], unpack(ids))
  for i = 1, #ids do
    local json = rows[i]
    if json and (key == '' or string.find(json, needle, 1, true)) then
      out[#out + 1] = json
      if #out == want then break end
    end
  end
  offset = offset + #ids
end
return out
`,
  encode: ({ keys, query }) => {
    const { after, before, since, keyId = "", limit } = query;
    // Lex bounds: [x includes x, (x excludes it. The oldest bound is the retention's.
    const min = before !== undefined && before >= since ? `(${before}` : `[${since}`;
    const max = after !== undefined ? `(${after}` : "+";
    return {
      keys: [keys.requestLogIndex, keys.requestLogData],
      argv: [String(limit), before !== undefined ? "newer" : "older", min, max, keyId],
    };
  },
  decode: (rows, { query }) => {
    const parsed = rows.map((json) => JSON.parse(json) as RequestLogEntry);
    const hasMore = parsed.length > query.limit;
    const page = parsed.slice(0, query.limit);
    // A "before" page is read oldest first; answered newest first like every page.
    return { entries: query.before !== undefined ? page.reverse() : page, hasMore };
  },
});
