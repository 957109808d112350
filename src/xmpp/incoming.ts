/**
 * What the XMPP connector hands the XEP modules that read a room's messages: the common part of every event read
 * from one ({@link IncomingBase}), and the shape of a reader ({@link IncomingReader}). Its own module, so that the XEP
 * modules need not import the connector that imports them.
 *
 * @module
 */
import type { BridgeEvent, Portal, Sender } from "../core/events.ts";
import type { Groupchat } from "./protocol/stanza.ts";

/** What every event read from a room's message carries, worked out once for the {@link IncomingReader}s. */
export interface IncomingBase {
  /** The room's stanza-id, else the sender's ids (`nick/id`). */
  eventId: string;
  /** Every id of the stanza, as a message's `ids`. */
  ids: string[];
  portal: Portal;
  sender: Sender;
  timestamp: number;
  caughtUp?: boolean;
  deliveryId?: string;
}

/**
 * Reads one kind of event from a room's message: the event, null to drop the stanza, or undefined when the stanza
 * is not of its kind.
 */
export type IncomingReader = (msg: Groupchat, base: IncomingBase) => BridgeEvent | null | undefined;
