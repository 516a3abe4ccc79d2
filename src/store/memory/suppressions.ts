/**
 * The in-memory suppression list: one map by normalised address, as the Upstash `sup` hash, with
 * the same expiry (an entry past `expires_at` is absent, and dropped when come across). The queue
 * checks and adds through it inside its own enqueue, claim and commit, as the scripts do.
 */
import type {
  SuppressedRecipient,
  Suppression,
  SuppressionListQuery,
  SuppressionPage,
  SuppressionSelector,
} from "../suppression-ports.ts";
import { copy } from "./values.ts";

const live = (s: Suppression, now: number) => s.expires_at === null || s.expires_at > now;

export class MemorySuppressions {
  readonly #byEmail = new Map<string, Suppression>();

  /** The live entry for an address; an expired one is dropped. */
  #live(email: string, now: number): Suppression | undefined {
    const s = this.#byEmail.get(email);
    if (s && !live(s, now)) {
      this.#byEmail.delete(email);
      return undefined;
    }
    return s;
  }

  add(entries: Suppression[], now: number): { entry: Suppression; created: boolean }[] {
    return entries.map((e) => {
      const held = this.#live(e.email, now);
      if (held) return { entry: copy(held), created: false };
      this.#byEmail.set(e.email, copy(e));
      return { entry: copy(e), created: true };
    });
  }

  get(idOrEmail: string, now: number): Suppression | null {
    const direct = this.#live(idOrEmail, now);
    if (direct) return copy(direct);
    const byId = [...this.#byEmail.values()].find((s) => s.id === idOrEmail);
    return byId && this.#live(byId.email, now) ? copy(byId) : null;
  }

  list(q: SuppressionListQuery): SuppressionPage {
    for (const s of [...this.#byEmail.values()]) this.#live(s.email, q.now);
    const all = [...this.#byEmail.values()]
      .filter((s) => (q.origin === undefined || s.origin === q.origin) && keyMatches(s, q.keyId))
      .sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
    if (q.before !== undefined) {
      const newer = all.filter((s) => s.id > (q.before as string));
      // The page just before the cursor: the `limit` oldest of those newer than it.
      const page = newer.slice(-q.limit);
      return { data: page.map(copy), hasMore: newer.length > q.limit };
    }
    const older = q.after === undefined ? all : all.filter((s) => s.id < (q.after as string));
    return { data: older.slice(0, q.limit).map(copy), hasMore: older.length > q.limit };
  }

  remove(selector: SuppressionSelector, now: number): Suppression[] {
    const removed: Suppression[] = [];
    const targets =
      "emails" in selector
        ? selector.emails.map((e) => this.#live(e, now))
        : selector.ids.map((id) => {
            const s = [...this.#byEmail.values()].find((x) => x.id === id);
            return s && this.#live(s.email, now);
          });
    for (const s of targets) {
      if (s && this.#byEmail.get(s.email) === s) {
        this.#byEmail.delete(s.email);
        removed.push(copy(s));
      }
    }
    return removed;
  }

  among(emails: string[], now: number): SuppressedRecipient[] {
    const out: SuppressedRecipient[] = [];
    for (const email of new Set(emails)) {
      const s = this.#live(email, now);
      if (s) out.push({ email, origin: s.origin });
    }
    return out;
  }
}

function keyMatches(s: Suppression, keyId: string | undefined): boolean {
  return keyId === undefined || s.key_id === keyId;
}
