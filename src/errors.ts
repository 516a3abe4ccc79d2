/**
 * Every error the API can answer with, as named types, and the one place that turns them into
 * Resend-shaped responses (`{ statusCode, name, message }`). Route code throws these; anything
 * else that escapes is a bug and is answered as a 500 without its details (see src/http/app.ts).
 */

/** Resend's error names (its SDK types them as `RESEND_ERROR_CODE_KEY`). */
export type ErrorName =
  | "validation_error"
  | "missing_required_field"
  | "invalid_parameter"
  | "invalid_attachment"
  | "invalid_from_address"
  | "missing_api_key"
  | "invalid_api_key"
  | "restricted_api_key"
  | "invalid_access"
  | "not_found"
  | "method_not_allowed"
  | "invalid_idempotency_key"
  | "invalid_idempotent_request"
  | "concurrent_idempotent_requests"
  | "rate_limit_exceeded"
  | "invalid_signature"
  | "application_error"
  | "internal_server_error";

export interface ErrorBody {
  statusCode: number;
  name: ErrorName;
  message: string;
}

/** Base class: an error whose message is safe to show to the API client. */
export class RelayError extends Error {
  readonly status: number;
  readonly code: ErrorName;
  readonly headers: Record<string, string>;

  constructor(
    status: number,
    code: ErrorName,
    message: string,
    options?: { cause?: unknown; headers?: Record<string, string> },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "RelayError";
    this.status = status;
    this.code = code;
    this.headers = options?.headers ?? {};
  }

  toBody(): ErrorBody {
    return { statusCode: this.status, name: this.code, message: this.message };
  }

  toResponse(): Response {
    return new Response(JSON.stringify(this.toBody()), {
      status: this.status,
      headers: { "content-type": "application/json; charset=utf-8", ...this.headers },
    });
  }
}

/** The request is well-formed but a field is wrong. `field` is named in the message. */
export class ValidationError extends RelayError {
  readonly field: string | undefined;
  readonly detail: string;
  constructor(detail: string, field?: string, status = 422) {
    super(status, "validation_error", field ? `${field}: ${detail}` : detail);
    this.name = "ValidationError";
    this.field = field;
    this.detail = detail;
  }

  /** The same error for a field inside a list ("[3]" + "to" -> "[3].to"). */
  within(prefix: string): ValidationError {
    const field = this.field
      ? this.field.startsWith("[")
        ? `${prefix}${this.field}`
        : `${prefix}.${this.field}`
      : prefix;
    return new ValidationError(this.detail, field, this.status);
  }
}

export class MissingFieldError extends RelayError {
  constructor(field: string) {
    super(422, "missing_required_field", `${field}: is required`);
    this.name = "MissingFieldError";
  }
}

/** The body is not what the Content-Type says (e.g. malformed JSON). */
export class MalformedBodyError extends RelayError {
  constructor(message: string) {
    super(400, "validation_error", message);
    this.name = "MalformedBodyError";
  }
}

export class InvalidIdempotencyKeyError extends RelayError {
  constructor() {
    super(400, "invalid_idempotency_key", "Idempotency-Key must be 1 to 256 characters long");
    this.name = "InvalidIdempotencyKeyError";
  }
}

/** The Idempotency-Key was used with a different request body. */
export class IdempotentRequestMismatchError extends RelayError {
  constructor() {
    super(
      409,
      "invalid_idempotent_request",
      "This Idempotency-Key was already used with a different request; use a new key",
    );
    this.name = "IdempotentRequestMismatchError";
  }
}

/**
 * The first request with this Idempotency-Key is still being processed, or failed in a way that
 * left its outcome unknown; Retry-After says when its claim lapses at the latest.
 */
export class ConcurrentIdempotentRequestError extends RelayError {
  constructor(retryAfterSeconds?: number) {
    super(
      409,
      "concurrent_idempotent_requests",
      "A request with this Idempotency-Key is still in progress; retry when it has finished",
      retryAfterSeconds === undefined
        ? undefined
        : { headers: { "retry-after": String(retryAfterSeconds) } },
    );
    this.name = "ConcurrentIdempotentRequestError";
  }
}

/**
 * A keyed request (Idempotency-Key, webhook-id) whose store write failed without telling whether
 * it happened. The key stays claimed, so the client's retry with the same key learns the outcome
 * (the first response, or a fresh attempt once the claim lapsed, after Retry-After) instead of
 * storing the messages twice.
 */
export class OutcomeUnknownError extends RelayError {
  constructor(cause: unknown, retryAfterSeconds: number) {
    super(
      503,
      "application_error",
      "The message store did not confirm the request; it may have been stored. Retry with the same key after Retry-After: the retry answers what happened.",
      { cause, headers: { "retry-after": String(retryAfterSeconds) } },
    );
    this.name = "OutcomeUnknownError";
  }
}

/**
 * A keyed request that reached the store call too late: its claim could lapse while the write is
 * on its way, and a retry could then store the messages a second time. Nothing was stored.
 */
