/**
 * /submission/session: what the SMTP submission listener (src/submission/) needs to know about the
 * key a client authenticated with, before DATA: the key's id, permission and policy, and the
 * relay's own limits. AUTH is answered from it (so a wrong key is 535 at AUTH, not at DATA), and
 * each RCPT is checked against the policy as it arrives. Any key may ask about itself; the answer
 * holds nothing the key's holder could not learn by trying to send.
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { authenticate } from "../auth.ts";
import type { AppEnv } from "../env.ts";
import { authErrors, bearer, resourceApp, route } from "../route.ts";
import { PolicyFields } from "../schemas.ts";

export const SubmissionSessionSchema = z
  .object({
    key_id: z.string(),
    permission: z.enum(["full_access", "sending_access"]),
    policy: z.object(PolicyFields).nullable(),
    max_message_bytes: z.number().int(),
    max_recipients: z.number().int(),
    smtp_utf8: z.boolean(),
  })
  .openapi("SubmissionSession");

const session = createRoute({
  method: "get",
  path: "/session",
  summary:
    "The calling key's id, permission and policy, and the relay's message limits (for the SMTP listener)",
  security: bearer,
  middleware: authenticate,
  responses: {
    200: {
      description: "The calling key",
      content: { "application/json": { schema: SubmissionSessionSchema } },
    },
    ...authErrors,
  },
});

export function submissionRoutes(): OpenAPIHono<AppEnv> {
  const app = resourceApp();
  route(app, session, (c) => {
    const principal = c.get("principal");
    const { limits } = c.get("relay").config;
    return c.json({
      key_id: principal.keyId,
      permission: principal.permission,
      policy: principal.policy ?? null,
      max_message_bytes: limits.maxMessageBytes,
      max_recipients: limits.maxRecipients,
      smtp_utf8: limits.smtpUtf8 ?? false,
    });
  });
  return app;
}
