/**
 * A name that at most one record may hold (a template's alias, a domain's name), kept as a record
 * of its own that names its holder and is claimed by compare-and-set, so of two requests racing
 * for one name exactly one wins.
 *
 * The protocol, for callers: write the record that will carry the name first, then claim; a
 * loser takes its own record back out. A rival that finds a claim whose holder is missing, or no
 * longer carries the name, knows it is stale (a removal or rename that stopped half way) and takes
 * it over the same way; because the holder was written before it claimed, a winner in the middle
 * of its own create is never mistaken for a stale holder.
 */
import type { RecordCache } from "./store/record-cache.ts";
import type { RecordKind, RelayStore } from "./store/store.ts";

export interface UniqueName<Claim extends { id: string }> {
  /** Where the claims live. */
  kind: RecordKind;
  /** The isolate's cache of claims, when the send path reads them (a template alias): kept fresh. */
  cache?: RecordCache<Claim>;
  /** The holder a stored claim names. */
  holderOf(claim: Claim): string;
  /** The claim record for `name` held by `holderId`. */
  claim(name: string, holderId: string): Claim;
  /** Whether the record `holderId` still carries `name` (false when it is gone). */
  holds(store: RelayStore, holderId: string, name: string): Promise<boolean>;
}

/**
 * Claims `name` for `holderId`, or throws `taken()`. Two rounds: the second runs only when
 * another writer changed the claim between this one's read and its swap.
 */
export async function claimName<Claim extends { id: string }>(
  store: RelayStore,
  spec: UniqueName<Claim>,
  name: string,
  holderId: string,
  taken: () => Error,
): Promise<void> {
  for (let round = 0; round < 2; round++) {
    const held = await store.getRecord<Claim>(spec.kind, name);
    if (held && spec.holderOf(held) === holderId) return;
    if (held && (await spec.holds(store, spec.holderOf(held), name))) throw taken();
    const claim = spec.claim(name, holderId);
    const swapped = spec.cache
      ? await spec.cache.swap(store, held, claim)
      : await store.swapRecord(spec.kind, name, held, claim);
    if (swapped) return;
  }
  throw taken();
}

/** Gives `name` up, if `holderId` still holds it (a rival may have taken a stale claim over). */
export async function releaseName<Claim extends { id: string }>(
  store: RelayStore,
  spec: UniqueName<Claim>,
  name: string,
  holderId: string,
): Promise<void> {
  const held = await store.getRecord<Claim>(spec.kind, name);
  if (!held || spec.holderOf(held) !== holderId) return;
  if (spec.cache) await spec.cache.remove(store, name);
  else await store.deleteRecord(spec.kind, name);
}
