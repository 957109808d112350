/**
 * What the bus hands a connector to deliver: an event on its way to one target network and channel, and what the
 * connector answers. The events themselves are in `events.ts`.
 *
 * @module
 */
import type {
  BridgeEdit,
  BridgeEvent,
  BridgeMembership,
  BridgeMessage,
  BridgeReactions,
  BridgeRemove,
  BridgeTyping,
} from "./events.ts";

// The message kind keeps its name, and its home here, for the code that knew only messages.
export type { BridgeMessage } from "./events.ts";

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
  /**
   * The message `message.replyTo` answers, as the id map knows it on the target network: looked up by the bus when
   * the message is delivered, never stored with it (the outbox keeps the message as it was accepted). Absent when
   * the message answers nothing, or its parent never reached the target.
   */
  parent?: MessageRef;
}

/**
 * An event other than a message on its way to one target network and channel. (A message travels as a
 * {@link DirectionalMessage}, the shape connectors and the outbox know.)
 */
export interface DirectionalEvent<E> {
  source: string;
  target: string;
  targetChannel: string;
  event: E;
  /** As {@link DirectionalMessage.deliveryId}: derived from the event's id, the same on every retry. */
  deliveryId: string;
}

/**
 * An event that points at an earlier message, with that message as the id map knows it on the target network:
 * the connector picks the id its protocol refers to it by.
 */
export interface TargetedDelivery<E> extends DirectionalEvent<E> {
  targetMessage: MessageRef;
}

/** An edit to apply to a bridged message. */
export type EditDelivery = TargetedDelivery<BridgeEdit>;
/** A removal of a bridged message. */
export type RemoveDelivery = TargetedDelivery<BridgeRemove>;
/** A sender's current reaction set on a bridged message. */
export interface ReactionsDelivery extends TargetedDelivery<BridgeReactions> {
  /**
   * The union of the current sets of every sender of the source network on that message, the sender's included:
   * what a voice that reacts for all of them (a relay, a bot) shows. Each emoji once, in first-seen order.
   */
  shared: string[];
}
/** A typing notification. */
export type TypingDelivery = DirectionalEvent<BridgeTyping>;
/** A join or leave for the sender's stand-in. */
export type MembershipDelivery = DirectionalEvent<BridgeMembership>;

/** Anything the bus queues for one target channel: a message, or an event of another kind. */
export type Delivery = DirectionalMessage | DirectionalEvent<Exclude<BridgeEvent, BridgeMessage>>;

/** The event `d` carries. */
export function eventOf(d: Delivery): BridgeEvent {
  return "message" in d ? d.message : d.event;
}

/**
 * Who made one part of a message on its network: the bridge's relaying account, a stand-in of the author there (an
 * XMPP ghost account or component puppet, named by its JID; on Mattermost a user id), or the author themself (the
 * network the message was written on). `unknown` marks parts recorded before schema 3, which did not say.
 */
export type PartSender =
  | { kind: "relay" }
  | { kind: "ghost" | "puppet"; id: string }
  /**
   * `id`: the author's id on the source network (their `Sender.id`), which an edit or removal must come from.
   * Absent on records made before edits were bridged: the author of those cannot be told, so they are not edited.
   */
  | { kind: "author"; id?: string }
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
  /**
   * The thread this part is in on this network, in the form the network names threads by: Mattermost's root post
   * id; XMPP's `<thread>` id.
   */
  threadRoot?: string;
  /** The id of the message this one answers on this network (the one its protocol points at). */
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

/** Where a message lives on one network. */
export interface MessageRef {
  channel: string;
  /**
   * Every id the message is found by there, each indexed as `["msg", network, channel, id]`: post ids (one per split
   * piece), or message id, origin-id, stanza-id (sender-chosen ids of a received XMPP message as `nick/id`).
   */
  ids: string[];
  /** The pieces the message is there, in order, with their named ids and who sent each. */
  parts: MessagePart[];
}
