/**
 * The in-memory connection slots (slot-ports.ts): per host, slot member -> when it lapses, as the
 * Upstash cs:<host> sorted set. The queue takes them inside its claim, as CLAIM does.
 */
import { type ClaimSlots, type SlotsAnswer, slotMembers } from "../slot-ports.ts";

export class MemorySlots {
  readonly #hosts = new Map<string, Map<string, number>>();

  /** Drops lapsed slots, takes what `slots.take` asks when `due`, and tells what is left. */
  claim(slots: ClaimSlots, now: number, due: boolean): SlotsAnswer {
    const held = this.#hosts.get(slots.host) ?? new Map<string, number>();
    this.#hosts.set(slots.host, held);
    for (const [member, until] of held) if (until <= now) held.delete(member);
    let taken: number | undefined;
    if (slots.take) {
      const { holder, want, until } = slots.take;
      taken = due ? Math.max(0, Math.min(want, slots.cap - held.size)) : 0;
      for (const member of slotMembers(holder, taken)) held.set(member, until);
    }
    return { free: Math.max(0, slots.cap - held.size), ...(taken !== undefined ? { taken } : {}) };
  }

  renew(host: string, holder: string, count: number, until: number): void {
    const held = this.#hosts.get(host);
    for (const member of slotMembers(holder, count)) if (held?.has(member)) held.set(member, until);
  }

  release(host: string, holder: string, count: number): void {
    const held = this.#hosts.get(host);
    for (const member of slotMembers(holder, count)) held?.delete(member);
  }
}
