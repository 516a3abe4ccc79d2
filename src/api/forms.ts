/**
 * /forms: a full_access key creates, lists, reads (with rejection counters), changes and deletes
 * forms. `/f/:id` is the public side a web page talks to, without an API key: `POST /f/:id` takes
 * a submission (plain form post or fetch), `GET /f/:id/start` issues the start token for the
 * minimum fill time, and `OPTIONS` answers CORS preflights for the form's origins only.
 *
 * The public paths live under /f/, apart from /forms/*, so no API-key middleware can catch them;
 * the management routes take `authenticate` one by one, as the hooks routes do.
 */
import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { clientBucket, failureGuard } from "../auth/abuse.ts";
import { requireFullAccess } from "../auth/keys.ts";
import { checkMessage } from "../auth/policy.ts";
import { parseRateLimit, type RateLimit, rateLimitHeaders } from "../auth/rate-limit.ts";
import {
  MalformedBodyError,
  NotFoundError,
  RelayError,
  TooLargeError,
  ValidationError,
} from "../errors.ts";
import type { AppEnv } from "../http/env.ts";
import {
  authErrors,
  bearer,
  bodyErrors,
  errorResponse,
  notFound,
  resourceApp,
  route,
} from "../http/route.ts";
import {
  CreateFormSchema,
  checkForm,
  DEFAULTS,
  defaultText,
  type FieldSpec,
  type FormRecord,
  fieldSpec,
  formView,
  list,
  REJECTION_REASONS,
  START_FIELD,
  TURNSTILE_FIELD,
  UpdateFormSchema,
} from "../intake/forms/forms.ts";
import { FormRejection } from "../intake/forms/rejection.ts";
import {
  backLink,
  corsHeaders,
  errorCode,
  errorField,
  errorTitle,
  htmlPage,
  type Mode,
  modeOf,
  preflightHeaders,
  redirect,
} from "../intake/forms/respond.ts";
import { checkStartToken, issueStartToken, newTokenKey } from "../intake/forms/start-token.ts";
import { checkSubmission, firstValue, parseSubmission } from "../intake/forms/submit.ts";
import { verifyTurnstile } from "../intake/forms/turnstile.ts";
import { checkHeaderText } from "../mail/address.ts";
import { composeMessage } from "../mail/compose.ts";
import type { SendEmailRequest } from "../mail/request.ts";
import type { Relay } from "../relay.ts";
import { RecordCache } from "../store/record-cache.ts";
import { renderTemplate } from "../templates/render.ts";
import { authenticate } from "./auth.ts";
import { readBodyBytes, readJson, validate } from "./body.ts";
import {
  registerRecordRoutes,
  requestOrigin,
  resourceId,
  sendingPolicy,
  stored,
} from "./resource.ts";
import { queueMessages } from "./send.ts";

/** Forms, cached in the isolate: every public request needs one. */
const forms = new RecordCache<FormRecord>("form");

/** Three templates of 100,000 characters, JSON-escaped, and fifty field specs fit. */
const MAX_DEFINITION_BYTES = 1024 * 1024;
/** A rendered subject is cut here: an unbreakable subject still folds under 998 octets. */
const MAX_SUBJECT_CHARS = 900;

/** The message a submission becomes: only templates and the checked Reply-To come from it. */
function renderFormMessage(
  form: FormRecord,
  data: Record<string, string | string[]>,
  replyTo: string | null,
  attachments: SendEmailRequest["attachments"],
): SendEmailRequest {
  return {
    from: form.from,
    to: form.to,
    ...(replyTo ? { reply_to: [replyTo] } : {}),
    subject: renderTemplate(form.subject, data, "header").slice(0, MAX_SUBJECT_CHARS),
    ...(form.text !== null ? { text: renderTemplate(form.text, data, "text") } : {}),
    ...(form.html !== null ? { html: renderTemplate(form.html, data, "html") } : {}),
    ...(attachments?.length ? { attachments } : {}),
    tags: [{ name: "form", value: form.id }],
  };
}

