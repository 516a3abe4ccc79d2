/**
 * The relay's own secrets: random 256-bit values it creates in the store the first time one is
 * needed (one SET NX GET, then cached for the isolate's life), so every isolate agrees and there
 * is nothing for the operator to configure or keep. One per purpose (`name`), so that a value
 * signed for one use (an attachment link) is never accepted for another (a dashboard session).
 * Not derived from ADMIN_TOKEN (optional, and what it signs must not be a function of an admin
 * credential) nor from the Upstash token (the memory store has none). Deleting
 * `<prefix>secret:<name>` invalidates what was signed with it, once isolates are recycled.
 */
import { StoreUnavailableError } from "./errors.ts";
import type { Relay } from "./relay.ts";
import type { RelayStore } from "./store/store.ts";

const secrets = new WeakMap<RelayStore, Map<string, Promise<string>>>();

function newSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The relay's secret for `name`, made on first use. */
export async function relaySecret(relay: Relay, name: string): Promise<string> {
  let byName = secrets.get(relay.store);
  if (!byName) {
    byName = new Map();
    secrets.set(relay.store, byName);
  }
  let secret = byName.get(name);
  if (!secret) {
    secret = relay.store.secret(name, newSecret());
    byName.set(name, secret);
  }
  try {
    return await secret;
  } catch (err) {
    byName.delete(name);
    relay.log.error("store.unavailable", { op: "secret", error: String(err) });
    throw new StoreUnavailableError(err);
  }
}
