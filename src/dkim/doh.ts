/**
 * TXT lookups through DNS over HTTPS, in the JSON form Cloudflare and Google answer
 * (`GET <DOH_URL>?name=…&type=TXT` with `accept: application/dns-json`). Bounded: one lookup
 * gives up after DOH_TIMEOUT_SECONDS and reads at most 64 KB of answer, so a slow or hostile
 * resolver cannot hold a request open or fill memory.
 */
import { readWithin } from "../read-within.ts";

const MAX_ANSWER_BYTES = 64 * 1024;
/** DNS type number of TXT. */
const TXT = 16;

export type TxtLookup =
  | { ok: true; records: string[] }
  /** The resolver could not be asked or answered something unusable (not "no such record"). */
  | { ok: false; error: string };

/** "a" "b" (each string of a TXT record quoted, as DoH JSON writes it) -> "ab". */
export function joinTxt(data: string): string {
  const parts = [...data.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) =>
    (m[1] ?? "").replace(/\\(\d{3}|.)/g, (_, c: string) =>
      c.length === 3 ? String.fromCharCode(Number(c)) : c,
    ),
  );
  return parts.length > 0 ? parts.join("") : data;
}

export async function lookupTxt(
  dohUrl: string,
  name: string,
  timeoutMs: number,
): Promise<TxtLookup> {
  const url = `${dohUrl}?name=${encodeURIComponent(name)}&type=TXT`;
  let text: string;
  try {
    const res = await fetch(url, {
      headers: { accept: "application/dns-json" },
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!res.ok) {
      await res.body?.cancel();
      return { ok: false, error: `the DNS-over-HTTPS resolver answered HTTP ${res.status}` };
    }
    const bytes = await readWithin(
      res.body,
      res.headers.get("content-length") ?? undefined,
      MAX_ANSWER_BYTES,
    );
    text = new TextDecoder().decode(bytes);
  } catch (err) {
    const timedOut = err instanceof Error && /timeout|abort/i.test(err.name);
    return {
      ok: false,
      error: timedOut
        ? `the DNS-over-HTTPS resolver did not answer within ${timeoutMs} ms`
        : "the DNS-over-HTTPS resolver could not be reached or its answer was too large",
    };
  }
  let parsed: { Status?: unknown; Answer?: unknown };
  try {
    parsed = JSON.parse(text);
  } catch {
    return { ok: false, error: "the DNS-over-HTTPS resolver's answer is not JSON" };
  }
  // RCODE 0 (NOERROR) and 3 (NXDOMAIN) are answers; anything else (SERVFAIL...) is a failure.
  if (parsed.Status === 3) return { ok: true, records: [] };
  if (parsed.Status !== 0)
    return { ok: false, error: `the resolver answered DNS status ${String(parsed.Status)}` };
  const answers = Array.isArray(parsed.Answer) ? parsed.Answer : [];
  const records = answers
    .filter(
      (a): a is { type: number; data: string } =>
        typeof a === "object" && a !== null && a.type === TXT && typeof a.data === "string",
    )
    .map((a) => joinTxt(a.data));
  return { ok: true, records };
}

/** The tags of a DKIM key record ("v=DKIM1; k=rsa; p=…"), names in lower case. */
export function recordTags(value: string): Map<string, string> {
  const tags = new Map<string, string>();
  for (const part of value.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    tags.set(part.slice(0, eq).trim().toLowerCase(), part.slice(eq + 1).replace(/\s+/g, ""));
  }
  return tags;
}
