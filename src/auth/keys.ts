/**
 * API keys. A key is a random token shown once at creation; the store keeps only its SHA-256
 * digest, so a leaked database does not leak working keys. Verified keys are cached in the isolate
 * for `KEY_CACHE_SECONDS`, so the accept path does not pay a Redis round trip per request; a
 * deleted key therefore keeps working for at most that long in isolates that had it cached.
 * Digests found unknown are remembered for NEGATIVE_CACHE_MS (at most the key cache time), and a
 * client over its failure limit gets no lookup at all (auth/abuse.ts): invalid keys cost nothing.
 */

import { base64url } from "../base64url.ts";
import {
  ConflictError,
  InvalidApiKeyError,
  MissingApiKeyError,
  NotFoundError,
  RestrictedApiKeyError,
} from "../errors.ts";
import type { RelayStore } from "../store/store.ts";
import type { ApiKeyRecord, Permission } from "../store/types.ts";
import { BoundedCache, type FailureGuard, NEGATIVE_CACHE_MS } from "./abuse.ts";
import { checkMayTouch, type KeyPolicy } from "./policy.ts";
import type { RateLimit } from "./rate-limit.ts";

export interface Principal {
  keyId: string;
  permission: Permission;
  policy?: KeyPolicy | undefined;
}

/** The id under which ADMIN_TOKEN acts. */
export const ADMIN_KEY_ID = "admin";

/**
 * The check `rotate` and `remove` take, for a caller: ADMIN_TOKEN may touch any key; a key only
 * those whose policy lies within its own (see checkMayTouch).
 */
export function touchableBy(
  principal: Principal,
  relayRate: RateLimit,
): (policy: KeyPolicy | undefined) => void {
  return (policy) => {
    if (principal.keyId !== ADMIN_KEY_ID) checkMayTouch(principal.policy, policy, relayRate);
  };
}

const encoder = new TextEncoder();

export async function sha256(value: string | Uint8Array<ArrayBuffer>): Promise<Uint8Array> {
  const bytes = typeof value === "string" ? encoder.encode(value) : value;
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

/** Hex SHA-256, the form digests are stored and compared in. */
export async function sha256Hex(value: string | Uint8Array<ArrayBuffer>): Promise<string> {
  return toHex(await sha256(value));
}

export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Compares two digests in time independent of where they differ. Written by hand because the
 * runtimes disagree: Workers have crypto.subtle.timingSafeEqual, Deno and browsers do not.
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0;
}

function newToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  // Resend's keys start with "re_"; ours do too, so secret scanners and habits carry over.
  return `re_${base64url(bytes)}`;
}

interface CacheEntry {
  principal: Principal;
  expires: number;
}

export interface ApiKeysOptions {
  adminToken: string | undefined;
  cacheMs: number;
  now?: () => number;
}

export class ApiKeys {
  readonly #store: RelayStore;
  readonly #options: ApiKeysOptions;
  readonly #now: () => number;
  readonly #cache = new Map<string, CacheEntry>();
  /** Keys by id, for sessions (the dashboard's): the record, or null for none, until expires. */
  readonly #byId = new Map<string, { record: ApiKeyRecord | null; expires: number }>();
  /** Digests no key has, by hex: answered without a lookup until they expire. */
  readonly #unknown = new BoundedCache<true>();
  #adminDigest: Promise<Uint8Array> | undefined;

  constructor(store: RelayStore, options: ApiKeysOptions) {
    this.#store = store;
    this.#options = options;
    this.#now = options.now ?? Date.now;
    if (options.adminToken) this.#adminDigest = sha256(options.adminToken);
  }

