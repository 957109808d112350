/**
 * Delivery into one target channel, in order, with up to `window` items under way at once.
 *
 * Each item's work says when the item is written (on the wire: the next may follow it there) and when it is done.
 * The queue starts the next item once the one before it is written and fewer than `window` items are under way
 * (written or being written, not yet done), so the channel gets the items in queue order. A barrier item (one that
 * looks up what the items before it recorded) starts only once everything before it is done. While a written item
 * is retried ({@link DeliveryQueue.hold}), nothing new starts.
 *
 * Items are settled in queue order whatever order their work finishes in, so that a reader that moves its position
 * past an item once it is settled never skips one still under way.
 *
 * @module
 */

/** One item's work, under way. */
export interface Work {
  /** Resolves once the item is written, so that the next may follow it. Resolves at the latest with `done`. */
  written: Promise<void>;
  /** Resolves with how the item is settled: true when it landed or was given up on, false when abandoned. */
  done: Promise<boolean>;
}

/** How a {@link DeliveryQueue} overlaps its items. */
export interface QueueOptions<T> {
  /** How many items may be under way at once (1: each waits for the one before it to be done). */
  window: number;
  /** True for an item that must not start before everything ahead of it is done. */
  barrier: (item: T) => boolean;
}

interface Entry<T> {
  item: T;
  /** Resolves the item's result, which its `settled` callback gets at its turn. */
  settle: (handled: boolean | Promise<boolean>) => void;
}

/**
 * A FIFO of deliveries into one channel, worked by one loop at a time.
 *
 * @example
 * ```ts
 * const queue = new DeliveryQueue<string>((text) => {
 *   const confirmed = room.write(text); // resolves once the room confirmed it
 *   return { written: room.flushed(), done: confirmed.then(() => true) };
 * }, { window: 32, barrier: () => false });
 * queue.push("hello", (handled) => console.log("settled", handled));
 * await queue.idle();
 * ```
 */
export class DeliveryQueue<T> {
  private readonly waiting: Entry<T>[] = [];
  /** The `done` of the items under way (never rejecting). */
  private readonly underway = new Set<Promise<boolean>>();
  /** What must settle before anything new starts (see {@link hold}). */
  private readonly held = new Set<Promise<void>>();
  /** The settlements, chained in push order. */
  private settling: Promise<void> = Promise.resolve();
  private running: Promise<void> | null = null;
  /** Set while the loop waits for the last settlements: a push wakes it, so that it need not wait for them. */
  private wake: (() => void) | null = null;

  constructor(private readonly work: (item: T) => Work, private readonly opts: QueueOptions<T>) {
    if (!Number.isInteger(opts.window) || opts.window < 1) {
      throw new RangeError(`window must be an integer ≥ 1, got ${opts.window}`);
    }
  }

  /** Items waiting or under way. */
  get length(): number {
    return this.waiting.length + this.underway.size;
  }

  /** True while items are waiting, under way, or not yet settled. */
  get busy(): boolean {
    return this.running !== null;
  }

  /**
   * Queues `item`; `settled(handled)` is called once it is done and every item pushed before it is settled (when
   * `settled` returns a promise, once that resolves).
   */
  push(item: T, settled: (handled: boolean) => void | Promise<void>): void {
    let settle!: Entry<T>["settle"];
    const result = new Promise<boolean>((resolve) => settle = resolve);
    // A failing callback must not stop the settlements behind it.
    this.settling = this.settling.then(() => result).then(settled).catch(() => {});
    this.waiting.push({ item, settle });
    this.wake?.();
    this.running ??= this.run();
  }

  /** Resolves once everything pushed so far is settled. */
  idle(): Promise<void> {
    return this.running ?? Promise.resolve();
  }

  /**
   * Starts nothing new until `until` settles: an item already written failed and is being retried, and its retry
   * must go before anything new (it lands after the items written behind it, no later).
   */
  hold(until: Promise<unknown>): void {
    const released = until.then(() => {}, () => {});
    this.held.add(released);
    released.then(() => this.held.delete(released));
  }

  /** Abandons what waits (settled false, at its turn); what is under way still settles. */
  clear(): void {
    for (const entry of this.waiting.splice(0)) entry.settle(false);
  }

  private async run(): Promise<void> {
    try {
      for (;;) {
        while (this.waiting.length > 0) {
          const next = this.waiting[0];
          if (!(await this.mayStart(next))) continue;
          this.waiting.shift();
          const work = this.start(next.item);
          next.settle(work.done);
          await work.written;
        }
        const settled = this.settling;
        await Promise.race([settled, new Promise<void>((resolve) => this.wake = resolve)]);
        this.wake = null;
        // Else a push woke the loop before the last settlements: it goes on, no need to wait for them.
        if (this.waiting.length === 0) break;
      }
    } finally {
      this.running = null;
    }
  }

  /** Waits for one reason `next` may not start yet to pass; true when there is none (and it is still next). */
  private async mayStart(next: Entry<T>): Promise<boolean> {
    if (this.held.size > 0) {
      await Promise.all(this.held);
    } else if (this.underway.size > 0 && this.opts.barrier(next.item)) {
      await Promise.all(this.underway);
    } else if (this.underway.size >= this.opts.window) {
      await Promise.race(this.underway);
    } else {
      // clear() may have emptied the queue meanwhile.
      return this.waiting[0] === next;
    }
    return false;
  }

  /** Starts the work of `item`; what it says is never a rejection. */
  private start(item: T): { written: Promise<void>; done: Promise<boolean> } {
    let work: Work;
    try {
      work = this.work(item);
    } catch (err) {
      work = { written: Promise.resolve(), done: Promise.reject(err) };
    }
    // A work that breaks its contract abandons the item rather than stalling the queue.
    const done = work.done.catch(() => false);
    this.underway.add(done);
    done.then(() => this.underway.delete(done));
    return { written: Promise.race([work.written, done]).then(() => {}, () => {}), done };
  }
}
