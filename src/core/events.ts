/**
 * The protocol-neutral events that enter the core: one union, {@link BridgeEvent}, of every kind the bus handles.
 *
 * Each connector parses its network's stanzas or posts into these at its edge; the bus dispatches them by `kind` to
 * one small handler each (`core/handlers/`). Nothing here knows about stanzas or posts.
 *
 * @module
 */

/** Where an event happened: a channel of one network (Mattermost channel id, MUC room bare JID). */
export interface Portal {
  /** Name of the network (`Bridge.network`). */
  network: string;
  channel: string;
}

/** Who did it, as the source network names them. */
export interface Sender {
  /** The network the sender belongs to. */
  network: string;
  /** Stable id there (Mattermost user id, XMPP occupant-id or occupant JID). */
  id: string;
  /** Short handle: Mattermost username or MUC nick. */
  name: string;
  /** Human display name, when the network has one. */
  displayName?: string;
  /**
   * The sender's account across the whole network, when the network reveals it and it differs from `id` (XMPP: the
   * occupant's real bare JID, where `id` is the room's occupant-id). A user's stand-in on another network (a
   * Mattermost puppet) is keyed by `accountId ?? id`, so that it is the same in every room.
   */
  accountId?: string;
  /**
   * The sender's picture (see {@link AvatarRef}); `null` when the network says they have none of their own (an XMPP
   * presence's empty XEP-0153 photo, a Mattermost user on the default picture), so that their stand-ins go back to
   * theirs; undefined when it is not known (a sender whose profile could not be read), which changes nothing.
   */
  avatar?: AvatarRef | null;
}

/**
 * Who `sender` is across their network, whatever room or nick they use: their `accountId` when the network told
 * it, else their `id`. Their stand-ins on other networks (Mattermost puppets) are keyed by it.
 */
export function identityOf(sender: Sender): string {
  return sender.accountId ?? sender.id;
}

/**
 * A user's picture as the source network names it: compared by `version` to tell a changed picture, fetched through
 * `BridgeContext.openAvatar`.
 */
export interface AvatarRef {
  /** Changes whenever the picture does (a Mattermost `last_picture_update`, an XMPP avatar's SHA-1). */
  version: string;
  /** What the source connector finds the picture by; opaque to the core. */
  source: string;
}

/**
 * The other side of a one-to-one conversation: the user of another network that the sender wrote to (through that
 * user's stand-in on the sender's network: a ghost's JID, a puppet's DM channel).
 */
export interface DirectPeer {
  /** The network the addressee belongs to. */
  network: string;
  /** Their id there (a Mattermost user id, an XMPP bare JID). */
  id: string;
}

/** What every event carries. */
interface EventBase {
  /**
   * The network's own id of this event, stable across replays (post id; the room's stanza-id, else origin-id, else
   * message id). Unique per event: an edit has its own, not its target's. The bus drops an event whose id it
   * already handled.
   */
  eventId: string;
  portal: Portal;
  sender: Sender;
  /** Milliseconds since the epoch, as stamped by the source. */
  timestamp: number;
  /**
   * The stable id the network reflected back from one of our own sends (see `DirectionalMessage.deliveryId`), when
   * the connector found one: it lets the bus recognise its own output before the send has even returned.
   */
  deliveryId?: string;
  /**
   * Set on events of a one-to-one conversation (a direct message): whom it is with. The portal needs no mapping made
   * by an admin: the core opens the conversation on `direct.network` at the first event (`DirectCapable`) and maps
   * the two channels (`origin: "direct"`).
   */
  direct?: DirectPeer;
}

/**
 * A file sent with a message, as its source network describes it. Plain data: a message travels through the durable
 * outbox, so the bytes are never in it; the target connector asks the source network for them
 * (`BridgeContext.openFile`).
 */
export interface Attachment {
  /** File name, as the sender gave it (no path). */
  name: string;
  /** MIME type, when the source said. */
  mimeType?: string;
  /** Size in bytes, when known before fetching. */
  size?: number;
  /** What the source connector finds the file by (a Mattermost file id, a download URL); opaque to the core. */
  source: string;
  /**
   * An address a person can open the file at, when the source has one: shown instead of the file when it cannot be
   * copied (too large, refused).
   */
  url?: string;
}

/** A chat message. */
export interface BridgeMessage extends EventBase {
  kind: "message";
  /**
   * Every identifier the source network gave this message, most specific first (post id; or stanza-id, origin-id
   * and message id). All of them resolve to the message in the id map; the first is its `eventId`. Empty when the
   * network gave none (an XMPP message without any id): its `eventId` is then made up, and a replay of it cannot
   * be recognised.
   */
  ids: string[];
  /** Plain text (Mattermost markdown passes through unchanged). */
  text: string;
  /**
   * The text is an action the sender did ("waves"), not something said: Mattermost's `/me`, XMPP's `/me `
   * (XEP-0245). `text` holds the action without either network's marker.
   */
  action?: boolean;
  /**
   * Fetched by a catch-up (what was said while the bridge was away or its connection was down), not received live:
   * it reaches the other side late, so the target shows `timestamp` as its original time (a Mattermost prop, an
   * XEP-0203 delay). A flag set by the source rather than a guess from the age of `timestamp`, which comes from the
   * source server's clock and may differ from ours.
   */
  caughtUp?: boolean;
  /** Files sent with the message, in order; `text` may then be empty. */
  attachments?: Attachment[];
  /** The earlier message this one answers (a Mattermost thread reply, an XMPP reply or thread), when it does. */
  replyTo?: ReplyTo;
}

