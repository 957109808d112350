/**
 * The `edit` kind: applied to the bridged message where the target connector can edit it there; elsewhere posted as
 * a new message marked as an edit, as matterbridge does, so that the correction is not lost. Only the author of a
 * message may edit it (authorship.ts); an edit of a message the id map does not know (said before the bridge was
 * there) is posted as a marked message too.
 *
 * @module
 */
import { isEditCapable } from "../bridge.ts";
import type { BridgeEdit } from "../events.ts";
import type { DirectionalEvent, DirectionalMessage } from "../message.ts";
import { findOwnOriginal } from "./authorship.ts";
import type { HandlerContext } from "./context.ts";

/** What starts the text of an edit posted as a new message. */
export const EDIT_MARK = "✏️ ";

/** Delivers an edit to one target. True when it was applied, posted or given up on; false when the bus stopped. */
export async function handleEdit(d: DirectionalEvent<BridgeEdit>, ctx: HandlerContext): Promise<boolean> {
  const original = await findOwnOriginal(d, ctx);
  // Nothing to correct there: the new text is still news, and it is shown as the sender's own.
  if (original.status === "unknown") return ctx.deliverMessage(editAsMessage(d)).done;
  if (original.status !== "found") return true;
  const bridge = ctx.bridge(d.target);
  if (isEditCapable(bridge) && bridge.portalCapabilities(d.targetChannel).canEdit) {
    const done = await ctx.attempt(d, () => bridge.sendEdit({ ...d, targetMessage: original.ref }));
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
