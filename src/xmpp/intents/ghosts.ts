/**
 * How Mattermost users appear in rooms as themselves: the contract between the XMPP connector and a ghost mode.
 *
 * In `relay` mode there is no provider and the bridge's own occupant speaks for everyone. A provider (`ibr`: one
 * registered account per user; `component`: puppets of an XEP-0114 component) gives the connector the author's own
 * voice (an {@link Intent}) to send the stanza it built through, and tells it which occupants are its own so their
 * reflections never loop back.
 *
 * @module
 */
import type { AvatarRef } from "../../core/events.ts";
import type { Image } from "../../core/images.ts";
import type { Intent } from "./intent.ts";

/** The remote author a ghost stands for. */
export interface GhostAuthor {
  /** Stable id on the source network (Mattermost user id). */
  id: string;
  /** Username; the ghost's nick and JID are derived from it. */
  name: string;
  displayName?: string;
  /** The network the author belongs to, where their picture is fetched from. */
  network?: string;
  /** Their picture, when they have one of their own: the ghost shows it as its avatar. */
  avatar?: AvatarRef;
}

/**
 * Fetches the picture `author.avatar` names, bounded in size; undefined when it cannot be had for good (too large,
 * not a picture: logged). Rejects when it may work later.
 */
export type PictureSource = (author: GhostAuthor) => Promise<Image | undefined>;

/** A ghost mode. */
export interface GhostProvider {
  /** Mode name for logs and status: "ibr", "component". */
  readonly mode: string;
  /**
   * True when every voice it gives writes on one stream, which keeps their order (the component's, shared by all
   * puppets), and it never answers null: the connector may then write a message before the last one is reflected,
   * as it does for the relay. IBR ghosts have a stream each, which nothing orders against the others.
   */
  readonly oneStream?: boolean;
  /**
   * Connects what must be connected up front (the component); `ibr` connects lazily. `pictures` fetches authors'
   * pictures, which ghosts show as their avatars.
   */
  start(pictures?: PictureSource): Promise<void>;
  /**
   * The voice `author` speaks with, connecting (and registering) it first when needed; it joins a room on
   * {@link Intent.ensureJoined}. Resolves null when this author cannot be a ghost right now (registration refused,
   * not offered, pending): the connector then relays the message itself. Throws a transient BridgeError when the
   * message should be retried.
   */
  intentFor(author: GhostAuthor): Promise<Intent | null>;
  /** True when `nick` in `room` is one of this provider's ghosts. */
  isGhost(room: string, nick: string): boolean;
  /** The author whose ghost is `nick` in `room`, if it is one (XMPP mentions of the nick become theirs). */
  authorOf?(room: string, nick: string): GhostAuthor | undefined;
  /**
   * The author's name or picture changed (`author` as they are now): a ghost that is online follows at once (its nick
   * in the rooms it is in, its avatar); one that is not does so when next used. Never throws.
   */
  updateProfile?(author: GhostAuthor): Promise<void>;
  /** The author was deactivated on their network: leave every room (and clean up, if configured). */
  retire(authorId: string): Promise<void>;
  /** The room is no longer mapped: every ghost leaves it. */
  leaveRoom(room: string): Promise<void>;
  /** Disconnects every ghost. Must not throw. */
  stop(): Promise<void>;
}

/**
 * Makes a Mattermost username safe as an XMPP localpart (nodeprep): lowercase, and every character nodeprep forbids
 * (space, `"&'/:<>@`) or that is not printable becomes `_`.
 *
 * @example
 * ```ts
 * nodeSafe("Alice.Smith"); // "alice.smith"
 * ```
 */
export function nodeSafe(username: string): string {
  const safe = username.normalize("NFKC").toLowerCase().replace(/[\s"&'/:<>@\p{C}]/gu, "_");
  return safe === "" ? "_" : safe;
}
