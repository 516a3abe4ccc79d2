/**
 * The dashboard's webhook endpoint page and its replay action: the same use cases as
 * GET /webhooks/:id/events and POST /webhooks/:id/events/:event_id/replay, as the signed-in
 * principal. Replaying answers with a redirect and a notice; the events go out in the background.
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../env.ts";
import { route } from "../route.ts";
import { sessionOf } from "./guard.ts";
import { back, idParam, page } from "./page-route.ts";
import { endpointPage } from "./webhook-views.ts";

/** Events an endpoint page lists (one command, whatever the number). */
const EVENTS_SHOWN = 25;

export function webhookPages(app: OpenAPIHono<AppEnv>): void {
  route(
    app,
    page("get", "/webhooks/{id}", "one webhook endpoint: its recent events and their attempts"),
    async (c) => {
      const relay = c.get("relay");
      const found = await relay.webhooks.get(idParam(c));
      const events = await relay.webhooks.recent(found, EVENTS_SHOWN);
      const notice = c.req.query("done") === "replayed" ? "Replay queued." : undefined;
      return c.html(endpointPage(sessionOf(c), found, events, notice));
    },
  );
  route(
    app,
    page(
      "post",
      "/webhooks/{id}/events/{event_id}/replay",
      "replay an event to its endpoint (a new delivery)",
      303,
    ),
    async (c) => {
      const relay = c.get("relay");
      const found = await relay.webhooks.get(idParam(c));
      const eventId = idParam(c, "event_id");
      await relay.webhooks.replay(found, eventId, sessionOf(c).principal.keyId);
      c.get("background")(relay.dispatchSoon());
      return back(c, `/dashboard/webhooks/${found.record.id}?done=replayed`);
    },
  );
}
