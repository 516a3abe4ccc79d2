/**
 * The dashboard's session: a signed cookie naming the principal (ADMIN_TOKEN's "admin" or a key
 * id), with an absolute expiry, and the per-session CSRF token every form carries.
 *
 * The cookie is `<payload>.<signature>`: payload base64url JSON { sub, exp, nonce, bind },
 * signature HMAC-SHA256 over the payload with the relay's own secret "dashboard-session"
 * (src/relay-secrets.ts). `bind` is an HMAC of the principal's credential digest, so the digest
 * never leaves the relay, yet a rotated ADMIN_TOKEN or a deleted key no longer matches: each
 * request looks the key up again (ApiKeys.credential: at most KEY_CACHE_SECONDS old in an
 * isolate) and recomputes it. The signature and the expiry are checked first, so a forged or
 * stale cookie costs no store lookup.
 */
import { type ApiKeys, constantTimeEqual, type Principal } from "../../auth/keys.ts";
import { hmac } from "../../auth/signed-url.ts";
import { base64url, fromBase64url as bytesOf } from "../../base64url.ts";

/** How long a sign-in lasts, whatever is done meanwhile (no sliding renewal). */
export const SESSION_TTL_SECONDS = 12 * 60 * 60;
export const SESSION_COOKIE = "relay_dashboard";
/** The relay secret sessions and CSRF tokens are signed with (distinct from attachment links). */
export const SESSION_SECRET_NAME = "dashboard-session";

export interface Session {
  principal: Principal;
  /** Seconds since the epoch. */
  expires: number;
  /** The form token for this session. */
  csrf: string;
}

interface Payload {
  sub: string;
  exp: number;
  nonce: string;
  bind: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function fromBase64url(text: string): string | null {
  try {
    const bytes = bytesOf(text, 2048);
    return bytes === null ? null : decoder.decode(bytes);
  } catch {
    return null;
  }
}

function parsePayload(text: string): Payload | null {
  const json = fromBase64url(text);
  if (json === null) return null;
  try {
    const p = JSON.parse(json) as Partial<Payload>;
    if (typeof p.sub !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(p.sub)) return null;
    if (typeof p.exp !== "number" || !Number.isSafeInteger(p.exp)) return null;
    if (typeof p.nonce !== "string" || !/^[A-Za-z0-9_-]{16,64}$/.test(p.nonce)) return null;
    if (typeof p.bind !== "string" || !/^[A-Za-z0-9_-]{43}$/.test(p.bind)) return null;
    return { sub: p.sub, exp: p.exp, nonce: p.nonce, bind: p.bind };
  } catch {
    return null;
  }
}

const signature = async (secret: string, payload: string) =>
  base64url(await hmac(secret, `dashboard-session\n${payload}`));

const binding = async (secret: string, keyId: string, digest: string) =>
  base64url(await hmac(secret, `dashboard-credential\n${keyId}\n${digest}`));

const same = (a: string, b: string) => constantTimeEqual(encoder.encode(a), encoder.encode(b));

const csrfOf = async (secret: string, nonce: string) =>
  base64url(await hmac(secret, `dashboard-csrf\n${nonce}`));

/** A new session's cookie value for `keyId`, whose credential's digest is `digest`. */
export async function signSession(
  secret: string,
  keyId: string,
  digest: string,
  nowSeconds: number,
): Promise<string> {
  const nonce = base64url(crypto.getRandomValues(new Uint8Array(18)));
  const bind = await binding(secret, keyId, digest);
  const payload = base64url(
    encoder.encode(
      JSON.stringify({ sub: keyId, exp: nowSeconds + SESSION_TTL_SECONDS, nonce, bind }),
    ),
  );
  return `${payload}.${await signature(secret, payload)}`;
}

/**
 * The session a cookie value holds, checked against the key store as it is now; null when the
 * value is malformed, tampered with, expired, or its key is gone or no longer full_access.
 */
export async function verifySession(
  secret: string,
  value: string | undefined,
  keys: ApiKeys,
  nowSeconds: number,
): Promise<Session | null> {
  const [payloadText, sig, extra] = (value ?? "").split(".");
  if (!payloadText || !sig || extra !== undefined) return null;
  if (!same(await signature(secret, payloadText), sig)) return null;
  const payload = parsePayload(payloadText);
  if (!payload || payload.exp <= nowSeconds) return null;
  const credential = await keys.credential(payload.sub);
  if (!credential) return null;
  if (!same(await binding(secret, payload.sub, credential.digest), payload.bind)) return null;
  if (credential.principal.permission !== "full_access") return null;
  return {
    principal: credential.principal,
    expires: payload.exp,
    csrf: await csrfOf(secret, payload.nonce),
  };
}

/** Whether a submitted form token is this session's. */
export function csrfValid(session: Session, submitted: unknown): boolean {
  return typeof submitted === "string" && same(session.csrf, submitted);
}

/** The Set-Cookie value for a session (or, with value "", one that clears it). */
export function sessionCookie(value: string, maxAge = SESSION_TTL_SECONDS): string {
  return [
    `${SESSION_COOKIE}=${value}`,
    "Path=/dashboard",
    `Max-Age=${value ? maxAge : 0}`,
    "HttpOnly",
    "Secure",
    "SameSite=Strict",
  ].join("; ");
}