/**
 * Checks a form before it is saved: everything `checkForm` checks, and that a message rendered
 * from sample values composes and passes the saving key's policy (sender and recipients).
 */
async function checkWholeForm(relay: Relay, form: FormRecord): Promise<void> {
  checkForm(form, relay.config.limits.maxMessageBytes);
  const sample: Record<string, string> = {};
  for (const f of form.fields) sample[f.name] = f.type === "email" ? "visitor@example.com" : "x";
  // compose names the request's fields ("to[0]", "from"), which are the form's fields too.
  const composed = await composeMessage(
    renderFormMessage(form, sample, form.reply_to_field ? "visitor@example.com" : null, []),
    { id: crypto.randomUUID(), keyId: form.id, now: relay.now(), limits: relay.config.limits },
  );
  checkMessage(form.policy ?? undefined, composed);
}

function fieldsOf(input: Parameters<typeof fieldSpec>[0][], maxBodyBytes: number): FieldSpec[] {
  return input.map((f, i) => fieldSpec(f, i, maxBodyBytes));
}

const noForm = notFound("form");
const formErrors = {
  ...authErrors,
  ...bodyErrors,
  403: errorResponse(
    "Invalid API key, or the form's sender or recipients are outside the key's policy",
  ),
};

const createForm = createRoute({
  method: "post",
  path: "/",
  summary: "Create a form that web pages may post to (no API key in the page)",
  security: bearer,
  middleware: authenticate,
  request: { body: { content: { "application/json": { schema: CreateFormSchema } } } },
  responses: {
    201: { description: "The form, with `action_url` (the page's form action)" },
    ...formErrors,
  },
});

const updateForm = createRoute({
  method: "patch",
  path: "/{id}",
  summary: "Change a form (null clears an optional setting)",
  security: bearer,
  middleware: authenticate,
  request: { body: { content: { "application/json": { schema: UpdateFormSchema } } } },
  responses: { 200: { description: "The form" }, ...formErrors, 404: noForm },
});

/** What every public form route can answer before its own work. */
const publicErrors = {
  404: noForm,
  429: errorResponse("Too many failed requests from this network"),
  503: errorResponse("Store unavailable: nothing was stored, retry after Retry-After"),
};

const preflightResponses = {
  204: { description: "Allowed: CORS headers for the form's origin" },
  403: { description: "An origin the form does not allow (no CORS headers)" },
  ...publicErrors,
};

const submitPreflight = createRoute({
  method: "options",
  path: "/{id}",
  summary: "CORS preflight for a submission, answered for the form's allowed origins only",
  responses: preflightResponses,
});

const startPreflight = createRoute({
  method: "options",
  path: "/{id}/start",
  summary: "CORS preflight for the start token, answered for the form's allowed origins only",
  responses: preflightResponses,
});

const startToken = createRoute({
  method: "get",
  path: "/{id}/start",
  summary: "A signed start token for the minimum fill time (put it in the _start field)",
  responses: {
    200: { description: "{ token, field, min_fill_seconds }" },
    403: errorResponse("Origin not allowed"),
    ...publicErrors,
  },
});

const submitForm = createRoute({
  method: "post",
  path: "/{id}",
  summary:
    "Submit a form (no API key): urlencoded, multipart or JSON, from one of its allowed origins",
  description:
    "Errors are JSON for a script (Accept or Content-Type JSON); a plain form post gets an HTML page or a redirect to error_url.",
  responses: {
    200: { description: "{ id } for a script; a thank-you page for a plain form post" },
    303: {
      description: "A plain form post: to success_url, or to error_url?error=<code>&field=<name>",
    },
    400: errorResponse("The body could not be parsed"),
    403: errorResponse("Origin not allowed, or the message is outside the form's policy"),
    413: errorResponse("Over max_body_bytes or a field's max_bytes"),
    415: errorResponse("Unsupported Content-Type"),
    422: errorResponse("A field is invalid, missing, or the form was sent too fast"),
    ...publicErrors,
    429: errorResponse("Over the form's or the client's rate limit"),
  },
});

