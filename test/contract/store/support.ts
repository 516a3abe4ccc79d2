/**
 * What the store contract suites share: the factory a driver's test hands them, entries and
 * event drafts to store, and the wrapper that names (or skips) one port's suite.
 */
import { describe } from "vitest";
import { initialState } from "../../../src/delivery/state.ts";
import type { EventDraft, EventType } from "../../../src/events/events.ts";
import type { ClaimedEvent, NewEntry, RelayStore } from "../../../src/store/store.ts";

export interface StoreFactory {
  name: string;
  /** A fresh, empty store (e.g. a new key prefix), with a small claim budget when asked. */
  make: (options?: { claimBudgetBytes?: number; listBudgetBytes?: number }) => RelayStore;
  skip?: string | false;
}

let seq = 0;
export function newEntry(
  overrides: Partial<NewEntry> = {},
  recipients = ["a@example.com"],
): NewEntry {
  const id = crypto.randomUUID();
  seq++;
  return {
    message: {
      id,
      keyId: "key-1",
      createdAt: 1_000 + seq,
      messageId: `<${id}@example.com>`,
      envelope: { from: "sender@example.com", to: recipients },
      view: {
        from: "Sender <sender@example.com>",
        to: recipients,
        cc: [],
        bcc: [],
        reply_to: [],
        subject: "Hello",
        tags: [{ name: "kind", value: "test" }],
      },
    },
    raw: `Subject: Hello\r\nMessage-ID: <${id}@example.com>\r\n\r\nbody ${seq}\r\n`,
    state: initialState(recipients, null),
    dueAt: 10_000,
    ...overrides,
  };
}

/** An event about `emailId`, as src/events/events.ts drafts them. */
export function eventDraft(type: EventType, emailId: string, createdAt = Date.now()): EventDraft {
  const id = crypto.randomUUID();
  return {
    id,
    type,
    emailId,
    createdAt,
    payload: JSON.stringify({
      type,
      created_at: new Date(createdAt).toISOString(),
      data: { email_id: emailId },
    }),
  };
}

/** The endpoint record the contract stores (the store keeps it as opaque JSON). */
export const endpoint = (id: string) => ({ id, endpoint: `https://${id}.example/hook` });

/** Claims the due event chain heads at `at`. */
export async function claimOne(store: RelayStore, at = Date.now() + 1): Promise<ClaimedEvent[]> {
  return store.claimEvents(at, 10, 30_000);
}

/** One port's suite for one driver, skipped (with the reason in its name) when the driver is. */
export function describePort(port: string, factory: StoreFactory, body: () => void): void {
  const skipped = factory.skip ? ` (skipped: ${factory.skip})` : "";
  describe.skipIf(Boolean(factory.skip))(`store ${port} contract: ${factory.name}${skipped}`, body);
}
