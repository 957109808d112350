/**
 * 1:1 chat stanzas (`<message type="chat">`) between an XMPP user and a ghost or puppet: parsed at the edge into
 * plain data and read as the core's events, built from the stanzas the connector builds for rooms, and the error
 * replies that refuse one.
 *
 * The ids follow the XEPs' rules for 1:1 chat, where no room assigns a stanza-id: a message is known by its `id` and
 * its origin-id (not qualified by a nick: the conversation has one sender on each side); corrections (XEP-0308),
 * reactions (XEP-0444) and replies (XEP-0461) point at the `id`, retractions (XEP-0424) at the origin-id. A ghost's
 * own message carries the same value in both.
 *
 * @module
 */
import { xml } from "@xmpp/client-core";
import type { BridgeEvent } from "../core/events.ts";
import type { Element } from "./session/client.ts";
import type { IncomingBase } from "./incoming.ts";
import { NS_DELAY, NS_SID, NS_STANZAS } from "./protocol/ns.ts";
import { errorCondition, type Groupchat, parseBody } from "./protocol/stanza.ts";
import { parseCorrection } from "./xeps/xep0308.ts";
import { parseRetraction } from "./xeps/xep0424.ts";
import { readReactions } from "./xeps/xep0444.ts";
import { readReply } from "./xeps/xep0461.ts";
import { readOobMessage } from "./xeps/xep0066.ts";
import { typingOf } from "./xeps/xep0085.ts";
import { bareJid } from "./direct.ts";

/** A 1:1 message, parsed. */
export interface Chat {
  /** The sender's full JID, as the server stamped it. */
  from: string;
  /** The address it was sent to (full or bare). */
  to: string;
  /** The `id` attribute, chosen by the sender. */
  id?: string;
  originId?: string;
  body?: string;
  /** When a server held it (offline storage: a XEP-0203 delay), the original time. */
  stamp?: number;
  /** `type="error"`: a bounce of something sent to `from`. */
  error?: { condition: string; text?: string };
  stanza: Element;
}

/**
 * Parses a 1:1 `<message>` (type `chat`, `normal` or none, or `error`); null for groupchat and headline messages
 * and anything that is not a message.
 */
export function parseChat(stanza: Element): Chat | null {
  if (!stanza.is("message")) return null;
  const type = stanza.attrs.type ?? "normal";
  if (type !== "chat" && type !== "normal" && type !== "error") return null;
  const from = String(stanza.attrs.from ?? "");
  if (!from.includes("@")) return null;
  const delay = stanza.getChild("delay", NS_DELAY);
  const stamp = delay ? Date.parse(String(delay.attrs.stamp)) : undefined;
  return {
    from,
    to: String(stanza.attrs.to ?? ""),
    id: stanza.attrs.id ? String(stanza.attrs.id) : undefined,
    originId: stanza.getChild("origin-id", NS_SID)?.attrs.id,
    body: stanza.getChildText("body") ?? undefined,
    stamp: Number.isFinite(stamp) ? stamp : undefined,
    error: type === "error"
      ? {
        condition: errorCondition(stanza) ?? "undefined-condition",
        text: stanza.getChild("error")?.getChildText("text") ?? undefined,
      }
      : undefined,
    stanza,
  };
}

/**
 * Whether `chat` says something a person would miss if it were dropped: a body, a correction, a retraction or
 * reactions. Chat states, receipts and markers alone do not (they are never answered with an error).
 */
export function carriesContent(chat: Chat): boolean {
  if (chat.error) return false;
  if (chat.body !== undefined && chat.body.trim() !== "") return true;
  return parseCorrection(chat.stanza) !== undefined || parseRetraction(chat.stanza) !== undefined ||
    chat.stanza.getChild("reactions", "urn:xmpp:reactions:0") !== undefined;
}

/**
 * The ids of a 1:1 message: its `id` first (what 1:1 corrections, reactions and replies point at, and what an error
 * reply must carry), then its origin-id (what 1:1 retractions point at), each once.
 */