/** Mounted at /forms: managing forms, with a full_access key. */
export function formRoutes(): OpenAPIHono<AppEnv> {
  const app = resourceApp();
  route(app, createForm, async (c) => {
    const principal = c.get("principal");
    requireFullAccess(principal);
    const relay = c.get("relay");
    const body = validate(CreateFormSchema, await readJson(c, MAX_DEFINITION_BYTES));
    const now = relay.now();
    const maxBody = body.max_body_bytes ?? DEFAULTS.max_body_bytes;
    const fields = fieldsOf(body.fields, maxBody);
    const form: FormRecord = {
      id: crypto.randomUUID(),
      name: body.name ?? null,
      from: body.from,
      to: list(body.to),
      reply_to_field: body.reply_to_field ?? null,
      subject: body.subject ?? DEFAULTS.subject,
      text: body.text ?? (body.html === undefined ? defaultText(fields) : null),
      html: body.html ?? null,
      fields,
      allowed_origins: body.allowed_origins,
      success_url: body.success_url ?? null,
      error_url: body.error_url ?? null,
      honeypot: body.honeypot ?? DEFAULTS.honeypot,
      min_fill_seconds: body.min_fill_seconds ?? DEFAULTS.min_fill_seconds,
      start_token: body.start_token ?? "optional",
      ip_rate_limit: body.ip_rate_limit ?? DEFAULTS.ip_rate_limit,
      rate_limit: body.rate_limit ?? DEFAULTS.rate_limit,
      max_body_bytes: maxBody,
      turnstile_secret: body.turnstile_secret ?? null,
      token_key: newTokenKey(),
      policy: sendingPolicy(principal.policy),
      created_by: principal.keyId,
      created_at: now,
      updated_at: now,
    };
    await checkWholeForm(relay, form);
    await stored(relay, "form.create", () => forms.save(relay.store, form));
    relay.log.info("form.created", { form_id: form.id, key_id: principal.keyId });
    return c.json(formView(form, requestOrigin(c)), 201);
  });

  registerRecordRoutes(app, {
    kind: "form",
    name: "Form",
    cache: forms,
    view: formView,
    counted: (counters) => ({
      rejected: Object.fromEntries(REJECTION_REASONS.map((r) => [r, counters[r] ?? 0])),
    }),
    docs: {
      list: "List forms (never their Turnstile secret)",
      get: "Read a form, with its rejected submissions counted by reason",
      delete: "Delete a form",
    },
  });

  route(app, updateForm, async (c) => {
    const principal = c.get("principal");
    requireFullAccess(principal);
    const relay = c.get("relay");
    const id = resourceId(c, "Form");
    const body = validate(UpdateFormSchema, await readJson(c, MAX_DEFINITION_BYTES));
    const old = await stored(relay, "form.get", () =>
      relay.store.getRecord<FormRecord>("form", id),
    );
    if (!old) throw new NotFoundError("Form");
    const keep = <T>(value: T | undefined, was: T): T => (value === undefined ? was : value);
    const maxBody = body.max_body_bytes ?? old.max_body_bytes;
    const form: FormRecord = {
      ...old,
      name: keep(body.name, old.name),
      from: body.from ?? old.from,
      to: body.to === undefined ? old.to : list(body.to),
      reply_to_field: keep(body.reply_to_field, old.reply_to_field),
      subject: body.subject ?? old.subject,
      text: keep(body.text, old.text),
      html: keep(body.html, old.html),
      fields: body.fields ? fieldsOf(body.fields, maxBody) : old.fields,
      allowed_origins: body.allowed_origins ?? old.allowed_origins,
      success_url: keep(body.success_url, old.success_url),
      error_url: keep(body.error_url, old.error_url),
      honeypot: keep(body.honeypot, old.honeypot),
      min_fill_seconds: body.min_fill_seconds ?? old.min_fill_seconds,
      start_token: body.start_token ?? old.start_token,
      ip_rate_limit: body.ip_rate_limit ?? old.ip_rate_limit,
      rate_limit: body.rate_limit ?? old.rate_limit,
      max_body_bytes: maxBody,
      turnstile_secret: keep(body.turnstile_secret, old.turnstile_secret),
      // A form sends under the policy of the key that last saved it: a narrower key cannot widen
      // where an existing form sends by editing it.
      policy: sendingPolicy(principal.policy),
      updated_by: principal.keyId,
      updated_at: relay.now(),
    };
    if (form.text === null && form.html === null)
      throw new ValidationError("give a text or an html template (or both)", "text");
    for (const f of form.fields)
      if (f.type === "file" && f.max_bytes > form.max_body_bytes)
        throw new ValidationError(
          `is larger than the form's max_body_bytes (${form.max_body_bytes})`,
          `fields[${form.fields.indexOf(f)}].max_bytes`,
        );
    await checkWholeForm(relay, form);
    await stored(relay, "form.update", () => forms.save(relay.store, form));
    relay.log.info("form.updated", { form_id: id, key_id: principal.keyId });
    return c.json(formView(form, requestOrigin(c)));
  });

  return app;
}

