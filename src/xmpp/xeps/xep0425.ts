/**
 * XEP-0425 Moderated Message Retraction: a room moderator has a message removed. The moderator asks the room (an
 * IQ); the room itself then announces the retraction to every occupant, from its own bare JID, naming the
 * moderator. Only that announcement is read here: coming from the room, it is the room's word that a moderator did
 * it, so the core removes the message without requiring the moderator to be its author. The same payload from an
 * occupant is not trusted.
 *
 * Read in its current form (0.3: `<retract id=…><moderated by=…/></retract>`, `urn:xmpp:message-moderate:1`) and
 * as 0.2 wrote it (`<apply-to id=…><moderated by=…><retract/></moderated></apply-to>`, `…:moderate:0`).
 *
 * Prosody 0.12 implements neither (mod_muc_moderation is a community module), so this is tested on stanzas.
 *
 * @module
 */
import type { BridgeRemove } from "../../core/events.ts";
import type { Element } from "../session/client.ts";
import type { IncomingBase, IncomingReader } from "../incoming.ts";
import {
  NS_FASTEN,
  NS_MODERATE,
  NS_MODERATE_0,
  NS_OCCUPANT_ID,
  NS_RETRACT,
  NS_RETRACT_0,
} from "../protocol/ns.ts";
import type { Groupchat } from "../protocol/stanza.ts";

/** A moderation announcement, parsed. */
export interface Moderation {
  /** The room's stanza-id of the removed message. */
  targetId: string;
  /** The moderator's occupant JID (`room/nick`), when given. */
  by?: string;
  /** The moderator's XEP-0421 occupant-id, when given. */
  occupantId?: string;
  reason?: string;
}

/** The moderation a stanza announces, if it is one (whoever sent it: the caller checks that it is the room). */
export function parseModeration(stanza: Element): Moderation | undefined {
  const retract = stanza.getChild("retract", NS_RETRACT);
  const moderated = retract?.getChild("moderated", NS_MODERATE);
  if (retract && moderated) {
    return moderation(retract.attrs.id, moderated, retract.getChildText("reason"));
  }
  const applyTo = stanza.getChild("apply-to", NS_FASTEN);
  const old = applyTo?.getChild("moderated", NS_MODERATE_0);
  if (applyTo && old?.getChild("retract", NS_RETRACT_0)) {
    return moderation(applyTo.attrs.id, old, old.getChildText("reason"));
  }
  return undefined;
}

function moderation(id: unknown, moderated: Element, reason: string | null): Moderation | undefined {
  if (typeof id !== "string" || id === "") return undefined;
  const by = moderated.attrs.by;
  const occupantId = moderated.getChild("occupant-id", NS_OCCUPANT_ID)?.attrs.id;
  return {
    targetId: id,
    ...(typeof by === "string" && by !== "" ? { by } : {}),
    ...(typeof occupantId === "string" && occupantId !== "" ? { occupantId } : {}),
    ...(reason ? { reason } : {}),
  };
}

/**
 * Reads the room's announcement of a moderated retraction as a moderated removal by the moderator; drops (null)
 * the same payload sent by an occupant, who could otherwise remove anyone's message.
 */
export const readModeration: IncomingReader = (
  msg: Groupchat,
  base: IncomingBase,
): BridgeRemove | null | undefined => {
  const found = parseModeration(msg.stanza);
  if (!found) return undefined;
  if (msg.nick !== "") return null;
  const nick = found.by?.startsWith(`${msg.room}/`) ? found.by.slice(msg.room.length + 1) : "a moderator";
  const { ids: _, ...common } = base;
  return {
    kind: "remove",
    ...common,
    sender: { network: base.sender.network, id: found.occupantId ?? found.by ?? msg.room, name: nick },
    targetId: found.targetId,
    moderated: true,
  };
};
