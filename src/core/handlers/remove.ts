/**
 * The `remove` kind: the bridged message is removed where the target connector can; elsewhere nothing happens (a
 * notice that something was removed would only draw attention to it). Only its author, or a moderator the source
 * network vouches for, may remove a message (authorship.ts); a removal of something never bridged is ignored.
 *
 * @module
 */
import { isRemoveCapable } from "../bridge.ts";
import type { BridgeRemove } from "../events.ts";
import type { DirectionalEvent } from "../message.ts";
import { findOwnOriginal } from "./authorship.ts";
import { type HandlerContext, unsupported } from "./context.ts";

/** Delivers a removal to one target. True when it was done, skipped or given up on; false when the bus stopped. */
export async function handleRemove(d: DirectionalEvent<BridgeRemove>, ctx: HandlerContext): Promise<boolean> {
  const bridge = ctx.bridge(d.target);
  if (!isRemoveCapable(bridge) || !bridge.portalCapabilities(d.targetChannel).canRemove) {
    return unsupported(d, ctx);
  }
  const original = await findOwnOriginal(d, ctx);
  if (original.status !== "found") return true;
  const done = await ctx.attempt(d, () => bridge.sendRemove({ ...d, targetMessage: original.ref }));
  return done.ok || done.handled;
}
