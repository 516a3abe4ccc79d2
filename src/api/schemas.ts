/**
 * Request and response schemas, defined once with zod. They validate requests and generate
 * `/openapi.json`. Field names follow Resend's API, so the official SDK works unchanged.
 */
import { z } from "@hono/zod-openapi";

// Values that end up in a header or an SMTP command must never carry a line break or another
// control character: that is how header and command injection happens.
const NO_CONTROL = /^[^\u0000-\u0008\u000a-\u001f\u007f-\u009f\u2028\u2029]*$/;
const noControl = (what: string) =>
  z.string().regex(NO_CONTROL, `${what} must not contain line breaks or control characters`);

const addressList = z
  .union([noControl("address"), z.array(noControl("address")).max(50)])
  .openapi({ example: ["Ann <ann@example.com>"] });

export const AttachmentSchema = z
  .object({
    filename: noControl("filename").max(255).optional(),
    content: z.string().optional().openapi({ description: "Base64-encoded file content." }),
    path: z.string().optional().openapi({ description: "Not supported: send `content` instead." }),
    content_type: noControl("content_type").max(255).optional(),
    content_id: noControl("content_id").max(255).optional().openapi({
      description: "Makes the attachment inline, referenced from the HTML as cid:<content_id>.",
    }),
  })
  .openapi("Attachment");

export const TagSchema = z
  .object({
    name: z
      .string()
      .max(256)
      .regex(/^[A-Za-z0-9_-]+$/, "tag name may only contain ASCII letters, digits, _ and -"),
    value: z
      .string()
      .max(256)
      .regex(/^[A-Za-z0-9_-]*$/, "tag value may only contain ASCII letters, digits, _ and -"),
  })
  .openapi("Tag");

export const SendEmailSchema = z
  .object({
    from: noControl("from").openapi({ example: "Acme <onboarding@example.com>" }),
    to: addressList,
    cc: addressList.optional(),
    bcc: addressList.optional(),
    reply_to: addressList.optional(),
    // 900: an unbreakable subject still folds into lines under 998 octets.
    subject: noControl("subject").max(900).openapi({ example: "Hello" }),
    html: z.string().optional(),
    text: z.string().optional(),
    headers: z.record(z.string(), z.string()).optional(),
    attachments: z.array(AttachmentSchema).max(100).optional(),
    tags: z.array(TagSchema).max(50).optional(),
    scheduled_at: z.string().optional().openapi({
      description: "ISO 8601 time, or 'in N minutes|hours|days'. Up to 30 days ahead.",
      example: "2026-12-01T09:00:00Z",
    }),
  })
  .openapi("SendEmailRequest");

export type SendEmailRequest = z.infer<typeof SendEmailSchema>;

export const BatchSchema = z.array(SendEmailSchema).min(1).max(100).openapi("BatchRequest");

export const IdSchema = z.object({ id: z.string() }).openapi("Id");

export const BatchResponseSchema = z.object({ data: z.array(IdSchema) }).openapi("BatchResponse");

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
    tags: z.array(TagSchema).optional(),
    delivery: z.object({
      attempts: z.number(),
      next_attempt_at: z.string().nullable(),
      recipients: z.array(
        z.object({
          email: z.string(),
          status: z.enum(["pending", "delivered", "failed", "canceled"]),
          reply: SmtpReplySchema.nullable(),
          at: z.string().nullable(),
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
        }),
      ),
    }),
  })
  .openapi("Email");

export const ErrorSchema = z
  .object({ statusCode: z.number(), name: z.string(), message: z.string() })
  .openapi("Error");

const PolicyFields = {
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
