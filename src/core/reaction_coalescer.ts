/**
 * Coalescing of reaction storms: a reaction set is its sender's complete current set, so of several sets of the
 * same sender on the same message queued for the same channel, only the newest needs delivering. One that a newer
 * one was queued behind, and that has not started, is skipped: the final set wins, and a burst of clicks costs one
 * delivery instead of one per click.
 *
 * @module
 */
import type { BridgeReactions } from "./events.ts";
import type { DirectionalEvent } from "./message.ts";

/**
 * Remembers the newest reaction set queued per (target channel, message, sender).
 *
 * @example
 * ```ts
 * const latest = new ReactionCoalescer();
 * latest.queued(first);
 * latest.queued(second); // same sender, same message, same target
 * latest.superseded(first); // true: skip it
 * latest.superseded(second); // false: deliver it
 * ```
 */
export class ReactionCoalescer {
  /** Slot → the newest event queued for it, until that one is handled. */
  private readonly newest = new Map<string, BridgeReactions>();

  /** Notes `d` as the newest set of its slot; call when it is queued for delivery. */
  queued(d: DirectionalEvent<BridgeReactions>): void {
    this.newest.set(slotOf(d), d.event);
  }

  /**
   * True when a newer set of the same slot was queued after `d`, which then needs no delivery; false when `d` is
   * the newest (its slot is then forgotten, so a set queued from now on is delivered after it).
   */
  superseded(d: DirectionalEvent<BridgeReactions>): boolean {
    const slot = slotOf(d);
    const newest = this.newest.get(slot);
    if (newest !== undefined && newest !== d.event) return true;
    this.newest.delete(slot);
    return false;
  }

  /** Slots with a set waiting. */
  get size(): number {
    return this.newest.size;
  }
}

function slotOf(d: DirectionalEvent<BridgeReactions>): string {
  const { portal, sender, targetId } = d.event;
  return [d.target, d.targetChannel, portal.network, portal.channel, targetId, sender.network, sender.id]
    .join("\u0000");
}
