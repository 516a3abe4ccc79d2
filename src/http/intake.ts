/**
 * Intake over HTTP. The request as the pipeline (src/intake/pipeline.ts) takes it, with the
 * route layer's store wrapper and idempotency claims; and what a rejection answers: one
 * exhaustive switch from reason to status and Resend-shaped error, so nothing internal reaches
 * the client and a new reason cannot go unanswered. A form's plain post also gets the short code
 * its error redirect carries (`?error=<code>&field=<name>`): the name it is counted under.
 */
import type { Context } from "hono";
import { HookInFlightError, HookUnauthorizedError, NotFoundError, RelayError } from "../errors.ts";
import { KeyClaim, retryAfterSeconds } from "../idempotency.ts";
import type { IntakeContext, ReplayClaim } from "../intake/pipeline.ts";
import { counterOf, type IntakeKind, type Rejection, unreachable } from "../intake/result.ts";
import type { AppEnv } from "./env.ts";
import { stored } from "./routes/resource.ts";

/** The pipeline's view of a request, and what it needs of the relay and the route layer. */
export function intakeContext(c: Context<AppEnv>): IntakeContext {
  const relay = c.get("relay");
  const clientIp = c.get("clientIp");
  return {
    relay,
    request: { clientIp, header: (name) => c.req.header(name), body: c.req.raw.body },
    background: c.get("background"),
    guard: relay.failureGuard(clientIp),
    stored: (op, run) => stored(relay, op, run),
    claim: (key, hash, ttlMs): ReplayClaim => {
      const claim = new KeyClaim(relay, key, hash, ttlMs);
      return {
        begin: async (op) => {
          const held = await claim.begin(op);
          return held.kind === "in_flight"
            ? { kind: "in_flight", retryAfterSeconds: retryAfterSeconds(held.until, relay.now()) }
            : held;
        },
        seal: (response) => claim.seal(response),
        failed: (err) => claim.failed(err),
      };
    },
  };
}

export function intakeError(kind: IntakeKind, r: Rejection): RelayError {
  const text = r.field ? `${r.field}: ${r.message}` : r.message;
  const withHeaders = r.headers ? { headers: r.headers } : undefined;
  switch (r.reason) {
    case "not_found":
      return new NotFoundError(kind === "form" ? "Form" : "Hook");
    case "origin":
      return new RelayError(403, "invalid_access", text);
    // One answer for every failed proof: the caller learns nothing of which part was wrong.
    case "client_address":
    case "unauthorized":
    case "stale_timestamp":
      return new HookUnauthorizedError();
    case "rate_limited":
      return new RelayError(429, "rate_limit_exceeded", text, withHeaders);
    case "too_large":
      return r.error ?? new RelayError(413, "validation_error", text);
    case "invalid_body":
      return r.error ?? new RelayError(400, "validation_error", text);
    case "unsupported_type":
      return new RelayError(415, "validation_error", text);
    case "invalid_payload":
    case "invalid_field":
    case "too_fast":
    case "start_token":
    case "turnstile":
      return new RelayError(422, "validation_error", text);
    case "missing_field":
      return new RelayError(422, "missing_required_field", text);
    // Never shown: the form answers a honeypot as a success.
    case "honeypot":
      return new RelayError(200, "validation_error", text);
    case "verifier_unavailable":
      return new RelayError(503, "application_error", text, withHeaders);
    case "invalid_message":
    case "outside_policy":
      return r.error ?? new RelayError(422, "validation_error", text);
    case "in_flight":
      return new HookInFlightError(r.retryAfterSeconds);
    default:
      return unreachable(r.reason);
  }
}

/** A refused form post as its answer shows it: the error, and the redirect's code and field. */
export interface FormFailure {
  error: RelayError;
  code: string;
  field?: string | undefined;
}

/** The code for a refusal that is not counted (an unknown form, the store or Turnstile down). */
function uncountedCode(err: RelayError): string {
  if (err.status === 404) return "not_found";
  if (err.status === 503) return "unavailable";
  return "invalid";
}

export function formFailure(r: Rejection): FormFailure {
  const error = intakeError("form", r);
  const counted = r.reason === "missing_field" ? "missing_field" : counterOf("form", r.reason);
  return { error, code: counted ?? uncountedCode(error), field: r.field };
}

/** A form post refused by a thrown error (the store unreachable, the client over its limit). */
export function thrownFailure(err: RelayError): FormFailure {
  return { error: err, code: uncountedCode(err) };
}
