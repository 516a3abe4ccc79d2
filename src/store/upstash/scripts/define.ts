/**
 * One Lua script with its calling convention: `encode` turns typed arguments into KEYS and ARGV
 * (so the positions the Lua reads live in one place, next to it) and `decode` turns the raw reply
 * into what the driver returns. `bind` gives the driver a plain async function that runs it with
 * EVALSHA, falling back to EVAL when Redis does not have it cached (@upstash/redis `Script.exec`).
 */
import type { Redis } from "@upstash/redis";

export interface ScriptCall {
  keys: string[];
  argv: string[];
}

export interface ScriptDefinition<Args, Reply, Result> {
  /** The name tools (bench/) show for it, as in STORE_SCRIPTS. */
  name: string;
  lua: string;
  encode(args: Args): ScriptCall;
  /** `args` are the call's own, for what the reply leaves out (the lease token, say). */
  decode(reply: Reply, args: Args): Result;
}

/** `Reply` is the reply's shape as the client hands it over (no automatic deserialisation). */
export function defineScript<Args, Reply, Result>(
  definition: ScriptDefinition<Args, Reply, Result>,
): ScriptDefinition<Args, Reply, Result> {
  return definition;
}

/** The script as an async function on `redis`; the SHA-1 is computed once per client. */
export function bind<Args, Reply, Result>(
  redis: Redis,
  definition: ScriptDefinition<Args, Reply, Result>,
): (args: Args) => Promise<Result> {
  const script = redis.createScript<Reply>(definition.lua);
  return async (args) => {
    const { keys, argv } = definition.encode(args);
    return definition.decode(await script.exec(keys, argv), args);
  };
}
