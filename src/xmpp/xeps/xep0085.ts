/**
 * XEP-0085 Chat State Notifications in rooms and 1:1 chats: an occupant is `composing` a message, has `paused`, or is `active`
 * again (its message came). In, a body-less groupchat carrying `<composing/>` starts the sender's typing and
 * `<paused/>`, `<active/>`, `<inactive/>` or `<gone/>` end it; out, {@link ChatStates} sends a voice's state
 * changes to a room, no more often than its interval allows, and marks the voice's next message `<active/>` so
 * that clients clear the "is typing" they show.
 *
 * Chat states carry a no-store hint (XEP-0334): they are momentary and never belong in a room's archive.
 *
 * @module
 */
import { xml } from "@xmpp/client-core";
import type { BridgeTyping } from "../../core/events.ts";
import type { Element } from "../session/client.ts";
import type { IncomingBase, IncomingReader } from "../incoming.ts";
import { NS_CHAT_STATES, NS_HINTS } from "../protocol/ns.ts";
import type { Groupchat } from "../protocol/stanza.ts";

/** The five states of XEP-0085 §2. */
export type ChatState = "active" | "composing" | "paused" | "inactive" | "gone";

const STATES: readonly ChatState[] = ["active", "composing", "paused", "inactive", "gone"];

/** The chat state a stanza carries, if any. */
export function chatStateOf(stanza: Element): ChatState | undefined {
  return STATES.find((state) => stanza.getChild(state, NS_CHAT_STATES) !== undefined);
}

/**
 * A standalone chat state for `room` (no body, no id to track: nothing refers to it), with a no-store hint.
 *
 * @example
 * ```ts
 * buildChatState("room@muc.example.org", "composing").toString();
 * // <message type="groupchat" to="room@muc.example.org"><composing xmlns="http://jabber.org/protocol/chatstates"/>…
 * ```
 */
export function buildChatState(room: string, state: ChatState): Element {
  return xml(
    "message",
    { type: "groupchat", to: room },
    xml(state, { xmlns: NS_CHAT_STATES }),
    xml("no-store", { xmlns: NS_HINTS }),
  );
}

/**
 * Reads an occupant's body-less chat state as typing: `composing` starts it, any other state ends it. A message with
 * a body is a message (its `<active/>` is for the clients), and chat states from a catch-up are stale: both
 * left to the other readers, or dropped. Each gets an event id of its own: a client may reuse one stanza id for
 * all its chat states, or send none.
 */
export const readChatState: IncomingReader = (
  msg: Groupchat,
  base: IncomingBase,
): BridgeTyping | null | undefined => {
  if (msg.nick === "" || msg.body !== undefined) return undefined;
  return typingOf(msg.stanza, base);
};

/**
 * Reads a body-less chat state as typing, as {@link readChatState} does for rooms, from `stanza` wherever it came
 * (a 1:1 chat); undefined when it carries none, null when it is stale (held by a server, a catch-up).
 */
export function typingOf(stanza: Element, base: IncomingBase): BridgeTyping | null | undefined {
  const state = chatStateOf(stanza);
  if (state === undefined) return undefined;
  if (base.caughtUp) return null;
  const { ids: _, caughtUp: __, deliveryId: ___, ...common } = base;
  return {
    kind: "typing",
    ...common,
    eventId: `chatstate:${crypto.randomUUID()}`,
    active: state === "composing",
  };
}

/** How {@link ChatStates} writes: the voice's stanza to the room. */
export type ChatStateWriter = (stanza: Element) => Promise<void>;

/** One voice's chat state in one room. */
interface VoiceState {
  /** The last state written. */
  sent: ChatState;
  /** When it was written. */
  at: number;
  /** A change that came too soon after the last, written when the interval is over (the newest wins). */
  pending?: { state: ChatState; write: ChatStateWriter; timer: ReturnType<typeof setTimeout> };
}

/**
 * The chat states the bridge's voices (ghosts, puppets) show in rooms: only changes are written, at most one per
 * `minIntervalMs` per voice and room (a change that comes sooner is held, and the newest held one written when the
 * interval is over), so that a burst of typing events costs a room one stanza per voice and interval.
 *
 * @example
 * ```ts
 * const states = new ChatStates(1_000);
 * await states.set(room, ghost.jid, "composing", (el) => ghost.send(el));
 * states.messageSent(room, ghost.jid, message); // adds <active/>: the message ends the composing
 * ```
 */
export class ChatStates {
  /** By `room voice`. */
  private readonly voices = new Map<string, VoiceState>();

  constructor(private readonly minIntervalMs = 1_000) {}

  /** Shows `state` for `voice` in `room` through `write`, unless it shows already. Rejects when the write fails. */
  async set(room: string, voice: string, state: ChatState, write: ChatStateWriter): Promise<void> {
    const key = `${room} ${voice}`;
    const known = this.voices.get(key);
    if (known?.pending) {
      // The newest change replaces the held one; one that returns to what shows cancels it.
      clearTimeout(known.pending.timer);
      known.pending = undefined;
    }
    if ((known?.sent ?? "active") === state) return;
    const wait = known ? known.at + this.minIntervalMs - Date.now() : 0;
    if (wait > 0) {
      const timer = setTimeout(() => {
        if (known!.pending?.timer !== timer) return;
        known!.pending = undefined;
        this.write(key, room, state, write).catch(() => {});
      }, wait);
      known!.pending = { state, write, timer };
      return;
    }
    await this.write(key, room, state, write);
  }

  /**
   * Marks `message`, which `voice` is about to send to `room`, `<active/>` when that voice showed another state
   * there: the message ends it (XEP-0085 §5.1), and no chat state held for later is written after it.
   */
  messageSent(room: string, voice: string, message: Element): void {
    const key = `${room} ${voice}`;
    const known = this.voices.get(key);
    if (!known) return;
    clearTimeout(known.pending?.timer);
    this.voices.delete(key);
    if (known.sent !== "active") message.append(xml("active", { xmlns: NS_CHAT_STATES }));
  }

  /** Forgets every state (the bridge is stopping, or the voices left the rooms). */
  clear(): void {
    for (const state of this.voices.values()) clearTimeout(state.pending?.timer);
    this.voices.clear();
  }

  private async write(key: string, room: string, state: ChatState, write: ChatStateWriter): Promise<void> {
    await write(buildChatState(room, state));
    this.voices.set(key, { sent: state, at: Date.now() });
  }
}
