/**
 * Steering one stored email on behalf of a key: read it (a sending key sees only its own),
 * reschedule it, make a deferred one due now, cancel it. Every change is a commit guarded by the
 * version read, so it never races a delivery run holding the message: that answers 409.
 */
import type { Principal } from "../auth/keys.ts";
import { ConflictError, NotFoundError, StoreUnavailableError } from "../errors.ts";
import { canceledEvents, type EventDraft } from "../events/events.ts";
import type { Logger } from "../log.ts";
import type { RelayStore } from "../store/store.ts";
import type { StoredEntry } from "../store/types.ts";
import { cancelState, canRetryNow, lastEvent } from "./state.ts";

export class EmailSteering {
  readonly #store: RelayStore;
  readonly #now: () => number;
  readonly #log: Logger;
  readonly #retentionMs: number;

  constructor(store: RelayStore, options: { now: () => number; log: Logger; retentionMs: number }) {
    this.#store = store;
    this.#now = options.now;
    this.#log = options.log;
    this.#retentionMs = options.retentionMs;
  }

  async get(id: string, principal: Principal): Promise<StoredEntry> {
    let entry: StoredEntry | null;
    try {
      entry = await this.#store.get(id);
    } catch (err) {
      throw new StoreUnavailableError(err);
    }
    // A sending key sees only its own messages; others look absent rather than forbidden, so
    // ids cannot be probed.
    if (
      !entry ||
      (principal.permission !== "full_access" && entry.message.keyId !== principal.keyId)
    ) {
      throw new NotFoundError("Email");
    }
    return entry;
  }

  async reschedule(id: string, principal: Principal, at: number): Promise<void> {
    const entry = await this.get(id, principal);
    const now = this.#now();
    if (entry.state.canceledAt !== null)
      throw new ConflictError("This email was canceled and cannot be rescheduled");
    if (entry.state.attempts > 0 || lastEvent(entry.state, now) !== "scheduled") {
      throw new ConflictError("Only an email that is still scheduled can be rescheduled");
    }
    const state = { ...entry.state, scheduledAt: at };
    await this.#write(id, entry, state, { kind: "due", at: Math.max(at, now) });
  }

  /**
   * Makes a deferred message due now, for the next delivery run; written only if it is still as
   * read and no run holds it (the version guard), so it never races a claim.
   */
  async retryNow(id: string, principal: Principal): Promise<void> {
    const entry = await this.get(id, principal);
    const now = this.#now();
    if (!canRetryNow(entry.state, entry.leasedUntil, now))
      throw new ConflictError(
        "Only an email waiting for its next attempt after a temporary failure can be retried now",
      );
    await this.#write(id, entry, { ...entry.state, nextAttemptAt: now }, { kind: "due", at: now });
    this.#log.info("email.retry_now", { email_id: id, key_id: principal.keyId });
  }

  async cancel(id: string, principal: Principal): Promise<void> {
    const entry = await this.get(id, principal);
    const now = this.#now();
    if (entry.state.canceledAt !== null) return;
    if (!entry.state.recipients.some((r) => r.status === "pending")) {
      throw new ConflictError(
        "This email has already been delivered or has failed; there is nothing to cancel",
      );
    }
    await this.#write(
      id,
      entry,
      cancelState(entry.state, now),
      { kind: "done", retainMs: this.#retentionMs },
      canceledEvents(entry.message, now),
    );
    this.#log.info("email.canceled", { email_id: id, key_id: principal.keyId });
  }

  async #write(
    id: string,
    entry: StoredEntry,
    state: StoredEntry["state"],
    next: Parameters<RelayStore["commit"]>[3],
    events?: EventDraft[],
  ) {
    let result: Awaited<ReturnType<RelayStore["commit"]>>;
    try {
      result = await this.#store.commit(
        id,
        { version: entry.version, now: this.#now() },
        state,
        next,
        events,
      );
    } catch (err) {
      throw new StoreUnavailableError(err);
    }
    if (result === "missing") throw new NotFoundError("Email");
    if (result === "conflict") {
      throw new ConflictError("This email is being delivered right now; try again in a moment");
    }
  }
}
