/**
 * Groupchat stanzas in and out: parsing at the edge into plain data, and building what the bridge sends.
 *
 * Identifiers follow XEP-0359: `origin-id` is ours to choose and recognises our echoes; `stanza-id` is trusted only
 * when the room itself (`by` = room JID) assigned it.
 *
 * @module
 */
import { xml } from "@xmpp/client-core";
import type { Element } from "../session/client.ts";
import { NS_DELAY, NS_OCCUPANT_ID, NS_SID, NS_STANZAS } from "./ns.ts";

/** XEP-0359 namespace. */

/** A groupchat message, parsed. */
export interface Groupchat {
  /** Room bare JID, lowercased. */
  room: string;
  /** Sender's nick (resource of `from`); empty for messages from the room itself. */
  nick: string;
  /** The `id` attribute; chosen by the sender, not unique. */
  id?: string;
  originId?: string;
  /** Only set when assigned by the room. */
  stanzaId?: string;
  /** XEP-0421 occupant id, when the room offers it. */
  occupantId?: string;
  body?: string;
  subject?: string;
  /** Replayed from the room's history (a XEP-0203 delay from the room itself), not live. */
  delayed: boolean;
  /** When `delayed`, the original time; else undefined. */
  stamp?: number;
  /** `type="error"`: the room bounced one of our messages. */
  error?: { condition: string; text?: string };
  /** The stanza itself, for the XEP modules that read more of it (corrections, retractions, reactions …). */
  stanza: Element;
}

/** Parses a `<message type="groupchat|error">` from a room; returns null for anything else. */
export function parseGroupchat(stanza: Element): Groupchat | null {
  if (!stanza.is("message")) return null;
  const type = stanza.attrs.type;
  if (type !== "groupchat" && type !== "error") return null;
  const from = String(stanza.attrs.from ?? "");
  const slash = from.indexOf("/");
  const room = (slash < 0 ? from : from.slice(0, slash)).toLowerCase();
  if (!room.includes("@")) return null;
  const nick = slash < 0 ? "" : from.slice(slash + 1);
  const stanzaIdEl = stanza.getChildren("stanza-id", NS_SID).find((el: Element) =>
    String(el.attrs.by ?? "").toLowerCase() === room
  );
  // Only the room's own delay marks history it replays (XEP-0045 §7.2.15: `from` is the room); a sender may stamp a
  // live message with a delay of its own, e.g. another bridge's catch-up.
  const delay = stanza.getChildren("delay", NS_DELAY).find((el: Element) => {
    const by = String(el.attrs.from ?? "").toLowerCase();
    return by === "" || by === room;
  });
  const stamp = delay ? Date.parse(String(delay.attrs.stamp)) : undefined;
  const error: Groupchat["error"] = type === "error"
    ? {
      condition: errorCondition(stanza) ?? "undefined-condition",
      text: stanza.getChild("error")?.getChildText("text") ?? undefined,
    }
    : undefined;
  return {
    room,
    nick,
    id: stanza.attrs.id ? String(stanza.attrs.id) : undefined,
    originId: stanza.getChild("origin-id", NS_SID)?.attrs.id,
    stanzaId: stanzaIdEl?.attrs.id,
    occupantId: stanza.getChild("occupant-id", NS_OCCUPANT_ID)?.attrs.id,
    body: stanza.getChildText("body") ?? undefined,
    subject: stanza.getChildText("subject") ?? undefined,
    delayed: !!delay,
    stamp: Number.isFinite(stamp) ? stamp : undefined,
    error,
    stanza,
  };
}

/** The defined condition of an error stanza (`conflict`, `forbidden` …), if it names one. */
export function errorCondition(stanza: Element): string | undefined {
  const cond = stanza.getChild("error")?.children.find((c: unknown) =>
    typeof c === "object" && (c as Element).attrs?.xmlns === NS_STANZAS && (c as Element).name !== "text"
  ) as Element | undefined;
  return cond?.name;
}

/** A XEP-0203 delay: the message was said at `stamp` (ms since the epoch) and held up by `from`. */
export interface Delay {
  stamp: number;
  /** The JID of the entity that delayed it: the bridge. */
  from: string;
}

/**
 * Builds a groupchat message whose `id` and XEP-0359 `origin-id` are both `id`; with `delay`, a XEP-0203 `<delay/>`
 * that tells clients when it was originally said.
 */
export function buildGroupchat(room: string, body: string, id: string, delay?: Delay): Element {
  return xml(
    "message",
    { type: "groupchat", to: room, id },
    xml("body", {}, body),
    xml("origin-id", { xmlns: NS_SID, id }),
    ...(delay ? [delayElement(delay)] : []),
  );
}

/** `<delay xmlns='urn:xmpp:delay' stamp='…' from='…'/>`, the stamp in XEP-0082 form with milliseconds (UTC). */
export function delayElement(delay: Delay): Element {
  return xml("delay", { xmlns: NS_DELAY, stamp: new Date(delay.stamp).toISOString(), from: delay.from });
}

/** XEP-0245: a body that starts with this is an action by its sender ("/me waves" shows as "* alice waves"). */
const ME = "/me ";

/**
 * Reads a groupchat body for the message model: `/me waves` is the action "waves"; `/me` with nothing after it
 * is no action, just text.
 *
 * @example
 * ```ts
 * parseBody("/me waves"); // { text: "waves", action: true }
 * parseBody("/meow");     // { text: "/meow" }
 * ```
 */
export function parseBody(body: string): { text: string; action?: true } {
  const text = body.slice(ME.length);
  return body.startsWith(ME) && text.trim() !== "" ? { text, action: true } : { text: body };
}

/**
 * The body that carries `text` in a room. Sent by the author's own occupant (a ghost), an action is `/me text`
 * and clients show it with the sender's nick. Relayed by the bridge's occupant, whose nick is not the author's,
 * it is the conventional `* name text`; a message gets `prefix`.
 */
export function renderBody(
  text: string,
  opts: { action?: boolean; relayedAs?: { prefix: string; name: string } },
): string {
  if (!opts.relayedAs) return opts.action ? ME + text : text;
  return opts.action ? `* ${opts.relayedAs.name} ${text}` : opts.relayedAs.prefix + text;
}