export function chatIds(chat: Chat): string[] {
  return [...new Set([chat.id, chat.originId].filter((x): x is string => !!x))];
}

/**
 * The event a 1:1 message stands for: a correction of the sender's own message, a retraction, reactions, a message
 * (with the files it shares, and what it replies to), a body-less chat state (typing); undefined when it carries none
 * of these. `base` carries the portal and sender; `markdown` turns the body's styling into the other network's
 * Markdown.
 */
export function readChat(
  chat: Chat,
  base: IncomingBase,
  markdown: (body: string) => string,
): BridgeEvent | undefined {
  const { ids: _, ...common } = base;
  const corrected = parseCorrection(chat.stanza);
  if (corrected !== undefined) {
    const body = chat.body ?? "";
    if (body.trim() === "") return undefined;
    const { text, action } = parseBody(body);
    return {
      kind: "edit",
      ...common,
      targetId: corrected,
      text: markdown(text),
      ...(action ? { action } : {}),
    };
  }
  const retracted = parseRetraction(chat.stanza);
  if (retracted !== undefined) return { kind: "remove", ...common, targetId: retracted };
  // The readers of room messages that need nothing of the room read a 1:1 message the same way.
  const asRoomMessage = { ...chat, room: "", nick: "", delayed: false } as Groupchat;
  const reactions = readReactions(asRoomMessage, base);
  if (reactions !== undefined) return reactions ?? undefined;
  const { replyTo, body } = readReply(chat.stanza, chat.body ?? "");
  const text = body.trim() === "" ? chat.body ?? "" : body;
  const reply = replyTo ? { replyTo } : {};
  const shared = readOobMessage({ ...asRoomMessage, body: text }, base);
  if (shared) return { ...shared, text: markdown(shared.text), ...reply };
  // A body-less chat state: the peer's typing, shown by their puppet in the conversation.
  if (chat.body === undefined) return typingOf(chat.stanza, base) ?? undefined;
  if (text.trim() === "") return undefined;
  const { text: said, action } = parseBody(text);
  return { kind: "message", ...base, text: markdown(said), ...(action ? { action } : {}), ...reply };
}

/**
 * Makes `stanza`, built for a room (type `groupchat`, addressed to the room), a 1:1 message to `peer`: the same
 * children (body, origin-id, correction, retraction, reactions, reply …), type `chat`.
 */
export function asChat(stanza: Element, peer: string): Element {
  stanza.attrs.type = "chat";
  stanza.attrs.to = peer;
  return stanza;
}

/** Stanza error conditions a refusal uses (RFC 6120 §8.3.3). */
export type RefusalCondition = "item-not-found" | "not-allowed" | "service-unavailable" | "not-acceptable";

/**
 * The error reply that refuses `chat`: to its sender's full JID (an error to a bare JID is dropped by servers,
 * RFC 6121 §8.5.2.1.1), from the address it was sent to, with its `id` so that the client marks that message as
 * failed, a `cancel` error of `condition` and `text` saying why.
 *
 * @example
 * ```ts
 * refusal(chat, "not-allowed", "direct messages from evil.example are not accepted by this bridge");
 * ```
 */
export function refusal(chat: Chat, condition: RefusalCondition, text: string): Element {
  return errorReply({ to: chat.from, from: chat.to, id: chat.id }, condition, text);
}

/** A `cancel` error message to `to` from `from` about the message `id`. */
export function errorReply(
  addr: { to: string; from: string; id?: string },
  condition: RefusalCondition,
  text: string,
): Element {
  return xml(
    "message",
    { type: "error", to: addr.to, from: addr.from, ...(addr.id ? { id: addr.id } : {}) },
    xml(
      "error",
      { type: "cancel" },
      xml(condition, { xmlns: NS_STANZAS }),
      xml("text", { xmlns: NS_STANZAS, "xml:lang": "en" }, text),
    ),
  );
}

/** The bare JID of the sender of `chat`. */
export function senderOf(chat: Chat): string {
  return bareJid(chat.from);
}
