/**
 * What a human XMPP user does besides talking in rooms, for the end-to-end tests: share a file through the server's
 * upload service (XEP-0363), and write one-to-one.
 *
 * @module
 */
import assert from "node:assert/strict";
import { xml } from "@xmpp/client";
import type { Element } from "@xmpp/xml";
import type { XmppUser } from "./xmpp_user.ts";

const NS_UPLOAD = "urn:xmpp:http:upload:0";
const NS_SID = "urn:xmpp:sid:0";

/**
 * Uploads `data` as `user` to the upload service `uploadDomain` (a slot, then the PUT), as a client does; resolves
 * with the URL others download it from.
 */
export async function uploadAs(
  user: XmppUser,
  uploadDomain: string,
  name: string,
  data: Uint8Array<ArrayBuffer>,
): Promise<string> {
  const answer = await user.iq(
    xml(
      "iq",
      { type: "get", to: uploadDomain },
      xml("request", {
        xmlns: NS_UPLOAD,
        filename: name,
        size: String(data.byteLength),
        "content-type": "text/plain",
      }),
    ),
  );
  const slot = answer.getChild("slot", NS_UPLOAD)!;
  const headers: Record<string, string> = { "Content-Type": "text/plain" };
  for (const h of slot.getChild("put")!.getChildren("header")) headers[h.attrs.name] = h.text();
  const res = await fetch(slot.getChild("put")!.attrs.url, { method: "PUT", body: data, headers });
  await res.body?.cancel();
  assert.equal(res.status, 201);
  return slot.getChild("get")!.attrs.url;
}

/** Sends `body` as a 1:1 chat to `to`, with message id `id`, origin-id `${id}-origin` and `children`. */
export async function sendChat(
  user: XmppUser,
  to: string,
  body: string,
  id: string,
  ...children: Element[]
): Promise<void> {
  await user.send(
    xml(
      "message",
      { type: "chat", to, id },
      xml("body", {}, body),
      xml("origin-id", { xmlns: NS_SID, id: `${id}-origin` }),
      ...children,
    ),
  );
}
