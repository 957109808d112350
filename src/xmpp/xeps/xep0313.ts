/**
 * XEP-0313 Message Archive Management on a MUC room: fetching what the room archived since a point in time, page
 * by page (XEP-0059 result set management), for a catch-up after the bridge was away.
 *
 * Results come as `<message>` stanzas from the room's bare JID wrapping a `<result>` with our query id and a
 * XEP-0297 `<forwarded>` message; the query's IQ answer (`<fin/>`) ends each page. Results from any other sender,
 * or for another query, are ignored, so an occupant cannot inject "archived" messages.
 *
 * @module
 */
import { xml } from "@xmpp/client-core";
import type { Element, XmppClient } from "../session/client.ts";
import { NS_DATA, NS_DELAY, NS_FORWARD, NS_MAM, NS_RSM } from "../protocol/ns.ts";

/** The MAM namespace (version 2). */

/** One archived message of a room. */
export interface ArchivedMessage {
  /** The archive's id: the room's XEP-0359 stanza-id of the message. */
  archiveId: string;
  /** When the room received it (the forwarded delay), ms since the epoch. */
  stamp?: number;
  /** The archived `<message>` itself (from `room/nick`). */
  message: Element;
}

/** Limits of {@link fetchRoomArchive}. */
export interface ArchiveQueryOptions {
  /** Messages archived at or after this time (ms since the epoch). */
  start: number;
  /** Results asked per page (default 100). */
  pageSize?: number;
  /** Pages at most (default 100), so that a misbehaving archive cannot keep a catch-up going forever. */
  maxPages?: number;
  /** Time for one page's answer (default 15 s). */
  timeoutMs?: number;
}

/**
 * Every message `room` archived since `opts.start`, oldest first. Rejects when the room refuses the query (e.g.
 * it keeps no archive, or the bridge may not read it); the caller then does without.
 *
 * @example
 * ```ts
 * const missed = await fetchRoomArchive(client, "lobby@conference.example.org", { start: Date.now() - 3_600_000 });
 * ```
 */
export async function fetchRoomArchive(
  client: Pick<XmppClient, "on" | "removeListener" | "iqCaller">,
  room: string,
  opts: ArchiveQueryOptions,
): Promise<ArchivedMessage[]> {
  const found: ArchivedMessage[] = [];
  let after: string | undefined;
  for (let page = 0; page < (opts.maxPages ?? 100); page++) {
    const queryId = crypto.randomUUID();
    const results: ArchivedMessage[] = [];
    const onStanza = (stanza: Element) => {
      const archived = readResult(stanza, room, queryId);
      if (archived) results.push(archived);
    };
    client.on("stanza", onStanza);
    let fin: Element | undefined;
    try {
      const answer = await client.iqCaller.request(
        queryPage(room, queryId, opts, after),
        opts.timeoutMs ?? 15_000,
      );
      fin = answer.getChild("fin", NS_MAM);
    } finally {
      client.removeListener("stanza", onStanza as never);
    }
    found.push(...results);
    const last = fin?.getChild("set", NS_RSM)?.getChildText("last");
    if (!fin || fin.attrs.complete === "true" || !last || results.length === 0) break;
    after = last;
  }
  return found;
}

function queryPage(room: string, queryId: string, opts: ArchiveQueryOptions, after?: string): Element {
  return xml(
    "iq",
    { type: "set", to: room },
    xml(
      "query",
      { xmlns: NS_MAM, queryid: queryId },
      xml(
        "x",
        { xmlns: NS_DATA, type: "submit" },
        xml("field", { var: "FORM_TYPE", type: "hidden" }, xml("value", {}, NS_MAM)),
        xml("field", { var: "start" }, xml("value", {}, new Date(opts.start).toISOString())),
      ),
      xml(
        "set",
        { xmlns: NS_RSM },
        xml("max", {}, String(opts.pageSize ?? 100)),
        ...(after ? [xml("after", {}, after)] : []),
      ),
    ),
  );
}

/** The archived message in `stanza` when it is a result of our query from the room itself; else undefined. */
function readResult(stanza: Element, room: string, queryId: string): ArchivedMessage | undefined {
  if (!stanza.is("message")) return undefined;
  if (String(stanza.attrs.from ?? "").toLowerCase() !== room) return undefined;
  const result = stanza.getChild("result", NS_MAM);
  if (!result || result.attrs.queryid !== queryId || typeof result.attrs.id !== "string") return undefined;
  const forwarded = result.getChild("forwarded", NS_FORWARD);
  const message = forwarded?.getChild("message");
  if (!message) return undefined;
  const stamp = Date.parse(String(forwarded?.getChild("delay", NS_DELAY)?.attrs.stamp ?? ""));
  return { archiveId: result.attrs.id, stamp: Number.isFinite(stamp) ? stamp : undefined, message };
}
