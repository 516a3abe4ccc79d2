/**
 * One page of a list the relay holds whole (templates, domains: at most a hundred or so, read in
 * one command), by Resend's cursors: `limit`, and `after` or `before` an item's id.
 */
import { ValidationError } from "./errors.ts";

/** Resend's list parameters: `limit` (1 to 100, 20), and one of `after` or `before` (an id). */
export interface PageRequest {
  limit: number;
  after?: string | undefined;
  before?: string | undefined;
}

export interface Page<T> {
  data: T[];
  has_more: boolean;
}

/** The page of `all` (already in list order) `page` asks for; an unknown cursor names its field. */
export function cursorPage<T extends { id: string }>(
  all: T[],
  page: PageRequest,
  what: string,
): Page<T> {
  const cursor = page.after ?? page.before;
  if (cursor === undefined)
    return { data: all.slice(0, page.limit), has_more: all.length > page.limit };
  const at = all.findIndex((item) => item.id === cursor.toLowerCase());
  const field = page.after !== undefined ? "after" : "before";
  if (at < 0) throw new ValidationError(`is not the id of ${what}`, field);
  if (field === "after")
    return {
      data: all.slice(at + 1, at + 1 + page.limit),
      has_more: all.length > at + 1 + page.limit,
    };
  const start = Math.max(0, at - page.limit);
  return { data: all.slice(start, at), has_more: start > 0 };
}
