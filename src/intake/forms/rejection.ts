/**
 * A refused submission: the HTTP status and Resend-shaped body a fetch() caller gets, the short
 * code and field a plain HTML form's error redirect carries (`?error=<code>&field=<name>`), and
 * the reason it is counted under.
 */
import { type ErrorName, RelayError } from "../../errors.ts";
import type { RejectionReason } from "./forms.ts";

export class FormRejection extends RelayError {
  readonly reason: RejectionReason;
  readonly field: string | undefined;

  constructor(
    reason: RejectionReason,
    status: number,
    message: string,
    options: { field?: string; code?: ErrorName; headers?: Record<string, string> } = {},
  ) {
    super(
      status,
      options.code ?? "validation_error",
      options.field ? `${options.field}: ${message}` : message,
      options.headers ? { headers: options.headers } : undefined,
    );
    this.name = "FormRejection";
    this.reason = reason;
    this.field = options.field;
  }
}
