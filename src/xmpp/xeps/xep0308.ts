/**
 * XEP-0308 Last Message Correction: a new text for a message sent earlier, as `<replace id=…/>` naming the original
 * message's `id` (in a room, as the sender chose it; never a previous correction's), sent from the same full JID.
 *
 * Out, the connector builds the correction here and sends it through the voice that sent the original. In, the
 * reader turns a room's correction into a {@link BridgeEdit} of the sender's own message: the id it names is looked
 * up as `nick/id`, like every id an occupant chose, and the core checks that the corrector wrote the original.
 *
 * @module
 */
import { xml } from "@xmpp/client-core";
import type { BridgeEdit } from "../../core/events.ts";
import type { Element } from "../session/client.ts";
import type { IncomingBase, IncomingReader } from "../incoming.ts";
import { NS_CORRECT } from "../protocol/ns.ts";
import { buildGroupchat, type Groupchat, parseBody } from "../protocol/stanza.ts";

/** The id of the message a stanza corrects, if it is a correction. */
export function parseCorrection(stanza: Element): string | undefined {
  const id = stanza.getChild("replace", NS_CORRECT)?.attrs.id;
  return typeof id === "string" && id !== "" ? id : undefined;
}

/**
 * A groupchat correction of the message `originalId` to `room`: the whole new `body`, with `id` as its own id and
 * origin-id (so its reflection is recognised as ours).
 */
export function buildCorrection(room: string, body: string, id: string, originalId: string): Element {
  const stanza = buildGroupchat(room, body, id);
  stanza.append(xml("replace", { xmlns: NS_CORRECT, id: originalId }));
  return stanza;
}

/**
 * Reads a room's correction as an edit of the corrector's own message (`nick/id`, as its ids were recorded); a
 * correction without text is dropped (some clients "delete" that way, which is a retraction's job).
 */
export const readCorrection: IncomingReader = (
  msg: Groupchat,
  base: IncomingBase,
): BridgeEdit | null | undefined => {
  const originalId = parseCorrection(msg.stanza);
  if (originalId === undefined || msg.nick === "") return undefined;
  if (msg.body === undefined || msg.body.trim() === "") return null;
  const { ids: _, ...common } = base;
  return { kind: "edit", ...common, targetId: `${msg.nick}/${originalId}`, ...parseBody(msg.body) };
};
