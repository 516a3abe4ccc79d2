/**
 * The deliverability settings: the bounce domain of the VERP return path, the secret DKIM keys are
 * sealed with, and the DNS-over-HTTPS resolver domain verification asks.
 */
import { ConfigError } from "../errors.ts";
import { type Env, str } from "./read.ts";

export interface DkimConfig {
  /** Seals DKIM private keys: DKIM_ENCRYPTION_KEY's 32 bytes, else ADMIN_TOKEN (HKDF, see
   * src/dkim/key-vault.ts); null when neither is set (no domain can be created then). */
  secret:
    | { from: "DKIM_ENCRYPTION_KEY"; bytes: Uint8Array }
    | { from: "ADMIN_TOKEN"; token: string }
    | null;
  /** The DNS-over-HTTPS JSON resolver `verify` asks (DOH_URL), and its timeout per lookup. */
  dohUrl: string;
  dohTimeoutMs: number;
}

/** A DNS host name in ASCII (IDNs as punycode): labels of letters, digits and hyphens, a dot between. */
export const HOST_NAME =
  /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/;

export function bounceDomain(env: Env): string | undefined {
  const raw = str(env, "BOUNCE_DOMAIN");
  if (raw === undefined) return undefined;
  if (!HOST_NAME.test(raw))
    throw new ConfigError(
      "BOUNCE_DOMAIN",
      `must be a host name with at least two labels, such as bounces.example.com; got ${JSON.stringify(raw)}`,
    );
  return raw.toLowerCase();
}

/** 32 bytes, written as 64 hex digits or as base64 (44 characters with its padding). */
export function dkimSecret(env: Env, adminToken: string | undefined): DkimConfig["secret"] {
  const raw = str(env, "DKIM_ENCRYPTION_KEY");
  if (raw === undefined)
    return adminToken === undefined ? null : { from: "ADMIN_TOKEN", token: adminToken };
  let bytes: Uint8Array | null = null;
  if (/^[0-9a-fA-F]{64}$/.test(raw)) {
    bytes = new Uint8Array(32);
    for (let i = 0; i < 32; i++) bytes[i] = Number.parseInt(raw.slice(2 * i, 2 * i + 2), 16);
  } else if (/^[A-Za-z0-9+/]{43}=$/.test(raw)) {
    const binary = atob(raw);
    bytes = Uint8Array.from(binary, (ch) => ch.charCodeAt(0));
  }
  if (bytes?.length !== 32)
    throw new ConfigError(
      "DKIM_ENCRYPTION_KEY",
      "must be 32 random bytes as 64 hex digits or 44 characters of base64 (openssl rand -hex 32)",
    );
  return { from: "DKIM_ENCRYPTION_KEY", bytes };
}

export function dohUrl(env: Env): string {
  const raw = str(env, "DOH_URL") ?? "https://cloudflare-dns.com/dns-query";
  if (!/^https?:\/\/[^\s?#]+$/.test(raw))
    throw new ConfigError(
      "DOH_URL",
      "must be an http(s) URL without a query, such as https://cloudflare-dns.com/dns-query",
    );
  return raw;
}
