/**
 * The suppression list in Redis (keys.ts: sup, sup:i, sup:ix) and the scripts that manage it. The
 * Lua fragment SUPPRESSION is shared with ENQUEUE and CLAIM (which check recipients with one
 * HMGET inside the command they already make) and COMMIT (which adds the addresses an attempt
 * found dead), so the send path pays no command for the list.
 *
 * A `sup` value is "<expires_at ms, 0: never> <origin> <key id> <id> <entry JSON>": the fields
 * the scripts test come first and are read with one string.match, so no JSON parser (cjson) is
 * needed inside Redis. Key ids and origins have no spaces; the JSON comes last and may.
 */
import type {
  SuppressedRecipient,
  Suppression,
  SuppressionListQuery,
  SuppressionOrigin,
  SuppressionPage,
  SuppressionSelector,
} from "../../suppression-ports.ts";
import type { KeyLayout } from "../keys.ts";
import { defineScript } from "./define.ts";

/** The `sup` value for an entry (see the module comment). */
export function encodeSuppression(s: Suppression): string {
  return `${s.expires_at ?? 0} ${s.origin} ${s.key_id} ${s.id} ${JSON.stringify(s)}`;
}

/** The argv triples (email, id, value) supAdd reads. */
export function suppressionArgv(entries: Suppression[] | undefined): string[] {
  const list = entries ?? [];
  return [String(list.length), ...list.flatMap((s) => [s.email, s.id, encodeSuppression(s)])];
}

/** A flat {email, origin, ...} reply as recipients, each address once. */
export function decodeFound(flat: unknown): SuppressedRecipient[] {
  const out = new Map<string, SuppressionOrigin>();
  const list = Array.isArray(flat) ? flat : [];
  for (let i = 0; i + 1 < list.length; i += 2) {
    out.set(String(list[i]), String(list[i + 1]) as SuppressionOrigin);
  }
  return [...out].map(([email, origin]) => ({ email, origin }));
}

export const SUPPRESSION = `
local function supParse(v)
  local exp, origin, key, id, json = string.match(v, '^(%d+) (%S+) (%S+) (%S+) (.*)$')
  return tonumber(exp), origin, key, id, json
end
-- The live entry {origin, key id, id, json} held under an address, or nil; an expired one is
-- dropped on the way (expiry is lazy).
local function supLive(prefix, email, v, now)
  if not v then return nil end
  local exp, origin, key, id, json = supParse(v)
  if not exp then return nil end
  if exp > 0 and exp <= now then
    redis.call('HDEL', prefix .. 'sup', email)
    redis.call('HDEL', prefix .. 'sup:i', id)
    redis.call('ZREM', prefix .. 'sup:ix', id)
    return nil
  end
  return {origin, key, id, json}
end
-- Which of the addresses are suppressed at now: a flat {email, origin, ...}.
local function supCheck(prefix, emails, now)
  local out = {}
  if #emails == 0 then return out end
  local vs = redis.call('HMGET', prefix .. 'sup', unpack(emails))
  for i, email in ipairs(emails) do
    local r = supLive(prefix, email, vs[i], now)
    if r then
      out[#out + 1] = email
      out[#out + 1] = r[1]
    end
  end
  return out
end
-- The recipients a message keeps in its 'rc' field (normalised, one a line), checked.
local function supCheckLines(prefix, lines, now)
  local emails = {}
  for a in string.gmatch(lines or '', '[^\\n]+') do emails[#emails + 1] = a end
  return supCheck(prefix, emails, now)
end
-- Adds an entry unless the address has a live one: {json, 1} added, {json of the held one, 0}.
local function supAdd(prefix, email, id, v, now)
  local held = supLive(prefix, email, redis.call('HGET', prefix .. 'sup', email), now)
  if held then return {held[4], 0} end
  redis.call('HSET', prefix .. 'sup', email, v)
  redis.call('HSET', prefix .. 'sup:i', id, email)
  redis.call('ZADD', prefix .. 'sup:ix', 0, id)
  local _, _, _, _, json = supParse(v)
  return {json, 1}
end
-- The live entry {origin, key id, id, json, email} by id or by address, or nil.
local function supFind(prefix, idOrEmail, now)
  local r = supLive(prefix, idOrEmail, redis.call('HGET', prefix .. 'sup', idOrEmail), now)
  if r then
    r[5] = idOrEmail
    return r
  end
  local email = redis.call('HGET', prefix .. 'sup:i', idOrEmail)
  if not email then return nil end
  r = supLive(prefix, email, redis.call('HGET', prefix .. 'sup', email), now)
  if not r or r[3] ~= idOrEmail then return nil end
  r[5] = email
  return r
end
`;

export const addSuppressionsScript = defineScript<
  { keys: KeyLayout; entries: Suppression[]; now: number },
  [string, number][],
  { entry: Suppression; created: boolean }[]