/**
 * Mounted at /f: what a web page talks to, without an API key. Apart from /forms, so no API-key
 * middleware can catch it.
 */
export function publicFormRoutes(): OpenAPIHono<AppEnv> {
  const app = resourceApp();
  route(app, submitPreflight, (c) => preflight(c, "POST"));
  route(app, startPreflight, (c) => preflight(c, "GET"));
  route(app, startToken, (c) => start(c));
  route(app, submitForm, (c) => submit(c));
  return app;
}

async function publicForm(c: Context<AppEnv>): Promise<FormRecord> {
  const relay = c.get("relay");
  const id = resourceId(c, "Form");
  // An unknown id is cached as missing and charged to the client's failure limit.
  const guard = failureGuard(relay.store, c.get("clientIp"), relay.now());
  const form = await stored(relay, "form.get", () =>
    forms.load(relay.store, id, relay.now(), relay.config.keyCacheMs, guard),
  );
  if (!form) throw new NotFoundError("Form");
  return form;
}

/** The request's Origin when the form allows it; anything else (none, "null", another) is refused. */
function allowedOrigin(c: Context, form: FormRecord): string | undefined {
  const o = c.req.header("origin");
  return o && form.allowed_origins.includes(o) ? o : undefined;
}

const originRefused = () =>
  new FormRejection("origin", 403, "this form does not take submissions from this page's origin", {
    code: "invalid_access",
  });

/** CORS preflight: answered for the form's origins only; others get a 403 without CORS headers. */
async function preflight(c: Context<AppEnv>, methods: string): Promise<Response> {
  const form = await publicForm(c);
  const o = allowedOrigin(c, form);
  if (!o) return new Response(null, { status: 403, headers: { vary: "Origin" } });
  return new Response(null, { status: 204, headers: preflightHeaders(o, methods) });
}

/** `GET /f/:id/start`: a signed start token for the minimum fill time. */
async function start(c: Context<AppEnv>): Promise<Response> {
  const relay = c.get("relay");
  const form = await publicForm(c);
  const o = allowedOrigin(c, form);
  if (!o) throw originRefused();
  const token = await issueStartToken(form.id, form.token_key, relay.now());
  return c.json({ token, field: START_FIELD, min_fill_seconds: form.min_fill_seconds }, 200, {
    ...corsHeaders(o),
    "cache-control": "no-store",
  });
}

function limitOf(value: string): RateLimit {
  // Checked when the form was saved.
  return parseRateLimit(value) ?? { requests: 1, windowSeconds: 1 };
}

