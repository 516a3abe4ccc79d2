/**
 * The four ways a caller proves it may use a hook. Each answers ok, or a reason that is counted
 * and logged for the operator but never told to the caller (every failure looks the same from
 * outside). Secrets and signatures are compared in constant time.
 */
import { Webhook } from "standardwebhooks";
import { constantTimeEqual, sha256Hex } from "../../auth/keys.ts";
import { MAX_WEBHOOK_ID_CHARS } from "../limits.ts";
import type { HookRecord } from "./hooks.ts";

export interface HookRequest {
  body: Uint8Array<ArrayBuffer>;
  header: (name: string) => string | undefined;
  /** The last path segment of `POST /hooks/:id/:secret`, if the caller used that form. */
  pathSecret: string | undefined;
}

export type Verdict =
  /** `webhookId`: the Standard Webhooks message id, for the replay guard. */
  { ok: true; webhookId?: string } | { ok: false; reason: "unauthorized" | "stale_timestamp" };

const DENIED: Verdict = { ok: false, reason: "unauthorized" };
const encoder = new TextEncoder();

export async function verifyHookRequest(hook: HookRecord, req: HookRequest): Promise<Verdict> {
  const spec = hook.verify;
  // A secret in the path is only a proof for url_secret hooks; anywhere else it is a wrong URL.
  if (spec.type !== "url_secret" && req.pathSecret !== undefined) return DENIED;
  switch (spec.type) {
    case "url_secret":
      return (await digestMatches(hook, req.pathSecret)) ? { ok: true } : DENIED;
    case "header": {
      const value = req.header(spec.header);
      if (value === undefined || !value.startsWith(spec.prefix)) return DENIED;
      return (await digestMatches(hook, value.slice(spec.prefix.length))) ? { ok: true } : DENIED;
    }
    case "hmac_sha256":
      return (await hmacMatches(hook, spec.header, spec.prefix, spec.encoding, req))
        ? { ok: true }
        : DENIED;
    case "standard_webhooks":
      return standardWebhooks(hook, req);
  }
}

async function digestMatches(hook: HookRecord, presented: string | undefined): Promise<boolean> {
  if (!presented || !("digest" in hook.secret)) return false;
  // Digests have one length whatever was presented, so the comparison leaks nothing of it.
  return constantTimeEqual(
    encoder.encode(await sha256Hex(presented)),
    encoder.encode(hook.secret.digest),
  );
}

function decodeSignature(text: string, encoding: "hex" | "base64"): Uint8Array | null {
  if (encoding === "hex") {
    if (!/^[0-9a-fA-F]{64}$/.test(text)) return null;
    const out = new Uint8Array(32);
    for (let i = 0; i < 32; i++) out[i] = Number.parseInt(text.slice(2 * i, 2 * i + 2), 16);
    return out;
  }
  if (!/^[A-Za-z0-9+/]{43}=$/.test(text)) return null;
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

async function hmacMatches(
  hook: HookRecord,
  header: string,
  prefix: string,
  encoding: "hex" | "base64",
  req: HookRequest,
): Promise<boolean> {
  if (!("value" in hook.secret)) return false;
  const presented = req.header(header)?.trim();
  if (!presented?.startsWith(prefix)) return false;
  const signature = decodeSignature(presented.slice(prefix.length), encoding);
  if (!signature) return false;
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(hook.secret.value),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  // The signature covers the raw bytes as they arrived, before any parsing.
  const expected = new Uint8Array(await crypto.subtle.sign("HMAC", key, req.body));
  return constantTimeEqual(expected, signature);
}

function standardWebhooks(hook: HookRecord, req: HookRequest): Verdict {
  if (!("value" in hook.secret)) return DENIED;
  const id = req.header("webhook-id");
  const timestamp = req.header("webhook-timestamp");
  const signature = req.header("webhook-signature");
  if (!id || !timestamp || !signature) return DENIED;
  if (id.length > MAX_WEBHOOK_ID_CHARS || !/^[\x21-\x7e]+$/.test(id)) return DENIED;
  // The package signs `${id}.${timestamp}.${payload}` over the payload as text.
  const payload = new TextDecoder().decode(req.body);
  try {
    new Webhook(hook.secret.value).verify(
      payload,
      { "webhook-id": id, "webhook-timestamp": timestamp, "webhook-signature": signature },
      { jsonParse: false },
    );
    return { ok: true, webhookId: id };
  } catch (err) {
    const message = err instanceof Error ? err.message : "";
    // A stale timestamp is told apart only when the signature is right (the package checks the
    // timestamp first), so nobody without the secret can make the operator chase a clock problem.
    return /timestamp too (old|new)/.test(message) &&
      signedCorrectly(hook, id, timestamp, signature, payload)
      ? { ok: false, reason: "stale_timestamp" }
      : DENIED;
  }
}

/** Whether the signature matches, whatever the timestamp (to tell a stale request apart). */
function signedCorrectly(
  hook: HookRecord,
  id: string,
  timestamp: string,
  signature: string,
  payload: string,
): boolean {
  if (!("value" in hook.secret)) return false;
  const seconds = Number.parseInt(timestamp, 10);
  if (!Number.isFinite(seconds)) return false;
  const expected = new Webhook(hook.secret.value)
    .sign(id, new Date(seconds * 1000), payload)
    .split(",")[1];
  if (!expected) return false;
  return signature
    .split(" ")
    .some(
      (s) =>
        s.startsWith("v1,") &&
        constantTimeEqual(encoder.encode(s.slice(3)), encoder.encode(expected)),
    );
}
