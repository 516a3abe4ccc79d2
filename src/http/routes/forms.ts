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
import { requireFullAccess } from "../../auth/keys.ts";
import { RelayError } from "../../errors.ts";
import {
  CreateFormSchema,
  type FormRecord,
  formView,
  START_FIELD,
  UpdateFormSchema,
} from "../../intake/forms/forms.ts";
import {
  changedForm,
  checkWholeForm,
  formCounters,
  newForm,
  type Saver,
  saveForm,
  storedForm,
} from "../../intake/forms/records.ts";
import { allowedOrigin, formCache, formSource } from "../../intake/forms/source.ts";
import { issueStartToken } from "../../intake/forms/start-token.ts";
import { FORM_DEFINITION_BYTES } from "../../intake/limits.ts";
import { type Accepted, loadRecord, runOn } from "../../intake/pipeline.ts";
import { reject } from "../../intake/result.ts";
import { authenticate } from "../auth.ts";
import { readJson, validate } from "../body.ts";
import type { AppEnv } from "../env.ts";
import {
  backLink,
  corsHeaders,
  errorTitle,
  htmlPage,
  type Mode,
  modeOf,
  preflightHeaders,
  redirect,
} from "../form-respond.ts";
import {
  type FormFailure,
  formFailure,
  intakeContext,
  intakeError,
  thrownFailure,
} from "../intake.ts";
import {
  authErrors,
  bearer,
  bodyErrors,
  errorResponse,
  notFound,
  resourceApp,
  route,
} from "../route.ts";
import {
  registerRecordRoutes,
  requestOrigin,
  resourceId,
  sendingPolicy,
  stored,
} from "./resource.ts";

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

/** The key saving a form: it sends under that key's policy. */
function saverOf(c: Context<AppEnv>): Saver {
  const principal = c.get("principal");
  requireFullAccess(principal);
  return { keyId: principal.keyId, policy: sendingPolicy(principal.policy) };
}

/** Mounted at /forms: managing forms, with a full_access key. */
export function formRoutes(): OpenAPIHono<AppEnv> {
  const app = resourceApp();
  route(app, createForm, async (c) => {
    const saver = saverOf(c);
    const relay = c.get("relay");
    const body = validate(CreateFormSchema, await readJson(c, FORM_DEFINITION_BYTES));
    const form = newForm(body, saver, relay.now());
    await checkWholeForm(relay, form);
    await stored(relay, "form.create", () => saveForm(relay, form));
    relay.log.info("form.created", { form_id: form.id, key_id: saver.keyId });
    return c.json(formView(form, requestOrigin(c)), 201);
  });

  registerRecordRoutes(app, {
    kind: "form",
    name: "Form",
    cache: formCache,
    view: formView,
    counted: formCounters,
    docs: {
      list: "List forms (never their Turnstile secret)",
      get: "Read a form, with its rejected submissions counted by reason",
      delete: "Delete a form",
    },
  });

  route(app, updateForm, async (c) => {
    const saver = saverOf(c);
    const relay = c.get("relay");
    const id = resourceId(c, "Form");
    const body = validate(UpdateFormSchema, await readJson(c, FORM_DEFINITION_BYTES));
    const old = await stored(relay, "form.get", () => storedForm(relay, id));
    if (!old) throw intakeError("form", reject("not_found", "not found"));
    const form = changedForm(old, body, saver, relay.now());
    await checkWholeForm(relay, form);
    await stored(relay, "form.update", () => saveForm(relay, form));
    relay.log.info("form.updated", { form_id: id, key_id: saver.keyId });
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

/** The form of a public request; an unknown id is charged to the client's failure limit. */
async function publicForm(c: Context<AppEnv>): Promise<FormRecord> {
  const id = resourceId(c, "Form");
  const form = await loadRecord(formSource, intakeContext(c), id);
  if (!form) throw intakeError("form", reject("not_found", "not found"));
  return form;
}

/** CORS preflight: answered for the form's origins only; others get a 403 without CORS headers. */
async function preflight(c: Context<AppEnv>, methods: string): Promise<Response> {
  const form = await publicForm(c);
  const o = allowedOrigin(form, c.req.header("origin"));
  if (!o) return new Response(null, { status: 403, headers: { vary: "Origin" } });
  return new Response(null, { status: 204, headers: preflightHeaders(o, methods) });
}

/** `GET /f/:id/start`: a signed start token for the minimum fill time. */
async function start(c: Context<AppEnv>): Promise<Response> {
  const relay = c.get("relay");
  const form = await publicForm(c);
  const o = allowedOrigin(form, c.req.header("origin"));
  if (!o)
    throw intakeError(
      "form",
      reject("origin", "this form does not take submissions from this page's origin"),
    );
  const token = await issueStartToken(form.id, form.token_key, relay.now());
  return c.json({ token, field: START_FIELD, min_fill_seconds: form.min_fill_seconds }, 200, {
    ...corsHeaders(o),
    "cache-control": "no-store",
  });
}

/** `POST /f/:id`: the intake pipeline, answered for a navigation or for a script. */
async function submit(c: Context<AppEnv>): Promise<Response> {
  const mode = modeOf(c);
  const ctx = intakeContext(c);
  let form: FormRecord | null = null;
  try {
    form = await loadRecord(formSource, ctx, resourceId(c, "Form"));
    if (!form) return failed(c, mode, null, formFailure(reject("not_found", "not found")));
    const result = await runOn(formSource, ctx, form);
    if (result.ok) return succeeded(c, mode, form, acceptedId(result.value));
    // A filled honeypot: the bot is answered as if it had succeeded, with an id of nothing.
    if (result.reason === "honeypot") return succeeded(c, mode, form, crypto.randomUUID());
    return failed(c, mode, form, formFailure(result));
  } catch (err) {
    if (!(err instanceof RelayError)) throw err;
    return failed(c, mode, form, thrownFailure(err));
  }
}

function acceptedId(accepted: Accepted): string {
  return accepted.kind === "queued" ? accepted.id : "";
}

/** The allowed origin of the request, for CORS headers; undefined for any other. */
function corsOrigin(c: Context, form: FormRecord | null): string | undefined {
  return form ? allowedOrigin(form, c.req.header("origin")) : undefined;
}

function succeeded(c: Context<AppEnv>, mode: Mode, form: FormRecord, id: string): Response {
  const cors = corsOrigin(c, form);
  if (mode === "json")
    return c.json({ id }, 200, { ...corsHeaders(cors), "cache-control": "no-store" });
  if (form.success_url) return redirect(form.success_url);
  return htmlPage(200, "Thank you", "Your message was sent.", backLink(c, form), corsHeaders(cors));
}

function failed(
  c: Context<AppEnv>,
  mode: Mode,
  form: FormRecord | null,
  failure: FormFailure,
): Response {
  const { error: err, code, field } = failure;
  const cors = corsOrigin(c, form);
  const headers = { ...err.headers, ...corsHeaders(cors) };
  if (mode === "json") {
    return new Response(JSON.stringify(err.toBody()), {
      status: err.status,
      headers: { "content-type": "application/json; charset=utf-8", ...headers },
    });
  }
  // A page from another origin is not sent to this form's error page: it gets a 403 page.
  if (form?.error_url && cors)
    return redirect(form.error_url, { error: code, ...(field ? { field } : {}) });
  return htmlPage(err.status, errorTitle(err.status), err.message, backLink(c, form), headers);
}
