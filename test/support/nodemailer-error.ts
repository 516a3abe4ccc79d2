/**
 * An error shaped as nodemailer 10 builds them (smtp-connection `_formatError`): a code, the
 * command it failed at, and `response` / `responseCode` only when the server answered. The
 * transport and failover tests classify these without a server.
 */
import type { NodemailerError } from "nodemailer/lib/errors";

export function nodemailerError(shape: {
  code: string;
  command?: string;
  response?: string;
  message?: string;
}): NodemailerError {
  const { code, command = "API", response } = shape;
  const err = new Error(shape.message ?? response ?? code) as NodemailerError;
  err.code = code;
  err.command = command;
  if (response) {
    err.response = response;
    err.responseCode = Number(response.slice(0, 3));
  }
  return err;
}
