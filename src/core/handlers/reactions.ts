/**
 * The `reactions` kind: the sender's current reaction set is shown on the bridged message where the target connector
 * can; elsewhere it is left out (posting each reaction as a message would flood the channel).
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
  const bridge = ctx.bridge(d.target);
  if (!isReactionCapable(bridge) || !bridge.portalCapabilities(d.targetChannel).reactions) {
    return unsupported(d, ctx);
  }
  const targetMessage = await resolveTarget(d, ctx);
  if (!targetMessage) return true;
  const done = await ctx.attempt(d, () => bridge.sendReactions({ ...d, targetMessage }));
  return done.ok || done.handled;
}
