/**
 * What the bus lends the handler of each event kind: the connectors, the id map, and delivery with retries.
 *
 * A handler runs at its event's turn in the target channel's delivery queue, after everything routed there before
 * it, so the message an edit points at has been delivered (and recorded) by then.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { Bridge } from "../bridge.ts";
import type { Work } from "../delivery_queue.ts";
import type { TargetedEvent } from "../events.ts";
import type { Delivery, DirectionalEvent, DirectionalMessage } from "../message.ts";
import type { MessageRef, Store } from "../store.ts";
import type { ReactionCoalescer } from "../reaction_coalescer.ts";

/** Outcome of {@link HandlerContext.attempt}. */
export type Attempt<T> =
  | { ok: true; value: T }
  /** `handled`: given up on for good (true), or abandoned because the bus stopped (false). */
  | { ok: false; handled: boolean };

/** Counters a handler moves. */
export type HandlerCount =
  /** The target connector cannot show the event there, and it has no fallback. */
  | "unsupported"
  /** The message the event points at never reached the target. */
  | "unresolved"
  /** An edit or removal by someone other than the author of the message it points at. */
  | "notAuthor";

/** The bus, as a handler sees it. */
export interface HandlerContext {
  readonly store: Store;
  /** The connector of `network` (a target the bus routed to, so it exists). */
  bridge(network: string): Bridge;
  /**
   * Delivers a message with retries and records it in the id map. `done`: true when it landed or was given up on
   * for good, false when the bus stopped first; `written` once it is on the wire (the next message may follow).
   * `as`: what the connector is handed instead of `dm` itself, when the handler worked something out at delivery
   * (its parent, a quote); `dm` stays the message the bus accepted, recorded and keeps in the outbox.
   */
  deliverMessage(dm: DirectionalMessage, as?: DirectionalMessage): Work;
  /** Runs `send` for `d`, retrying transient failures with the bus' backoff until it lands or the bus stops. */
  attempt<T>(d: Delivery, send: () => Promise<T>): Promise<Attempt<T>>;
  count(what: HandlerCount): void;
  /** The newest reaction set queued per sender and message: an older one is skipped (see reaction_coalescer.ts). */
  readonly reactions: ReactionCoalescer;
  /**
   * Resolves once the id-map records of the messages delivered so far are written: records go in group commits
   * behind the deliveries, and an event that points at a message just delivered must find it.
   */
  recorded(): Promise<void>;
  /**
   * Resolves (true) once the messages under way to `channel` of `network` are recorded, or at once (false) when
   * there are none: the message an event points at may be one of them, its confirmation not read yet.
   */
  deliveredTo(network: string, channel: string): Promise<boolean>;
}

const log = getLogger(["mmxmpp", "bus"]);

/**
 * The message `d` points at, as the id map knows it on the target network, or undefined (counted and logged) when
 * it never got there: sent before the channel was mapped, or given up on.
 */
export async function resolveTarget(
  d: DirectionalEvent<TargetedEvent>,
  ctx: HandlerContext,
): Promise<MessageRef | undefined> {
  const { portal, targetId } = d.event;
  const find = async () => {
    await ctx.recorded();
    return (await ctx.store.findLink(portal.network, portal.channel, targetId))?.refs[d.target];
  };
  const ref = await find() ??
    (await ctx.deliveredTo(portal.network, portal.channel) ? await find() : undefined);
  if (ref) return ref;
  unresolved(d, ctx);
  return undefined;
}

/** Counts and logs `d` as dropped: the message it points at never reached the target network. */
export function unresolved(d: DirectionalEvent<TargetedEvent>, ctx: HandlerContext): void {
  ctx.count("unresolved");
  log.debug("Dropped the {kind} of a message that never reached {target} {channel}", {
    kind: d.event.kind,
    target: d.target,
    channel: d.targetChannel,
    eventId: d.event.eventId,
    targetId: d.event.targetId,
  });
}

/** Counts and logs (at debug: it is expected) an event `d`'s target cannot show. Always true: settled. */
export function unsupported(d: DirectionalEvent<{ kind: string }>, ctx: HandlerContext): boolean {
  ctx.count("unsupported");
  log.debug("{target} cannot show a {kind} in {channel}: dropped", {
    kind: d.event.kind,
    target: d.target,
    channel: d.targetChannel,
  });
  return true;
}
