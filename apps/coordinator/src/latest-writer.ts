/**
 * Writes of one file where only the newest value matters (coordinator.json, the newest
 * generation number). Generations can form faster than a file is written (a member
 * lost, a rejoin, the next ring at once), and the writes are not awaited where they
 * start, so unordered writes could finish in any order and leave an older generation on
 * disk: a restarted coordinator would then number its rings below ones the workers have
 * seen. Here one write runs at a time, and while it runs only the newest value waiting
 * is kept: the last write to finish is always of the newest value, and a burst of N
 * values costs at most two writes.
 */
export class LatestWriter<T> {
  private waiting: { readonly value: T } | null = null;
  private running: Promise<void> | null = null;

  /** `write` stores one value; a failure goes to `onError` and the next value is still written. */
  constructor(
    private readonly write: (value: T) => Promise<void>,
    private readonly onError: (err: Error) => void,
  ) {}

  /** Asks for `value` to be written; returns at once. */
  set(value: T): void {
    this.waiting = { value };
    this.running ??= this.drain();
  }

  /** Resolves once every value set so far is written (or has failed). */
  async flushed(): Promise<void> {
    while (this.running) await this.running;
  }

  private async drain(): Promise<void> {
    try {
      while (this.waiting) {
        const { value } = this.waiting;
        this.waiting = null;
        await this.write(value).catch((err: Error) => this.onError(err));
      }
    } finally {
      this.running = null;
    }
  }
}
