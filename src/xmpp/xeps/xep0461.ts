/**
 * XEP-0461 message replies, with `<thread>` (RFC 6121 §5.2.5) and the XEP-0428 fallback quote, in and out.
 *
 * Out: a reply carries `<reply to=… id=…/>` pointing at the parent's stanza-id in the room (XEP-0461 §3 for group
 * chat), the `<thread>` the parent is in (a thread started by a reply is named after its root's message id, so
 * every reply reuses it), and, when the parent's text is known, a quote of it in front of the body with a
 * `<fallback for='urn:xmpp:reply:0'><body start end/></fallback>` that marks it: clients that show replies hide
 * the quote, the others show it. In: the reply and thread ids, and the quote cut out of the body (XEP-0426 counts
 * its offsets in code points).
 *
 * @module
 */
import { xml } from "@xmpp/client-core";
import type { ReplyTo } from "../../core/events.ts";
import type { MessagePart, MessageRef } from "../../core/message.ts";
import { unquote } from "../../core/reply.ts";
import type { Element } from "../session/client.ts";
import { NS_FALLBACK, NS_REPLY } from "../protocol/ns.ts";

/** Where a reply points in a room, worked out from its parent's ref there. */
export interface ReplyPointer {
  /** The parent's id a reply points at: its stanza-id (the message id when the room gave none). */
  id: string;
  /** The parent author's occupant JID, when known. */
  to?: string;
  /** The thread the reply goes in. */
  thread: string;
}

/**
 * Where a reply to `parent` (as the id map knows it in the room) points, or undefined when the ref names no id a
 * reply could point at. `occupantOf` gives the occupant JID of the part's sender when the connector knows it.
 */
export function replyPointer(
  parent: MessageRef,
  occupantOf: (part: MessagePart) => string | undefined,
): ReplyPointer | undefined {
  const part = parent.parts[0];
  if (!part) return undefined;
  // A message written in the room is recorded with its ids as received: the room's stanza-id first, when it gave
  // one (the sender-chosen ones are qualified `nick/id`, and no reply points at those).
  const received = part.sender.kind === "author" ? parent.ids.find((id) => !id.includes("/")) : undefined;
  const id = part.stanzaId ?? received ?? part.messageId;
  if (!id) return undefined;
  const to = occupantOf(part);
  return { id, ...(to ? { to } : {}), thread: part.threadRoot ?? part.messageId ?? id };
}

/**
 * Makes `stanza` (a groupchat message with a body) a reply per `pointer`; with `quote` (quote lines, see
 * `quoteLines`), puts it in front of the body and marks it as the reply's fallback.
 */
export function addReply(stanza: Element, pointer: ReplyPointer, quote?: string): void {
  if (prependQuote(stanza, quote)) {
    stanza.append(
      xml(
        "fallback",
        { xmlns: NS_FALLBACK, for: NS_REPLY },
        xml("body", { start: "0", end: String([...quote!].length) }),
      ),
    );
  }
  stanza.append(xml("reply", { xmlns: NS_REPLY, id: pointer.id, ...(pointer.to ? { to: pointer.to } : {}) }));
  stanza.append(xml("thread", {}, pointer.thread));
}

/** Puts `quote` in front of the body of `stanza`; true when it did (there is a quote and a body). */
export function prependQuote(stanza: Element, quote: string | undefined): boolean {
  const body = stanza.getChild("body");
  if (!quote || !body) return false;
  body.children = [quote + body.getText()];
  return true;
}

/** A received message's reply, and its body without the reply's fallback quote. */
export interface ReadReply {
  replyTo?: ReplyTo;
  body: string;
}

/**
 * Reads what a received groupchat message answers: its XEP-0461 reply (else its `<thread>` alone, which stands for
 * the thread's root), and the fallback quote cut out of `body`. A reply whose fallback range does not fit the body
 * keeps the body whole.
 */
export function readReply(stanza: Element, body: string): ReadReply {
  const reply = stanza.getChild("reply", NS_REPLY);
  const thread = stanza.getChildText("thread")?.trim() || undefined;
  const id = reply?.attrs.id ? String(reply.attrs.id) : undefined;
  if (!id && !thread) return { body };
  const replyTo: ReplyTo = { targetId: id ?? thread!, ...(thread ? { thread } : {}) };
  if (!id) return { replyTo, body };
  const cut = fallbackRange(stanza, [...body].length);
  const runes = [...body];
  if (cut) {
    const quoted = runes.slice(cut.start, cut.end).join("");
    const quote = unquote(quoted);
    if (quote.trim() !== "") replyTo.quote = quote;
    body = [...runes.slice(0, cut.start), ...runes.slice(cut.end)].join("");
  }
  const nick = nickOf(reply?.attrs.to);
  // The room's stanza-id is what a reply should point at; some clients give the sender's own id, which the id map
  // knows qualified by the sender's nick, as it keeps every sender-chosen id.
  if (nick) replyTo.otherIds = [`${nick}/${id}`];
  // The author, when the quote does not already name someone ("> alice: …", "> alice wrote:").
  if (nick && replyTo.quote && !namesAuthor(replyTo.quote)) replyTo.author = nick;
  return { replyTo, body };
}

/** The code-point range of the reply's fallback in the body, when it is marked and fits a body of `length`. */
function fallbackRange(stanza: Element, length: number): { start: number; end: number } | undefined {
  const fallback = stanza.getChildren("fallback", NS_FALLBACK).find((el: Element) =>
    el.attrs.for === NS_REPLY
  );
  const range = fallback?.getChild("body");
  if (!range) return undefined;
  const start = Number(range.attrs.start ?? 0);
  const end = Number(range.attrs.end ?? length);
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end <= start || end > length) {
    return undefined;
  }
  return { start, end };
}

/** True when the first line of a quote names its author, as clients write it: `alice: …` or `alice wrote:`. */
function namesAuthor(quote: string): boolean {
  const first = quote.split("\n", 1)[0];
  return /^[^\s:][^:]{0,63}: /.test(first) || /\bwrote:?\s*$/.test(first);
}

/** The resource of an occupant JID (`room@service/nick`), if any. */
function nickOf(jid: unknown): string | undefined {
  if (typeof jid !== "string") return undefined;
  const slash = jid.indexOf("/");
  return slash < 0 ? undefined : jid.slice(slash + 1) || undefined;
}
