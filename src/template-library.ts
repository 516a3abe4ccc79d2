/**
 * The template use cases: create, read, list in pages, update, publish, duplicate and remove
 * templates (src/templates/template.ts is the model), and find the one a send request names.
 * Templates are records (kind "template"); an alias is a record of its own ("template_alias",
 * the alias -> the template's id), so a send by alias reads two small records, by id one, and
 * both come from the isolate's record cache while it is fresh: a send with a template usually
 * costs no Upstash command at all. A change made here applies at once in this isolate and within
 * KEY_CACHE_SECONDS in the others, as for forms and hooks.
 *
 * An alias record only counts while its template still carries that alias: a write that failed
 * half way (alias saved, template not) leaves a stale alias that the next owner takes over by
 * compare-and-set, so two creates racing for one alias cannot both hold it.
 */

import { cursorPage, type Page, type PageRequest } from "./cursor-page.ts";
import { NotFoundError, ValidationError } from "./errors.ts";
import type { Logger } from "./log.ts";
import { RecordCache } from "./store/record-cache.ts";
import type { RelayStore } from "./store/store.ts";
import {
  type CreateTemplateInput,
  duplicateTemplate,
  isTemplateId,
  newTemplate,
  publishedTemplate,
  TEMPLATE_LIMITS,
  type TemplateRecord,
  type UpdateTemplateInput,
  updatedTemplate,
} from "./templates/template.ts";
import { claimName, releaseName, type UniqueName } from "./unique-name.ts";

interface AliasRecord {
  id: string;
  template_id: string;
}

const templates = new RecordCache<TemplateRecord>("template");
const aliases = new RecordCache<AliasRecord>("template_alias");

/** An alias is held by one template: a claim record per alias, taken by compare-and-set. */
const ALIAS: UniqueName<AliasRecord> = {
  kind: "template_alias",
  cache: aliases,
  holderOf: (claim) => claim.template_id,
  claim: (alias, templateId) => ({ id: alias, template_id: templateId }),
  holds: async (store, templateId, alias) =>
    (await store.getRecord<TemplateRecord>("template", templateId))?.alias === alias,
};

export type { Page, PageRequest };

/** Newest first, as Resend lists; the id breaks ties so the order (and a cursor) is stable. */
const newestFirst = (a: TemplateRecord, b: TemplateRecord) =>
  b.created_at - a.created_at || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);

export class TemplateLibrary {
  readonly #store: RelayStore;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #cacheMs: number;

  constructor(store: RelayStore, options: { log: Logger; now: () => number; cacheMs: number }) {
    this.#store = store;
    this.#log = options.log;
    this.#now = options.now;
    this.#cacheMs = options.cacheMs;
  }

  /** The template an id or an alias names, or null; `cacheMs` 0 reads the store. */
  async find(ref: string, cacheMs = 0): Promise<TemplateRecord | null> {
    const now = this.#now();
    let id = ref;
    if (!isTemplateId(ref)) {
      const alias = await aliases.load(this.#store, ref, now, cacheMs);
      if (!alias) return null;
      id = alias.template_id;
    }
    const record = await templates.load(this.#store, id.toLowerCase(), now, cacheMs);
    if (!record || (!isTemplateId(ref) && record.alias !== ref)) return null;
    return record;
  }

  /** The template a send request names, from the isolate's cache while it is fresh. */
  async forSend(ref: string): Promise<TemplateRecord | null> {
    return this.find(ref, this.#cacheMs);
  }

  async #get(ref: string): Promise<TemplateRecord> {
    const record = await this.find(ref);
    if (!record) throw new NotFoundError("Template");
    return record;
  }

  get(ref: string): Promise<TemplateRecord> {
    return this.#get(ref);
  }

  /** The alias must be free: no other template may hold it (see unique-name.ts). */
  async #claimAlias(record: TemplateRecord, was: string | null): Promise<void> {
    const alias = record.alias;
    if (alias === null || alias === was) return;
    await claimName(
      this.#store,
      ALIAS,
      alias,
      record.id,
      () => new ValidationError(`${alias} is the alias of another template`, "alias", 409),
    );
  }

  async #releaseAlias(alias: string | null, id: string): Promise<void> {
    if (alias !== null) await releaseName(this.#store, ALIAS, alias, id);
  }

  async #add(record: TemplateRecord): Promise<void> {
    const all = await this.#store.listRecords<TemplateRecord>("template");
    if (all.length >= TEMPLATE_LIMITS.maxTemplates)
      throw new ValidationError(
        `a relay holds at most ${TEMPLATE_LIMITS.maxTemplates} templates; remove one first`,
        "name",
        409,
      );
    // The template is written before its alias is claimed, so a rival claimant that reads the
    // alias record always finds the holder's template (see #claimAlias); the loser takes its
    // own template back out.
    await templates.save(this.#store, record);
    try {
      await this.#claimAlias(record, null);
    } catch (err) {
      await templates.remove(this.#store, record.id);
      throw err;
    }
  }

  async create(input: CreateTemplateInput, by: string): Promise<TemplateRecord> {
    const record = newTemplate(input, by, this.#now());
    await this.#add(record);
    this.#log.info("template.created", { template_id: record.id, key_id: by });
    return record;
  }

  async update(ref: string, input: UpdateTemplateInput, by: string): Promise<TemplateRecord> {
    const old = await this.#get(ref);
    const record = updatedTemplate(old, input, this.#now());
    await templates.save(this.#store, record);
    try {
      await this.#claimAlias(record, old.alias);
    } catch (err) {
      await templates.save(this.#store, old);
      throw err;
    }
    if (old.alias !== record.alias) await this.#releaseAlias(old.alias, record.id);
    this.#log.info("template.updated", { template_id: record.id, key_id: by });
    return record;
  }

  async publish(ref: string, by: string): Promise<TemplateRecord> {
    const old = await this.#get(ref);
    const record = publishedTemplate(old, this.#now());
    if (record !== old) await templates.save(this.#store, record);
    this.#log.info("template.published", { template_id: record.id, key_id: by });
    return record;
  }

  async duplicate(ref: string, by: string): Promise<TemplateRecord> {
    const record = duplicateTemplate(await this.#get(ref), by, this.#now());
    await this.#add(record);
    this.#log.info("template.created", { template_id: record.id, key_id: by });
    return record;
  }

  async remove(ref: string, by: string): Promise<TemplateRecord> {
    const record = await this.#get(ref);
    await templates.remove(this.#store, record.id);
    await this.#releaseAlias(record.alias, record.id);
    this.#log.info("template.deleted", { template_id: record.id, key_id: by });
    return record;
  }

  /** One page, newest first; a cursor that names no template is a ValidationError. */
  async list(page: PageRequest): Promise<Page<TemplateRecord>> {
    const all = (await this.#store.listRecords<TemplateRecord>("template")).sort(newestFirst);
    return cursorPage(all, page, "a template");
  }
}
