/**
 * Group commit: write-backs that finish within GROUP_COMMIT_WINDOW_MS of each other go to the
 * store in one command (MessageQueue.commitMany), so a scheduled run with several connections
 * busy pays well under one Upstash command per message, while a crash can repeat a send only for
 * outcomes that waited at most that long to be written (the window it widens). Each item keeps
 * its own guard and result; a command that fails fails every item of its group, and each
 * write-back retries on its own (writeBack in deliver.ts), in whatever group forms then.
 */
import type { CommitItem, CommitResult, RelayStore } from "../store/store.ts";

/** How long the first outcome of a group waits for others: a few ms, against a 20-80 ms RTT. */
export const GROUP_COMMIT_WINDOW_MS = 5;
/** Items per command at most: a group's arguments stay far inside Upstash's request size. */
export const GROUP_COMMIT_MAX_ITEMS = 50;
/** And bytes (the states and event payloads, estimated), for messages with many recipients. */
export const GROUP_COMMIT_MAX_BYTES = 512 * 1024;

export type CommitOne = (item: CommitItem) => Promise<CommitResult>;

interface Waiting {
  item: CommitItem;
  resolve: (result: CommitResult) => void;
  reject: (err: unknown) => void;
}

function estimatedBytes(item: CommitItem): number {
  const events = (item.events ?? []).reduce((sum, e) => sum + e.payload.length + 200, 0);
  // The state as COMMIT receives it: a recipient or an attempt is a few hundred bytes.
  const state = 300 * (item.state.recipients.length + item.state.history.length) + 200;
  return state + events + 200 * (item.suppress?.length ?? 0);
}

/** A `commit` that groups its calls; `windowMs` 0 writes each at once (a group of one). */
export function groupCommits(
  store: Pick<RelayStore, "commitMany">,
  windowMs = GROUP_COMMIT_WINDOW_MS,
): CommitOne {
  let waiting: Waiting[] = [];
  let bytes = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;

  const flush = () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    const group = waiting;
    waiting = [];
    bytes = 0;
    if (group.length === 0) return;
    store.commitMany(group.map((w) => w.item)).then(
      (results) => {
        group.forEach((w, i) => {
          w.resolve(results[i] ?? "missing");
        });
      },
      (err: unknown) => {
        for (const w of group) w.reject(err);
      },
    );
  };

  return (item) =>
    new Promise<CommitResult>((resolve, reject) => {
      const size = estimatedBytes(item);
      if (waiting.length > 0 && bytes + size > GROUP_COMMIT_MAX_BYTES) flush();
      waiting.push({ item, resolve, reject });
      bytes += size;
      if (windowMs <= 0 || waiting.length >= GROUP_COMMIT_MAX_ITEMS) flush();
      else timer ??= setTimeout(flush, windowMs);
    });
}
