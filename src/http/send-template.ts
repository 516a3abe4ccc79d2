/**
 * Sending with a template: a send request's `template: { id, variables }` (the id or the alias
 * of a published template) becomes the plain send request it stands for, before the request is
 * validated like any other. The template supplies the HTML and text and, unless the request
 * gives its own, `from`, `subject` and `reply_to`. The result passes the same schema, composer
 * and sending policy as every send request, so a template can never let a key send more than
 * it could without one.
 */
import type { Context } from "hono";
import { NotFoundError, TooLargeError, ValidationError } from "../errors.ts";
import type { Relay } from "../relay.ts";
import { renderPublished, type TemplateRecord, TemplateRefSchema } from "../templates/template.ts";
import { validate } from "./body.ts";
import type { AppEnv } from "./env.ts";
import { stored } from "./routes/resource.ts";

type Loaded = Map<string, Promise<TemplateRecord | null>>;

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

async function resolve(relay: Relay, raw: unknown, loaded: Loaded): Promise<unknown> {
  if (!isObject(raw) || raw.template === undefined) return raw;
  const { template, ...rest } = raw;
  const ref = validate(TemplateRefSchema, template, "template");
  for (const field of ["html", "text"] as const)
    if (rest[field] !== undefined)
      throw new ValidationError("cannot be sent together with a template", field);
  let pending = loaded.get(ref.id);
  if (!pending) {
    pending = stored(relay, "template.load", () => relay.templates.forSend(ref.id));
    loaded.set(ref.id, pending);
  }
  const record = await pending;
  if (!record) throw new NotFoundError("Template");
  const out = renderPublished(record, ref.variables ?? {});
  const filled: Record<string, unknown> = { ...rest, html: out.html };
  if (out.text !== null) filled.text = out.text;
  filled.from ??= out.from ?? undefined;
  filled.subject ??= out.subject ?? undefined;
  filled.reply_to ??= out.reply_to ?? undefined;
  return filled;
}

/** A send request with its template applied; any other body is returned as it came. */
export function applyTemplate(c: Context<AppEnv>, raw: unknown): Promise<unknown> {
  return resolve(c.get("relay"), raw, new Map());
}

const renderedChars = (body: unknown) =>
  isObject(body)
    ? (typeof body.html === "string" ? body.html.length : 0) +
      (typeof body.text === "string" ? body.text.length : 0)
    : 0;

/** Stands for an email of a permissive batch whose template failed (reported by its index). */
export const LEFT_OUT: unique symbol = Symbol("left out");

/** A template's failure, naming the email: "[3].template.variables.NAME: ...". */
function named(err: unknown, i: number): unknown {
  if (err instanceof ValidationError) return err.within(`[${i}]`);
  if (err instanceof NotFoundError) return new NotFoundError(`[${i}].template: Template`);
  return err;
}

/**
 * A batch with each email's template applied (each template read once per batch). An error
 * names the email: "[3].template.variables.NAME: ...". With `leaveOut` (a permissive batch), an
 * email whose template is unknown or whose variables are wrong is handed to it and stands as
 * LEFT_OUT, so the other emails still go. A small request can render large bodies (a long value
 * in a template that repeats it), so the batch stops as soon as what it rendered passes the
 * message size limit, which the whole batch must fit in anyway: memory stays bounded.
 */
export async function applyTemplates(
  c: Context<AppEnv>,
  raw: unknown,
  leaveOut?: (index: number, err: ValidationError | NotFoundError) => void,
): Promise<unknown> {
  if (!Array.isArray(raw)) return raw;
  const relay = c.get("relay");
  const limit = relay.config.limits.maxMessageBytes;
  const loaded: Loaded = new Map();
  const out: unknown[] = [];
  let total = 0;
  for (const [i, item] of raw.entries()) {
    try {
      const body = await resolve(relay, item, loaded);
      if (body !== item) total += renderedChars(body);
      if (total > limit)
        throw new TooLargeError(
          `the batch's templates render more than the limit of ${limit} bytes in total; split it`,
        );
      out.push(body);
    } catch (err) {
      const failure = named(err, i);
      const perEmail = failure instanceof ValidationError || failure instanceof NotFoundError;
      if (!leaveOut || !perEmail) throw failure;
      leaveOut(i, failure);
      out.push(LEFT_OUT);
    }
  }
  return out;
}
