/**
 * Sending domains (`/domains`, Resend's shape): create one with a DKIM key, verify its record
 * through DNS over HTTPS, rotate its key, remove it; and sign each accepted message whose From
 * domain is verified, before it is stored, so the stored bytes are what every attempt sends.
 *
 * The send path reads the domains from the isolate's cache: the whole list (at most MAX_DOMAINS,
 * one HGETALL) is kept for KEY_CACHE_SECONDS, and opened private keys for the isolate's life, so
 * a warm send costs no Upstash command for this; a change made here applies at once in this
 * isolate and within KEY_CACHE_SECONDS in the others.
 */

import type { z } from "@hono/zod-openapi";
import type { Config } from "./config.ts";
import { cursorPage, type PageRequest } from "./cursor-page.ts";
import { lookupTxt, recordTags } from "./dkim/doh.ts";
import {
  type CreateDomainSchema,
  type DomainRecord,
  type DomainStatus,
  dkimRecordName,
  domainName,
  newSelector,
  type PublishContext,
  type RecordStatus,
  type UpdateDomainSchema,
} from "./dkim/domain.ts";
import {
  type DkimAlgorithm,
  DkimKeyUnavailableError,
  newDkimKey,
  openDkimKey,
  type StoredDkimKey,
  sealingKey,
} from "./dkim/key-vault.ts";
import { type DkimSigner, dkimSign } from "./dkim/sign.ts";
import { ConflictError, DkimUnavailableError, NotFoundError, ValidationError } from "./errors.ts";
import type { Logger } from "./log.ts";
import { domainOf } from "./mail/address.ts";
import { storedSize } from "./mail/bytes.ts";
import type { Composed } from "./mail/compose.ts";
import type { RelayStore } from "./store/store.ts";
import { claimName, releaseName, type UniqueName } from "./unique-name.ts";

/** Domains one relay holds: the send path reads them all on a cache miss. */
export const MAX_DOMAINS = 100;

type CreateInput = z.infer<typeof CreateDomainSchema>;
type UpdateInput = z.infer<typeof UpdateDomainSchema>;

export type DomainPage = PageRequest;

/** A name is held by one domain: two creates racing for one name cannot both win. */
const NAME: UniqueName<{ id: string; domain_id: string }> = {
  kind: "domain_name",
  holderOf: (claim) => claim.domain_id,
  claim: (name, domainId) => ({ id: name, domain_id: domainId }),
  holds: async (store, domainId, name) =>
    (await store.getRecord<DomainRecord>("domain", domainId))?.name === name,
};

/** The isolate's copy of the domain list, per store (one relay per store). */
const listCache = new WeakMap<RelayStore, { until: number; byName: Map<string, DomainRecord> }>();
/** Opened signing keys, by domain id, selector and sealed text (a new key never hits an old entry). */
const openKeys = new Map<string, Promise<CryptoKey>>();

const newestFirst = (a: DomainRecord, b: DomainRecord) =>
  b.created_at - a.created_at || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);

/** The ASCII (punycode) form of a domain as a header or envelope may write it. */
function asciiDomain(domain: string): string {
  try {
    return new URL(`http://${domain}/`).hostname;
  } catch {
    return domain.toLowerCase();
  }
}

const taken = (name: string) =>
  new ValidationError(`${name} is already a domain of this relay`, "name", 409);

export class DomainRegistry {
  readonly #store: RelayStore;
  readonly #config: Config;
  readonly #log: Logger;
  readonly #now: () => number;

  constructor(store: RelayStore, config: Config, options: { log: Logger; now: () => number }) {
    this.#store = store;
    this.#config = config;
    this.#log = options.log;
    this.#now = options.now;
  }

