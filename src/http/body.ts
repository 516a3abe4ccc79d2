/**
 * Reading request bodies within limits (src/read-within.ts, with the request's Content-Length),
 * and turning schema failures into errors that name the field.
 */

import type { z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { MissingFieldError, ValidationError } from "../errors.ts";
import { parseJson } from "../json.ts";
import { readWithin } from "../read-within.ts";

export async function readBodyBytes(c: Context, maxBytes: number): Promise<Uint8Array> {
  return readWithin(c.req.raw.body, c.req.header("content-length"), maxBytes);
}

export async function readJson(c: Context, maxBytes: number): Promise<unknown> {
  return parseJson(await readBodyBytes(c, maxBytes));
}

function pathToField(path: PropertyKey[]): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out || "body";
}

type Issue = z.core.$ZodIssue;

/**
 * For a union (string | string[]), the branch that got furthest: "to[1]: expected string" says
 * more than "to: Invalid input".
 */
function deepest(issue: Issue | undefined): Issue | undefined {
  if (issue?.code !== "invalid_union" || issue.errors.length === 0) return issue;
  // The branch that got furthest: a deeper path, or at least the right type with a wrong value
  // (an array over its maximum says more than "expected string").
  const rank = (i: Issue) => i.path.length * 2 + (i.code === "invalid_type" ? 0 : 1);
  let best: Issue | undefined;
  for (const branch of issue.errors) {
    for (const inner of branch)
      if (rank(inner) > 0 && (!best || rank(inner) > rank(best))) best = inner;
  }
  return best ? { ...best, path: [...issue.path, ...best.path] } : issue;
}

function valueAt(value: unknown, path: PropertyKey[]): unknown {
  let current = value;
  for (const part of path) {
    if (current === null || typeof current !== "object") return undefined;
    current = (current as Record<PropertyKey, unknown>)[part];
  }
  return current;
}

/** Validates with a zod schema; the first issue becomes the error, naming its field. */
export function validate<T extends z.ZodType>(schema: T, value: unknown, prefix = ""): z.infer<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = deepest(result.error.issues[0]);
  const path = [...(prefix ? [prefix] : []), ...(issue?.path ?? [])];
  const field = pathToField(path);
  const absent = issue !== undefined && valueAt(value, issue.path) === undefined;
  if (absent && (issue.code === "invalid_type" || issue.code === "invalid_union")) {
    throw new MissingFieldError(field);
  }
  throw new ValidationError(issue?.message ?? "is invalid", field);
}