/** `POST /f/:id`: every check, then queue; answered for a navigation or for a script. */
async function submit(c: Context<AppEnv>): Promise<Response> {
  const relay = c.get("relay");
  const mode = modeOf(c);
  let form: FormRecord | null = null;
  let cors: string | undefined;
  try {
    form = await publicForm(c);
    cors = allowedOrigin(c, form);
    if (!cors) throw originRefused();
    const id = await accept(c, form);
    return succeeded(c, mode, form, id, cors);
  } catch (err) {
    if (!(err instanceof RelayError)) throw err;
    if (err instanceof FormRejection && form) {
      const formIdValue = form.id;
      relay.log.warn("form.rejected", {
        form_id: formIdValue,
        reason: err.reason,
        ...(err.field ? { field: err.field } : {}),
      });
      c.get("background")(
        relay.store
          .count("form", formIdValue, err.reason)
          .catch((e) => relay.log.warn("form.count_failed", { error: String(e) })),
      );
    }
    return failed(c, mode, form, err, cors);
  }
}

/** Whose allowance a submission uses (kept here for callers; it lives with the abuse limits). */
export { clientBucket };

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

/** Runs the checks in order of cost and queues the message; returns its id. */
async function accept(c: Context<AppEnv>, form: FormRecord): Promise<string> {
  const relay = c.get("relay");
  const ip = clientBucket(c.get("clientIp"));

  // Before the body is read: a flood costs a rate-limit check per request, nothing more.
  for (const [identifier, limit] of [
    [`form-ip:${form.id}:${ip}`, form.ip_rate_limit],
    [`form:${form.id}`, form.rate_limit],
  ] as const) {
    const r = await stored(relay, "form.rate_limit", () =>
      relay.limiter.check(identifier, limitOf(limit)),
    );
    if (!r.allowed) {
      const headers = rateLimitHeaders(r, relay.now());
      throw new FormRejection(
        "rate_limited",
        429,
        `too many submissions; retry after ${headers["ratelimit-reset"]} s`,
        {
          code: "rate_limit_exceeded",
          headers: {
            ...headers,
            "retry-after": String(Math.max(1, Number(headers["ratelimit-reset"]))),
          },
        },
      );
    }
  }

  let bytes: Uint8Array<ArrayBuffer>;
  try {
    // readBodyBytes copies the body into a fresh ArrayBuffer (never a shared one).
    bytes = (await readBodyBytes(c, form.max_body_bytes)) as Uint8Array<ArrayBuffer>;
  } catch (err) {
    if (err instanceof TooLargeError) throw new FormRejection("too_large", 413, err.message);
    if (err instanceof MalformedBodyError)
      throw new FormRejection("invalid_body", 400, err.message);
    throw err;
  }
  const submission = await parseSubmission(bytes, c.req.header("content-type"));

  // A filled honeypot looks like success to the bot, and nothing is queued.
  if (form.honeypot && firstValue(submission, form.honeypot) !== "") {
    throw new Honeypot();
  }

  const token = firstValue(submission, START_FIELD);
  if (token === "") {
    if (form.start_token === "required")
      throw new FormRejection(
        "start_token",
        422,
        `is missing: the page must fetch a start token (GET /f/${form.id}/start) and send it`,
        { field: START_FIELD },
      );
  } else {
    const checked = await checkStartToken(form.id, form.token_key, token, relay.now());
    if (!checked.ok)
      throw new FormRejection(
        "start_token",
        422,
        checked.why === "expired"
          ? "the page is too old: reload it and send the form again"
          : "is not a start token this form issued",
        { field: START_FIELD },
      );
    if (checked.ageMs < form.min_fill_seconds * 1000)
      throw new FormRejection(
        "too_fast",
        422,
        `the form was sent ${(checked.ageMs / 1000).toFixed(1)} s after the page loaded; this form takes at least ${form.min_fill_seconds} s`,
        { field: START_FIELD },
      );
  }

  if (form.turnstile_secret) {
    const response = firstValue(submission, TURNSTILE_FIELD);
    if (response === "")
      throw new FormRejection(
        "turnstile",
        422,
        "is missing: the page must include the Turnstile widget",
        {
          field: TURNSTILE_FIELD,
        },
      );
    const verdict = await verifyTurnstile(
      relay.config.forms.turnstileVerifyUrl,
      form.turnstile_secret,
      response,
      c.get("clientIp"),
    );
    if (!verdict.ok && "unavailable" in verdict) {
      relay.log.error("form.turnstile_unavailable", {
        form_id: form.id,
        error: verdict.unavailable,
      });
      throw new RelayError(
        503,
        "application_error",
        "The challenge could not be verified; nothing was sent. Retry later.",
        { headers: { "retry-after": "5" } },
      );
    }
    if (!verdict.ok)
      throw new FormRejection(
        "turnstile",
        422,
        `was not accepted by Turnstile (${verdict.codes.join(", ") || "no reason given"})`,
        { field: TURNSTILE_FIELD },
      );
  }

  const checked = await checkSubmission(form, submission);
  let composed: Awaited<ReturnType<typeof composeMessage>>;
  try {
    composed = await composeMessage(
      renderFormMessage(form, checked.data, checked.replyTo, checked.attachments),
      {
        id: crypto.randomUUID(),
        keyId: form.id,
        now: relay.now(),
        limits: relay.config.limits,
      },
    );
  } catch (err) {
    if (err instanceof TooLargeError) throw new FormRejection("too_large", 413, err.message);
    if (err instanceof ValidationError) {
      // Only the Reply-To and attachment names come from the visitor; name the form's field.
      const field =
        err.field === "reply_to" || err.field?.startsWith("reply_to[")
          ? (form.reply_to_field ?? undefined)
          : err.field === "subject"
            ? unsafeSubjectField(checked.data)
            : undefined;
      throw new FormRejection("invalid_field", 422, err.detail, field ? { field } : {});
    }
    throw err;
  }
  checkMessage(form.policy ?? undefined, composed);
  const [id] = await queueMessages(c, [{ composed, scheduledAt: null }]);
  relay.log.info("form.submitted", { form_id: form.id, email_id: id });
  return id ?? composed.message.id;
}