  get publishContext(): PublishContext {
    return { bounceDomain: this.#config.bounceDomain, smtpHost: this.#config.smtp?.host };
  }

  #sealing(): Promise<CryptoKey> {
    const key = sealingKey(this.#config.dkim.secret);
    if (!key)
      throw new DkimUnavailableError(
        "DKIM keys need a secret to be sealed with: set DKIM_ENCRYPTION_KEY (or ADMIN_TOKEN)",
      );
    return key;
  }

  async #save(record: DomainRecord): Promise<void> {
    await this.#store.putRecord("domain", record.id, record);
    listCache.delete(this.#store);
  }

  /**
   * Writes a change to a record read before, only while it is still as read: two verifies, or a
   * verify and a rotation, running at once must not lose the other's key or outcome.
   */
  async #replace(old: DomainRecord, record: DomainRecord): Promise<void> {
    const swapped = await this.#store.swapRecord("domain", record.id, old, record);
    listCache.delete(this.#store);
    if (!swapped) throw new ConflictError("This domain changed while this request ran; try again");
  }

  async #all(): Promise<DomainRecord[]> {
    return this.#store.listRecords<DomainRecord>("domain");
  }

  async get(id: string): Promise<DomainRecord> {
    const record = await this.#store.getRecord<DomainRecord>("domain", id);
    if (!record) throw new NotFoundError("Domain");
    return record;
  }

  async #key(name: string, algorithm: DkimAlgorithm, n: number): Promise<StoredDkimKey> {
    return newDkimKey(name, algorithm, newSelector(n), await this.#sealing(), this.#now());
  }

  async create(input: CreateInput, by: string): Promise<DomainRecord> {
    const name = domainName(input.name);
    const all = await this.#all();
    if (all.some((d) => d.name === name)) throw taken(name);
    if (all.length >= MAX_DOMAINS)
      throw new ValidationError(
        `a relay holds at most ${MAX_DOMAINS} domains; remove one first`,
        "name",
        409,
      );
    const now = this.#now();
    const record: DomainRecord = {
      id: crypto.randomUUID(),
      name,
      region: input.region ?? "us-east-1",
      created_at: now,
      created_by: by,
      status: "not_started",
      key: await this.#key(name, input.dkim_algorithm ?? "rsa-sha256", 1),
      next: null,
      previous: null,
      keys_made: 1,
      checked_at: null,
      check_error: null,
      check_temporary: false,
    };
    // Written before the name is claimed (see unique-name.ts); the loser takes its record back.
    await this.#save(record);
    try {
      await claimName(this.#store, NAME, name, record.id, () => taken(name));
    } catch (err) {
      await this.#store.deleteRecord("domain", record.id);
      listCache.delete(this.#store);
      throw err;
    }
    this.#log.info("domain.created", { domain_id: record.id, domain: name, key_id: by });
    return record;
  }

  /** Rotates the key when asked; Resend's other fields only say what the relay already does. */
  async update(id: string, input: UpdateInput, by: string): Promise<DomainRecord> {
    const old = await this.get(id);
    if (!input.rotate_key) {
      if (input.dkim_algorithm !== undefined)
        throw new ValidationError("applies with rotate_key: true", "dkim_algorithm");
      return old;
    }
    const algorithm = input.dkim_algorithm ?? old.key.algorithm;
    const key = await this.#key(old.name, algorithm, old.keys_made + 1);
    const record: DomainRecord =
      old.status === "verified"
        ? { ...old, next: { ...key, status: "not_started" }, keys_made: old.keys_made + 1 }
        : {
            ...old,
            key,
            next: null,
            status: "not_started",
            keys_made: old.keys_made + 1,
            check_error: null,
            check_temporary: false,
          };
    await this.#replace(old, record);
    this.#log.info("domain.key_rotated", {
      domain_id: id,
      selector: key.selector,
      algorithm,
      takes_over: old.status === "verified" ? "once verified" : "now",
      key_id: by,
    });
    return record;
  }

