/**
 * Every limit on mail that arrives without a send request (forms, inbound hooks), named once,
 * each with the threat it bounds. A limit that applies to every send request (the subject's
 * length) lives with that request in src/mail/request.ts and is re-exported here, so intake code
 * imports its limits from one place.
 *
 * Limits the operator sets per relay (HOOK_MAX_BODY_BYTES, MAX_MESSAGE_BYTES) are configuration
 * (src/config.ts); these are the fixed ones.
 */
import { MAX_SUBJECT_CHARS } from "../mail/request.ts";

/** A rendered subject is cut here: a visitor's or a sender's text cannot make it unfoldable. */
export { MAX_SUBJECT_CHARS };

// --- Definitions (what a full_access key saves) ---

/** A form definition: three templates of 100,000 characters, JSON-escaped, and fifty fields fit. */
export const FORM_DEFINITION_BYTES = 1024 * 1024;
/** A hook definition: two body templates of 256 KiB, JSON-escaped, fit. */
export const HOOK_DEFINITION_BYTES = 2 * 1024 * 1024;
/** Fields one form may list: a form is for people typing, not for bulk uploads. */
export const MAX_FIELDS = 50;
/** Longest text value a form field may allow (a pasted essay, not a file). */
export const MAX_FIELD_LENGTH = 100_000;
/** Longest minimum fill time: longer only turns real visitors away. */
export const MAX_MIN_FILL_SECONDS = 3600;
/** Origins one form may allow: each is compared on every submission and preflight. */
export const MAX_ORIGINS = 20;
/** A form template (subject, text, html): bounds what one render can cost. */
export const MAX_FORM_TEMPLATE_CHARS = 100_000;
/** A hook's subject template: bounds what one render can cost. */
export const MAX_HOOK_SUBJECT_TEMPLATE_CHARS = 2000;
/** A hook's text or html template: bounds what one render can cost. */
export const MAX_HOOK_BODY_TEMPLATE_CHARS = 256 * 1024;

// --- Submissions (what a visitor's page posts) ---

/** Entries (names with values and files) one submission may hold, listed fields or not. */
export const MAX_SUBMISSION_ENTRIES = 200;
/** An attachment's file name is cut here: it lands in a header. */
export const MAX_FILE_NAME_CHARS = 200;
/** A start token older than this is refused: a day-old tab reloads the page. */
export const START_TOKEN_MAX_AGE_MS = 24 * 60 * 60 * 1000;
/** A start token from the future by more than this is refused (clock skew between isolates). */
export const START_TOKEN_MAX_SKEW_MS = 60_000;
/** Turnstile's siteverify answers in well under a second; a visitor should not wait longer. */
export const TURNSTILE_TIMEOUT_MS = 10_000;

// --- Inbound hooks ---

/** Longest webhook-id taken: it becomes part of a store key. */
export const MAX_WEBHOOK_ID_CHARS = 256;
/** The Standard Webhooks spec's tolerance for webhook-timestamp, both ways (replays). */
export const STANDARD_WEBHOOKS_TOLERANCE_MS = 5 * 60 * 1000;
/**
 * A Standard Webhooks id is remembered this long. The spec's tolerance alone needs ten minutes (a
 * timestamp up to five minutes ahead stays valid until five minutes after it); a day also turns
 * a sender's retry of a delivery whose answer it lost into a duplicate instead of a second mail.
 */
export const WEBHOOK_ID_TTL_MS = 24 * 60 * 60 * 1000;
/** A secret the caller chooses must be at least this long (a header token, an HMAC key). */
export const MIN_SECRET_CHARS = 24;
/** Longest secret a caller may choose: it is hashed or used as a key on every request. */
export const MAX_SECRET_CHARS = 256;
/** Standard Webhooks keys are 24 to 64 bytes (the spec's recommendation); we take up to 128. */
export const STANDARD_KEY_BYTES = { min: 24, max: 128 } as const;

// --- Retry-After ---

/** When a verifier (Turnstile) could not be asked: long enough for a blip to pass. */
export const VERIFIER_RETRY_AFTER_SECONDS = 5;
