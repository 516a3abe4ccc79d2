/**
 * DKIM keys: making a key pair (RSA 2048 for rsa-sha256, Ed25519 for ed25519-sha256, RFC 8463),
 * the public key as the `p=` of the DNS record, and the private key sealed with AES-256-GCM for
 * the store. Everything is WebCrypto, which Workers, Deno and Node 24 all have, so no runtime's
 * polyfill decides whether a key can be read.
 *
 * The sealing key is DKIM_ENCRYPTION_KEY when set, else derived from ADMIN_TOKEN with HKDF-SHA256
 * (see README "Domains and DKIM"): the store alone (a leaked Upstash token, a database dump) never
 * holds what opens the keys. Each sealed key is bound to its domain and selector (AES-GCM
 * additional data), so a sealed key copied onto another domain's record does not open.
 */
import type { DkimConfig } from "../config.ts";

export type DkimAlgorithm = "rsa-sha256" | "ed25519-sha256";
export const DKIM_ALGORITHMS: readonly DkimAlgorithm[] = ["rsa-sha256", "ed25519-sha256"];

/** One key as the store keeps it: the private half sealed, never in an answer. */
export interface StoredDkimKey {
  selector: string;
  algorithm: DkimAlgorithm;
  /** base64 of the public key: SubjectPublicKeyInfo for RSA, the 32 raw bytes for Ed25519. */
  public_key: string;
  /** "v1." + base64(12-byte IV + AES-GCM ciphertext of the PKCS #8 private key). */
  sealed_private_key: string;
  created_at: number;
}

/** A sealed key that does not open with the configured secret (it changed, or the record did). */
export class DkimKeyUnavailableError extends Error {
  constructor(reason: string) {
    super(`the DKIM private key cannot be opened: ${reason}`);
    this.name = "DkimKeyUnavailableError";
  }
}

const encoder = new TextEncoder();

export function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000)
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

export function fromBase64(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

const RSA = {
  name: "RSASSA-PKCS1-v1_5",
  hash: "SHA-256",
} as const;

const importParams = (algorithm: DkimAlgorithm) =>
  algorithm === "rsa-sha256" ? RSA : { name: "Ed25519" };

const sealingKeys = new Map<string, Promise<CryptoKey>>();

/** The AES-GCM key that seals private keys; null when neither secret is configured. */
export function sealingKey(secret: DkimConfig["secret"]): Promise<CryptoKey> | null {
  if (!secret) return null;
  const id = secret.from === "ADMIN_TOKEN" ? `t:${secret.token}` : `k:${toBase64(secret.bytes)}`;
  let key = sealingKeys.get(id);
  if (!key) {
    key = (async () => {
      if (secret.from === "DKIM_ENCRYPTION_KEY") {
        return crypto.subtle.importKey("raw", new Uint8Array(secret.bytes), "AES-GCM", false, [
          "encrypt",
          "decrypt",
        ]);
      }
      // HKDF with a fixed salt and a purpose label: the same token always gives the same key,
      // and that key is useless for anything else derived from the token.
      const base = await crypto.subtle.importKey(
        "raw",
        encoder.encode(secret.token),
        "HKDF",
        false,
        ["deriveKey"],
      );
      return crypto.subtle.deriveKey(
        {
          name: "HKDF",
          hash: "SHA-256",
          salt: encoder.encode("edge-smtp-relay dkim"),
          info: encoder.encode("dkim private key sealing v1"),
        },
        base,
        { name: "AES-GCM", length: 256 },
        false,
        ["encrypt", "decrypt"],
      );
    })();
    sealingKeys.set(id, key);
  }
  return key;
}

const boundTo = (domain: string, selector: string) => encoder.encode(`dkim:${domain}:${selector}`);

/** A new key pair for `domain`, its private half sealed with `sealing`. */
export async function newDkimKey(
  domain: string,
  algorithm: DkimAlgorithm,
  selector: string,
  sealing: CryptoKey,
  now: number,
): Promise<StoredDkimKey> {
  // Two calls, not one with a union argument: each runtime's typings overload them differently.
  const pair = (
    algorithm === "rsa-sha256"
      ? await crypto.subtle.generateKey(
          { ...RSA, modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) },
          true,
          ["sign", "verify"],
        )
      : await crypto.subtle.generateKey("Ed25519", true, ["sign", "verify"])
  ) as CryptoKeyPair;
  const publicKey = new Uint8Array(
    (await crypto.subtle.exportKey(
      algorithm === "rsa-sha256" ? "spki" : "raw",
      pair.publicKey,
    )) as ArrayBuffer,
  );
  const pkcs8 = new Uint8Array(
    (await crypto.subtle.exportKey("pkcs8", pair.privateKey)) as ArrayBuffer,
  );
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const sealed = new Uint8Array(
    await crypto.subtle.encrypt(
      { name: "AES-GCM", iv, additionalData: boundTo(domain, selector) },
      sealing,
      pkcs8,
    ),
  );
  pkcs8.fill(0);
  const blob = new Uint8Array(iv.length + sealed.length);
  blob.set(iv);
  blob.set(sealed, iv.length);
  return {
    selector,
    algorithm,
    public_key: toBase64(publicKey),
    sealed_private_key: `v1.${toBase64(blob)}`,
    created_at: now,
  };
}

/** The private key, opened for signing only (not extractable). */
export async function openDkimKey(
  domain: string,
  key: StoredDkimKey,
  sealing: CryptoKey,
): Promise<CryptoKey> {
  if (!key.sealed_private_key.startsWith("v1."))
    throw new DkimKeyUnavailableError("unknown sealing format");
  const blob = fromBase64(key.sealed_private_key.slice(3));
  let pkcs8: ArrayBuffer;
  try {
    pkcs8 = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: blob.subarray(0, 12), additionalData: boundTo(domain, key.selector) },
      sealing,
      blob.subarray(12),
    );
  } catch {
    throw new DkimKeyUnavailableError(
      "it was sealed with another secret (DKIM_ENCRYPTION_KEY or ADMIN_TOKEN changed) or altered",
    );
  }
  return crypto.subtle.importKey("pkcs8", pkcs8, importParams(key.algorithm), false, ["sign"]);
}

/** The TXT record value that publishes `key`. */
export function dkimRecordValue(key: Pick<StoredDkimKey, "algorithm" | "public_key">): string {
  return `v=DKIM1; k=${key.algorithm === "rsa-sha256" ? "rsa" : "ed25519"}; p=${key.public_key}`;
}
