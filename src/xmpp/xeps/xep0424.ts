/**
 * XEP-0424 Message Retraction: the sender takes a message back. In a room the `<retract id=…/>` names the room's
 * stanza-id of the message; it carries a XEP-0428 fallback body for clients that do not know retractions, and a
 * store hint so that archives keep it.
 *
 * In, both the current form (`urn:xmpp:message-retract:1`) and the one before 0.4 (`<apply-to>` of XEP-0422 around
 * an empty `urn:xmpp:message-retract:0` element) are read; the core checks that the retractor wrote the message.
 *
 * @module
 */
import { xml } from "@xmpp/client-core";
import type { BridgeRemove } from "../../core/events.ts";
import type { Element } from "../session/client.ts";
import type { IncomingBase, IncomingReader } from "../incoming.ts";
import { NS_FALLBACK, NS_FASTEN, NS_HINTS, NS_RETRACT, NS_RETRACT_0 } from "../protocol/ns.ts";
import { buildGroupchat, type Groupchat } from "../protocol/stanza.ts";

/** The body clients without XEP-0424 show instead of acting on the retraction (XEP-0428). */
export const RETRACTION_FALLBACK =
  "This person attempted to retract a previous message, but it's unsupported by your client.";

/** The id a retraction names, if the stanza is one (and not a moderator's: see xep0425.ts). */
export function parseRetraction(stanza: Element): string | undefined {
  const retract = stanza.getChild("retract", NS_RETRACT);
  if (retract) {
    if (retract.getChild("moderated")) return undefined;
    const id = retract.attrs.id;
    return typeof id === "string" && id !== "" ? id : undefined;
  }
  const applyTo = stanza.getChild("apply-to", NS_FASTEN);
  if (applyTo?.getChild("retract", NS_RETRACT_0)) {
    const id = applyTo.attrs.id;
    return typeof id === "string" && id !== "" ? id : undefined;
  }
  return undefined;
}

/**
 * A groupchat retraction of the message whose room stanza-id is `targetId`, with `id` as its own id and origin-id,
 * the XEP-0428 fallback body and a store hint.
 */
export function buildRetraction(room: string, id: string, targetId: string): Element {
  const stanza = buildGroupchat(room, RETRACTION_FALLBACK, id);
  stanza.append(xml("retract", { xmlns: NS_RETRACT, id: targetId }));
  stanza.append(xml("fallback", { xmlns: NS_FALLBACK, for: NS_RETRACT }));
  stanza.append(xml("store", { xmlns: NS_HINTS }));
  return stanza;
}

/** Reads an occupant's retraction as a removal of the message with that stanza-id. */
export const readRetraction: IncomingReader = (
  msg: Groupchat,
  base: IncomingBase,
): BridgeRemove | undefined => {
  if (msg.nick === "") return undefined;
  const targetId = parseRetraction(msg.stanza);
  if (targetId === undefined) return undefined;
  const { ids: _, ...common } = base;
  return { kind: "remove", ...common, targetId };
};
