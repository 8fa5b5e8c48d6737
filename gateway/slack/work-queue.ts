/**
 * The work Slack requests start once they are acked, a few at a time. Acking is cheap and Slack
 * allows 3 s for it; the work after it (Slack and Temporal calls) is not, and run all at once in a
 * burst it would hold up the acks of the requests behind it. Here the acks stay fast and the work
 * queues up, within bounds.
 */
export class WorkQueue {
  private running = 0;
  private readonly waiting: Array<() => Promise<void>> = [];

  constructor(private readonly parallel: number, private readonly capacity: number) {}

  /** Queues the work; false when the queue is full and the work was not taken. */
  push(work: () => Promise<void>): boolean {
    if (this.waiting.length >= this.capacity) return false;
    this.waiting.push(work);
    this.next();
    return true;
  }

  get size(): number {
    return this.running + this.waiting.length;
  }

  private next(): void {
    while (this.running < this.parallel && this.waiting.length) {
      const work = this.waiting.shift()!;
      this.running += 1;
      // Work reports its own failures (dispatch answers the asker); this only keeps the queue moving.
      work().catch(() => undefined).finally(() => {
        this.running -= 1;
        this.next();
      });
    }
  }
}
