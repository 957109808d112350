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
import type { Element } from "../session/client.ts";
import type { AvatarRef } from "../../core/events.ts";
import type { Image } from "../../core/images.ts";
import type { Intent } from "./intent.ts";
import type { PresenceState } from "../muc/rooms.ts";

/** The remote author a ghost stands for. */
export interface GhostAuthor {
  /** Stable id on the source network (Mattermost user id). */
  id: string;
  /** Username; the ghost's nick and JID are derived from it. */
  name: string;
  displayName?: string;
  /** The network the author belongs to, where their picture is fetched from. */
  network?: string;
  /**
   * Their picture, when they have one of their own: the ghost shows it as its avatar; null when they have none (the
   * ghost withdraws its avatar); undefined when not known.
   */
  avatar?: AvatarRef | null;
}

/** An address 1:1 messages arrive at (a ghost account, a component JID), and the way to answer from it. */
export interface DirectAddress {
  /** The bare JID the message was sent to. */
  jid: string;
  /** Sends `stanza` from that JID. */
  send(stanza: Element): Promise<void>;
}

/** Receives a 1:1 message (type chat, normal or error) sent to `address`. */
export type DirectListener = (stanza: Element, address: DirectAddress) => void;

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
  /**
   * The voice of the author with id `authorId` when it is an occupant of `room` right now, else undefined. Never
   * connects, registers or joins: for what is only worth showing where the ghost already is (typing, presence). In a
   * 1:1 conversation (`room` a direct channel id, see direct.ts) the ghost is present while its session is up.
   */
  presentIn(authorId: string, room: string): Intent | undefined;
  /**
   * Makes `presence` (a `<show/>`, a status text) what the ghost of the author with id
   * `authorId` says in every room it is in, and at its later joins. Never connects or joins: a ghost that is not
   * live keeps it for when it is.
   */
  setStatus(authorId: string, presence: PresenceState): Promise<void>;
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
  /**
   * Hands every 1:1 message addressed to one of its JIDs to `listener`, with the address to answer from. Set once,
   * before {@link GhostProvider.start}; without a listener such messages are not read.
   */
  onDirect?(listener: DirectListener): void;
  /**
   * The user of the other network `jid` (a bare JID) stands for: their id, or `@username` when only the name can be
   * told from the JID (a component puppet not seen since the start); undefined when `jid` is nobody's ghost.
   */
  ownerOf?(jid: string): Promise<string | undefined>;
  /** The way to send from `jid` now (connecting its ghost when needed); undefined when it cannot be had. */
  addressOf?(jid: string): Promise<DirectAddress | undefined>;
  /**
   * Keeps the ghost `jid` connected while it has a direct conversation (ibr): what its peer writes then arrives at
   * once. Resolves once it is connected, or could not be.
   */
  keepOnline?(jid: string): Promise<void>;
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
