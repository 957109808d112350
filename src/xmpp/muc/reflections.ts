/**
 * Waiting for a room to reflect a message we sent: the proof that it was delivered, and the source of the room's
 * stanza-id.
 *
 * @module
 */
import { BridgeError } from "../../core/errors.ts";
import type { Groupchat } from "../protocol/stanza.ts";

interface Waiter {
  room: string;
  resolve: (stanzaId: string | undefined) => void;
  reject: (err: Error) => void;
  /** When it gives up (`Date.now()` time). */
  deadline: number;
}

/** Outcome of {@link Reflections.settle}. */
export type Settled = "resolved" | "bounced" | "unknown";

/**
 * Pending sends keyed by origin-id. Every waiter waits as long, so they time out in the order they started: one timer,
 * set for the oldest, serves them all (a timer per message cost as much as the rest of the waiting).
 *
 * @example
 * ```ts
 * const pending = reflections.expect(room, id);
 * await client.send(buildGroupchat(room, body, id));
 * const stanzaId = await pending;
 * ```
 */
export class Reflections {
  /** In the order they started, which is the order of their deadlines. */
  private readonly waiters = new Map<string, Waiter>();
  /** Set for the oldest waiter's deadline while any waits. */
  private timer?: ReturnType<typeof setTimeout>;

  constructor(private readonly timeoutMs = 15_000) {}

  /** Starts waiting for the reflection of `id` in `room`; rejects with a transient error on timeout. */
  expect(room: string, id: string): Promise<string | undefined> {
    // A waiter for the same id gives way (it would otherwise never be settled), and the new one goes last.
    this.take(id)?.reject(
      new BridgeError(`a send to ${room} was superseded by another with its id`, { transient: true }),
    );
    const pending = new Promise<string | undefined>((resolve, reject) => {
      this.waiters.set(id, { room, resolve, reject, deadline: Date.now() + this.timeoutMs });
    });
    this.timer ??= setTimeout(() => this.expire(), this.timeoutMs);
    // Marked handled: when the send itself fails, `cancel` rejects a promise nobody awaits yet.
    pending.catch(() => {});
    return pending;
  }

  /** Stops waiting for `id` with `err` (the send itself failed). */
  cancel(id: string, err: Error): void {
    this.take(id)?.reject(err);
  }

  /**
   * Settles the waiter a received groupchat answers, if any: a reflection resolves it with the stanza-id, an error
   * bounce rejects it with a transient error (the caller should rejoin).
   */
  settle(msg: Groupchat): Settled {
    const key = msg.originId && this.waiters.has(msg.originId) ? msg.originId : msg.id;
    const w = key ? this.waiters.get(key) : undefined;
    if (!w || w.room !== msg.room) return "unknown";
    this.take(key!);
    if (msg.error) {
      w.reject(new BridgeError(`${msg.room} refused a message: ${msg.error.condition}`, { transient: true }));
      return "bounced";
    }
    w.resolve(msg.stanzaId);
    return "resolved";
  }

  /** Rejects every pending send with `err` (disconnect, shutdown). */
  rejectAll(err: Error): void {
    for (const [id] of this.waiters) this.cancel(id, err);
  }

  /** Removes the waiter of `id`, if any; the timer goes with the last one. */
  private take(id: string): Waiter | undefined {
    const w = this.waiters.get(id);
    if (!w) return undefined;
    this.waiters.delete(id);
    if (this.waiters.size === 0 && this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    return w;
  }

  /** Rejects the waiters whose time is up, oldest first, and sets the timer for the next. */
  private expire(): void {
    this.timer = undefined;
    const now = Date.now();
    for (const [id, w] of this.waiters) {
      if (w.deadline > now) {
        this.timer = setTimeout(() => this.expire(), w.deadline - now);
        return;
      }
      this.waiters.delete(id);
      w.reject(new BridgeError(`${w.room} did not reflect a sent message in time`, { transient: true }));
    }
  }
}
