/**
 * Connection slots on Upstash (slot-ports.ts): the cs:<host> sorted set, member -> lapse (ms).
 * The CLAIM script takes them; giving back and renewing are single plain commands.
 */
import type { Redis } from "@upstash/redis";
import { slotMembers } from "../slot-ports.ts";
import type { KeyLayout } from "./keys.ts";

export class UpstashSlots {
  readonly #redis: Redis;
  readonly #keys: KeyLayout;

  constructor(redis: Redis, keys: KeyLayout) {
    this.#redis = redis;
    this.#keys = keys;
  }

  async release(host: string, holder: string, count: number): Promise<void> {
    const [first, ...rest] = slotMembers(holder, count);
    if (first !== undefined)
      await this.#redis.zrem(this.#keys.connectionSlots(host), first, ...rest);
  }

  async renew(host: string, holder: string, count: number, until: number): Promise<void> {
    const [first, ...rest] = slotMembers(holder, count).map((member) => ({ score: until, member }));
    // XX: only members still there, so a slot another claim found lapsed is not taken back.
    if (first)
      await this.#redis.zadd(this.#keys.connectionSlots(host), { xx: true }, first, ...rest);
  }
}
