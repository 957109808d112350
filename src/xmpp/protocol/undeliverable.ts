/**
 * Telling an occupant that their message will never reach the other network.
 *
 * The notice is a `<message type="error">` carrying the id of the occupant's message, sent to their occupant JID
 * through the room. It arrives from `room/bridge-nick`, so a client files it under the room's conversation and, by
 * the id, marks that very message as failed with the error's text (Conversations: `MessageParser.handleErrorMessage`
 * → `markMessage(from.asBareJid(), id, STATUS_SEND_FAILED, text)`). An error from the bridge's own JID would be
 * looked up in a conversation with the bridge and shown nowhere.
 *
 * The condition must be one that rooms route like a private message: Prosody and ejabberd kick an occupant who
 * sends a "kickable" error (`service-unavailable`, `item-not-found`, `recipient-unavailable` … — Prosody's
 * `muc/util.lib.lua` `is_kickable_error`), taking it for a bounce. `not-acceptable` is routed.
 *
 * A message without an id cannot be marked: the author then gets a private message (XEP-0045 §7.5) instead.
 *
 * @module
 */
import { xml } from "@xmpp/client-core";
import type { Element } from "../session/client.ts";
import { NS_STANZAS } from "./ns.ts";

/**
 * The `id` attribute of an occupant's message, from the ids the connector gave it: `nick/id` qualified by the
 * sender's nick, in the order stanza-id, origin-id, id (see the connector's `onGroupchat`), so the last one.
 *
 * @example
 * ```ts
 * senderMessageId({ ids: ["sid-1", "alice/abc"], sender: { name: "alice" } }); // "abc"
 * ```
 */
export function senderMessageId(message: { ids: string[]; sender: { name: string } }): string | undefined {
  const prefix = `${message.sender.name}/`;
  const own = message.ids.filter((id) => id.startsWith(prefix));
  return own.length > 0 ? own[own.length - 1].slice(prefix.length) : undefined;
}

/**
 * The stanza that tells `occupant` (`room/nick`) that their message `id` was not delivered: an error reply with
 * `text`, or, without an id to refer to, a private message saying it.
 */
export function undeliverableNotice(occupant: string, id: string | undefined, text: string): Element {
  if (id === undefined) return xml("message", { type: "chat", to: occupant }, xml("body", {}, text));
  return xml(
    "message",
    { type: "error", to: occupant, id },
    xml(
      "error",
      { type: "cancel" },
      xml("not-acceptable", { xmlns: NS_STANZAS }),
      xml("text", { xmlns: NS_STANZAS, "xml:lang": "en" }, text),
    ),
  );
}