  async remove(id: string, by: string): Promise<DomainRecord> {
    const record = await this.get(id);
    await this.#store.deleteRecord("domain", id);
    listCache.delete(this.#store);
    await releaseName(this.#store, NAME, record.name, id);
    this.#log.info("domain.deleted", { domain_id: id, domain: record.name, key_id: by });
    return record;
  }

  async list(page: DomainPage): Promise<{ data: DomainRecord[]; has_more: boolean }> {
    const all = (await this.#all()).sort(newestFirst);
    return cursorPage(all, page, "a domain");
  }

  /** Asks DNS for a key's record: verified when a published TXT carries this key's p=. */
  async #check(
    domain: string,
    key: StoredDkimKey,
  ): Promise<{ status: RecordStatus; error: string | null }> {
    const { dohUrl, dohTimeoutMs } = this.#config.dkim;
    const name = dkimRecordName(domain, key.selector);
    const found = await lookupTxt(dohUrl, name, dohTimeoutMs);
    if (!found.ok) return { status: "temporary_failure", error: found.error };
    const wanted = key.algorithm === "rsa-sha256" ? "rsa" : "ed25519";
    const keys = found.records.map(recordTags).filter((t) => t.has("p"));
    if (keys.some((t) => t.get("p") === key.public_key && (t.get("k") ?? "rsa") === wanted))
      return { status: "verified", error: null };
    if (keys.length === 0) return { status: "pending", error: `no DKIM record at ${name} yet` };
    return { status: "failed", error: `the record at ${name} publishes another key` };
  }

  /** Checks the records now (bounded by DOH_TIMEOUT_SECONDS per lookup) and saves the outcome. */
  async verify(id: string, by: string): Promise<DomainRecord> {
    const old = await this.get(id);
    const active = await this.#check(old.name, old.key);
    let record: DomainRecord = { ...old, checked_at: this.#now() };
    if (active.status === "temporary_failure") {
      record = { ...record, check_error: active.error, check_temporary: true };
    } else {
      // A record that disappears after it verified stops the signing: signatures would fail.
      const status: DomainStatus =
        active.status === "pending" && old.status === "verified" ? "failed" : active.status;
      record = { ...record, status, check_error: active.error, check_temporary: false };
    }
    if (record.next) {
      const next = await this.#check(old.name, record.next);
      if (next.status === "verified") {
        const { status: _, ...key } = record.next;
        record = { ...record, previous: record.key, key, next: null, status: "verified" };
      } else {
        record = { ...record, next: { ...record.next, status: next.status } };
      }
    }
    await this.#replace(old, record);
    this.#log.info("domain.verified", {
      domain_id: id,
      status: record.status,
      error: record.check_error,
      key_id: by,
    });
    return record;
  }

  /** The domains by name, from the isolate's cache while it is fresh (the send path). */
  async #byName(): Promise<Map<string, DomainRecord>> {
    const now = this.#now();
    const hit = listCache.get(this.#store);
    if (hit && hit.until > now) return hit.byName;
    const byName = new Map((await this.#all()).map((d) => [d.name, d]));
    const cacheMs = this.#config.keyCacheMs;
    if (cacheMs > 0) listCache.set(this.#store, { until: now + cacheMs, byName });
    return byName;
  }

  /** The signer for a From domain, or null when it is not a verified domain of this relay. */
  async signerFor(fromDomain: string): Promise<DkimSigner | null> {
    const domain = (await this.#byName()).get(asciiDomain(fromDomain));
    if (domain?.status !== "verified") return null;
    const { key } = domain;
    const cacheKey = `${domain.id}:${key.selector}:${key.sealed_private_key}`;
    let opened = openKeys.get(cacheKey);
    if (!opened) {
      opened = this.#sealing().then((sealing) => openDkimKey(domain.name, key, sealing));
      openKeys.set(cacheKey, opened);
      opened.catch(() => openKeys.delete(cacheKey));
    }
    return {
      domain: domain.name,
      selector: key.selector,
      algorithm: key.algorithm,
      key: await opened,
    };
  }

  /**
   * The message signed for its From domain when that domain is verified; as it was otherwise. A
   * key that cannot be opened (the sealing secret changed) sends the message unsigned and logs
   * `dkim.unavailable`: mail keeps flowing, and the log says what to fix.
   */
  async sign(composed: Composed): Promise<Composed> {
    const from = composed.headerFrom[0];
    if (from === undefined) return composed;
    let signer: DkimSigner | null;
    try {
      signer = await this.signerFor(domainOf(from));
    } catch (err) {
      if (!(err instanceof DkimKeyUnavailableError || err instanceof DkimUnavailableError))
        throw err;
      this.#log.error("dkim.unavailable", {
        email_id: composed.message.id,
        domain: domainOf(from),
        error: err.message,
      });
      return composed;
    }
    if (!signer) return composed;
    const raw = await dkimSign(composed.raw, signer, this.#now());
    return { ...composed, raw, storedBytes: storedSize(raw) };
  }
}
