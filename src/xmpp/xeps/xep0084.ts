/**
 * XEP-0084 user avatar: an account publishes its picture to two PEP nodes of its own, the image on
 * `urn:xmpp:avatar:data` and what it is on `urn:xmpp:avatar:metadata` (both item ids are the image's SHA-1); others
 * read the metadata, then the data by that id.
 *
 * The nodes are published with the `open` access model: the readers are room occupants, who are not in the
 * account's roster (PEP's default model, `presence`, would refuse them).
 *
 * @module
 */
import { xml } from "@xmpp/client-core";
import { Buffer } from "node:buffer";
import { type Image, imageType, sha1Hex } from "../../core/images.ts";
import {
  NS_AVATAR_DATA,
  NS_AVATAR_METADATA,
  NS_DATA,
  NS_PUBSUB,
  NS_PUBSUB_EVENT,
  NS_PUBSUB_PUBLISH_OPTIONS,
} from "../protocol/ns.ts";
import type { Element } from "../session/client.ts";

/** What sends IQs: a client session (an IBR ghost, the bridge) or a component. */
export interface IqSender {
  iqCaller: { request(iq: Element, timeoutMs?: number): Promise<Element> };
}

/** What the metadata node says of the current avatar. */
export interface AvatarInfo {
  /** SHA-1 of the image, hex: the data item's id. */
  id: string;
  /** MIME type. */
  type: string;
  /** Size of the image in bytes. */
  bytes: number;
}

const TIMEOUT_MS = 15_000;

/** `<publish-options>` making a node readable by anyone (pubsub#access_model = open). */
function openAccess(): Element {
  return xml(
    "publish-options",
    {},
    xml(
      "x",
      { xmlns: NS_DATA, type: "submit" },
      xml("field", { var: "FORM_TYPE", type: "hidden" }, xml("value", {}, NS_PUBSUB_PUBLISH_OPTIONS)),
      xml("field", { var: "pubsub#access_model" }, xml("value", {}, "open")),
    ),
  );
}

/**
 * The two IQs that publish `image` as the sender's avatar, in the order XEP-0084 §4 wants them sent: the data, then
 * the metadata that points at it.
 *
 * @example
 * ```ts
 * const [data, metadata] = avatarPublishRequests({ bytes: png, type: "image/png" });
 * ```
 */
export function avatarPublishRequests(image: Image): [Element, Element] {
  const id = sha1Hex(image.bytes);
  const publish = (node: string, payload: Element) =>
    xml(
      "iq",
      { type: "set" },
      xml(
        "pubsub",
        { xmlns: NS_PUBSUB },
        xml("publish", { node }, xml("item", { id }, payload)),
        openAccess(),
      ),
    );
  return [
    publish(
      NS_AVATAR_DATA,
      xml("data", { xmlns: NS_AVATAR_DATA }, Buffer.from(image.bytes).toString("base64")),
    ),
    publish(
      NS_AVATAR_METADATA,
      xml(
        "metadata",
        { xmlns: NS_AVATAR_METADATA },
        xml("info", { id, type: image.type, bytes: String(image.bytes.length) }),
      ),
    ),
  ];
}

/**
 * Publishes `image` as the avatar of the account `session` is logged in as; resolves with its id (SHA-1). Rejects
 * with the server's error when it refuses (no PEP, a node configured otherwise).
 */
export async function publishAvatar(session: IqSender, image: Image): Promise<string> {
  for (const iq of avatarPublishRequests(image)) await session.iqCaller.request(iq, TIMEOUT_MS);
  return sha1Hex(image.bytes);
}

/**
 * Says the account has no avatar any more: an empty `<metadata/>` item (XEP-0084 §4.3), which clients take as "show
 * none". Rejects with the server's error when it refuses.
 */
