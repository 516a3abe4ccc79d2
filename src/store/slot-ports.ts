/**
 * Connection slots: a cap on the SMTP connections every delivery invocation together may hold to
 * one smart host, kept in the store because the invocations a scheduled run fans out to
 * (src/delivery/fanout.ts) share nothing else. Slots are taken inside the claim command (no
 * command of their own, and none at all while nothing is due), renewed while their holder runs
 * and given back with one command when it ends; a holder that dies without giving them back
 * loses them at the `until` of its last take or renewal, so a crash holds the cap only briefly.
 */

/** Part of a claim: what the claim tells about, and optionally takes from, a host's slots. */
export interface ClaimSlots {
  /** The smart host the slots are for (host:port): one cap per host. */
  host: string;
  /** Connections all holders together may have. */
  cap: number;
  /**
   * Take up to `want` slots for `holder` before claiming, and claim nothing when none is free
   * (or nothing is due: then no slot is taken either).
   */
  take?: { holder: string; want: number; until: number };
}

/** What a claim with `ClaimSlots` answers about them. */
export interface SlotsAnswer {
  /** Slots the claim took for its holder (with `take`; 0: the cap is reached or nothing is due). */
  taken?: number;
  /** Slots free on the host after the claim. */
  free: number;
}

export interface ConnectionSlots {
  /** Gives back the `count` slots `holder` took on `host`. One command; idempotent. */
  releaseSlots(host: string, holder: string, count: number): Promise<void>;
  /**
   * Moves the lapse of the slots `holder` still has on `host` to `until`. One command; it never
   * adds a slot the holder does not have (one another claim already found lapsed stays gone).
   */
  renewSlots(host: string, holder: string, count: number, until: number): Promise<void>;
}

/** Slot members are `holder#i`, i from 1, so a release names exactly what its take added. */
export function slotMembers(holder: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${holder}#${i + 1}`);
}
