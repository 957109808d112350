/**
 * The `reactions` kind: the sender's current reaction set is shown on the bridged message where the target connector
 * can; elsewhere it is left out (posting each reaction as a message would flood the channel).
 *
 * Each sender's set is kept in the store per message on the target, so that a voice reacting for every sender of
 * the other network (a relay occupant, a bot) can show their union, across restarts: one sender withdrawing an emoji
 * another sender still has does not take it away. Of several sets of one sender queued behind each other, only the
 * newest is delivered (reaction_coalescer.ts).
 *
 * @module
 */
import { isReactionCapable } from "../bridge.ts";
import type { BridgeReactions } from "../events.ts";
import type { DirectionalEvent } from "../message.ts";
import { type HandlerContext, resolveTarget, unsupported } from "./context.ts";

/** Delivers a reaction set to one target. True when it was shown, skipped or given up on; false when the bus stopped. */
export async function handleReactions(
  d: DirectionalEvent<BridgeReactions>,
  ctx: HandlerContext,
): Promise<boolean> {
  // A newer set of the same sender waits behind this one: it alone is delivered.
  if (ctx.reactions.superseded(d)) return true;
  const bridge = ctx.bridge(d.target);
  if (!isReactionCapable(bridge) || !bridge.portalCapabilities(d.targetChannel).reactions) {
    return unsupported(d, ctx);
  }
  const targetMessage = await resolveTarget(d, ctx);
  if (!targetMessage) return true;
  const emojis = distinct(d.event.emojis);
  const messageId = targetMessage.ids[0];
  await ctx.store.setReactions(d.target, d.targetChannel, messageId, d.event.sender, emojis);
  const shared = distinct((await ctx.store.listReactions(d.target, d.targetChannel, messageId)).flat());
  const event = { ...d.event, emojis };
  const done = await ctx.attempt(d, () =>
    // A set that waits for a retry (the target unreachable) is moot once a newer one of the sender queued behind it.
    ctx.reactions.superseded(d)
      ? Promise.resolve()
      : bridge.sendReactions({ ...d, event, targetMessage, shared }));
  return done.ok || done.handled;
}

/**
 * `emojis` with each once, in first-seen order.
 *
 * @example
 * ```ts
 * distinct(["👍", "🎉", "👍"]); // ["👍", "🎉"]
 * ```
 */
export function distinct(emojis: readonly string[]): string[] {
  return [...new Set(emojis)];
}
