/**
 * SUPPRESSION_EXPIRY_DAYS: how long a suppression list entry of each origin lasts, as
 * "bounce=30,complaint=0,manual=0" (0: never expires). Origins left out keep their default.
 *
 * Defaults: a bounce lasts 30 days (as Postal removes them), because a dead mailbox is sometimes
 * brought back or a domain's mail fixed, and one more try a month later costs one bounce, not a
 * reputation; a complaint and a manual entry never expire, because the person asked not to be
 * mailed, or the operator decided so, and neither undoes itself.
 */

import { ConfigError } from "../errors.ts";
import type { SuppressionOrigin } from "../store/suppression-ports.ts";
import { type Env, str } from "./read.ts";

const DAY_MS = 24 * 60 * 60 * 1000;
const NAME = "SUPPRESSION_EXPIRY_DAYS";

/** Per origin, how long an entry lasts in ms; null: it never expires. */
export type SuppressionExpiry = Record<SuppressionOrigin, number | null>;

export const DEFAULT_SUPPRESSION_EXPIRY: SuppressionExpiry = {
  bounce: 30 * DAY_MS,
  complaint: null,
  manual: null,
};

export function suppressionExpiry(env: Env): SuppressionExpiry {
  const raw = str(env, NAME);
  const out = { ...DEFAULT_SUPPRESSION_EXPIRY };
  if (raw === undefined) return out;
  const seen = new Set<string>();
  for (const part of raw.split(",")) {
    const m = /^\s*([a-z]+)\s*=\s*(\d{1,5})\s*$/.exec(part);
    if (!m?.[1] || m[2] === undefined) {
      throw new ConfigError(
        NAME,
        `must be origin=days pairs separated by commas (bounce=30,complaint=0,manual=0), got ${JSON.stringify(part.trim())}`,
      );
    }
    const origin = m[1];
    if (origin !== "bounce" && origin !== "complaint" && origin !== "manual")
      throw new ConfigError(
        NAME,
        `unknown origin ${JSON.stringify(origin)} (bounce, complaint or manual)`,
      );
    if (seen.has(origin)) throw new ConfigError(NAME, `names ${origin} twice`);
    seen.add(origin);
    const days = Number(m[2]);
    if (days > 3650) throw new ConfigError(NAME, `${origin}: at most 3650 days, got ${days}`);
    out[origin] = days === 0 ? null : days * DAY_MS;
  }
  return out;
}
