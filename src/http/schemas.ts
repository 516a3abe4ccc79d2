/**
 * The HTTP API's own request and response schemas, defined once with zod. They validate requests
 * and generate `/openapi.json`. The send request itself is src/mail/request.ts.
 */
import { z } from "@hono/zod-openapi";
import { noControl, SendEmailSchema, TagSchema } from "../mail/request.ts";

export const BatchSchema = z.array(SendEmailSchema).min(1).max(100).openapi("BatchRequest");

export const IdSchema = z.object({ id: z.string() }).openapi("Id");

export const BatchResponseSchema = z
  .object({
    data: z.array(IdSchema),
    errors: z
      .array(z.object({ index: z.number().int(), message: z.string() }))
      .optional()
      .openapi({ description: "With x-batch-validation: permissive: the emails not queued" }),
  })
  .openapi("BatchResponse");

export const UpdateEmailSchema = z
  .object({ scheduled_at: z.string() })
  .openapi("UpdateEmailRequest");

export const SmtpReplySchema = z
  .object({ code: z.number().nullable(), enhanced: z.string().optional(), text: z.string() })
  .openapi("SmtpReply");

export const EmailSchema = z
  .object({
    object: z.literal("email"),
    id: z.string(),
    from: z.string(),
    to: z.array(z.string()),
    cc: z.array(z.string()).nullable(),
    bcc: z.array(z.string()).nullable(),
    reply_to: z.array(z.string()).nullable(),
    subject: z.string(),
    html: z.string().nullable(),
    text: z.string().nullable(),
    created_at: z.string(),
    scheduled_at: z.string().nullable(),
    last_event: z.string(),
    message_id: z.string(),
    submitted_via: z.enum(["api", "smtp"]).openapi({
      description: "How the message reached the relay: the HTTP API, or the SMTP listener",
    }),
    tags: z.array(TagSchema).optional(),
    delivery: z.object({
      attempts: z.number(),
      next_attempt_at: z.string().nullable(),
      recipients: z.array(
        z.object({
          email: z.string(),
          status: z.enum(["pending", "delivered", "failed", "canceled", "suppressed", "bounced"]),
          reply: SmtpReplySchema.nullable(),
          at: z.string().nullable(),
          delay: z.object({ at: z.string().nullable(), reply: SmtpReplySchema }).optional(),
          complaint: z.object({ at: z.string().nullable(), feedback_type: z.string() }).optional(),
        }),
      ),
      history: z.array(
        z.object({
          at: z.string(),
          tried: z.number(),
          delivered: z.number(),
          failed: z.number(),
          deferred: z.number(),
          reply: SmtpReplySchema.nullable(),
          host: z.string().nullable().openapi({
            description:
              "The smart host (host:port) that took this attempt, or last refused it; null: none was tried",
          }),
        }),
      ),
    }),
  })
  .openapi("Email");

export const ErrorSchema = z
  .object({ statusCode: z.number(), name: z.string(), message: z.string() })
  .openapi("Error");

export const PolicyFields = {
  allowed_from: z
    .array(z.string().max(254))
    .max(100)
    .optional()
    .openapi({
      description: "Senders this key may use: user@example.com, *@example.com or *@*.example.com.",
      example: ["*@example.com"],
    }),
  allowed_recipients: z
    .array(z.string().max(254))
    .max(1000)
    .optional()
    .openapi({ description: "Recipients this key may send to, as patterns like allowed_from." }),
  max_message_bytes: z
    .number()
    .int()
    .positive()
    .optional()
    .openapi({ description: "Largest message this key may send, in bytes." }),
  rate_limit: z.string().max(32).optional().openapi({
    description: "Requests per window for this key, e.g. 100/1m (default: RATE_LIMIT).",
    example: "100/1m",
  }),
  allowed_ips: z
    .array(z.string().max(64))
    .max(100)
    .optional()
    .openapi({
      description: "Client addresses or CIDR ranges this key may be used from.",
      example: ["203.0.113.0/24", "2001:db8::/32"],
    }),
};

export const CreateApiKeySchema = z
  .object({
    name: noControl("name").min(1).max(50),
    permission: z.enum(["full_access", "sending_access"]).optional(),
    domain_id: z
      .string()
      .optional()
      .openapi({ description: "Accepted for compatibility; ignored." }),
    ...PolicyFields,
  })
  .openapi("CreateApiKeyRequest");

export const ApiKeySchema = z
  .object({
    id: z.string(),
    name: z.string(),
    permission: z.enum(["full_access", "sending_access"]),
    created_at: z.string(),
    last_used_at: z.string().nullable(),
    ...PolicyFields,
  })
  .openapi("ApiKey");

/** PATCH /api-keys/:id: Resend sends { name }; the policy fields may change too (null removes one). */
export const UpdateApiKeySchema = z
  .object({
    name: noControl("name").min(1).max(50).optional(),
    permission: z.enum(["full_access", "sending_access"]).optional(),
    ...(Object.fromEntries(Object.entries(PolicyFields).map(([k, v]) => [k, v.nullable()])) as {
      [K in keyof typeof PolicyFields]: z.ZodNullable<(typeof PolicyFields)[K]>;
    }),
  })
  .strict()
  .openapi("UpdateApiKeyRequest");