export async function disableAvatar(session: IqSender): Promise<void> {
  await session.iqCaller.request(
    xml(
      "iq",
      { type: "set" },
      xml(
        "pubsub",
        { xmlns: NS_PUBSUB },
        xml(
          "publish",
          { node: NS_AVATAR_METADATA },
          xml("item", { id: "none" }, xml("metadata", { xmlns: NS_AVATAR_METADATA })),
        ),
        openAccess(),
      ),
    ),
    TIMEOUT_MS,
  );
}

/**
 * Reads the current avatar from a metadata item, its `<pubsub>` answer or its `<event>` notification: its info;
 * null when the owner said they have none (an empty `<metadata/>`); undefined when `el` holds no metadata.
 */
export function readAvatarMetadata(el: Element): AvatarInfo | null | undefined {
  const items = el.getChild("items") ?? el;
  const metadata = items.getChild("item")?.getChild("metadata", NS_AVATAR_METADATA) ??
    el.getChild("metadata", NS_AVATAR_METADATA);
  if (!metadata) return undefined;
  // Several infos are the same image in other formats or sizes; the PNG one is mandatory (§4.2), so look for it.
  const infos: Element[] = metadata.getChildren("info");
  if (infos.length === 0) return null;
  const info = infos.find((i) => i.attrs.type === "image/png" && !i.attrs.url) ??
    infos.find((i) => !i.attrs.url);
  const id = String(info?.attrs.id ?? "").toLowerCase();
  if (!info || !/^[0-9a-f]{40}$/.test(id)) return undefined;
  return { id, type: String(info.attrs.type ?? "image/png"), bytes: Number(info.attrs.bytes) || 0 };
}

/** Asks `jid` for the pubsub `items` (XEP-0060 §6.5) and returns the answer's `<pubsub>`, if it has one. */
async function requestItems(session: IqSender, jid: string, items: Element): Promise<Element | undefined> {
  const answer = await session.iqCaller.request(
    xml("iq", { type: "get", to: jid }, xml("pubsub", { xmlns: NS_PUBSUB }, items)),
    TIMEOUT_MS,
  );
  return answer.getChild("pubsub", NS_PUBSUB) ?? undefined;
}

/** The current avatar of `jid` (a bare JID) as its metadata node says; null: none; undefined: no node to read. */
export async function fetchAvatarMetadata(
  session: IqSender,
  jid: string,
): Promise<AvatarInfo | null | undefined> {
  const pubsub = await requestItems(session, jid, xml("items", { node: NS_AVATAR_METADATA, max_items: "1" }));
  return pubsub ? readAvatarMetadata(pubsub) : undefined;
}

/**
 * The image `info` names, fetched from `jid`'s data node; undefined when the node does not hold it, when it is larger
 * than `maxBytes` (told by the metadata, then checked on the data), or when its bytes do not hash to its id.
 */
export async function fetchAvatarData(
  session: IqSender,
  jid: string,
  info: AvatarInfo,
  maxBytes: number,
): Promise<Image | undefined> {
  if (info.bytes > maxBytes) return undefined;
  const pubsub = await requestItems(
    session,
    jid,
    xml("items", { node: NS_AVATAR_DATA }, xml("item", { id: info.id })),
  );
  const data = pubsub?.getChild("items")?.getChild("item")?.getChild(
    "data",
    NS_AVATAR_DATA,
  );
  if (!data) return undefined;
  const text = data.getText().replace(/\s+/g, "");
  // Base64 takes 4 characters for 3 bytes: a text this long cannot hold an image under the cap.
  if (text.length > Math.ceil(maxBytes / 3) * 4) return undefined;
  const bytes = new Uint8Array(Buffer.from(text, "base64"));
  if (sha1Hex(bytes) !== info.id) return undefined;
  return { bytes, type: imageType(bytes) ?? info.type };
}

/** True when `stanza` is a PEP notification of a new avatar metadata item (`<event><items node=metadata>`). */
export function isAvatarNotification(stanza: Element): boolean {
  return stanza.getChild("event", NS_PUBSUB_EVENT)?.getChild("items")?.attrs.node === NS_AVATAR_METADATA;
}
