/**
 * The suppression list's use cases (Resend's /suppressions), over the store's SuppressionStore.
 * Who may do what:
 * - a full_access key (and ADMIN_TOKEN) sees the whole list and adds and removes entries;
 * - a sending_access key sees its own view only (entries its sends caused or it added) and
 *   changes nothing;
 * - a key with `allowed_recipients` adds or removes only addresses those patterns allow: removing
 *   one outside them would let a narrow key unsuppress anyone's address.
 * Delivery adds bounces inside the commit command (src/delivery/suppress.ts); `reportEntry` makes
 * the entry a later bounce or complaint adds, written by bounce intake's own commit.
 */
import { type Principal, requireFullAccess } from "./auth/keys.ts";
import { matchesPattern, PolicyError } from "./auth/policy.ts";
import type { SuppressionExpiry } from "./config.ts";
import { NotFoundError, ValidationError } from "./errors.ts";
import { isMailboxAddress } from "./mail/address.ts";
import {
  normalizeAddress,
  type RelayStore,
  type Suppression,
  type SuppressionOrigin,
  type SuppressionPage,
  uuidV7,
} from "./store/store.ts";

export interface SuppressionPageRequest {
  limit: number;
  after?: string | undefined;
  before?: string | undefined;
  origin?: SuppressionOrigin | undefined;
}

/** An address a later bounce or a complaint showed should get no more mail. */
export interface ReportedAddress {
  email: string;
  origin: "bounce" | "complaint";
  sourceId: string | null;
  keyId: string;
}

/** A batch removal names ids or addresses, not both. */
export type RemoveRequest = { ids: string[] } | { emails: string[] };

/** The address as the list keeps it, or a 422 naming `field`. */
export function suppressionAddress(value: unknown, field: string): string {
  if (typeof value !== "string") throw new ValidationError("must be an email address", field);
  const email = normalizeAddress(value);
  if (!isMailboxAddress(email))
    throw new ValidationError(`${JSON.stringify(value)} is not an email address`, field);
  return email;
}

export class Suppressions {
  readonly #store: RelayStore;
  readonly #expiry: SuppressionExpiry;
  readonly #now: () => number;

  constructor(store: RelayStore, expiry: SuppressionExpiry, now: () => number) {
    this.#store = store;
    this.#expiry = expiry;
    this.#now = now;
  }

  #entry(
    email: string,
    origin: SuppressionOrigin,
    keyId: string,
    sourceId: string | null,
    now: number,
    seq: number,
  ): Suppression {
    const ms = this.#expiry[origin];
    return {
      id: uuidV7(now, seq),
      email,
      origin,
      source_id: sourceId,
      key_id: keyId,
      created_at: now,
      expires_at: ms === null ? null : now + ms,
    };
  }

  /** Adds addresses by hand (origin "manual"); an address already suppressed keeps its entry. */
  async add(
    principal: Principal,
    emails: string[],
  ): Promise<{ entry: Suppression; created: boolean }[]> {
    requireFullAccess(principal);
    for (const email of emails) mayTouch(principal, email);
    const now = this.#now();
    const entries = emails.map((e, i) => this.#entry(e, "manual", principal.keyId, null, now, i));
    return this.#store.addSuppressions(entries, now);
  }

  /**
   * The entry a later bounce or a complaint about `email` adds (found for the message `sourceId`
   * sent by key `keyId`; its expiry follows SUPPRESSION_EXPIRY_DAYS for the origin), not yet
   * written: bounce intake hands it to the commit that records the report, so the address is
   * suppressed in that same command or not at all.
   */
  reportEntry(report: ReportedAddress, now: number): Suppression {
    const email = normalizeAddress(report.email);
    return this.#entry(email, report.origin, report.keyId, report.sourceId, now, 0);
  }

  /**
   * Whether `address` is suppressed now, and by what origin: what an SMTP session asks at RCPT, so
   * it can refuse that recipient at once. It tells a key nothing a send to the address would not.
   */
  async heldBack(address: string): Promise<SuppressionOrigin | null> {
    const [found] = await this.#store.suppressedAmong([normalizeAddress(address)], this.#now());
    return found?.origin ?? null;
  }

  /** One entry by id or address, as the principal may see it; NotFoundError otherwise. */
  async get(principal: Principal, idOrEmail: string): Promise<Suppression> {
    const key = idOrEmail.includes("@") ? normalizeAddress(idOrEmail) : idOrEmail.toLowerCase();
    const found = await this.#store.getSuppression(key, this.#now());
    if (!found || !visibleTo(principal, found)) throw new NotFoundError("Suppression");
    return found;
  }

  list(principal: Principal, page: SuppressionPageRequest): Promise<SuppressionPage> {
    return this.#store.listSuppressions({
      ...page,
      keyId: principal.permission === "full_access" ? undefined : principal.keyId,
      now: this.#now(),
    });
  }

  /**
   * Removes entries; answers the ones removed (unknown ones are left out). A key with
   * allowed_recipients must be allowed every address named, or nothing is removed.
   */
  async remove(principal: Principal, request: RemoveRequest): Promise<Suppression[]> {
    requireFullAccess(principal);
    const now = this.#now();
    if ("emails" in request) {
      for (const email of request.emails) mayTouch(principal, email);
      return this.#store.removeSuppressions({ emails: request.emails }, now);
    }
    if (principal.policy?.allowed_recipients) {
      // Ids say nothing of the address: look each up first (an id always names one address).
      const found = await Promise.all(request.ids.map((id) => this.#store.getSuppression(id, now)));
      for (const s of found) if (s) mayTouch(principal, s.email);
    }
    return this.#store.removeSuppressions({ ids: request.ids }, now);
  }

  /** `DELETE /suppressions/:id_or_email`: one entry, NotFoundError when there is none. */
  async removeOne(principal: Principal, idOrEmail: string): Promise<Suppression> {
    const request: RemoveRequest = idOrEmail.includes("@")
      ? { emails: [normalizeAddress(idOrEmail)] }
      : { ids: [idOrEmail.toLowerCase()] };
    const [removed] = await this.remove(principal, request);
    if (!removed) throw new NotFoundError("Suppression");
    return removed;
  }
}

/** A sending_access key sees the entries it caused or added. */
function visibleTo(principal: Principal, s: Suppression): boolean {
  return principal.permission === "full_access" || s.key_id === principal.keyId;
}

/** Refuses an address outside the key's allowed_recipients (403, as a refused send is). */
function mayTouch(principal: Principal, email: string): void {
  const patterns = principal.policy?.allowed_recipients;
  if (patterns && !patterns.some((p) => matchesPattern(email, p))) {
    throw new PolicyError(
      `email: ${email} is not a recipient this API key may send to, so it may not change its suppression`,
    );
  }
}
