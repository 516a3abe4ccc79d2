/** The cron of a fault run, compressed to one tick every TIMINGS.tickMs. */
import type { TestHarness } from "wrangler";
import { within } from "./async.ts";

/**
 * The cron, compressed: a scheduled event every `everyMs`, whether or not the last run ended (as
 * Cloudflare's cron does), up to `maxInFlight` at once so the run stays bounded.
 */
export class Ticker {
  fired = 0;
  skipped = 0;
  interrupted = 0;
  readonly maxInFlight = 8;
  readonly #harness: () => TestHarness | undefined;
  readonly #everyMs: number;
  readonly #inFlight = new Set<Promise<void>>();
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(harness: () => TestHarness | undefined, everyMs: number) {
    this.#harness = harness;
    this.#everyMs = everyMs;
  }

  start(): void {
    this.resume();
  }

  resume(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => this.#tick(), this.#everyMs);
  }

  /** Stops ticking and waits (bounded) for the runs in flight. */
  async pause(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await within(Promise.allSettled([...this.#inFlight]), 30_000, []);
  }

  #tick(): void {
    const harness = this.#harness();
    if (!harness) return;
    if (this.#inFlight.size >= this.maxInFlight) {
      this.skipped++;
      return;
    }
    this.fired++;
    const run = harness
      .getWorker()
      .scheduled({ cron: "* * * * *", scheduledTime: new Date() })
      .then(
        () => {},
        () => {
          this.interrupted++;
        },
      )
      .finally(() => this.#inFlight.delete(run));
    this.#inFlight.add(run);
  }
}
