/**
 * XEP-0030 service discovery: what an entity is and what it supports.
 *
 * @module
 */
import { xml } from "@xmpp/client-core";
import type { Element, XmppClient } from "./client.ts";

const NS_DISCO_INFO = "http://jabber.org/protocol/disco#info";

/** The answer to a disco#info query, as data. */
export interface DiscoInfo {
  identities: Array<{ category: string; type: string; name?: string }>;
  features: Set<string>;
}

/** Asks `to` for disco#info. Rejects with the xmpp.js StanzaError (with `.condition`) when `to` answers an error. */
export async function discoInfo(client: XmppClient, to: string, timeoutMs = 10_000): Promise<DiscoInfo> {
  const res: Element = await client.iqCaller.request(
    xml("iq", { type: "get", to }, xml("query", { xmlns: NS_DISCO_INFO })),
    timeoutMs,
  );
  const query = res.getChild("query", NS_DISCO_INFO);
  return {
    identities: (query?.getChildren("identity") ?? []).map((el: Element) => ({
      category: String(el.attrs.category),
      type: String(el.attrs.type),
      name: el.attrs.name,
    })),
    features: new Set((query?.getChildren("feature") ?? []).map((el: Element) => String(el.attrs.var))),
  };
}
