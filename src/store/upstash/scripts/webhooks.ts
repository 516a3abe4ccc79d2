/**
 * Webhook endpoints: the record (kind "webhook", with the other records) and the subscription the
 * enqueue and commit scripts fan out from are written and removed together, one command each.
 */
import type { KeyLayout } from "../keys.ts";
import { defineScript } from "./define.ts";

/** Lua-side subscription string: " type type ", matched with a plain find. */
function subscription(events: readonly string[]): string {
  return ` ${events.join(" ")} `;
}

/** KEYS: records, subscriptions, failing, event log: every key an endpoint has. */
function endpointKeys(keys: KeyLayout, id: string): string[] {
  return [keys.records("webhook"), keys.subscriptions, keys.failing, keys.eventLog(id)];
}

export interface PutWebhookArgs {
  keys: KeyLayout;
  id: string;
  record: unknown;
  /** null: disabled (no subscription). */
  events: readonly string[] | null;
}

/** Saving an enabled endpoint also ends its run of failures. */
export const putWebhookScript = defineScript<PutWebhookArgs, number, void>({
  name: "PUT_WEBHOOK",
  lua: `
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[2], ARGV[1])
else
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
  redis.call('HDEL', KEYS[3], ARGV[1])
end
return 1
`,
  encode: ({ keys, id, record, events }) => ({
    keys: endpointKeys(keys, id),
    argv: [id, JSON.stringify(record), events === null ? "" : subscription(events)],
  }),
  decode: () => undefined,
});

export const deleteWebhookScript = defineScript<{ keys: KeyLayout; id: string }, number, boolean>({
  name: "DELETE_WEBHOOK",
  lua: `
local existed = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('DEL', KEYS[4])
return existed
`,
  encode: ({ keys, id }) => ({ keys: endpointKeys(keys, id), argv: [id] }),
  decode: (existed) => existed === 1,
});

export interface GetWebhooksArgs {
  keys: KeyLayout;
  /** One endpoint, or null for all of them. */
  id: string | null;
}

/** Endpoint records as stored (JSON) with whether each is enabled. */
export const getWebhooksScript = defineScript<
  GetWebhooksArgs,
  [string, number][],
  { json: string; enabled: boolean }[]
>({
  name: "GET_WEBHOOKS",
  lua: `
local out = {}
if ARGV[1] ~= '' then
  local rec = redis.call('HGET', KEYS[1], ARGV[1])
  if rec then out[1] = {rec, redis.call('HEXISTS', KEYS[2], ARGV[1])} end
  return out
end
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  out[#out + 1] = {all[i + 1], redis.call('HEXISTS', KEYS[2], all[i])}
end
return out
`,
  encode: ({ keys, id }) => ({
    keys: endpointKeys(keys, id ?? "").slice(0, 2),
    argv: [id ?? ""],
  }),
  decode: (rows) =>
    rows.map(([json, enabled]) => ({ json: String(json), enabled: Number(enabled) === 1 })),
});
