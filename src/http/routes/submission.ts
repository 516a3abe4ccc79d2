/**
 * /submission/session: what the SMTP submission listener (src/submission/) needs to know about the
 * key a client authenticated with, before DATA: the key's id, permission and policy, and the
 * relay's own limits. AUTH is answered from it (so a wrong key is 535 at AUTH, not at DATA), and
 * each RCPT is checked against the policy as it arrives. Any key may ask about itself; the answer
 * holds nothing the key's holder could not learn by trying to send. /submission/recipient says
 * whether an address is on the suppression list, for the same RCPT check (one Upstash command).
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { authenticate, authenticateRecipientLookup } from "../auth.ts";
import { validate } from "../body.ts";
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

const RecipientQuery = z.object({
  address: z.string().min(3).max(254).openapi({ example: "ann@example.com" }),
});

export const SubmissionRecipientSchema = z
  .object({
    address: z.string(),
    suppressed: z.boolean(),
    origin: z.enum(["bounce", "complaint", "manual"]).nullable(),
  })
  .openapi("SubmissionRecipient");

const recipient = createRoute({
  method: "get",
  path: "/recipient",
  summary: "Whether an address is on the suppression list (the SMTP listener asks at RCPT)",
  security: bearer,
  middleware: authenticateRecipientLookup,
  request: { query: RecipientQuery },
  responses: {
    200: {
      description: "The address and whether sending to it would be held back",
      content: { "application/json": { schema: SubmissionRecipientSchema } },
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
  route(app, recipient, async (c) => {
    const address = validate(RecipientQuery, { address: c.req.query("address") }).address;
    const origin = await c.get("relay").suppressions.heldBack(address);
    return c.json({ address, suppressed: origin !== null, origin });
  });
  return app;
}
