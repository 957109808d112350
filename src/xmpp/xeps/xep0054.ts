/**
 * XEP-0054 vcard-temp: the vCard an entity answers with (`<iq type='get'><vCard xmlns='vcard-temp'/></iq>`), here its
 * names and its `PHOTO` (`TYPE` and base64 `BINVAL`), which XEP-0153 avatars point at by hash.
 *
 * @module
 */
import { xml } from "@xmpp/client-core";
import { Buffer } from "node:buffer";
import { type Image, imageType } from "../../core/images.ts";
import { NS_VCARD } from "../protocol/ns.ts";
import type { Element } from "../session/client.ts";
import type { IqSender } from "./xep0084.ts";

/** What the bridge says of a puppet in its vCard. */
export interface VcardProfile {
  /** `FN`: the display name. */
  fullName?: string;
  /** `NICKNAME`. */
  nickname?: string;
  photo?: Image;
}

/**
 * The `<vCard>` element of `profile`.
 *
 * @example
 * ```ts
 * buildVcard({ fullName: "Bob Smith", photo: { bytes: png, type: "image/png" } });
 * ```
 */
export function buildVcard(profile: VcardProfile): Element {
  const vcard = xml("vCard", { xmlns: NS_VCARD });
  if (profile.fullName) vcard.append(xml("FN", {}, profile.fullName));
  if (profile.nickname) vcard.append(xml("NICKNAME", {}, profile.nickname));
  if (profile.photo) {
    vcard.append(
      xml(
        "PHOTO",
        {},
        xml("TYPE", {}, profile.photo.type),
        xml("BINVAL", {}, Buffer.from(profile.photo.bytes).toString("base64")),
      ),
    );
  }
  return vcard;
}

/**
 * The photo of a `<vCard>`: undefined when it has none, or only an external one, or one larger than `maxBytes`
 * (checked on the base64 text, before decoding).
 */
export function readVcardPhoto(vcard: Element, maxBytes: number): Image | undefined {
  const photo = vcard.getChild("PHOTO");
  const binval = photo?.getChildText("BINVAL")?.replace(/\s+/g, "");
  if (!binval) return undefined;
  if (binval.length > Math.ceil(maxBytes / 3) * 4) return undefined;
  const bytes = new Uint8Array(Buffer.from(binval, "base64"));
  if (bytes.length === 0 || bytes.length > maxBytes) return undefined;
  const type = imageType(bytes) ?? photo?.getChildText("TYPE")?.trim();
  return type ? { bytes, type } : undefined;
}

/**
 * Asks `jid` for its vCard: an account's bare JID, or an occupant JID (a MUC service passes vcard-temp requests on to
 * the occupant's account). Resolves with the `<vCard>`, or undefined when the answer holds none.
 */
export async function fetchVcard(
  session: IqSender,
  jid: string,
  timeoutMs = 15_000,
): Promise<Element | undefined> {
  const answer = await session.iqCaller.request(
    xml("iq", { type: "get", to: jid }, xml("vCard", { xmlns: NS_VCARD })),
    timeoutMs,
  );
  return answer.getChild("vCard", NS_VCARD);
}
