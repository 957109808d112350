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
   * Fetched by a catch-up (what was said while the bridge was away or its connection was down), not received live:
   * it reaches the other side late, so the target shows `timestamp` as its original time (a Mattermost prop, an
   * XEP-0203 delay). A flag set by the source rather than a guess from the age of `timestamp`, which comes from the
   * source server's clock and may differ from ours.
   */
  caughtUp?: boolean;
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

/** What a target network reports after delivering a message: the ids it created, in order. */
export interface SentRefs {
  ids: string[];
}
