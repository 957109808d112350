/**
 * Who is in each room, by nick, as the room's presence tells the bridge's session: mentions need it.
 *
 * @module
 */
import type { Element } from "../session/client.ts";

/** The nicks of the occupants of the rooms a session is in. */
export class Occupants {
  private readonly rooms = new Map<string, Set<string>>();

  /** Takes note of a presence from a room: an occupant arrives (or changes nick), or leaves. */
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
      if (!nicks) this.rooms.set(room, nicks = new Set());
      nicks.add(nick);
    }
  }

  /** The nicks in `room` now. */
  nicks(room: string): string[] {
    return [...this.rooms.get(room) ?? []];
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
    const matches = [...nicks].filter((n) => n.toLowerCase() === lower);
    return matches.length === 1 ? matches[0] : undefined;
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
