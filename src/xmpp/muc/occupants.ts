/**
 * Who is in each room, as the room's presence tells the bridge's session: their nicks (mentions need them) and, where
 * the room reveals it (XEP-0045 §7.2.3: a non-anonymous room, or to a moderator in a semi-anonymous one), their real
 * bare JID, which says who sent a message when the room gives no XEP-0421 occupant-id.
 *
 * @module
 */
import type { Element } from "../session/client.ts";
import { NS_MUC_USER, NS_OCCUPANT_ID } from "../protocol/ns.ts";
import { readPhotoHash } from "../xeps/xep0153.ts";

/** One occupant as the room's presence describes it. */
export interface Occupant {
  room: string;
  nick: string;
  /** Real bare JID, when the room reveals it. */
  realJid?: string;
  /** XEP-0421 occupant-id, when the room gives one. */
  occupantId?: string;
  /** SHA-1 of their picture, as their presence names it (XEP-0153); null when it says they have none. */
  photoHash?: string | null;
}

/** What a presence changed: an occupant arrived, left, or took a new nick (not a status update). */
export interface OccupantChange {
  occupant: Occupant;
  present: boolean;
  /** Set on the arrival that completes a nick change (XEP-0045 §7.6): the nick it had before. */
  renamedFrom?: string;
  /**
   * Set on a presence update of an occupant already there that names another picture (XEP-0153): neither an arrival
   * nor a departure.
   */
  pictureChanged?: boolean;
}

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
  /** Room (lowercased) → nick → the occupant. */
  private readonly rooms = new Map<string, Map<string, Occupant>>();
  /** `room/new nick` → old nick, between the two presences of a nick change. */
  private readonly renames = new Map<string, string>();

  /**
   * Takes note of a presence from a room: an occupant arrives (or changes nick, or the room starts or stops
   * revealing their JID), or leaves. Returns the arrival or departure it announced, if it did: a nick change (status
   * 303) is neither, and nor is a presence update of someone already there.
   */
  handlePresence(stanza: Element): OccupantChange | undefined {
    const from = String(stanza.attrs.from ?? "");
    const slash = from.indexOf("/");
    if (slash < 0) return undefined;
    const room = from.slice(0, slash).toLowerCase();
    const nick = from.slice(slash + 1);
    const type = stanza.attrs.type;
    const x = stanza.getChild("x", NS_MUC_USER);
    if (type === "unavailable") {
      const occupant = this.rooms.get(room)?.get(nick);
      if (!occupant) return undefined;
      this.rooms.get(room)!.delete(nick);
      const newNick = x?.getChild("item")?.attrs.nick;
      const renamed = x?.getChildren("status").some((s: Element) => s.attrs.code === "303") &&
        typeof newNick === "string";
      if (!renamed) return { occupant, present: false };
      this.renames.set(`${room}/${newNick}`, nick);
      return undefined;
    }
    if (type !== undefined) return undefined;
    let nicks = this.rooms.get(room);
    if (!nicks) this.rooms.set(room, nicks = new Map());
    const jid = x?.getChild("item")?.attrs.jid;
    const occupantId = stanza.getChild("occupant-id", NS_OCCUPANT_ID)?.attrs.id;
    const occupant: Occupant = {
      room,
      nick,
      ...(typeof jid === "string" && jid !== "" ? { realJid: jid.split("/")[0].toLowerCase() } : {}),
      ...(typeof occupantId === "string" && occupantId !== "" ? { occupantId } : {}),
    };
    const known = nicks.get(nick);
    // A presence that says nothing of the picture keeps what an earlier one said (XEP-0153 §4.2).
    const said = readPhotoHash(stanza);
    const photoHash = said === undefined ? known?.photoHash : said;
    if (photoHash !== undefined) occupant.photoHash = photoHash;
    nicks.set(nick, occupant);
    if (known) {
      return (known.photoHash ?? null) !== (photoHash ?? null)
        ? { occupant, present: true, pictureChanged: true }
        : undefined;
    }
    const renamedFrom = this.renames.get(`${room}/${nick}`);
    if (renamedFrom === undefined) return { occupant, present: true };
    this.renames.delete(`${room}/${nick}`);
    return { occupant, present: true, renamedFrom };
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
    return this.rooms.get(room.toLowerCase())?.get(nick)?.realJid;
  }

  /** Forgets `room`: the bridge left it. */
  forget(room: string): void {
    this.rooms.delete(room);
  }

  /** The occupant `nick` of `room`, if present. */
  get(room: string, nick: string): Occupant | undefined {
    return this.rooms.get(room.toLowerCase())?.get(nick);
  }

  /** Forgets every room: after a disconnect, each rejoin brings the full list again. */
  clear(): void {
    this.rooms.clear();
    this.renames.clear();
  }
}
