/**
 * The protocol-neutral message model that flows through the bus.
 *
 * Each connector parses its network's events into these types at its edge and renders them back at the other
 * edge; nothing here knows about stanzas or posts.
 *
 * @module
 */

/** Who wrote a message, as the source network names them. */
export interface Author {
  /** Stable id on the source network (Mattermost user id, XMPP occupant JID or occupant-id). */
  id: string;
  /** Short handle: Mattermost username or MUC nick. */
  name: string;
  /** Human display name, when the network has one. */
  displayName?: string;
}

/** A chat message received from one network, before it is routed anywhere. */
export interface BridgeMessage {
  /** Name of the network the message came from (`Bridge.network`). */
  network: string;
  /** Channel on that network: Mattermost channel id or MUC room bare JID. */
  channel: string;
  /**
   * Every identifier the source network gave this message, most specific first
   * (post id; or message id, origin-id and stanza-id). All of them resolve to the message in the id map.
   */
  ids: string[];
  author: Author;
  /** Plain text (Mattermost markdown passes through unchanged). */
  text: string;
  /**
   * The text is an action the author did ("waves"), not something said: Mattermost's `/me`, XMPP's `/me `
   * (XEP-0245). `text` holds the action without either network's marker.
   */
  action?: boolean;
  /** Milliseconds since the epoch, as stamped by the source. */
  timestamp: number;
  /**
   * The stable id the network reflected back from a send (see {@link DirectionalMessage.deliveryId}), when the
   * connector found one: it lets the bus recognise its own delivery before the send has even returned.
   */
  deliveryId?: string;
}

/** A message on its way to one target network and channel. */
export interface DirectionalMessage {
  /** The network the message came from; the bus never delivers it back there. */
  source: string;
  /** The network it is delivered to. */
  target: string;
  /** Channel on the target network. */
  targetChannel: string;
  message: BridgeMessage;
  /**
   * Chosen once by the bus and the same on every retry. The connector sends it along in a form the network echoes
   * back and can deduplicate on (Mattermost's `pending_post_id`, XMPP's origin-id).
   */
  deliveryId: string;
}

/**
 * Who made one part of a message on its network: the bridge's relaying account, a stand-in of the author there (an
 * XMPP ghost account or component puppet, named by its JID; on Mattermost a user id), or the author themself (the
 * network the message was written on). `unknown` marks parts recorded before schema 3, which did not say.
 */
export type PartSender =
  | { kind: "relay" }
  | { kind: "ghost" | "puppet"; id: string }
  | { kind: "author" }
  | { kind: "unknown" };

/** The names a network gives one part of a message; each network sets the ones it has. */
export interface PartIds {
  /** XMPP: the `id` attribute, chosen by the sender (XEP-0308 corrections point at it). */
  messageId?: string;
  /** XMPP: the sender's XEP-0359 origin-id. */
  originId?: string;
  /** XMPP: the room's XEP-0359 stanza-id (XEP-0424/0444/0461 point at it in a groupchat). */
  stanzaId?: string;
  /** Mattermost: the post id. */
  postId?: string;
}

/** The name of one of {@link PartIds}. */
export type IdName = keyof PartIds;

/**
 * One piece of a message on one network (a Mattermost post; an XMPP message): its named ids, who sent it there,
 * and where it sits in a thread when known.
 */
export interface MessagePart extends PartIds {
  sender: PartSender;
  /** The id of the thread's root message on this network. */
  threadRoot?: string;
  /** The id of the message this one answers on this network. */
  replyTo?: string;
}

/**
 * What a target network reports after delivering a message: the ids it created, in order (each is recorded in the
 * id map), and, per piece, its named ids and sender.
 */
export interface SentRefs {
  ids: string[];
  parts?: MessagePart[];
}