/**
 * What a message answers, as the source network names it: resolved in the id map only when the message is delivered
 * (a message waiting in the outbox keeps these plain ids). Where the parent never reached the target, the message
 * goes there on its own, led by {@link ReplyTo.quote}.
 */
export interface ReplyTo {
  /** An id of the message answered on the source network, as the id map knows it. */
  targetId: string;
  /**
   * Other names the answered message may go by in the id map, tried after `targetId` (an XMPP client may point at
   * the sender's message id, which the map knows qualified by the sender's nick).
   */
  otherIds?: string[];
  /**
   * The thread the message is in on the source network, when it says (Mattermost's root post id, XMPP's thread id):
   * tried in the id map when `targetId` is not found there.
   */
  thread?: string;
  /** The answered message's text as the source gave or quoted it, plain (without quote markers). */
  quote?: string;
  /** Who wrote the answered message, as the source named them, when the quote does not already say. */
  author?: string;
}

/** A new text for an earlier message (Mattermost post edit, XEP-0308 correction). */
export interface BridgeEdit extends EventBase {
  kind: "edit";
  /** An id of the edited message on the source network, as the id map knows it. */
  targetId: string;
  /** The whole new text, not a diff. */
  text: string;
  action?: boolean;
}

/** An earlier message taken back (Mattermost post deletion, XEP-0424 retraction), by its author or a moderator. */
export interface BridgeRemove extends EventBase {
  kind: "remove";
  /** An id of the removed message on the source network. */
  targetId: string;
  /**
   * Removed by a moderator (`sender`), as the source network itself vouches (the room's XEP-0425 announcement),
   * not by the author: the core then does not require the sender to be the author.
   */
  moderated?: boolean;
}

/**
 * The sender's reactions to an earlier message: their complete current set (XEP-0444's model; Mattermost's
 * one-at-a-time add and remove are folded into a set at its edge). An empty set withdraws them all.
 */
export interface BridgeReactions extends EventBase {
  kind: "reactions";
  /** An id of the message reacted to on the source network. */
  targetId: string;
  /** Unicode emoji, each once. */
  emojis: string[];
}

/** The sender started or stopped typing (XEP-0085 chat states, Mattermost's typing event). */
export interface BridgeTyping extends EventBase {
  kind: "typing";
  /** True while typing, false once stopped. */
  active: boolean;
}

/**
 * The sender joined or left the portal (an XMPP occupant entered or left the room): their stand-in on the other
 * network follows (a Mattermost puppet joins or leaves the channel). Best effort, in queue order.
 */
export interface BridgeMembership extends EventBase {
  kind: "membership";
  /** True once joined, false once gone. */
  present: boolean;
}

/** Every event that enters the core, discriminated by `kind`. */
export type BridgeEvent =
  | BridgeMessage
  | BridgeEdit
  | BridgeRemove
  | BridgeReactions
  | BridgeTyping
  | BridgeMembership;

/** The name of one kind of {@link BridgeEvent}. */
export type EventKind = BridgeEvent["kind"];

/** The kinds the core handles. */
export const EVENT_KINDS: readonly EventKind[] = [
  "message",
  "edit",
  "remove",
  "reactions",
  "typing",
  "membership",
];

/** The events that point at an earlier message. */
export type TargetedEvent = BridgeEdit | BridgeRemove | BridgeReactions;

/**
 * What is wrong with `value` as a {@link BridgeEvent}, or undefined when it is one the core can route: a known
 * `kind`, an `eventId`, a `portal`, a `sender`, and the fields the kind's handler reads first. Deeper checks (a
 * sender's name, emoji syntax) are the parsing connector's. Guards the core against a connector (or a newer one)
 * handing it something it cannot handle.
 *
 * @example
 * ```ts
 * eventProblem({ kind: "poll" }); // "unknown kind \"poll\""
 * ```
 */
export function eventProblem(value: unknown): string | undefined {
  if (typeof value !== "object" || value === null) return "not an object";
  const e = value as Record<string, unknown>;
  if (!(EVENT_KINDS as readonly unknown[]).includes(e.kind)) {
    return typeof e.kind === "string" ? `unknown kind "${e.kind.slice(0, 40)}"` : "no kind";
  }
  if (typeof e.eventId !== "string" || e.eventId === "") return "no eventId";
  const portal = e.portal as Record<string, unknown> | undefined;
  if (typeof portal?.network !== "string" || typeof portal.channel !== "string") return "no portal";
  const sender = e.sender as Record<string, unknown> | undefined;
  if (typeof sender?.network !== "string" || typeof sender.id !== "string") return "no sender";
  const direct = e.direct as Record<string, unknown> | undefined;
  if (direct !== undefined && (typeof direct?.network !== "string" || typeof direct.id !== "string")) {
    return "a direct peer without network and id";
  }
  switch (e.kind) {
    case "message":
      if (!Array.isArray(e.ids)) return "a message without ids";
      if (e.replyTo !== undefined && typeof (e.replyTo as { targetId?: unknown })?.targetId !== "string") {
        return "a reply without a targetId";
      }
      if (e.attachments !== undefined && !Array.isArray(e.attachments)) {
        return "attachments that are not a list";
      }
      return typeof e.text === "string" ? undefined : "a message without text";
    case "edit":
      if (typeof e.text !== "string") return "an edit without text";
      break;
    case "reactions":
      if (!Array.isArray(e.emojis)) return "reactions without emojis";
      break;
    case "typing":
      return typeof e.active === "boolean" ? undefined : "typing without active";
    case "membership":
      return typeof e.present === "boolean" ? undefined : "membership without present";
  }
  return typeof e.targetId === "string" ? undefined : `${e.kind} without a targetId`;
}
