/**
 * XEP-0444 message reactions in a room: reading an occupant's `<reactions id=…>` as their complete current set, and
 * building the one the bridge's voice (the relay, a ghost, a puppet) sends.
 *
 * In a groupchat a reaction points at the room's stanza-id of the message (XEP-0444 §4.1), and each reactions
 * element replaces the sender's earlier set; an empty one withdraws them all.
 *
 * @module
 */
import { xml } from "@xmpp/client-core";
import type { BridgeReactions } from "../../core/events.ts";
import type { MessageRef } from "../../core/message.ts";
import type { IncomingReader } from "../incoming.ts";
import { NS_HINTS, NS_REACTIONS, NS_SID } from "../protocol/ns.ts";
import type { Element } from "../session/client.ts";

/** Most reactions read from one stanza, and the longest one: a hostile occupant must not make them unbounded. */
const MAX_REACTIONS = 64;
const MAX_REACTION_LENGTH = 80;

/**
 * Reads a room message carrying `<reactions xmlns='urn:xmpp:reactions:0' id=…>` as the sender's complete set on the
 * message that id names. Not mine (undefined) without one; dropped (null) when it names no message.
 */
export const readReactions: IncomingReader = (msg, base): BridgeReactions | null | undefined => {
  const el = msg.stanza.getChild("reactions", NS_REACTIONS);
  if (!el) return undefined;
  const targetId = String(el.attrs.id ?? "");
  if (targetId === "") return null;
  const emojis: string[] = [];
  for (const r of el.getChildren("reaction")) {
    const text = r.getText().trim();
    if (text === "" || text.length > MAX_REACTION_LENGTH || emojis.includes(text)) continue;
    emojis.push(text);
    if (emojis.length >= MAX_REACTIONS) break;
  }
  const { ids: _, ...common } = base;
  return { ...common, kind: "reactions", targetId, emojis };
};

/**
 * The id a reaction to `ref` (a message in a room, as the id map knows it) points at: the room's stanza-id. A message
 * the room gave none (a room without XEP-0359) is named by its sender's id, the fallback XEP-0444 allows.
 */
export function reactionTargetId(ref: MessageRef): string {
  const named = ref.parts.find((p) => p.stanzaId) ?? ref.parts[0];
  if (named?.stanzaId) return named.stanzaId;
  // A message received from the room: its first id is the room's stanza-id, else `nick/id` (the sender's id).
  const first = ref.ids[0];
  if (named?.sender.kind === "author" && first.includes("/")) return first.slice(first.lastIndexOf("/") + 1);
  return named?.messageId ?? first;
}

/**
 * `<message type='groupchat'>` with the `<reactions>` of one voice on message `targetId`, its origin-id `id` (its
 * reflection is then recognised as ours), and a store hint so that archives keep it.
 *
 * @example
 * ```ts
 * buildReactions("room@muc.example.org", "stanza-1", ["👍"], "delivery-1");
 * ```
 */
export function buildReactions(
  room: string,
  targetId: string,
  emojis: readonly string[],
  id: string,
): Element {
  return xml(
    "message",
    { type: "groupchat", to: room, id },
    xml("reactions", { xmlns: NS_REACTIONS, id: targetId }, ...emojis.map((e) => xml("reaction", {}, e))),
    xml("origin-id", { xmlns: NS_SID, id }),
    xml("store", { xmlns: NS_HINTS }),
  );
}
