/**
 * The send request, Resend's shape: the zod schema that validates `POST /emails` (and documents
 * it), and the type every path that makes a message builds (forms, hooks), which the composer
 * turns into the queued message. Field names follow Resend's API, so the official SDK works
 * unchanged.
 */
import { z } from "@hono/zod-openapi";

/** Longest subject taken: an unbreakable subject still folds into lines under 998 octets. */
export const MAX_SUBJECT_CHARS = 900;

// Values that end up in a header or an SMTP command must never carry a line break or another
// control character: that is how header and command injection happens.
const NO_CONTROL = /^[^\u0000-\u0008\u000a-\u001f\u007f-\u009f\u2028\u2029]*$/;
export const noControl = (what: string) =>
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
    subject: noControl("subject").max(MAX_SUBJECT_CHARS).openapi({ example: "Hello" }),
    html: z.string().optional(),
    text: z.string().optional(),
    headers: z.record(z.string(), z.string()).optional(),
    attachments: z.array(AttachmentSchema).max(100).optional(),
    tags: z.array(TagSchema).max(50).optional(),
    template: z
      .object({
        id: z.string(),
        variables: z.record(z.string(), z.union([z.string(), z.number()])).optional(),
      })
      .optional()
      .openapi({
        description:
          "A published template's id or alias and its variables, instead of html and text: the template gives html, text and (unless given here) from, subject and reply_to.",
      }),
    scheduled_at: z.string().optional().openapi({
      description: "ISO 8601 time, or 'in N minutes|hours|days'. Up to 30 days ahead.",
      example: "2026-12-01T09:00:00Z",
    }),
  })
  .openapi("SendEmailRequest");

export type SendEmailRequest = z.infer<typeof SendEmailSchema>;
