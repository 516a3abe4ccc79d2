/**
 * The suppression list's port: addresses the relay does not send to (Resend's suppressions), each
 * added by a permanent refusal (origin "bounce"), a complaint, or by hand ("manual"). Both
 * drivers keep it in the same database as the queue, so the enqueue and claim steps can check a
 * message's recipients against it in the command they already make (no command of its own on the
 * send path), and the commit step can add the addresses an attempt found dead.
 *
 * An entry past its `expires_at` counts as absent everywhere (check, get, list, add, remove) and
 * is cleaned up lazily, whenever a step comes across it.
 */

export type SuppressionOrigin = "bounce" | "complaint" | "manual";

export const SUPPRESSION_ORIGINS: readonly SuppressionOrigin[] = ["bounce", "complaint", "manual"];

export interface Suppression {
  /** A UUIDv7, so ids sort by when they were made (the list is newest first). */
  id: string;
  /** Normalised: see `normalizeAddress`. */
  email: string;
  origin: SuppressionOrigin;
  /** The email whose delivery caused it (bounce, complaint), or null (manual). */
  source_id: string | null;
  /** The key whose send caused it, or that added it ("admin" for ADMIN_TOKEN). */
  key_id: string;
  created_at: number;
  /** When it stops counting (ms), or null: never. */
  expires_at: number | null;
}

/** What the send path learns about a suppressed recipient. */
export interface SuppressedRecipient {
  email: string;
  origin: SuppressionOrigin;
}

export interface SuppressionListQuery {
  /** 1 to 100. */
  limit: number;
  /** An id: the entries older than it. */
  after?: string | undefined;
  /** An id: the entries newer than it. */
  before?: string | undefined;
  origin?: SuppressionOrigin | undefined;
  /** Only the entries this key caused or added (a key's own view). */
  keyId?: string | undefined;
  now: number;
}

export interface SuppressionPage {
  /** Newest first. */
  data: Suppression[];
  hasMore: boolean;
}

/** Either ids or emails (normalised), up to 100. */
export type SuppressionSelector = { ids: string[] } | { emails: string[] };

/**
 * How an address is compared: trimmed, and lowercased in its ASCII letters only. Resend lowercases
 * and trims; ASCII-only lowering is what the store's Lua (`string.lower`) does too, so an address
 * with non-ASCII letters is normalised the same way in TypeScript and inside the scripts.
 */
export function normalizeAddress(address: string): string {
  return address.trim().replace(/[A-Z]+/g, (s) => s.toLowerCase());
}

export interface SuppressionStore {
  /**
   * Adds entries (emails already normalised) in one atomic step. An address that already has a
   * live entry keeps it: that entry is answered, with `created: false` (as Resend answers "the
   * existing suppression"). An expired entry for the address is replaced.
   */
  addSuppressions(
    entries: Suppression[],
    now: number,
  ): Promise<{ entry: Suppression; created: boolean }[]>;
  /** One live entry by id or by (normalised) email; null when there is none. */
  getSuppression(idOrEmail: string, now: number): Promise<Suppression | null>;
  /** A page of live entries, newest first. */
  listSuppressions(query: SuppressionListQuery): Promise<SuppressionPage>;
  /** Removes the live entries selected; answers those it removed (unknown ones are left out). */
  removeSuppressions(selector: SuppressionSelector, now: number): Promise<Suppression[]>;
  /** Which of `emails` (normalised) are suppressed now. The send path uses the queue's own. */
  suppressedAmong(emails: string[], now: number): Promise<SuppressedRecipient[]>;
}
