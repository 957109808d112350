/**
 * One voice per sender on XMPP (an "intent", in mautrix's word): the bridge's relay occupant, an IBR ghost and a
 * component puppet differ only in which full JID speaks, so the connector builds a stanza once and hands it to
 * whichever intent speaks for the author.
 *
 * Sending and awaiting the room's reflection are separable: {@link Intent.sendAhead} resolves once the stanza is
 * written and hands back the reflection still to come, so a caller may send the next message meanwhile;
 * {@link Intent.sendAwaitingReflection} is both in one step.
 *
 * @module
 */
import { BridgeError, errorMessage } from "../../core/errors.ts";
import type { Element, XmppClient } from "../session/client.ts";
import type { MucRooms } from "../muc/rooms.ts";
import type { Reflections } from "../muc/reflections.ts";

/** What the room's reflection of a sent message tells. */
export interface Reflected {
  /** The room-assigned XEP-0359 stanza-id, when the room gave one. */
  stanzaId?: string;
}

/** A stanza written to the stream, its reflection still to come. */
export interface Written {
  /** Resolves with the reflection; rejects with a transient BridgeError on a bounce, a timeout or a disconnect. */
  reflected: Promise<Reflected>;
}

/** A JID that speaks in rooms. */
export interface Intent {
  /** The full JID it speaks from, for logs and for recording who sent a message. */
  readonly jid: string;
  /**
   * Makes it an occupant of `room`, joining when it can join on its own (ghosts and puppets); throws a transient
   * BridgeError when it cannot speak there right now.
   */
  ensureJoined(room: string): Promise<void>;
  /** Writes any stanza as this JID. Resolves once written; nothing is awaited from the room. */
  send(stanza: Element): Promise<void>;
  /**
   * Sends `stanza`, a groupchat message to `room` whose origin-id is `id`, and resolves once it is written, with the
   * reflection still to come. A failed write rejects with a transient BridgeError.
   */
  sendAhead(room: string, stanza: Element, id: string): Promise<Written>;
  /** Sends like {@link Intent.sendAhead} and resolves when the room reflected the message. */
  sendAwaitingReflection(room: string, stanza: Element, id: string): Promise<Reflected>;
}

/**
 * What every intent shares: sending a groupchat message and matching the room's reflection to it. A subclass says
 * who it is, how it joins and how it writes; its owner feeds the groupchats it receives to `reflections.settle`.
 */
export abstract class ReflectingIntent implements Intent {
  constructor(protected readonly reflections: Reflections) {}

  abstract readonly jid: string;
  abstract ensureJoined(room: string): Promise<void>;
  abstract send(stanza: Element): Promise<void>;

  async sendAhead(room: string, stanza: Element, id: string): Promise<Written> {
    // Waiting starts before the write, so that an early reflection is never missed.
    const pending = this.reflections.expect(room, id);
    try {
      await this.send(stanza);
    } catch (err) {
      const failure = new BridgeError(`cannot send to ${room} as ${this.jid}: ${errorMessage(err)}`, {
        transient: true,
      });
      this.reflections.cancel(id, failure);
      throw failure;
    }
    const reflected = pending.then((stanzaId) => ({ stanzaId }));
    // Marked handled: a caller that sends ahead may learn of a failed reflection later, or from the next send.
    reflected.catch(() => {});
    return { reflected };
  }

  async sendAwaitingReflection(room: string, stanza: Element, id: string): Promise<Reflected> {
    const { reflected } = await this.sendAhead(room, stanza, id);
    return await reflected;
  }
}

/**
 * The intent of one client session of its own: the bridge's relay account, or an IBR ghost's account. With
 * `joinAs` it joins rooms under that nick on demand; without it (the relay, whose joins come with a catch-up) it
 * only speaks where its owner joined it.
 *
 * @example
 * ```ts
 * const relay = new SessionIntent(client, muc, reflections);
 * await relay.ensureJoined(room);
 * const { stanzaId } = await relay.sendAwaitingReflection(room, buildGroupchat(room, "hi", id), id);
 * ```
 */
export class SessionIntent extends ReflectingIntent {
  /** Joins in progress by room, so that concurrent sends share one join. */
  private readonly joining = new Map<string, Promise<void>>();

  constructor(
    private readonly client: XmppClient,
    private readonly muc: MucRooms,
    reflections: Reflections,
    /** The nick it joins rooms as; updated when the author's name changes. */
    public joinAs?: string,
  ) {
    super(reflections);
  }

  get jid(): string {
    return this.client.jid?.toString() ?? "";
  }

  async ensureJoined(room: string): Promise<void> {
    if (this.client.status === "online" && this.muc.nickIn(room)) return;
    if (this.client.status !== "online" || this.joinAs === undefined) {
      throw new BridgeError(`not in ${room} right now`, { transient: true });
    }
    let joining = this.joining.get(room);
    if (!joining) {
      joining = this.muc.join(room, this.joinAs).then(() => {}).finally(() => this.joining.delete(room));
      this.joining.set(room, joining);
    }
    await joining;
  }

  send(stanza: Element): Promise<void> {
    return this.client.send(stanza);
  }
}
