/**
 * XEP-0066 Out of Band Data in messages: the `<x xmlns="jabber:x:oob"><url>…</url></x>` that, with a body that is
 * exactly the same URL, makes Conversations, Gajim and Dino show a shared file inline (the XEP-0363 convention).
 *
 * Reading: a room message carrying OOB URLs becomes a message with those files as attachments; its body is kept as
 * text unless it is only the URL. Writing: {@link oobMessageBody} and {@link oobElement}.
 *
 * @module
 */
import { xml } from "@xmpp/client-core";
import type { Attachment, BridgeMessage } from "../../core/events.ts";
import type { Element } from "../session/client.ts";
import { NS_OOB } from "../protocol/ns.ts";
import { parseBody } from "../protocol/stanza.ts";
import type { Groupchat } from "../protocol/stanza.ts";
import type { IncomingBase } from "../incoming.ts";

/** `<x xmlns="jabber:x:oob"><url>url</url></x>`, with a description when given. */
export function oobElement(url: string, desc?: string): Element {
  return xml("x", { xmlns: NS_OOB }, xml("url", {}, url), ...(desc ? [xml("desc", {}, desc)] : []));
}

/** The http(s) URLs a message's OOB elements carry, in order, each once. */
export function oobUrls(stanza: Element): string[] {
  const urls = stanza.getChildren("x", NS_OOB)
    .map((x: Element) => x.getChildText("url")?.trim() ?? "")
    .filter((url: string) => URL.canParse(url) && /^https?:$/.test(new URL(url).protocol));
  return [...new Set<string>(urls)];
}

/**
 * The file an OOB URL names: its name is the URL path's last segment (upload services keep the original name
 * there), and the URL is both where the bytes come from and the link to show when they cannot be copied.
 *
 * @example
 * ```ts
 * attachmentOfUrl("https://up.example.org/abc/cat%20photo.jpg").name; // "cat photo.jpg"
 * ```
 */
export function attachmentOfUrl(url: string): Attachment {
  const last = new URL(url).pathname.split("/").filter((s) => s !== "").pop() ?? "";
  let name = last;
  try {
    name = decodeURIComponent(last);
  } catch {
    // Not valid percent-encoding: the raw segment is still a name.
  }
  return { name: name.replace(/[\\/]/g, "_") || "file", source: url, url };
}

/**
 * Reads a room message that shares files (XEP-0066): a message whose attachments are its OOB URLs, and whose text
 * is the body without them (empty when the body is just the URL, as clients send an upload). Undefined when the
 * stanza carries no OOB URL.
 */
export function readOobMessage(msg: Groupchat, base: IncomingBase): BridgeMessage | undefined {
  const urls = oobUrls(msg.stanza);
  if (urls.length === 0) return undefined;
  let body = msg.body ?? "";
  for (const url of urls) body = body.split(url).join("");
  return {
    kind: "message",
    ...base,
    ...parseBody(body.trim() === "" ? "" : body.trim()),
    attachments: urls.map(attachmentOfUrl),
  };
}
