/**
 * Who is in each room, as the room's presence tells the bridge's session: their nicks (mentions need them) and, where
 * the room reveals it (XEP-0045 §7.2.3: a non-anonymous room, or to a moderator in a semi-anonymous one), their real
 * bare JID, which says who sent a message when the room gives no XEP-0421 occupant-id.
 *
 * @module
 */
import type { Element } from "../session/client.ts";
import { NS_MUC_USER } from "../protocol/ns.ts";

/**
 * The occupants of the rooms a session is in, by nick, with their real bare JIDs when revealed. Feed it every
 * presence with {@link Occupants.handlePresence}.
 *
 * @example
 * ```ts
 * occupants.handlePresence(presence); // from room@muc/alice, <item jid="alice@example.org/phone"/>
 * occupants.nicks("room@muc"); // ["alice"]
 * occupants.realJid("room@muc", "alice"); // "alice@example.org"
 * ```
 */
export class Occupants {
  /** Room (lowercased) → nick → real bare JID, or undefined when the room does not reveal it. */
  private readonly rooms = new Map<string, Map<string, string | undefined>>();

  /**
   * Takes note of a presence from a room: an occupant arrives (or changes nick, or the room starts or stops
   * revealing their JID), or leaves.
   */
  handlePresence(stanza: Element): void {
    const from = String(stanza.attrs.from ?? "");
    const slash = from.indexOf("/");
    if (slash < 0) return;
    const room = from.slice(0, slash).toLowerCase();
    const nick = from.slice(slash + 1);
    const type = stanza.attrs.type;
    if (type === "unavailable") this.rooms.get(room)?.delete(nick);
    else if (type === undefined) {
      let nicks = this.rooms.get(room);
      if (!nicks) this.rooms.set(room, nicks = new Map());
      const jid = stanza.getChild("x", NS_MUC_USER)?.getChild("item")?.attrs.jid;
      nicks.set(nick, typeof jid === "string" && jid !== "" ? jid.split("/")[0].toLowerCase() : undefined);
    }
  }

  /** The nicks in `room` now. */
  nicks(room: string): string[] {
    return [...this.rooms.get(room)?.keys() ?? []];
  }

  /**
   * The nick in `room` that `name` names: the same nick, else the one that differs only in case (a Mattermost
   * username is lowercase).
   */
  find(room: string, name: string): string | undefined {
    const nicks = this.rooms.get(room);
    if (!nicks) return undefined;
    if (nicks.has(name)) return name;
    const lower = name.toLowerCase();
    const matches = [...nicks.keys()].filter((n) => n.toLowerCase() === lower);
    return matches.length === 1 ? matches[0] : undefined;
  }

  /** The real bare JID of `nick` in `room`, when the room revealed it. */
  realJid(room: string, nick: string): string | undefined {
    return this.rooms.get(room.toLowerCase())?.get(nick);
  }

  /** Forgets `room`: the bridge left it. */
  forget(room: string): void {
    this.rooms.delete(room);
  }

  /** Forgets every room: after a disconnect, each rejoin brings the full list again. */
  clear(): void {
    this.rooms.clear();
  }
}