>({
  name: "ADD_SUPPRESSIONS",
  lua: `${SUPPRESSION}
local now = tonumber(ARGV[2])
local out = {}
for i = 0, tonumber(ARGV[3]) - 1 do
  out[#out + 1] = supAdd(ARGV[1], ARGV[4 + i * 3], ARGV[5 + i * 3], ARGV[6 + i * 3], now)
end
return out
`,
  encode: ({ keys, entries, now }) => ({
    keys: [],
    argv: [keys.prefix, String(now), ...suppressionArgv(entries)],
  }),
  decode: (rows) =>
    rows.map(([json, created]) => ({
      entry: JSON.parse(String(json)) as Suppression,
      created: Number(created) === 1,
    })),
});

export const getSuppressionScript = defineScript<
  { keys: KeyLayout; idOrEmail: string; now: number },
  string | null,
  Suppression | null
>({
  name: "GET_SUPPRESSION",
  lua: `${SUPPRESSION}
local r = supFind(ARGV[1], ARGV[2], tonumber(ARGV[3]))
if not r then return false end
return r[4]
`,
  encode: ({ keys, idOrEmail, now }) => ({
    keys: [],
    argv: [keys.prefix, idOrEmail, String(now)],
  }),
  decode: (json) => (json ? (JSON.parse(String(json)) as Suppression) : null),
});

/**
 * A page, newest first (ids are UUIDv7 and sup:ix orders them as text). It walks sup:ix from the
 * cursor in chunks, skipping what the filters leave out, each chunk resuming after the last id
 * seen (an expired entry dropped on the way does not shift it); `before` walks upwards and the
 * page is turned round at the end.
 */
export const listSuppressionsScript = defineScript<
  { keys: KeyLayout; query: SuppressionListQuery },
  [string[], number],
  SuppressionPage
>({
  name: "LIST_SUPPRESSIONS",
  lua: `${SUPPRESSION}
local prefix, limit, after, before = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local origin, key, now = ARGV[5], ARGV[6], tonumber(ARGV[7])
local ix = prefix .. 'sup:ix'
local up = before ~= ''
local cursor = up and ('(' .. before) or (after ~= '' and ('(' .. after) or '+')
local out, more = {}, 0
while more == 0 do
  local ids
  if up then
    ids = redis.call('ZRANGEBYLEX', ix, cursor, '+', 'LIMIT', 0, 100)
  else
    ids = redis.call('ZREVRANGEBYLEX', ix, cursor, '-', 'LIMIT', 0, 100)
  end
  if #ids == 0 then break end
  for _, id in ipairs(ids) do
    local r = supFind(prefix, id, now)
    if not r then
      -- Expired (supLive dropped it) or an orphan left by an interrupted write.
      redis.call('ZREM', ix, id)
    elseif (origin == '' or r[1] == origin) and (key == '' or r[2] == key) then
      if #out == limit then
        more = 1
        break
      end
      out[#out + 1] = r[4]
    end
  end
  cursor = '(' .. ids[#ids]
end
if up then
  local turned = {}
  for i = #out, 1, -1 do turned[#turned + 1] = out[i] end
  out = turned
end
return {out, more}
`,
  encode: ({ keys, query: q }) => ({
    keys: [],
    argv: [
      keys.prefix,
      String(q.limit),
      q.after ?? "",
      q.before ?? "",
      q.origin ?? "",
      q.keyId ?? "",
      String(q.now),
    ],
  }),
  decode: ([rows, more]) => ({
    data: rows.map((json) => JSON.parse(String(json)) as Suppression),
    hasMore: Number(more) === 1,
  }),
});

export const removeSuppressionsScript = defineScript<
  { keys: KeyLayout; selector: SuppressionSelector; now: number },
  string[],
  Suppression[]
>({
  name: "REMOVE_SUPPRESSIONS",
  lua: `${SUPPRESSION}
local prefix, now = ARGV[1], tonumber(ARGV[2])
local out = {}
for i = 3, #ARGV do
  local r = supFind(prefix, ARGV[i], now)
  if r then
    redis.call('HDEL', prefix .. 'sup', r[5])
    redis.call('HDEL', prefix .. 'sup:i', r[3])
    redis.call('ZREM', prefix .. 'sup:ix', r[3])
    out[#out + 1] = r[4]
  end
end
return out
`,
  // An id and an address never look alike (an address has an @), so one lookup serves both.
  encode: ({ keys, selector, now }) => ({
    keys: [],
    argv: [keys.prefix, String(now), ...("ids" in selector ? selector.ids : selector.emails)],
  }),
  decode: (rows) => rows.map((json) => JSON.parse(String(json)) as Suppression),
});

export const suppressedAmongScript = defineScript<
  { keys: KeyLayout; emails: string[]; now: number },
  string[],
  SuppressedRecipient[]
>({
  name: "SUPPRESSED_AMONG",
  lua: `${SUPPRESSION}
local emails = {}
for i = 3, #ARGV do emails[#emails + 1] = ARGV[i] end
return supCheck(ARGV[1], emails, tonumber(ARGV[2]))
`,
  encode: ({ keys, emails, now }) => ({ keys: [], argv: [keys.prefix, String(now), ...emails] }),
  decode: decodeFound,
});
