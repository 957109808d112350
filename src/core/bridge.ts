/**
 * The narrow interface every network connector implements, and what the core hands it.
 *
 * Adding a network means one folder that implements {@link Bridge}; the core checks for nothing else.
 *
 * @module
 */
import type { BridgeMessage, DirectionalMessage, IdName, SentRefs } from "./message.ts";

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
   * Hands a message received from the network to the core. Must be called in the order messages arrived.
   * The core decides whether the channel is mapped; the connector needs not check.
   */
  receive(message: BridgeMessage): void;
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
}

/**
 * A connection to one chat network.
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
