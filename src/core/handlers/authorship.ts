/**
 * Who may edit or remove a bridged message: only its author, as the source network named them when it was bridged
 * (the `id` of the source part's `author` sender), or a moderator the source network itself vouches for (a
 * `moderated` removal, of a message written there: a room's moderator has no say over a Mattermost post). Anyone else's edit or removal is refused and logged: a bridge that applies whatever points
 * at a stored id lets one user rewrite another's words on the other side (matterbridge #1396, #1568).
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { BridgeEdit, BridgeRemove } from "../events.ts";
import type { DirectionalEvent, MessageRef } from "../message.ts";
import type { MessageLink } from "../store.ts";
import { type HandlerContext, unresolved } from "./context.ts";

const log = getLogger(["mmxmpp", "bus"]);

/** What an edit or removal points at, as far as the sender may touch it. */
export type Original =
  /** Bridged, written by the sender (or moderated), and delivered to the target as `ref`. */
  | { status: "found"; ref: MessageRef }
  /** The id map knows no message by that id: never bridged (or before the id map). */
  | { status: "unknown" }
  /** Bridged, but not written by the sender: refused, logged and counted. */
  | { status: "notAuthor" }
  /** Bridged and theirs, but it never reached the target (counted). */
  | { status: "unresolved" };

/**
 * The message `d` points at, when its sender may edit or remove it: see {@link Original}. Waits for the id-map
 * records of the messages delivered so far, so that an edit right behind its message finds it.
 */
export async function findOwnOriginal(
  d: DirectionalEvent<BridgeEdit | BridgeRemove>,
  ctx: HandlerContext,
): Promise<Original> {
  const { portal, targetId, sender } = d.event;
  await ctx.recorded();
  const link = await ctx.store.findLink(portal.network, portal.channel, targetId);
  if (!link) return { status: "unknown" };
  // A moderator's word counts in their own channel: not for a copy of a message written on the other network.
  const moderated = d.event.kind === "remove" && d.event.moderated === true && link.source === portal.network;
  if (!moderated && authorOf(link, portal.network) !== sender.id) {
    ctx.count("notAuthor");
    // Not an error of ours: someone tried to change a message that is not theirs. Who it was, never what they wrote.
    log.warn(
      "Ignored a {kind} by {sender} ({senderId}) in {network} {channel}: the message it points at is not theirs",
      {
        kind: d.event.kind,
        sender: sender.name,
        senderId: sender.id,
        network: portal.network,
        channel: portal.channel,
        eventId: d.event.eventId,
        targetId,
        recordedAuthor: authorOf(link, portal.network) ?? "not recorded",
      },
    );
    return { status: "notAuthor" };
  }
  const ref = link.refs[d.target];
  if (ref) return { status: "found", ref };
  unresolved(d, ctx);
  return { status: "unresolved" };
}

/**
 * The id of the author of `link` when it was written on `network`, else undefined: a message bridged into
 * `network` from elsewhere has no author there (its copy was made by the bridge), and a link recorded before
 * authors were kept does not say.
 */
export function authorOf(link: MessageLink, network: string): string | undefined {
  if (link.source !== network) return undefined;
  const sender = link.refs[network]?.parts[0]?.sender;
  return sender?.kind === "author" ? sender.id : undefined;
}
