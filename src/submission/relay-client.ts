/**
 * The listener's way into the relay: its own HTTP API, so a key is checked exactly as the API
 * checks it (cache, policy, allowed_ips, rate limit) and a message takes the same raw-MIME checks
 * and the same queue as `POST /emails` with `message/rfc822`. The API's answers become SMTP
 * replies here, in one place: 250 only on the relay's 200 (stored), 451 4.x when the relay could
 * not store it (503, unreachable, rate limited: the client keeps the message and retries), 5xx
 * for what retrying cannot fix.
 *
 * Over the network (a Worker, or `npm start`'s wrangler dev) or in process (Deno: app.fetch), as
 * the RelayFetch given says.
 */
import type { KeyPolicy } from "../auth/policy.ts";
import type { Permission } from "../store/types.ts";

/** One request to the relay; `clientIp` is the SMTP client's, for a relay in this process. */
export type RelayFetch = (
  path: string,
  init: RequestInit,
  clientIp: string | undefined,
) => Promise<Response>;

/** The relay at `baseUrl`, over HTTP. It sees this process's address, not the SMTP client's. */
export function networkRelay(baseUrl: string): RelayFetch {
  const base = baseUrl.replace(/\/+$/, "");
  return (path, init) => fetch(`${base}${path}`, init);
}

/** Marks requests from the listener, so `GET /emails/:id` can say the message came by SMTP. */
export const SUBMITTED_VIA_HEADER = "x-relay-submitted-via";

/** An SMTP reply for smtp-server: it sends `responseCode` and the message as the reply text. */
export class SmtpReplyError extends Error {
  readonly responseCode: number;
  constructor(code: number, enhanced: string, text: string) {
    // One line, no control characters: the text may come from the relay's answer.
    super(`${enhanced} ${text.replace(/[\x00-\x1f\x7f]+/g, " ")}`.slice(0, 500));
    this.name = "SmtpReplyError";
    this.responseCode = code;
  }
}

/** What the relay says about a key: its id, permission and policy, and the relay's limits. */
export interface KeySession {
  keyId: string;
  permission: Permission;
  policy: KeyPolicy | undefined;
  maxMessageBytes: number;
  maxRecipients: number;
  smtpUtf8: boolean;
}

async function errorMessage(res: Response): Promise<{ name: string; message: string }> {
  try {
    const body = (await res.json()) as { name?: unknown; message?: unknown };
    return {
      name: typeof body.name === "string" ? body.name : "",
      message: typeof body.message === "string" ? body.message : `HTTP ${res.status}`,
    };
  } catch {
    return { name: "", message: `HTTP ${res.status}` };
  }
}

const unreachableText = (err: unknown) =>
  `the relay could not be reached (${err instanceof Error ? err.message : "error"})`;

/** Asks the relay who `token` is. AUTH answers with this: 535 for a key the API refuses. */
export async function keySession(
  relay: RelayFetch,
  token: string,
  clientIp: string | undefined,
): Promise<KeySession> {
  let res: Response;
  try {
    res = await relay(
      "/submission/session",
      { headers: { authorization: `Bearer ${token}`, [SUBMITTED_VIA_HEADER]: "smtp" } },
      clientIp,
    );
  } catch (err) {
    // RFC 4954 section 6: a temporary failure to check the credentials is 454 4.7.0.
    throw new SmtpReplyError(
      454,
      "4.7.0",
      `Temporary authentication failure: ${unreachableText(err)}`,
    );
  }
  if (res.ok) {
    const body = (await res.json()) as {
      key_id: string;
      permission: Permission;
      policy: KeyPolicy | null;
      max_message_bytes: number;
      max_recipients: number;
      smtp_utf8: boolean;
    };
    return {
      keyId: body.key_id,
      permission: body.permission,
      policy: body.policy ?? undefined,
      maxMessageBytes: body.max_message_bytes,
      maxRecipients: body.max_recipients,
      smtpUtf8: body.smtp_utf8,
    };
  }
  const { message } = await errorMessage(res);
  if (res.status === 401 || res.status === 403)
    throw new SmtpReplyError(535, "5.7.8", `Authentication credentials invalid: ${message}`);
  throw new SmtpReplyError(454, "4.7.0", `Temporary authentication failure: ${message}`);
}

/**
 * The origin of the suppression that holds `address` back, or null. When the relay cannot say
 * (unreachable, an error), null too: the queue checks again when it delivers, so the recipient is
 * taken rather than refused on a guess.
 */
export async function suppressionOf(
  relay: RelayFetch,
  token: string,
  address: string,
  clientIp: string | undefined,
): Promise<string | null> {
  try {
    const res = await relay(
      `/submission/recipient?address=${encodeURIComponent(address)}`,
      { headers: { authorization: `Bearer ${token}`, [SUBMITTED_VIA_HEADER]: "smtp" } },
      clientIp,
    );
    if (!res.ok) return null;
    const body = (await res.json()) as { origin?: unknown };
    return typeof body.origin === "string" ? body.origin : null;
  } catch {
    return null;
  }
}

export interface Submission {
  token: string;
  clientIp: string | undefined;
  envelope: { from: string; to: string[] };
  bytes: Uint8Array<ArrayBuffer>;
}

/** Hands one message to the relay; its id once stored, else the SMTP reply to give. */
export async function submit(relay: RelayFetch, s: Submission): Promise<string> {
  const query = new URLSearchParams({ from: s.envelope.from });
  for (const to of s.envelope.to) query.append("to", to);
  let res: Response;
  try {
    res = await relay(
      `/emails?${query}`,
      {
        method: "POST",
        headers: {
          authorization: `Bearer ${s.token}`,
          "content-type": "message/rfc822",
          [SUBMITTED_VIA_HEADER]: "smtp",
        },
        body: s.bytes,
      },
      s.clientIp,
    );
  } catch (err) {
    throw new SmtpReplyError(
      451,
      "4.3.0",
      `Nothing was stored, try again later: ${unreachableText(err)}`,
    );
  }
  if (res.ok) {
    const { id } = (await res.json()) as { id: string };
    return id;
  }
  throw replyFor(res.status, await errorMessage(res));
}

/** The SMTP reply for an API error answer. */
export function replyFor(status: number, { name, message }: { name: string; message: string }) {
  if (status === 429)
    return new SmtpReplyError(451, "4.7.0", `Rate limited, nothing was stored: ${message}`);
  if (status === 409 || status >= 500)
    return new SmtpReplyError(451, "4.3.0", `Nothing was stored, try again later: ${message}`);
  if (status === 413) return new SmtpReplyError(552, "5.3.4", message);
  if (status === 401 || (status === 403 && name === "invalid_api_key"))
    return new SmtpReplyError(550, "5.7.0", message);
  if (status === 403) return new SmtpReplyError(550, "5.7.1", message);
  // 400 and 422: the message or its envelope is wrong, and sending it again will not help.
  return new SmtpReplyError(554, "5.6.0", message);
}
