/**
 * Reads a MUC room's whole archive (XEP-0313, paged with XEP-0059) as a test user, independently of mmxmpp's own
 * code: what the room really kept, for counting after an occupant (a test user) may have missed messages live.
 *
 * @module
 */
import { xml } from "@xmpp/client";
import type { Element } from "@xmpp/xml";
import type { XmppUser } from "./xmpp_user.ts";

const NS_MAM = "urn:xmpp:mam:2";
const NS_RSM = "http://jabber.org/protocol/rsm";
const NS_FORWARD = "urn:xmpp:forward:0";

/** One archived group chat message. */
export interface ArchivedGroupchat {
  /** The sender's nick. */
  nick: string;
  body: string | undefined;
}

/** Every message `room` archived, oldest first, read by `user` (who must be allowed to query it). */
export async function readRoomArchive(user: XmppUser, room: string): Promise<ArchivedGroupchat[]> {
  const found: ArchivedGroupchat[] = [];
  let after: string | undefined;
  for (let page = 0; page < 100; page++) {
    const queryid = crypto.randomUUID();
    const results: ArchivedGroupchat[] = [];
    const off = user.onStanza((stanza: Element) => {
      const result = stanza.is("message") && stanza.attrs.from === room
        ? stanza.getChild("result", NS_MAM)
        : undefined;
      if (result?.attrs.queryid !== queryid) return;
      const message = result.getChild("forwarded", NS_FORWARD)?.getChild("message");
      const from = String(message?.attrs.from ?? "");
      results.push({
        nick: from.slice(from.indexOf("/") + 1),
        body: message?.getChildText("body") ?? undefined,
      });
    });
    let fin: Element | undefined;
    try {
      const set = xml(
        "set",
        { xmlns: NS_RSM },
        xml("max", {}, "100"),
        ...(after ? [xml("after", {}, after)] : []),
      );
      const answer = await user.iq(
        xml("iq", { type: "set", to: room }, xml("query", { xmlns: NS_MAM, queryid }, set)),
      );
      fin = answer.getChild("fin", NS_MAM);
    } finally {
      off();
    }
    found.push(...results);
    const last = fin?.getChild("set", NS_RSM)?.getChildText("last");
    if (!fin || fin.attrs.complete === "true" || !last || results.length === 0) break;
    after = last;
  }
  return found;
}
