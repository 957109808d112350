/**
 * Per-channel read positions that outlive the process: connectors advance them as they hand messages to the core,
 * and read them at start to fetch what was said while the bridge was down.
 *
 * Writes are batched (one atomic commit per network every `flushMs`), so a busy channel costs one KV write a
 * second, not one a message; a crash loses at most that much progress, which the next catch-up fetches again and
 * the id map then drops as already bridged.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { errorMessage } from "./errors.ts";
import type { Store } from "./store.ts";

const log = getLogger(["mmxmpp", "cursors"]);

/**
 * The cursors of every network, over one store.
 *
 * @example
 * ```ts
 * const cursors = new Cursors(store);
 * cursors.advance("mattermost", channelId, post.create_at);
 * await cursors.stop(); // writes what is pending
 * ```
 */
export class Cursors {
  private readonly pending = new Map<string, Map<string, number>>();
  private readonly known = new Map<string, number>();
  private timer?: ReturnType<typeof setTimeout>;
  private flushing: Promise<void> = Promise.resolve();
  /** After {@link stop}, no timer may start: positions are then written at once. */
  private stopped = false;

  constructor(private readonly store: Store, private readonly flushMs = 1_000) {}

  /** The stored position of `channel`, or undefined when none was ever recorded. */
  async load(network: string, channel: string): Promise<number | undefined> {
    const position = await this.store.getCursor(network, channel);
    if (position !== undefined) this.remember(network, channel, position);
    return position;
  }

  /** Moves `channel` forward to `position`; a position that is not a finite number, or not ahead, is ignored. */
  advance(network: string, channel: string, position: number): void {
    const first = !this.known.has(`${network}\u0000${channel}`);
    if (!Number.isFinite(position) || !this.remember(network, channel, position)) return;
    let forNetwork = this.pending.get(network);
    if (!forNetwork) this.pending.set(network, forNetwork = new Map());
    forNetwork.set(channel, position);
    // A channel's first position is written at once: without it, a crash right after the start would leave
    // nothing to catch up from. After stop() (a delivery that settled while the bridges were stopping) too, as
    // nothing would clear a timer then.
    if (first || this.stopped) {
      void this.flush();
      return;
    }
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, this.flushMs);
  }

  /** Writes every pending position now. */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batches = [...this.pending];
    this.pending.clear();
    this.flushing = this.flushing.then(async () => {
      for (const [network, positions] of batches) {
        await this.store.setCursors(network, positions).catch((err) =>
          log.warn("Could not record how far {network} was read: {error}", {
            network,
            error: errorMessage(err),
          })
        );
      }
    });
    return this.flushing;
  }

  /** Writes what is pending and stops the timer; later positions are written at once. Call before closing the store. */
  stop(): Promise<void> {
    this.stopped = true;
    return this.flush();
  }

  private remember(network: string, channel: string, position: number): boolean {
    const key = `${network}\u0000${channel}`;
    if ((this.known.get(key) ?? -Infinity) >= position) return false;
    this.known.set(key, position);
    return true;
  }
}
