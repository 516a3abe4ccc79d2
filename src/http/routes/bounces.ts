/**
 * /bounces: bounce intake for setups without Cloudflare Email Routing (Deno, a self-run MX): the
 * mail server that receives the bounce domain's mail posts each message here as it came
 * (`message/rfc822`), with the address it was sent to in `?to=` (the envelope recipient: the
 * VERP return path). Full-access keys and ADMIN_TOKEN only: a report changes a message's state.
 * A report that is refused (a forged tag, not a report, a recipient the message did not have) is
 * answered 200 with `outcome: "dropped"` and its reason, and counted: the mail server should not
 * retry it. GET /bounces answers the counts.
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { requireFullAccess } from "../../auth/keys.ts";
import {
  DROP_REASONS,
  intakeCounters,
  MAX_REPORT_BYTES,
  type ReportOutcome,
  receiveReport,
} from "../../bounces/intake.ts";
import { MissingFieldError, TooLargeError, ValidationError } from "../../errors.ts";
import { authenticate } from "../auth.ts";
import { readBodyBytes } from "../body.ts";
import type { AppEnv } from "../env.ts";
import { authErrors, bearer, errorResponse, resourceApp, route } from "../route.ts";
import { stored } from "./resource.ts";

const OutcomeSchema = z
  .object({
    object: z.literal("bounce_report"),
    outcome: z.enum(["applied", "unchanged", "dropped"]),
    email_id: z.string().nullable(),
    events: z.array(z.string()).openapi({ description: "Events the report emitted" }),
    reason: z.enum(DROP_REASONS).nullable().openapi({ description: "Why it was dropped" }),
  })
  .openapi("BounceReportOutcome");

const postReport = createRoute({
  method: "post",
  path: "/",
  summary:
    "Take a delivery status notification or feedback report sent to a VERP return path (raw message, ?to= the address it was sent to)",
  security: bearer,
  request: {
    query: z.object({
      to: z.string().openapi({ description: "The envelope recipient: the return path address" }),
    }),
    body: {
      content: {
        "message/rfc822": { schema: { type: "string", description: "The report as received" } },
      },
    },
  },
  responses: {
    200: {
      description: "What intake did with it (dropped reports are answered 200 too)",
      content: { "application/json": { schema: OutcomeSchema } },
    },
    ...authErrors,
    400: errorResponse("The body could not be read"),
    413: errorResponse(`Over ${MAX_REPORT_BYTES} bytes (counted as dropped: too_large)`),
    415: errorResponse("Content-Type other than message/rfc822"),
    422: errorResponse("`to` is missing or not an email address"),
  },
});

const getCounts = createRoute({
  method: "get",
  path: "/",
  summary: "What bounce intake did so far: applied, unchanged, and dropped:<reason> counts",
  security: bearer,
  responses: {
    200: { description: "{ object: 'bounce_intake', counters: { name: count } }" },
    ...authErrors,
  },
});

function envelopeTo(c: Context): string {
  const to = c.req.query("to");
  if (to === undefined || to.trim() === "") throw new MissingFieldError("to");
  if (to.length > 320 || !/^[^\s@<>]+@[^\s@<>]+$/.test(to.trim()))
    throw new ValidationError("must be the email address the report was sent to", "to");
  return to.trim();
}

function answer(o: ReportOutcome) {
  return {
    object: "bounce_report" as const,
    outcome: o.outcome,
    email_id: o.emailId ?? null,
    events: o.outcome === "applied" ? o.events : [],
    reason: o.outcome === "dropped" ? o.reason : null,
  };
}

/** Mounted at /bounces. */
export function bounceRoutes(): OpenAPIHono<AppEnv> {
  const app = resourceApp();
  app.use("*", authenticate);
  app.use("*", async (c, next) => {
    requireFullAccess(c.get("principal"));
    await next();
  });

  route(app, postReport, async (c) => {
    const relay = c.get("relay");
    const to = envelopeTo(c);
    const type = (c.req.header("content-type") ?? "").split(";")[0]?.trim().toLowerCase();
    if (type !== "message/rfc822")
      throw new ValidationError("must be message/rfc822", "Content-Type", 415);
    const outcome = await stored(relay, "bounce.report", () =>
      receiveReport(relay, to, () => readBodyBytes(c, MAX_REPORT_BYTES)),
    );
    if (outcome.outcome === "dropped" && outcome.reason === "too_large")
      throw new TooLargeError(`the report is over the limit of ${MAX_REPORT_BYTES} bytes`);
    if (outcome.outcome === "applied" && outcome.events.length > 0)
      c.get("background")(relay.dispatchSoon());
    return c.json(answer(outcome));
  });

  route(app, getCounts, async (c) => {
    const relay = c.get("relay");
    const counters = await stored(relay, "bounce.counters", () => intakeCounters(relay));
    return c.json({ object: "bounce_intake", counters });
  });

  return app;
}
