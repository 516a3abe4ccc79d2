/**
 * Forms as an intake source: what a submission must pass before the pipeline composes and queues
 * it. In order of cost: the page's origin, the per-client and per-form rate limits (before the
 * body is read), then the body parsed by its type, the honeypot, the start token and minimum fill
 * time, Turnstile, and every listed field's check. Only the templates and the checked Reply-To
 * reach the message.
 */
import { clientBucket } from "../../auth/abuse.ts";
import {
  parseRateLimit,
  type RateLimit,
  rateLimitHeaders,
  retryAfterForReset,
} from "../../auth/rate-limit.ts";
import { type RelayError, TooLargeError, ValidationError } from "../../errors.ts";
import { checkHeaderText } from "../../mail/address.ts";
import type { SendEmailRequest } from "../../mail/request.ts";
import { RecordCache } from "../../store/record-cache.ts";
import { renderTemplate } from "../../templates/render.ts";
import { MAX_SUBJECT_CHARS, VERIFIER_RETRY_AFTER_SECONDS } from "../limits.ts";
import type { IntakeContext, IntakeSource } from "../pipeline.ts";
import { PASSED, type Rejection, type Result, reject } from "../result.ts";
import { type FormRecord, START_FIELD, TURNSTILE_FIELD } from "./forms.ts";
import { checkStartToken } from "./start-token.ts";
import {
  type CheckedSubmission,
  checkSubmission,
  type FormAttachment,
  firstValue,
  parseSubmission,
  type Submission,
} from "./submit.ts";
import { verifyTurnstile } from "./turnstile.ts";

/** Forms, cached in the isolate: every public request needs one. */
export const formCache = new RecordCache<FormRecord>("form");

/** The Origin when the form allows it; anything else (none, "null", another) is refused. */
export function allowedOrigin(form: FormRecord, origin: string | undefined): string | undefined {
  return origin && form.allowed_origins.includes(origin) ? origin : undefined;
}

/** The message a submission becomes: only templates and the checked Reply-To come from it. */
export function renderFormMessage(
  form: FormRecord,
  data: Record<string, string | string[]>,
  replyTo: string | null,
  attachments: FormAttachment[],
): SendEmailRequest {
  return {
    from: form.from,
    to: form.to,
    ...(replyTo ? { reply_to: [replyTo] } : {}),
    subject: renderTemplate(form.subject, data, "header").slice(0, MAX_SUBJECT_CHARS),
    ...(form.text !== null ? { text: renderTemplate(form.text, data, "text") } : {}),
    ...(form.html !== null ? { html: renderTemplate(form.html, data, "html") } : {}),
    ...(attachments.length ? { attachments } : {}),
    tags: [{ name: "form", value: form.id }],
  };
}

function limitOf(value: string): RateLimit {
  // Checked when the form was saved.
  return parseRateLimit(value) ?? { requests: 1, windowSeconds: 1 };
}

async function admit(ctx: IntakeContext, form: FormRecord): Promise<Result<void>> {
  const { relay } = ctx;
  const ip = clientBucket(ctx.request.clientIp);
  for (const [identifier, limit] of [
    [`form-ip:${form.id}:${ip}`, form.ip_rate_limit],
    [`form:${form.id}`, form.rate_limit],
  ] as const) {
    const r = await ctx.stored("form.rate_limit", () =>
      relay.limiter.check(identifier, limitOf(limit)),
    );
    if (!r.allowed) {
      const headers = rateLimitHeaders(r, relay.now());
      const reset = headers["ratelimit-reset"];
      return reject("rate_limited", `too many submissions; retry after ${reset} s`, {
        headers: { ...headers, "retry-after": String(retryAfterForReset(Number(reset))) },
      });
    }
  }
  return PASSED;
}

async function checkStart(form: FormRecord, s: Submission, now: number): Promise<Result<void>> {
  const field = START_FIELD;
  const token = firstValue(s, field);
  if (token === "")
    return form.start_token === "required"
      ? reject(
          "start_token",
          `is missing: the page must fetch a start token (GET /f/${form.id}/start) and send it`,
          { field },
        )
      : PASSED;
  const checked = await checkStartToken(form.id, form.token_key, token, now);
  if (!checked.ok)
    return reject(
      "start_token",
      checked.reason === "expired"
        ? "the page is too old: reload it and send the form again"
        : "is not a start token this form issued",
      { field },
    );
  if (checked.ageMs < form.min_fill_seconds * 1000)
    return reject(
      "too_fast",
      `the form was sent ${(checked.ageMs / 1000).toFixed(1)} s after the page loaded; this form takes at least ${form.min_fill_seconds} s`,
      { field },
    );
  return PASSED;
}

