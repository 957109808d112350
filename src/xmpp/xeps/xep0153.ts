/**
 * XEP-0153 vCard-based avatars: a presence carries `<x xmlns='vcard-temp:x:update'><photo>sha1</photo></x>`, the
 * SHA-1 of the picture in the sender's vCard (XEP-0054), so that others fetch the vCard only when it changes.
 *
 * @module
 */
import { xml } from "@xmpp/client-core";
import { NS_VCARD_UPDATE } from "../protocol/ns.ts";
import type { Element } from "../session/client.ts";

/**
 * The `<x>` to put in a presence: `hash` is the SHA-1 (hex) of the vCard's photo; without it, an empty `<photo/>`
 * says there is no picture.
 *
 * @example
 * ```ts
 * presence.append(photoUpdate("a94a8fe5ccb19ba61c4c0873d391e987982fbbd3"));
 * ```
 */
export function photoUpdate(hash?: string): Element {
  return xml("x", { xmlns: NS_VCARD_UPDATE }, xml("photo", {}, hash ?? ""));
}

/**
 * What a presence says of the sender's picture: its SHA-1 (lowercase hex); null when it says there is none (an empty
 * `<photo/>`, or one naming no SHA-1); undefined when it says nothing (no `<x>`, or an `<x>` without `<photo>`: the
 * client does not know yet, §4.2).
 *
 * A `<photo>` that is no SHA-1 names no picture anyone could fetch. It is what a server that puts the XEP-0084
 * avatar's id in presences says once the user removed their avatar the XEP-0084 way (§4.5, an empty metadata item,
 * whose id the server chose: Prosody's mod_vcard_legacy gives a UUID), so it counts as none.
 */
export function readPhotoHash(presence: Element): string | null | undefined {
  const photo = presence.getChild("x", NS_VCARD_UPDATE)?.getChild("photo");
  if (!photo) return undefined;
  const hash = photo.getText().trim().toLowerCase();
  return /^[0-9a-f]{40}$/.test(hash) ? hash : null;
}