  /**
   * Resolves the `Authorization` header to a principal, or throws the matching API error. `guard`
   * is the client's failure limit: checked before a lookup, charged when the key is unknown.
   */
  async authenticate(header: string | undefined | null, guard?: FailureGuard): Promise<Principal> {
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? "");
    if (!m?.[1]) throw new MissingApiKeyError();
    const token = m[1];
    const digest = await sha256(token);
    if (this.#adminDigest && constantTimeEqual(digest, await this.#adminDigest)) {
      return { keyId: ADMIN_KEY_ID, permission: "full_access" };
    }
    const hex = toHex(digest);
    const now = this.#now();
    const cached = this.#cache.get(hex);
    if (cached && cached.expires > now) return cached.principal;
    if (this.#unknown.get(hex, now)) throw new InvalidApiKeyError();
    guard?.check();
    const record = await this.#store.keyByDigest(hex);
    if (!record) {
      this.#cache.delete(hex);
      const unknownMs = Math.min(NEGATIVE_CACHE_MS, this.#options.cacheMs);
      if (unknownMs > 0) this.#unknown.set(hex, true, now + unknownMs);
      guard?.fail();
      throw new InvalidApiKeyError();
    }
    const principal: Principal = {
      keyId: record.id,
      permission: record.permission,
      policy: record.policy,
    };
    // last_used_at is written on cache misses only: precise to the cache lifetime, and costing no
    // command on the requests the cache answers.
    this.#store.touchKey(record, now).catch(() => {});
    if (this.#options.cacheMs > 0) {
      this.#cache.set(hex, { principal, expires: now + this.#options.cacheMs });
    }
    return principal;
  }

  /**
   * What a session signed in as `keyId` is checked against on each request: the principal as the
   * key is now and the digest of its credential (the session's signature binds it, so a rotated
   * ADMIN_TOKEN or a deleted key ends the session), or null when there is no such key (any more).
   * Read from the store at most once per KEY_CACHE_SECONDS per key in an isolate; an update or a
   * delete here forgets it at once.
   */
  async credential(keyId: string): Promise<{ principal: Principal; digest: string } | null> {
    if (keyId === ADMIN_KEY_ID) {
      if (!this.#adminDigest) return null;
      return {
        principal: { keyId: ADMIN_KEY_ID, permission: "full_access" },
        digest: toHex(await this.#adminDigest),
      };
    }
    const now = this.#now();
    let hit = this.#byId.get(keyId);
    if (!hit || hit.expires <= now) {
      const record = (await this.#store.listKeys()).find((k) => k.id === keyId) ?? null;
      hit = { record, expires: now + this.#options.cacheMs };
      if (this.#byId.size >= 1000) this.#byId.clear();
      if (this.#options.cacheMs > 0) this.#byId.set(keyId, hit);
    }
    const { record } = hit;
    if (!record) return null;
    return {
      principal: { keyId: record.id, permission: record.permission, policy: record.policy },
      digest: record.digest,
    };
  }

  async create(
    name: string,
    permission: Permission,
    policy?: KeyPolicy,
  ): Promise<{ id: string; token: string }> {
    const token = newToken();
    const record: ApiKeyRecord = {
      id: crypto.randomUUID(),
      name,
      permission,
      digest: toHex(await sha256(token)),
      createdAt: this.#now(),
      lastUsedAt: null,
      ...(policy ? { policy } : {}),
    };
    await this.#store.putKey(record);
    // Works at once here even if its digest was just looked up in vain.
    this.#unknown.delete(record.digest);
    return { id: record.id, token };
  }

  async list(): Promise<ApiKeyRecord[]> {
    return this.#store.listKeys();
  }

  /**
   * Rotation: a new token with the same name, permission and policy. The old key stays valid until
   * it is deleted, so clients can switch over without a gap. `allow` sees the policy first and
   * throws to refuse (a caller may not mint a token wider than itself).
   */
  async rotate(
    id: string,
    allow: (policy: KeyPolicy | undefined) => void = () => {},
  ): Promise<{ id: string; token: string }> {
    const old = (await this.#store.listKeys()).find((k) => k.id === id);
    if (!old) throw new NotFoundError("API key");
    allow(old.policy);
    return this.create(old.name, old.permission, old.policy);
  }

  /**
   * Changes a key's name, permission or policy: `change` gets the record as stored and returns
   * the new one (or throws to refuse). The write happens only if the record is still the one
   * `change` saw (a touch or another update in between: read again, a few times). This isolate
   * forgets the key at once; other isolates keep the cached key for up to KEY_CACHE_SECONDS.
   */
  async update(id: string, change: (record: ApiKeyRecord) => ApiKeyRecord): Promise<ApiKeyRecord> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const old = (await this.#store.listKeys()).find((k) => k.id === id);
      if (!old) throw new NotFoundError("API key");
      const next = { ...change(old), id: old.id, digest: old.digest, createdAt: old.createdAt };
      const outcome = await this.#store.updateKey(old, next);
      if (outcome === "missing") throw new NotFoundError("API key");
      if (outcome === "updated") {
        this.#forget(id);
        return next;
      }
    }
    throw new ConflictError("The API key changed while it was being updated; try again");
  }

  /** `allow` sees the key's policy first and throws to refuse, as for rotate. */
  async remove(
    id: string,
    allow: (policy: KeyPolicy | undefined) => void = () => {},
  ): Promise<void> {
    const old = (await this.#store.listKeys()).find((k) => k.id === id);
    if (!old) throw new NotFoundError("API key");
    allow(old.policy);
    if (!(await this.#store.deleteKey(id))) throw new NotFoundError("API key");
    this.#forget(id);
  }

  #forget(id: string): void {
    this.#byId.delete(id);
    for (const [digest, entry] of this.#cache) {
      if (entry.principal.keyId === id) this.#cache.delete(digest);
    }
  }
}

export function requireFullAccess(principal: Principal): void {
  if (principal.permission !== "full_access") {
    throw new RestrictedApiKeyError(
      "This API key is restricted to sending emails; this needs a full_access key",
    );
  }
}
