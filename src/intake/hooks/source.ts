/**
 * Inbound hooks as an intake source. The client's address is checked first and not counted (it
 * costs nothing, and a flood from elsewhere neither uses up the hook's allowance nor makes the
 * relay pay a command per request to count it). The proof travels with the body, so until it is
 * checked every refusal is charged to the client's failure limit. After the proof only the
 * sender, who holds the secret, spends the hook's rate limit, so a flood without it cannot make
 * the sender's own requests see 429s. A Standard Webhooks id becomes the replay key.
 */
import { ipAllowed } from "../../auth/policy.ts";
import { parseRateLimit, rateLimitHeaders, retryAfterForReset } from "../../auth/rate-limit.ts";
import { MalformedBodyError, type RelayError } from "../../errors.ts";
import { RecordCache } from "../../store/record-cache.ts";
import { WEBHOOK_ID_TTL_MS } from "../limits.ts";
import type { IntakeContext, IntakeSource } from "../pipeline.ts";
import { ok, PASSED, type Rejection, type Result, reject } from "../result.ts";
import type { HookRecord } from "./hooks.ts";
import { payloadOf, renderHookMessage } from "./render.ts";
import { verifyHookRequest } from "./verify.ts";

/** Hooks, cached in the isolate: every public request needs one. */
export const hookCache = new RecordCache<HookRecord>("hook");

/** What a proven request carries on to rendering. */
export interface ProvenHook {
  webhookId: string | undefined;
  contentType: string | undefined;
}

const UNPROVEN = "The request's signature or secret is missing or invalid";

function gate(ctx: IntakeContext, hook: HookRecord): Result<void> {
  if (!hook.allowed_ips?.length || ipAllowed(ctx.request.clientIp, hook.allowed_ips)) return PASSED;
  ctx.relay.log.warn("hook.rejected", { hook_id: hook.id, reason: "client_address" });
  return reject("client_address", UNPROVEN);
}

async function rateLimited(ctx: IntakeContext, hook: HookRecord): Promise<Result<void>> {
  const { relay } = ctx;
  const limit =
    (hook.rate_limit && parseRateLimit(hook.rate_limit)) || relay.config.hooks.rateLimit;
  const limited = await ctx.stored("hook.rate_limit", () =>
    relay.limiter.check(`hook:${hook.id}`, limit),
  );
  if (limited.allowed) return PASSED;
  const headers = rateLimitHeaders(limited, relay.now());
  const retry = String(retryAfterForReset(Number(headers["ratelimit-reset"])));
  return reject(
    "rate_limited",
    `Too many requests: this hook takes ${limited.limit} requests per window. Retry after ${retry} s.`,
    { headers: { ...headers, "retry-after": retry } },
  );
}

/** A refusal of the rendered message: the sender's payload made it, so it is counted. */
function refused(err: RelayError): Rejection | undefined {
  // A store that could not answer, or a conflict, says nothing about the payload.
  if (err.status >= 500 || err.status === 409) return undefined;
  const reason =
    err.status === 413
      ? "too_large"
      : err instanceof MalformedBodyError
        ? "invalid_body"
        : "invalid_message";
  return reject(reason, err.message, { error: err });
}

/** The source for one request; `pathSecret` is the last segment of `POST /hooks/:id/:secret`. */
export function hookSource(pathSecret: string | undefined): IntakeSource<HookRecord, ProvenHook> {
  return {
    kind: "hook",
    cache: hookCache,
    proofInBody: true,
    gate,
    admit: async () => PASSED,
    maxBodyBytes: (ctx) => ctx.relay.config.hooks.maxBodyBytes,
    async verify(ctx, hook, body) {
      const header = (name: string) => ctx.request.header(name);
      const verdict = await verifyHookRequest(hook, { body, header, pathSecret });
      if (!verdict.ok) return reject(verdict.reason, UNPROVEN, { unproven: true });
      const limited = await rateLimited(ctx, hook);
      if (!limited.ok) return limited;
      return ok({ webhookId: verdict.webhookId, contentType: header("content-type") });
    },
    render: (hook, proven, body) => renderHookMessage(hook, payloadOf(body, proven.contentType)),
    refused,
    replay: {
      key: (hook, proven) =>
        proven.webhookId === undefined ? undefined : `hook:${hook.id}:${proven.webhookId}`,
      ttlMs: WEBHOOK_ID_TTL_MS,
    },
  };
}
