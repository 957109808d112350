/**
 * Users' availability in XMPP terms, both ways: a Mattermost status as what a ghost's presence says in its rooms
 * ({@link presenceOf}), an occupant's presence `<show/>` as a status ({@link statusOfShow}), and the occupants'
 * statuses coalesced ({@link OccupantStatuses}), so that a room's flood of presences (a join of a big room, a
 * server restart bringing everyone back) costs one update per user and window.
 *
 * @module
 */
import type { Sender } from "../core/events.ts";
import type { UserStatus } from "../core/bridge.ts";
import type { Element } from "./session/client.ts";
import type { PresenceState } from "./muc/rooms.ts";

/** What a ghost's presence says for a Mattermost user who is offline. */
export const OFFLINE_STATUS_TEXT = "Offline on Mattermost";

/**
 * What a ghost's presence says for a Mattermost status: nothing more than available when online, `away` or `dnd`,
 * and `xa` with a status text when offline. An offline user stays in the room
 * (extended away) rather than leaving it: Mattermost users read their channels later, so membership is not
 * presence; a leave would drop the nick from the room's occupant list (mentions and nick completion) and make every
 * login and logout of a big channel a join or leave for everyone in the room.
 *
 * @example
 * ```ts
 * presenceOf("dnd"); // { show: "dnd" }
 * ```
 */
export function presenceOf(status: UserStatus): PresenceState {
  switch (status) {
    case "online":
      return {};
    case "away":
    case "dnd":
      return { show: status };
    case "offline":
      return { show: "xa", status: OFFLINE_STATUS_TEXT };
  }
}

/**
 * The status an available presence's `<show/>` means on Mattermost: none or `chat` is online, `away` and `xa`
 * (Mattermost has no extended away) are away, `dnd` is do not disturb.
 */
export function statusOfShow(stanza: Element): UserStatus {
  const show = stanza.getChildText("show")?.trim();
  if (show === "away" || show === "xa") return "away";
  if (show === "dnd") return "dnd";
  return "online";
}

/** One user's status as the rooms show it. */
interface Tracked {
  sender: Sender;
  /** Rooms the user is present in, with the status each presence there said. */
  rooms: Map<string, UserStatus>;
  /** The status last reported. */
  reported?: UserStatus;
  timer?: ReturnType<typeof setTimeout>;
}

/**
 * The statuses of the occupants of the bridge's rooms, keyed by who they are across rooms (`accountId ?? id`): a
 * user present in several rooms is offline only once gone from all of them. Changes are reported at most once per
 * `windowMs` per user (the last one of the window), and only when the status differs from the last reported.
 *
 * @example
 * ```ts
 * const statuses = new OccupantStatuses(2_000, (change) => ctx.statusChanged(change));
 * statuses.present(room, sender, "away"); // reported 2 s later, unless it changed back meanwhile
 * statuses.gone(room, sender); // offline once gone from every room
 * ```
 */
export class OccupantStatuses {
  private readonly users = new Map<string, Tracked>();

  constructor(
    private readonly windowMs: number,
    private readonly report: (change: { sender: Sender; status: UserStatus }) => void,
  ) {}

  /** `sender` is in `room`, showing `status`. */
  present(room: string, sender: Sender, status: UserStatus): void {
    const user = this.user(sender);
    user.sender = sender;
    user.rooms.set(room, status);
    this.schedule(user);
  }

  /** `sender` left `room`. */
  gone(room: string, sender: Sender): void {
    const user = this.users.get(keyOf(sender));
    if (!user?.rooms.delete(room)) return;
    this.schedule(user);
  }

  /** The bridge left `room` (or lost its session): what it knew of its occupants is void, and nothing is reported. */
  forgetRoom(room: string): void {
    for (const [key, user] of this.users) {
      user.rooms.delete(room);
      if (user.rooms.size === 0) {
        clearTimeout(user.timer);
        this.users.delete(key);
      }
    }
  }

  /** Forgets everything, reporting nothing (the bridge is stopping). */
  clear(): void {
    for (const user of this.users.values()) clearTimeout(user.timer);
    this.users.clear();
  }

  private user(sender: Sender): Tracked {
    const key = keyOf(sender);
    let user = this.users.get(key);
    if (!user) this.users.set(key, user = { sender, rooms: new Map() });
    return user;
  }

  private schedule(user: Tracked): void {
    user.timer ??= setTimeout(() => {
      user.timer = undefined;
      const status = current(user);
      if (user.rooms.size === 0) this.users.delete(keyOf(user.sender));
      if (status === user.reported) return;
      user.reported = status;
      this.report({ sender: user.sender, status });
    }, this.windowMs);
  }
}

/** A user's status across their rooms: the most available one (online, then dnd, then away); offline in none. */
function current(user: Tracked): UserStatus {
  const statuses = new Set(user.rooms.values());
  for (const status of ["online", "dnd", "away"] as const) if (statuses.has(status)) return status;
  return "offline";
}

function keyOf(sender: Sender): string {
  return sender.accountId ?? sender.id;
}
