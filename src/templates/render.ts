/**
 * Logic-less templates for forms and hooks: `{{field}}`, dotted paths (`{{pull_request.title}}`),
 * and sections over lists (`{{#commits}}- {{message}}{{/commits}}`), rendered with mustache, the
 * well-kept implementation of that language.
 *
 * The data is untrusted (a form visitor's fields, a webhook sender's JSON) and the template is the
 * operator's, so the rules are one-sided:
 * - Every value is escaped for where it lands: HTML-escaped in an HTML body, stripped of line
 *   breaks and control characters in a header, left as text in a text body. The forms that would
 *   let a value through unescaped (`{{{x}}}`, `{{&x}}`), partials and delimiter changes are
 *   refused when the template is saved, naming the field.
 * - Names resolve to data only: the view is copied into objects and lists without a prototype,
 *   so `{{constructor}}` or `{{items.map}}` find nothing (mustache would call a method it found).
 * - A missing value renders empty. Lists are cut to `MAX_LIST_ITEMS` and sections nest at most
 *   `MAX_SECTION_DEPTH` deep, so a hostile payload cannot make rendering explode.
 */
import Mustache from "mustache";
import { TooLargeError, ValidationError } from "../errors.ts";

/** Where a rendered template goes, which decides how its values are escaped. */
export type TemplateMode = "text" | "html" | "header";

export const MAX_LIST_ITEMS = 100;
export const MAX_SECTION_DEPTH = 3;
const MAX_DEPTH = 32;

type Token = [string, string, number, number, Token[]?, ...unknown[]];

/**
 * Checks a template when it is saved, so rendering cannot fail later. Throws a ValidationError
 * naming `field` for a syntax error or a construct the relay does not allow.
 */
export function checkTemplate(template: string, field: string): void {
  let tokens: Token[];
  try {
    tokens = Mustache.parse(template) as Token[];
  } catch (err) {
    throw new ValidationError(
      `is not a valid template: ${err instanceof Error ? err.message : String(err)}`,
      field,
    );
  }
  const walk = (list: Token[], depth: number) => {
    for (const token of list) {
      const [kind, name] = token;
      if (kind === "&" || kind === "{")
        throw new ValidationError(
          `may not use {{{${name}}}} or {{&${name}}}: every value is escaped`,
          field,
        );
      if (kind === ">") throw new ValidationError("may not use partials ({{>name}})", field);
      if (kind === "=") throw new ValidationError("may not change the delimiters", field);
      if (kind === "#" || kind === "^") {
        if (depth + 1 > MAX_SECTION_DEPTH)
          throw new ValidationError(`nests sections more than ${MAX_SECTION_DEPTH} deep`, field);
        walk(token[4] ?? [], depth + 1);
      }
    }
  };
  walk(tokens, 0);
}

/**
 * The most text the data's values may put into one rendering. Sections repeat their content per
 * list item, so a large value inside nested sections could otherwise grow without bound before
 * any message size limit is checked.
 */
export const MAX_RENDERED_VALUES = 4 * 1024 * 1024;

/**
 * Renders a template checked by `checkTemplate` over untrusted data. Throws a TooLargeError when
 * the values would add more than `MAX_RENDERED_VALUES` characters.
 */
export function renderTemplate(template: string, data: unknown, mode: TemplateMode): string {
  let budget = MAX_RENDERED_VALUES;
  // Mustache throws looking a name up in a null view: give it an empty list instead. A scalar
  // payload stays itself, reachable as {{.}}.
  const view = toView(data, 0) ?? Object.setPrototypeOf([], null);
  const out = Mustache.render(template, view, undefined, {
    escape: (value: unknown) => {
      const text = escapeFor(mode, display(value));
      budget -= text.length;
      if (budget < 0)
        throw new TooLargeError(
          `The template renders more than ${MAX_RENDERED_VALUES} characters of submitted data`,
        );
      return text;
    },
  });
  return mode === "header" ? out.replace(/\s+/g, " ").trim() : out;
}

/** A value as text: lists joined by commas, objects as JSON, nothing for null. */
function display(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (Array.isArray(value)) return Array.prototype.map.call(value, display).join(", ");
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

const HTML: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
  "`": "&#96;",
  "=": "&#61;",
};

function escapeFor(mode: TemplateMode, text: string): string {
  if (mode === "html") return text.replace(/[&<>"'`=]/g, (ch) => HTML[ch] ?? ch);
  if (mode === "header")
    // Line breaks, every control character and the Unicode line separators become spaces: a
    // value can never start a new header line.
    return text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, " ");
  return text;
}

/** Copies data into prototype-free objects and bounded lists, so names resolve to data only. */
function toView(value: unknown, depth: number): unknown {
  if (depth > MAX_DEPTH) return null;
  if (Array.isArray(value)) {
    // Still an array to mustache (Array.isArray looks at the object, not its prototype).
    const list = value.slice(0, MAX_LIST_ITEMS).map((item) => toView(item, depth + 1));
    return Object.setPrototypeOf(list, null);
  }
  if (value !== null && typeof value === "object") {
    const out = Object.create(null) as Record<string, unknown>;
    for (const [k, v] of Object.entries(value)) out[k] = toView(v, depth + 1);
    return out;
  }
  if (typeof value === "function") return null;
  return value;
}

// ---- Variable templates (Resend's `{{{NAME}}}`) ------------------------------------------------

/** A variable's name: a letter or `_`, then letters, digits and `_` (no dots: no paths). */
export const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/**
 * Checks a variable template (Resend's templates: `{{{NAME}}}`, or `{{NAME}}`, both escaped for
 * where they land) and returns the names it uses. Only plain variables are allowed: sections,
 * partials, delimiter changes and dotted names are refused, naming `field`.
 */
export function templateVariables(template: string, field: string): string[] {
  let tokens: Token[];
  try {
    tokens = Mustache.parse(template) as Token[];
  } catch (err) {
    throw new ValidationError(
      `is not a valid template: ${err instanceof Error ? err.message : String(err)}`,
      field,
    );
  }
  const names = new Set<string>();
  for (const [kind, name] of tokens) {
    if (kind === "text" || kind === "!") continue;
    if (kind !== "name" && kind !== "{" && kind !== "&")
      throw new ValidationError(
        `may only use variables ({{{NAME}}}), not sections, partials or delimiter changes`,
        field,
      );
    if (!VARIABLE_NAME.test(name))
      throw new ValidationError(
        `uses {{{${name.slice(0, 64)}}}}: a variable name is letters, digits and _`,
        field,
      );
    names.add(name);
  }
  return [...names];
}

/**
 * Renders a variable template checked by `templateVariables`. Every value is escaped for `mode`,
 * whichever braces the template used: the relay never inserts a value as markup. Throws a
 * TooLargeError when the values would add more than `MAX_RENDERED_VALUES` characters (a large
 * value used many times).
 */
export function renderVariables(
  template: string,
  values: Readonly<Record<string, string | number>>,
  mode: TemplateMode,
): string {
  let budget = MAX_RENDERED_VALUES;
  let out = "";
  for (const [kind, name] of Mustache.parse(template) as Token[]) {
    if (kind === "text") out += name;
    else if (kind === "name" || kind === "{" || kind === "&") {
      const value = Object.hasOwn(values, name) ? values[name] : undefined;
      const text = escapeFor(mode, value === undefined ? "" : String(value));
      budget -= text.length;
      if (budget < 0)
        throw new TooLargeError(
          `The template renders more than ${MAX_RENDERED_VALUES} characters of variable values`,
        );
      out += text;
    }
  }
  return mode === "header" ? out.replace(/\s+/g, " ").trim() : out;
}