/** Not an error to the visitor: the bot is answered as if it had succeeded. */
class Honeypot extends FormRejection {
  constructor() {
    super("honeypot", 200, "honeypot");
  }
}

function succeeded(
  c: Context<AppEnv>,
  mode: Mode,
  form: FormRecord,
  id: string,
  cors: string,
): Response {
  if (mode === "json")
    return c.json({ id }, 200, { ...corsHeaders(cors), "cache-control": "no-store" });
  if (form.success_url) return redirect(form.success_url);
  return htmlPage(200, "Thank you", "Your message was sent.", backLink(c, form), corsHeaders(cors));
}

function failed(
  c: Context<AppEnv>,
  mode: Mode,
  form: FormRecord | null,
  err: RelayError,
  cors: string | undefined,
): Response {
  if (err instanceof Honeypot && form && cors)
    return succeeded(c, mode, form, crypto.randomUUID(), cors);
  const headers = { ...err.headers, ...corsHeaders(cors) };
  if (mode === "json") {
    return new Response(JSON.stringify(err.toBody()), {
      status: err.status,
      headers: { "content-type": "application/json; charset=utf-8", ...headers },
    });
  }
  // A page from another origin is not sent to this form's error page: it gets a 403 page.
  if (form?.error_url && cors) {
    const field = errorField(err);
    return redirect(form.error_url, { error: errorCode(err), ...(field ? { field } : {}) });
  }
  return htmlPage(err.status, errorTitle(err), err.message, backLink(c, form), headers);
}
