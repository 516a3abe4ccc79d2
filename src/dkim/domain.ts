/**
 * A sending domain as the relay keeps it (record kind "domain") and as the API shows it, in
 * Resend's shape (`resend.domains.*`): its DKIM keys and the DNS records to publish. The private
 * keys in a record are sealed (key-vault.ts) and no view here ever includes them.
 *
 * Keys and rotation: `key` signs once the domain is verified. Rotating a verified domain makes a
 * `next` key that only starts to sign once `verify` finds its record published; the key it
 * replaces becomes `previous`, whose record should stay published until the messages it signed
 * have left the queue (MAX_QUEUE_AGE_HOURS). Rotating a domain not yet verified simply replaces
 * its key: nothing was signed with it.
 */
import { z } from "@hono/zod-openapi";
import { HOST_NAME } from "../config.ts";
import { ValidationError } from "../errors.ts";
import {
  DKIM_ALGORITHMS,
  type DkimAlgorithm,
  dkimRecordValue,
  type StoredDkimKey,
} from "./key-vault.ts";

export type DomainStatus = "not_started" | "pending" | "verified" | "failed";
export type RecordStatus = DomainStatus | "temporary_failure";

export const REGIONS = ["us-east-1", "eu-west-1", "sa-east-1", "ap-northeast-1"] as const;

export interface DomainRecord {
  id: string;
  /** Lower case ASCII (an IDN as punycode). */
  name: string;
  /** Resend's field, kept and shown; the relay sends from wherever it runs. */
  region: (typeof REGIONS)[number];
  created_at: number;
  created_by: string;
  /** Of `key`: only a verified domain's messages are signed. */
  status: DomainStatus;
  key: StoredDkimKey;
  next: (StoredDkimKey & { status: RecordStatus }) | null;
  previous: StoredDkimKey | null;
  /** Keys made for this domain so far: the number in the next selector. */
  keys_made: number;
  checked_at: number | null;
  /** Why the last check did not verify, for the operator (no secrets in it). */
  check_error: string | null;
  /** The last check could not ask DNS: the status is the one before it. */
  check_temporary: boolean;
}

export const CreateDomainSchema = z
  .object({
    name: z.string().min(1).max(253).openapi({ example: "example.com" }),
    region: z.enum(REGIONS).optional(),
    /** The relay's own: which key to make. */
    dkim_algorithm: z.enum(DKIM_ALGORITHMS as [DkimAlgorithm, ...DkimAlgorithm[]]).optional(),
    // Resend's other fields, accepted when they ask for nothing the relay lacks.
    custom_return_path: z.string().optional(),
    capabilities: z
      .object({
        sending: z.enum(["enabled"]).optional(),
        receiving: z.enum(["disabled"]).optional(),
      })
      .optional(),
    open_tracking: z.literal(false).optional(),
    click_tracking: z.literal(false).optional(),
    tls: z.enum(["opportunistic", "enforced"]).optional(),
    tracking_subdomain: z.string().optional(),
  })
  .openapi("CreateDomain");

export const UpdateDomainSchema = z
  .object({
    /** Make a new key (and selector); see the module comment for how it takes over. */
    rotate_key: z.boolean().optional(),
    dkim_algorithm: z.enum(DKIM_ALGORITHMS as [DkimAlgorithm, ...DkimAlgorithm[]]).optional(),
    open_tracking: z.literal(false).optional(),
    click_tracking: z.literal(false).optional(),
    tls: z.enum(["opportunistic", "enforced"]).optional(),
    capabilities: z
      .object({
        sending: z.enum(["enabled"]).optional(),
        receiving: z.enum(["disabled"]).optional(),
      })
      .optional(),
    tracking_subdomain: z.string().optional(),
  })
  .openapi("UpdateDomain");

/** The domain name a request gives, checked and in its stored form. */
export function domainName(raw: string): string {
  const name = raw.trim().replace(/\.$/, "").toLowerCase();
  if (!HOST_NAME.test(name))
    throw new ValidationError(
      "must be a domain name such as example.com (an internationalized name as punycode, xn--…)",
      "name",
    );
  return name;
}

/** A new selector: the key's number and a random part, so two relays on one domain differ. */
export function newSelector(n: number): string {
  const rand = Array.from(crypto.getRandomValues(new Uint8Array(3)), (b) =>
    b.toString(16).padStart(2, "0"),
  ).join("");
  return `relay${n}-${rand}`;
}

export const dkimRecordName = (domain: string, selector: string) =>
  `${selector}._domainkey.${domain}`;

export interface PublishContext {
  bounceDomain: string | undefined;
  /** The smart host (SMTP_URL's host), for the SPF hint. */
  smtpHost: string | undefined;
}

/** An SPF mechanism that authorizes the smart host: ip4:/ip6: for a literal, a: for a name. */
function spfMechanism(host: string): string {
  const bare = host.replace(/^\[|\]$/g, "");
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(bare)) return `ip4:${bare}`;
  if (bare.includes(":")) return `ip6:${bare}`;
  return `a:${bare}`;
}

const ttl = "Auto";

/** The records to publish, in Resend's `records` shape. */
export function domainRecords(domain: DomainRecord, ctx: PublishContext): object[] {
  const dkim = (key: StoredDkimKey, status: RecordStatus, purpose: string) => ({
    record: "DKIM",
    name: dkimRecordName(domain.name, key.selector),
    type: "TXT",
    value: dkimRecordValue(key),
    ttl,
    status,
    purpose,
  });
  const activeStatus: RecordStatus =
    domain.check_temporary && domain.status !== "verified" ? "temporary_failure" : domain.status;
  const out: object[] = [dkim(domain.key, activeStatus, "signing")];
  if (domain.next) out.push(dkim(domain.next, domain.next.status, "next"));
  if (domain.previous) out.push(dkim(domain.previous, "verified", "previous"));
  const spf = ctx.smtpHost ? `v=spf1 ${spfMechanism(ctx.smtpHost)} ~all` : "v=spf1 ~all";
  // SPF is checked against the envelope sender: with BOUNCE_DOMAIN that is an address there.
  const spfName = ctx.bounceDomain ?? domain.name;
  if (ctx.bounceDomain) {
    for (const [i, host] of ["route1", "route2", "route3"].entries()) {
      out.push({
        record: "SPF",
        name: ctx.bounceDomain,
        type: "MX",
        value: `${host}.mx.cloudflare.net`,
        ttl,
        priority: 10 * (i + 1),
        status: "not_started",
        purpose: "return_path",
      });
    }
  }
  out.push({
    record: "SPF",
    name: spfName,
    type: "TXT",
    value: spf,
    ttl,
    status: "not_started",
    purpose: "spf",
  });
  return out;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** One domain in a list (Resend's `Domain`). */
export function domainListItem(d: DomainRecord): object {
  return {
    id: d.id,
    name: d.name,
    status: d.status,
    created_at: iso(d.created_at),
    region: d.region,
    capabilities: { sending: "enabled", receiving: "disabled" },
    open_tracking: false,
    click_tracking: false,
  };
}

/** One domain with its records (GET /domains/:id, and the answer to create). */
export function domainView(d: DomainRecord, ctx: PublishContext): object {
  return {
    object: "domain",
    ...domainListItem(d),
    records: domainRecords(d, ctx),
    dkim: {
      selector: d.key.selector,
      algorithm: d.key.algorithm,
      signing: d.status === "verified",
      next_selector: d.next?.selector ?? null,
      checked_at: d.checked_at === null ? null : iso(d.checked_at),
      check_error: d.check_error,
    },
  };
}
