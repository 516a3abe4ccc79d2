/**
 * Fills a running relay's queue over its own HTTP API: `count` messages to `<tag>-<n>@example.com`
 * in `POST /emails/batch` requests of 100 (Resend's batch limit), as an app with a backlog would.
 * The benches and the end-to-end fan-out test use it; a refused batch throws with the answer.
 */

export interface FillOptions {
  /** The relay's origin, e.g. http://127.0.0.1:8787 */
  origin: string;
  /** A key (or ADMIN_TOKEN) that may send. */
  token: string;
  /** Recipients are `<tag>-<n>@example.com`, so a sink shared by others can count its own. */
  tag: string;
  count: number;
  /** The message each recipient gets; a short text message by default. */
  message?: { from: string; subject: string; text: string };
}

const DEFAULT_MESSAGE = {
  from: "Bench <bench@acme.test>",
  subject: "Backlog",
  text: "A short transactional message.\n",
};

export async function fillQueue(options: FillOptions): Promise<void> {
  const { origin, token, tag, count } = options;
  const message = options.message ?? DEFAULT_MESSAGE;
  for (let i = 0; i < count; i += 100) {
    const batch = Array.from({ length: Math.min(100, count - i) }, (_, j) => ({
      ...message,
      to: [`${tag}-${i + j}@example.com`],
    }));
    const res = await fetch(`${origin}/emails/batch`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(batch),
    });
    if (res.status !== 200)
      throw new Error(`POST /emails/batch: ${res.status} ${await res.text()}`);
  }
}
