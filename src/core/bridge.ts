/**
 * The contract between the core and a network connector: the small interface every connector implements
 * ({@link Bridge}), the optional capabilities a connector implements only when its network can do it (each with
 * the type guard the core checks it with), and what the core hands a connector ({@link BridgeContext}).
 *
 * Adding a network means one folder that implements {@link Bridge}, and whichever capabilities fit.
 *
 * @module
 */
import type { Attachment, BridgeEvent, BridgeMessage, Sender } from "./events.ts";
import type {
  DirectionalMessage,
  EditDelivery,
  IdName,
  MembershipDelivery,
  ReactionsDelivery,
  RemoveDelivery,
  SentRefs,
  TypingDelivery,
} from "./message.ts";

/** Connection state a connector reports; shown by `status`, health and metrics. */
export interface BridgeHealth {
  network: string;
  /** True while the connector can send and receive. */
  connected: boolean;
  /** One human sentence on the current state, e.g. "connected as bot@example.org". */
  detail: string;
  /** When `connected` last changed, in ms since the epoch. */
  since: number;
}

/** What the core gives a connector at start. The connector calls these; it never reaches into the core. */
export interface BridgeContext {
  /**
   * Hands an event received from the network to the core. Must be called in the order events arrived.
   * The core decides whether the channel is mapped; the connector needs not check.
   */
  receive(event: BridgeEvent): void;
  /**
   * Records that `newId` names the same message as `knownId` in `channel` (e.g. the MUC's stanza-id learnt from
   * the reflection of a message we sent with an origin-id), as the part's `name` id when given.
   */
  addMessageAlias(channel: string, knownId: string, newId: string, name?: IdName): Promise<void>;
  /** Channels of this network that are mapped right now. */
  mappedChannels(): Promise<string[]>;
  /**
   * Runs a bridge command typed by a user on this network and returns the text to answer with.
   * `isAdmin` must come from the network's own authority, never from user input.
   */
  runCommand(input: { channel: string; userId: string; isAdmin: boolean; text: string }): Promise<string>;
  /** Announces that a user of this network was deactivated, so that other networks retire their stand-ins. */
  userDeactivated(userId: string): void;
  /**
   * How far `channel` was read before this process started (in the network's own position, e.g. a post's
   * `create_at`), or undefined when it never was: where a catch-up of what was said meanwhile starts.
   */
  loadCursor(channel: string): Promise<number | undefined>;
  /**
   * Records that `channel` was read up to `position`, after handing what came before it to `receive`. Only moves
   * forward; written to the store in batches.
   */
  saveCursor(channel: string, position: number): void;
  /**
   * Opens the bytes of `attachment`, received from `network`, through that network's connector
   * ({@link FileSource}). Rejects with a {@link FileUnavailable} when the file cannot be had (the source cannot
   * serve files, refused, too large, gone), or with another error when it may work later.
   */
  openFile(network: string, attachment: Attachment, opts: OpenFileOptions): Promise<FileStream>;
  /**
   * Announces that a user of this network is now `status` (network-wide, not per channel): the other networks' stand-ins
   * of that user follow ({@link StatusMirroring}). Best effort.
   */
  statusChanged(change: StatusChange): void;
  /**
   * Announces that a user of this network changed their name or picture (`sender` as it is now): the other networks'
   * stand-ins follow ({@link ProfileMirroring}). Best effort.
   */
  profileChanged(sender: Sender): void;
  /**
   * Opens the picture `sender.avatar` of a user of `network` through that network's connector ({@link AvatarSource}).
   * Rejects with a {@link FileUnavailable} when it cannot be had.
   */
  openAvatar(network: string, sender: Sender, opts: OpenFileOptions): Promise<FileStream>;
}

/** How available a user is, in the terms both networks share (Mattermost statuses, XMPP presence `show`). */
export type UserStatus = "online" | "away" | "dnd" | "offline";

/** A user's new network-wide status. */
export interface StatusChange {
  sender: Sender;
  status: UserStatus;
}

/** Limits of one {@link FileSource.openFile}. */
export interface OpenFileOptions {
  /** Most bytes the caller takes: a file known to be larger is refused before fetching, and the stream stops there. */
  maxBytes: number;
  /** Aborts the fetch and the stream. */
  signal?: AbortSignal;
}

