/**
 * What a delivery run knows of the store from its own write-backs, so it stops starting SMTP
 * transactions it could not record. A message sent while the store cannot take its outcome comes
 * back after its lease and is sent again: while one write-back is failing, new sends wait; when
 * one succeeds, they go on; when every failing write-back has given up, the run halts, and what
 * it has not started comes back after its lease, unsent.
 */
export class WriteBackHealth {
  #open = 0;
  #trouble: { promise: Promise<void>; resolve: () => void } | null = null;
  #halted = false;

  get halted(): boolean {
    return this.#halted;
  }

  /** A write-back is failing now: claiming more would only hold messages it cannot send. */
  get troubled(): boolean {
    return this.#trouble !== null || this.#halted;
  }

  /** A write-back begins (before its first try). */
  started(): void {
    this.#open++;
  }

  /** One try of a write-back failed; it will try again or give up. */
  failed(): void {
    if (this.#trouble) return;
    let resolve = () => {};
    const promise = new Promise<void>((r) => {
      resolve = r;
    });
    this.#trouble = { promise, resolve };
  }

  /** A write-back ended: written (the store answers) or given up. */
  ended(written: boolean): void {
    this.#open--;
    if (written) this.#clear();
    else if (this.#open === 0 && this.#trouble) {
      this.#halted = true;
      this.#clear();
    }
  }

  /** Resolves true when a new send may start, false when the run should stop sending. */
  async ready(): Promise<boolean> {
    while (this.#trouble) await this.#trouble.promise;
    return !this.#halted;
  }

  #clear(): void {
    this.#trouble?.resolve();
    this.#trouble = null;
  }
}
