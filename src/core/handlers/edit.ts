/**
 * The `edit` kind: applied to the bridged message where the target connector can edit it there; elsewhere posted as
 * a new message marked as an edit, as matterbridge does, so that the correction is not lost.
 *
 * @module
 */
import { isEditCapable } from "../bridge.ts";
import type { BridgeEdit } from "../events.ts";
import type { DirectionalEvent, DirectionalMessage } from "../message.ts";
import { type HandlerContext, resolveTarget } from "./context.ts";

/** What starts the text of an edit posted as a new message. */
export const EDIT_MARK = "✏️ ";

/** Delivers an edit to one target. True when it was applied, posted or given up on; false when the bus stopped. */
export async function handleEdit(d: DirectionalEvent<BridgeEdit>, ctx: HandlerContext): Promise<boolean> {
  const targetMessage = await resolveTarget(d, ctx);
  if (!targetMessage) return true;
  const bridge = ctx.bridge(d.target);
  if (isEditCapable(bridge) && bridge.portalCapabilities(d.targetChannel).canEdit) {
    const done = await ctx.attempt(d, () => bridge.sendEdit({ ...d, targetMessage }));
    return done.ok || done.handled;
  }
  return ctx.deliverMessage(editAsMessage(d)).done;
}

/**
 * The new message that stands for edit `d` where the target cannot edit. Its only id is the edit's own, so that a
 * replay of the edit is recognised in the id map like a replayed message.
 */
export function editAsMessage(d: DirectionalEvent<BridgeEdit>): DirectionalMessage {
  const { event, ...route } = d;
  const { targetId: _, text, ...common } = event;
  return { ...route, message: { ...common, kind: "message", ids: [event.eventId], text: EDIT_MARK + text } };
}
