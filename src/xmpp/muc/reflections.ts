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
  timer: ReturnType<typeof setTimeout>;
}

/** Outcome of {@link Reflections.settle}. */
export type Settled = "resolved" | "bounced" | "unknown";

/**
 * Pending sends keyed by origin-id.
 *
 * @example
 * ```ts
 * const pending = reflections.expect(room, id);
 * await client.send(buildGroupchat(room, body, id));
 * const stanzaId = await pending;
 * ```
 */
export class Reflections {
  private readonly waiters = new Map<string, Waiter>();

  constructor(private readonly timeoutMs = 15_000) {}

  /** Starts waiting for the reflection of `id` in `room`; rejects with a transient error on timeout. */
  expect(room: string, id: string): Promise<string | undefined> {
    const pending = new Promise<string | undefined>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(id);
        reject(new BridgeError(`${room} did not reflect a sent message in time`, { transient: true }));
      }, this.timeoutMs);
      this.waiters.set(id, { room, resolve, reject, timer });
    });
    // Marked handled: when the send itself fails, `cancel` rejects a promise nobody awaits yet.
    pending.catch(() => {});
    return pending;
  }

  /** Stops waiting for `id` with `err` (the send itself failed). */
  cancel(id: string, err: Error): void {
    const w = this.waiters.get(id);
    if (!w) return;
    this.waiters.delete(id);
    clearTimeout(w.timer);
    w.reject(err);
  }

  /**
   * Settles the waiter a received groupchat answers, if any: a reflection resolves it with the stanza-id, an error
   * bounce rejects it with a transient error (the caller should rejoin).
   */
  settle(msg: Groupchat): Settled {
    const key = msg.originId && this.waiters.has(msg.originId) ? msg.originId : msg.id;
    const w = key ? this.waiters.get(key) : undefined;
    if (!w || w.room !== msg.room) return "unknown";
    this.waiters.delete(key!);
    clearTimeout(w.timer);
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
}