export class IdempotencyDeadlineError extends RelayError {
  constructor() {
    super(
      503,
      "application_error",
      "The request took too long to be stored safely under its key; nothing was stored. Retry.",
      { headers: { "retry-after": "1" } },
    );
    this.name = "IdempotencyDeadlineError";
  }
}

/** A body, attachment or recipient list over a documented limit. */
export class TooLargeError extends RelayError {
  constructor(message: string) {
    super(413, "validation_error", message);
    this.name = "TooLargeError";
  }
}

/**
 * A message over a size limit counted as stored (src/mail/bytes.ts storedSize): the message says
 * why that can exceed the message's own octets and what to do about it.
 */
export class StoredSizeError extends TooLargeError {
  constructor(what: string, bytes: number, limit: number, whose = "the") {
    super(
      `${what} is ${bytes} bytes as stored, over ${whose} limit of ${limit} (messages are stored as JSON text: each 8-bit byte counts twice and each line end four bytes; send 8-bit content base64 or quoted-printable encoded)`,
    );
    this.name = "StoredSizeError";
  }
}

export class UnsupportedMediaTypeError extends RelayError {
  constructor(contentType: string) {
    super(
      415,
      "validation_error",
      `Content-Type ${JSON.stringify(contentType)} is not supported: send application/json or message/rfc822`,
    );
    this.name = "UnsupportedMediaTypeError";
  }
}

export class MissingApiKeyError extends RelayError {
  constructor() {
    super(401, "missing_api_key", "Missing API key in the authorization header (Bearer <key>)");
    this.name = "MissingApiKeyError";
  }
}

export class InvalidApiKeyError extends RelayError {
  constructor() {
    super(403, "invalid_api_key", "API key is invalid");
    this.name = "InvalidApiKeyError";
  }
}

/** A valid key without the permission the route needs (Resend: sending_access on a full route). */
export class RestrictedApiKeyError extends RelayError {
  constructor(message = "This API key is restricted to only send emails") {
    super(401, "restricted_api_key", message);
    this.name = "RestrictedApiKeyError";
  }
}

export class NotFoundError extends RelayError {
  constructor(what: string) {
    super(404, "not_found", `${what} not found`);
    this.name = "NotFoundError";
  }
}

export class MethodNotAllowedError extends RelayError {
  constructor() {
    super(405, "method_not_allowed", "Method is not allowed for the requested path");
    this.name = "MethodNotAllowedError";
  }
}

/** The request conflicts with the message's state (e.g. cancelling one already sent). */
export class ConflictError extends RelayError {
  constructor(message: string) {
    super(409, "invalid_parameter", message);
    this.name = "ConflictError";
  }
}

/**
 * The queue store cannot be reached or failed. A 2xx promises durable storage, so when the store
 * is unavailable the answer is 503 with Retry-After: the client retries, nothing is half-accepted.
 */
export class StoreUnavailableError extends RelayError {
  constructor(cause: unknown, retryAfterSeconds = 5) {
    super(
      503,
      "application_error",
      "The message store is unavailable; nothing was stored. Retry later.",
      { cause, headers: { "retry-after": String(retryAfterSeconds) } },
    );
    this.name = "StoreUnavailableError";
  }
}

/** What an unexpected exception becomes on the wire: no internals leak. */
export function internalErrorResponse(): Response {
  return new RelayError(
    500,
    "internal_server_error",
    "Internal server error. The error was logged.",
  ).toResponse();
}

/** The relay's configuration is wrong. Its message names the variable. */
export class ConfigError extends Error {
  readonly variable: string;
  constructor(variable: string, message: string) {
    super(`${variable}: ${message}`);
    this.name = "ConfigError";
    this.variable = variable;
  }
}

/**
 * A hook request without a valid proof (signature, secret or timestamp). One message for every
 * reason, so a caller learns nothing about which part was wrong; the reason is counted per hook.
 */
export class HookUnauthorizedError extends RelayError {
  constructor() {
    super(401, "invalid_signature", "The request's signature or secret is missing or invalid");
    this.name = "HookUnauthorizedError";
  }
}

/** A Standard Webhooks message id whose first request is still being queued. */
export class HookInFlightError extends RelayError {
  constructor(retryAfterSeconds?: number) {
    super(
      409,
      "concurrent_idempotent_requests",
      "A request with this webhook-id is still in progress; retry when it has finished",
      retryAfterSeconds === undefined
        ? undefined
        : { headers: { "retry-after": String(retryAfterSeconds) } },
    );
    this.name = "HookInFlightError";
  }
}

/**
 * A domain's DKIM key cannot be made or opened: neither DKIM_ENCRYPTION_KEY nor ADMIN_TOKEN is
 * set, or the key was sealed with a secret that has since changed. The operator's to fix.
 */
export class DkimUnavailableError extends RelayError {
  constructor(message: string) {
    super(503, "application_error", message);
    this.name = "DkimUnavailableError";
  }
}
