/**
 * The real JIDs a room reveals of its occupants (XEP-0045 §7.2.3: a non-anonymous room, or to a moderator in a
 * semi-anonymous one), read from their presences: who an occupant is when the room gives no XEP-0421 occupant-id.
 *
 * @module
 */
import type { Element } from "../session/client.ts";
import { NS_MUC_USER } from "../protocol/ns.ts";

/**
 * Occupants' real bare JIDs by room and nick, as their presences last said. Feed it every presence with
 * {@link RealJids.handlePresence}.
 *
 * @example
 * ```ts
 * realJids.handlePresence(presence); // from room@muc/alice, <item jid="alice@example.org/phone"/>
 * realJids.of("room@muc", "alice"); // "alice@example.org"
 * ```
 */
export class RealJids {
  private readonly byOccupant = new Map<string, string>();

  /** Records (or, when the occupant left or the room stopped revealing it, forgets) what `presence` says. */
  handlePresence(presence: Element): void {
    const from = String(presence.attrs.from ?? "");
    const slash = from.indexOf("/");
    if (slash < 0) return;
    const key = occupantKey(from.slice(0, slash), from.slice(slash + 1));
    const jid = presence.getChild("x", NS_MUC_USER)?.getChild("item")?.attrs.jid;
    if (presence.attrs.type === "unavailable" || typeof jid !== "string" || jid === "") {
      this.byOccupant.delete(key);
      return;
    }
    this.byOccupant.set(key, jid.split("/")[0].toLowerCase());
  }

  /** The real bare JID of `nick` in `room`, when the room revealed it. */
  of(room: string, nick: string): string | undefined {
    return this.byOccupant.get(occupantKey(room, nick));
  }
}

function occupantKey(room: string, nick: string): string {
  return `${room.toLowerCase()}/${nick}`;
}