async function checkTurnstile(
  ctx: IntakeContext,
  form: FormRecord,
  s: Submission,
): Promise<Result<void>> {
  if (!form.turnstile_secret) return PASSED;
  const field = TURNSTILE_FIELD;
  const response = firstValue(s, field);
  if (response === "")
    return reject("turnstile", "is missing: the page must include the Turnstile widget", { field });
  const { relay } = ctx;
  const verdict = await verifyTurnstile(
    relay.config.forms.turnstileVerifyUrl,
    form.turnstile_secret,
    response,
    ctx.request.clientIp,
  );
  if (verdict.ok) return PASSED;
  if (verdict.reason === "refused")
    return reject(
      "turnstile",
      `was not accepted by Turnstile (${verdict.codes.join(", ") || "no reason given"})`,
      { field },
    );
  relay.log.error("form.turnstile_unavailable", { form_id: form.id, error: verdict.detail });
  return reject(
    "verifier_unavailable",
    "The challenge could not be verified; nothing was sent. Retry later.",
    { headers: { "retry-after": String(VERIFIER_RETRY_AFTER_SECONDS) } },
  );
}

async function verify(
  ctx: IntakeContext,
  form: FormRecord,
  body: Uint8Array<ArrayBuffer>,
): Promise<Result<CheckedSubmission>> {
  const parsed = await parseSubmission(body, ctx.request.header("content-type"));
  if (!parsed.ok) return parsed;
  const submission = parsed.value;
  // A filled honeypot looks like success to the bot, and nothing is queued.
  if (form.honeypot && firstValue(submission, form.honeypot) !== "")
    return reject("honeypot", "honeypot");
  const started = await checkStart(form, submission, ctx.relay.now());
  if (!started.ok) return started;
  const challenged = await checkTurnstile(ctx, form, submission);
  if (!challenged.ok) return challenged;
  return checkSubmission(form, submission);
}

/**
 * The submitted field that made the rendered subject unsafe (an encoded word hiding a line
 * break, say), so the refusal can name it; the subject itself is the operator's template.
 */
function unsafeSubjectField(data: Record<string, string | string[]>): string | undefined {
  for (const [name, value] of Object.entries(data)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      try {
        checkHeaderText(v.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, " "), name, {
          tab: true,
        });
      } catch {
        return name;
      }
    }
  }
  return undefined;
}

/** Only the Reply-To and the subject's fill come from the visitor: name the form's field. */
function visitorField(
  form: FormRecord,
  checked: CheckedSubmission,
  err: ValidationError,
): string | undefined {
  if (err.field === "reply_to" || err.field?.startsWith("reply_to["))
    return form.reply_to_field ?? undefined;
  if (err.field === "subject") return unsafeSubjectField(checked.data);
  return undefined;
}

function refused(
  err: RelayError,
  form: FormRecord,
  checked: CheckedSubmission,
  stage: "compose" | "policy",
): Rejection | undefined {
  // The policy is the operator's: answered as it is, not counted against the visitor.
  if (stage === "policy") return reject("outside_policy", err.message, { error: err });
  if (err instanceof TooLargeError) return reject("too_large", err.message);
  if (err instanceof ValidationError) {
    const field = visitorField(form, checked, err);
    return reject("invalid_field", err.detail, field ? { field } : {});
  }
  return undefined;
}

export const formSource: IntakeSource<FormRecord, CheckedSubmission> = {
  kind: "form",
  cache: formCache,
  proofInBody: false,
  gate: (ctx, form) =>
    allowedOrigin(form, ctx.request.header("origin"))
      ? PASSED
      : reject("origin", "this form does not take submissions from this page's origin"),
  admit,
  maxBodyBytes: (_ctx, form) => form.max_body_bytes,
  verify,
  render: (form, checked) =>
    renderFormMessage(form, checked.data, checked.replyTo, checked.attachments),
  refused,
  acceptedEvent: "form.submitted",
};