/** The bytes of a file, as they arrive. */
export interface FileStream {
  /** Never yields more than the `maxBytes` asked for: it errors with a {@link FileUnavailable} ("too-large") instead. */
  body: ReadableStream<Uint8Array>;
  /** Size in bytes, when the source said (it is then at most `maxBytes`). */
  size?: number;
  mimeType?: string;
}

/** Why a file cannot be had: `too-large` (over a size limit), `refused` (policy, a bad address), `failed`. */
export type FileProblem = "too-large" | "refused" | "failed";

/**
 * A file that cannot be copied to the other network; the message goes on with a link and `message` as the notice.
 * `message` is one clause fit for readers, e.g. "it is larger than the 10 MB limit" (no tokens, no internals).
 */
export class FileUnavailable extends Error {
  constructor(readonly problem: FileProblem, message: string, opts: { cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.name = "FileUnavailable";
  }
}

/**
 * Optional capability: serves the bytes of files received from this network, so that another network's connector
 * can copy them. The core checks with {@link isFileSource} and routes {@link BridgeContext.openFile} here.
 */
export interface FileSource extends Bridge {
  /**
   * Opens `attachment` (one this connector put on a received message), streaming: nothing is buffered beyond a
   * chunk. Errors as for {@link BridgeContext.openFile}.
   */
  openFile(attachment: Attachment, opts: OpenFileOptions): Promise<FileStream>;
}

/** True when `bridge` implements {@link FileSource}. */
export function isFileSource(bridge: Bridge): bridge is FileSource {
  return typeof (bridge as Partial<FileSource>).openFile === "function";
}

/**
 * What a connector can do in one channel, as far as it knows without asking the network. The core consults it
 * before using a capability, and falls back (an edit sent as a new message, a reaction left out) when it says no.
 */
export interface PortalCapabilities {
  /** Edits can be applied to messages the bridge delivered there ({@link EditCapable}). */
  canEdit: boolean;
  /** Delivered messages can be removed ({@link RemoveCapable}). */
  canRemove: boolean;
  /** Reactions can be shown on delivered messages ({@link ReactionCapable}). */
  reactions: boolean;
  /** Typing notifications can be shown ({@link TypingCapable}). */
  typing: boolean;
}

/** The capabilities of a channel where the connector can only post new messages. */
export const MESSAGES_ONLY: PortalCapabilities = Object.freeze({
  canEdit: false,
  canRemove: false,
  reactions: false,
  typing: false,
});

/**
 * A connection to one chat network: what every connector implements.
 *
 * Lifecycle: `start` once, then any number of `send`/`joinChannel`/`leaveChannel`, then `stop`.
 */
export interface Bridge {
  /** Short, stable network name used in store keys and logs: "mattermost", "xmpp". */
  readonly network: string;
  /** Connects and begins delivering received messages to `ctx.receive`. Resolves once usable. */
  start(ctx: BridgeContext): Promise<void>;
  /** Leaves channels and disconnects. Must not throw; must finish promptly. */
  stop(): Promise<void>;
  /**
   * Delivers a message into `msg.targetChannel`. Throws a transient error when the network is unreachable
   * (the bus retries) and a permanent BridgeError when the message can never be delivered.
   */
  send(msg: DirectionalMessage): Promise<SentRefs>;
  /**
   * Turns what an admin typed (a channel name, a room JID) into this network's channel id, checking that the
   * channel exists when `mustExist` is set (a channel that can be created by joining may be accepted otherwise).
   * Throws a BridgeError that says what is wrong.
   */
  resolveChannel(ref: string, opts: { mustExist: boolean }): Promise<string>;
  /** Makes the bridge present in a newly mapped channel (join the room, become a channel member). */
  joinChannel(channel: string): Promise<void>;
  /** Leaves a channel that is no longer mapped. */
  leaveChannel(channel: string): Promise<void>;
  /** Current connection state. Must not do network calls. */
  health(): BridgeHealth;
  /**
   * What the connector can do in `channel` (a channel of this network). Called before each delivery that needs more
   * than `send`: must answer from what is already known, without network calls.
   */
  portalCapabilities(channel: string): PortalCapabilities;
}

/** Optional capability: applies edits to delivered messages. The core checks with {@link isEditCapable}. */
export interface EditCapable extends Bridge {
  /**
   * Replaces the text of `edit.targetMessage` in `edit.targetChannel`. Errors as for `send`. Applying the same edit
   * twice must leave the same text (a replay after a restart may do so); the room's echo of it carries
   * `edit.deliveryId` back where the network allows, as for a message.
   */
  sendEdit(edit: EditDelivery): Promise<void>;
}

/** True when `bridge` implements {@link EditCapable}. */
export function isEditCapable(bridge: Bridge): bridge is EditCapable {
  return typeof (bridge as Partial<EditCapable>).sendEdit === "function";
}

/** Optional capability: removes delivered messages. The core checks with {@link isRemoveCapable}. */
export interface RemoveCapable extends Bridge {
  /** Removes `remove.targetMessage`. A message already gone counts as removed. Errors as for `send`. */
  sendRemove(remove: RemoveDelivery): Promise<void>;
}

/** True when `bridge` implements {@link RemoveCapable}. */
export function isRemoveCapable(bridge: Bridge): bridge is RemoveCapable {
  return typeof (bridge as Partial<RemoveCapable>).sendRemove === "function";
}

/** Optional capability: shows reactions on delivered messages. The core checks with {@link isReactionCapable}. */
export interface ReactionCapable extends Bridge {
  /**
   * Makes the sender's reactions on `reactions.targetMessage` exactly `reactions.event.emojis` where the sender has
   * a voice of their own there (a ghost, a puppet); where one voice reacts for every sender (a relay, a bot), makes
   * that voice's reactions exactly `reactions.shared`, so that one sender's withdrawal keeps another's reaction.
   * Adds and withdraws as needed; applying the same set twice changes nothing. Errors as for `send`.
   */
  sendReactions(reactions: ReactionsDelivery): Promise<void>;
}

/** True when `bridge` implements {@link ReactionCapable}. */
export function isReactionCapable(bridge: Bridge): bridge is ReactionCapable {
  return typeof (bridge as Partial<ReactionCapable>).sendReactions === "function";
}

/** Optional capability: shows that a remote user is typing. The core checks with {@link isTypingCapable}. */
export interface TypingCapable extends Bridge {
  /** Shows or clears the sender's typing state in `typing.targetChannel`. Best effort: not retried. */
  sendTyping(typing: TypingDelivery): Promise<void>;
}

/** True when `bridge` implements {@link TypingCapable}. */
export function isTypingCapable(bridge: Bridge): bridge is TypingCapable {
  return typeof (bridge as Partial<TypingCapable>).sendTyping === "function";
}

/**
 * Optional capability: a connector that shows remote users as their own accounts (ghosts, puppets) implements this
 * to learn when such a user is gone. The core checks for it with {@link isGhostingBridge}.
 */
export interface GhostingBridge extends Bridge {
  /** `userId` of `network` was deactivated: its stand-in leaves every channel (and is cleaned up if configured). */
  remoteUserGone(network: string, userId: string): Promise<void>;
}

/** True when `bridge` implements {@link GhostingBridge}. */
export function isGhostingBridge(bridge: Bridge): bridge is GhostingBridge {
  return typeof (bridge as Partial<GhostingBridge>).remoteUserGone === "function";
}

/**
 * Optional capability: a connector that opens one-to-one conversations (direct messages) between a user of its
 * network and a remote user's stand-in there. The core checks for it with {@link isDirectCapable} when an event with
 * `direct` set arrives from a portal not yet mapped, and maps the two channels (`origin: "direct"`).
 */
export interface DirectCapable extends Bridge {
  /**
   * The channel of the conversation between `user` (of this network) and `remote`'s stand-in here, opened (and the
   * stand-in created) when needed. Throws a permanent BridgeError, naming why, when there can be none (an unknown or
   * deactivated user, stand-ins turned off); a transient one when it may work later. Direct channels are never
   * joined by the core (`joinChannel` is for rooms): the connector keeps its own conversations reachable.
   */
  openDirect(input: { user: string; remote: Sender }): Promise<string>;
}

/** True when `bridge` implements {@link DirectCapable}. */
export function isDirectCapable(bridge: Bridge): bridge is DirectCapable {
  return typeof (bridge as Partial<DirectCapable>).openDirect === "function";
}

/** Optional capability: a remote user's stand-in follows their joins and leaves. Checked with {@link isMembershipCapable}. */
export interface MembershipCapable extends Bridge {
  /** Makes the sender's stand-in a member of `d.targetChannel`, or not. Best effort: not retried. */
  sendMembership(d: MembershipDelivery): Promise<void>;
}

/** True when `bridge` implements {@link MembershipCapable}. */
export function isMembershipCapable(bridge: Bridge): bridge is MembershipCapable {
  return typeof (bridge as Partial<MembershipCapable>).sendMembership === "function";
}

/** Optional capability: remote users' stand-ins show their status. Checked with {@link isStatusMirroring}. */
export interface StatusMirroring extends Bridge {
  /** Shows `change.status` on the stand-in of `change.sender` (of another network), if it has one. Best effort. */
  sendStatus(change: StatusChange): Promise<void>;
}

/** True when `bridge` implements {@link StatusMirroring}. */
export function isStatusMirroring(bridge: Bridge): bridge is StatusMirroring {
  return typeof (bridge as Partial<StatusMirroring>).sendStatus === "function";
}

/** Optional capability: remote users' stand-ins show their names and pictures. Checked with {@link isProfileMirroring}. */
export interface ProfileMirroring extends Bridge {
  /**
   * Updates the stand-in of `sender` (of another network), if it has one, to its display name and picture (fetched
   * with `BridgeContext.openAvatar` only when `sender.avatar.version` changed). Best effort.
   */
  sendProfile(sender: Sender): Promise<void>;
}

/** True when `bridge` implements {@link ProfileMirroring}. */
export function isProfileMirroring(bridge: Bridge): bridge is ProfileMirroring {
  return typeof (bridge as Partial<ProfileMirroring>).sendProfile === "function";
}

/** Optional capability: serves the pictures of this network's users. Checked with {@link isAvatarSource}. */
export interface AvatarSource extends Bridge {
  /** Opens `sender.avatar` (set by this connector), streaming. Errors as for {@link FileSource.openFile}. */
  openAvatar(sender: Sender, opts: OpenFileOptions): Promise<FileStream>;
}

/** True when `bridge` implements {@link AvatarSource}. */
export function isAvatarSource(bridge: Bridge): bridge is AvatarSource {
  return typeof (bridge as Partial<AvatarSource>).openAvatar === "function";
}

/**
 * Optional capability: a connector that can tell the author of a message from its network that the message will
 * never reach another network. The core checks for it with {@link isNoticeCapable} and calls it once per target
 * that gave up for good (a permanent error), after logging the failure.
 */
export interface NoticeCapable extends Bridge {
  /**
   * Tells the author of `message` (received from this network) that it was not delivered. `reason` is one sentence
   * fit for the author, naming the other network and without internals, e.g. "it is too long for Mattermost".
   * Best effort: resolves when the notice went out or could not; a failure is the connector's to log.
   */
  notifyUndeliverable(message: BridgeMessage, reason: string): Promise<void>;
}

/** True when `bridge` implements {@link NoticeCapable}. */
export function isNoticeCapable(bridge: Bridge): bridge is NoticeCapable {
  return typeof (bridge as Partial<NoticeCapable>).notifyUndeliverable === "function";
}

/** A message written to its channel, the network's confirmation still to come. */
export interface Dispatched {
  /** Resolves as {@link Bridge.send} would once the network confirmed the message; rejects as it would throw. */
  confirmed: Promise<SentRefs>;
}

/**
 * Optional capability: a connector whose channel keeps the order in which messages are written (one XMPP stream
 * into a room) lets the core write the next message before the previous one is confirmed. The core checks for it
 * with {@link isPipeliningBridge}; without it, each `send` is awaited before the next.
 */
export interface PipeliningBridge extends Bridge {
  /**
   * Writes `msg` into `msg.targetChannel` and resolves once it is written, with the promise of its confirmation.
   * Messages dispatched one after the other (each once the previous dispatch resolved) reach the channel in that
   * order. Throws, or rejects `confirmed`, with the errors `send` would throw. For a message whose order it cannot
   * keep by writing (another stream), it resolves only once the message is confirmed.
   */
  dispatch(msg: DirectionalMessage): Promise<Dispatched>;
}

/** True when `bridge` implements {@link PipeliningBridge}. */
export function isPipeliningBridge(bridge: Bridge): bridge is PipeliningBridge {
  return typeof (bridge as Partial<PipeliningBridge>).dispatch === "function";
}
