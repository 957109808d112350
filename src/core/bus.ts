/**
 * The message bus: routes each received event to the mapped channel on every other network, in order, with
 * retries, and hands it there to the handler of its kind (`handlers/`); messages are recorded in the id map. Every
 * message delivery goes through the durable outbox (outbox.ts): written before it is attempted, removed when it is
 * recorded, delivered again after a crash. Each target channel has its own delivery queue (delivery_queue.ts): when
 * its connector can pipeline ({@link PipeliningBridge}), up to {@link PIPELINE_WINDOW} messages are on the wire there
 * before the first is confirmed.
 *
 * Loop prevention happens three times: an event is never delivered to the network it came from; an event that
 * carries the delivery id of one of our own recent deliveries is its echo (recorded before sending, so this holds
 * even when the echo arrives before the send returns); and an event whose own id (a message's ids, any other
 * event's `eventId`, never the id it points at) is in flight, recently handled, in the id map or (an edit, removal
 * or reactions event) recorded as handled is either an echo of our own output or a replay of something already
 * bridged. Such events are dropped.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { getLogger } from "@logtape/logtape";
import {
  type Bridge,
  isDirectCapable,
  isNoticeCapable,
  isPipeliningBridge,
  type PipeliningBridge,
} from "./bridge.ts";
import { Backoff, type BackoffPolicy } from "./backoff.ts";
import { sleep } from "./deadline.ts";
import { DeliveryQueue, type Work } from "./delivery_queue.ts";
import { BridgeError, errorMessage, isTransient } from "./errors.ts";
import { type BridgeEvent, type BridgeMessage, eventProblem } from "./events.ts";
import type { Attempt, HandlerContext, HandlerCount } from "./handlers/context.ts";
import { handleEdit } from "./handlers/edit.ts";
import { handleMessage } from "./handlers/message.ts";
import { handleReactions } from "./handlers/reactions.ts";
import { handleRemove } from "./handlers/remove.ts";
import { handleTyping } from "./handlers/typing.ts";
import { handleMembership } from "./handlers/membership.ts";
import {
  type Delivery,
  type DirectionalMessage,
  eventOf,
  type MessagePart,
  type SentRefs,
} from "./message.ts";
import { Outbox } from "./outbox.ts";
import { ReactionCoalescer } from "./reaction_coalescer.ts";
import { RecentKeys } from "./recent_keys.ts";
import type { ChannelMapping, MessageLink, OutboxEntry, RouteFacts, Store } from "./store.ts";

const log = getLogger(["mmxmpp", "bus"]);

/** How many recent delivery ids are remembered to recognise their echoes, and event ids to recognise replays. */
const OWN_DELIVERY_MEMORY = 10_000;

/**
 * How many messages may be under way to one channel (written, not yet confirmed) when its connector keeps their
 * order ({@link isPipeliningBridge}). Bounds what one channel has in flight.
 */
export const PIPELINE_WINDOW = 32;

/** How long a reply or an edit whose target is not in the id map waits for deliveries under way to its channel. */
const UNDERWAY_WAIT_MS = 5_000;

/** Counters the bus keeps; exported as metrics. */
export interface BusStats {
  received: number;
  delivered: number;
  retried: number;
  failed: number;
  echoesDropped: number;
  duplicatesDropped: number;
  unmapped: number;
  /** Events the core cannot handle (an unknown kind, a missing field): dropped. */
  unhandled: number;
  /** Deliveries the target could not show and that have no fallback (a reaction where there are none). */
  unsupported: number;
  /** Deliveries of an event whose target message never reached that network. */
  unresolved: number;
  /** Edits and removals refused because their sender did not write the message they point at. */
  notAuthor: number;
}

/** Retry timing; tests shorten it. */
export type RetryPolicy = BackoffPolicy;

/**
 * Routes messages between bridges.
 *
 * @example
 * ```ts
 * const bus = new MessageBus(store, new Map([["xmpp", xmppBridge], ["mattermost", mmBridge]]));
 * bus.publish(message); // delivered asynchronously, in order per channel
 * await bus.drain();
 * ```
 */
export class MessageBus {
  readonly stats: BusStats = {
    received: 0,
    delivered: 0,
    retried: 0,
    failed: 0,
    echoesDropped: 0,
    duplicatesDropped: 0,
    unmapped: 0,
    unhandled: 0,
    unsupported: 0,
    unresolved: 0,
    notAuthor: 0,
  };
  /** One promise chain per source channel keeps routing in arrival order. */
  private readonly inbound = new Map<string, Promise<void>>();
  /** One queue per target channel keeps delivery in order and lets one slow channel not block the others. */
  private readonly outbound = new Map<string, DeliveryQueue<Delivery>>();
  /** Source ids of events queued or being delivered: a copy arriving meanwhile is a duplicate too. */
  private readonly inFlight = new Set<string>();
  /**
   * Source ids of recently settled events, oldest first: a replay of one is a duplicate without a look-up (messages
   * are in the id map, edits, removals and reactions recorded by `Store.eventSeen`, for a replay after a restart).
   */
  private readonly settledEvents = new RecentKeys(OWN_DELIVERY_MEMORY);
  /** `network, channel, delivery id` of our recent deliveries: an event carrying one is an echo. */
  private readonly ownDeliveries = new RecentKeys(OWN_DELIVERY_MEMORY);
  /** What the kinds' handlers may use of the bus. */
  private readonly handlerContext: HandlerContext;
  private stopped = false;
  /** Aborted by `stop` so that no backoff outlives the bus. */
  private readonly abort = new AbortController();
  private readonly outbox: Outbox;
  /**
   * Each queued delivery's outbox entry (written, or being written, in the outbox's commits). Its record removes it
   * in a later commit than the one that writes it, or the same one.
   */
  private readonly accepted = new WeakMap<DirectionalMessage, OutboxEntry>();
  /** Deliveries wait on this while restored ones are held for the connectors (see {@link restore}). */
  private gate: Promise<void> = Promise.resolve();
  private openGate?: () => void;
  private restored = false;
  /** Id-map records still being written, by delivery: a delivery is settled once recorded. */
  private readonly recording = new Map<DirectionalMessage, Promise<void>>();
  /** Message deliveries under way, by target channel: each resolves once recorded, or given up on. */
  private readonly unrecorded = new Map<string, Set<Promise<unknown>>>();
  /** Records of handled edits, removals and reactions still being written (`Store.eventSeen`). */
  private readonly remembering = new Set<Promise<void>>();

  constructor(
    private readonly store: Store,
    private readonly bridges: ReadonlyMap<string, Bridge>,
    private readonly retry: RetryPolicy = { initialMs: 500, maxMs: 30_000 },
  ) {
    this.handlerContext = {
      store,
      bridge: (network) => this.bridges.get(network)!,
      deliverMessage: (dm, as) => this.deliver(dm, as),
      attempt: (d, send) => this.attempt(d, send),
      count: (what: HandlerCount) => this.stats[what]++,
      reactions: new ReactionCoalescer(),
      recorded: () => Promise.all([...this.recording.values()]).then(() => {}),
      deliveredTo: (network, channel) => this.deliveredTo(network, channel),
    };
    this.outbox = new Outbox(store);
  }

  /**
   * Queues what an earlier process accepted and did not record (left in the outbox), ahead of anything new, with
   * the same delivery ids, and holds it until {@link resume}. Call once, before the connectors start: a copy of one
   * of these messages that a catch-up fetches again is then dropped as in flight. Resolves with how many wait.
   */
  async restore(): Promise<number> {
    // A second call would queue every entry twice.
    if (this.restored) return 0;
    this.restored = true;
    const entries = await this.outbox.load();
    if (entries.length === 0) return 0;
    this.gate = new Promise((open) => this.openGate = open);
    for (const entry of entries) {
      const dm = entry.delivery;
      const keys = dm.message.ids.map((id) => idKey(dm.source, dm.message.portal.channel, id));
      for (const k of keys) this.inFlight.add(k);
      this.ownDeliveries.add(idKey(dm.target, dm.targetChannel, dm.deliveryId));
      this.accepted.set(dm, entry);
      this.enqueue(dm, () => {
        for (const k of keys) this.inFlight.delete(k);
      });
    }
    log.info("Delivering {count} message(s) accepted before the last stop and not yet recorded", {
      count: entries.length,
    });
    return entries.length;
  }

  /** Lets the deliveries {@link restore} queued go, once the connectors can send. */
  resume(): void {
    this.openGate?.();
    this.openGate = undefined;
  }

  /**
   * Accepts an event from a connector. Never throws; routing and delivery happen in the background, in order per
   * source channel. The promise tells when the event is settled: true once it was delivered everywhere it goes,
   * given up on for good, or dropped (an echo, a duplicate, an unmapped channel, an event the core cannot handle);
   * false when the bus stopped first or the event could not be routed. A connector's read position may move past
   * the event only on true.
   */
  publish(event: BridgeEvent): Promise<boolean> {
    if (this.stopped) return Promise.resolve(false);
    this.stats.received++;
    const problem = eventProblem(event);
    if (problem) {
      // Dropped, not thrown: one event the core cannot handle must not stop the ones after it.
      this.stats.unhandled++;
      const { network, channel } = (event as Partial<BridgeEvent>)?.portal ?? {};
      log.warn("Dropped an event from {network} {channel} that the core cannot handle: {problem}", {
        network: String(network),
        channel: String(channel),
        problem,
      });
      log.debug("The dropped event: {event}", { event });
      return Promise.resolve(true);
    }
    const { network, channel } = event.portal;
    const key = `${network}\u0000${channel}`;
    const prev = this.inbound.get(key) ?? Promise.resolve();
    // Read now, not at the event's turn: the reads of a burst overlap with the routing of the events before them.
    // The checks that depend on what those events do (in flight, settled, our own deliveries) run at its turn. The
    // echo of one of our own deliveries, known as such already, is dropped at its turn without reading anything.
    const facts = this.isOwnEcho(event) ? null : this.factsOf(event);
    let done: Promise<boolean> = Promise.resolve(false);
    const next = prev.then(async () => {
      done = (await this.route(event, facts)).settled;
    }).catch((err) => {
      done = Promise.resolve(false);
      log.error("Could not route a {kind} from {network} {channel}: {error}", {
        kind: event.kind,
        network,
        channel,
        error: errorMessage(err),
      });
    });
    this.inbound.set(key, next);
    next.then(() => {
      if (this.inbound.get(key) === next) this.inbound.delete(key);
    });
    return next.then(() => done);
  }

  /** Messages waiting for delivery, over all channels. */
  queued(): number {
    let n = 0;
    for (const q of this.outbound.values()) n += q.length;
    return n;
  }

  /** Resolves when everything published so far has been delivered or given up on. */
  async drain(): Promise<void> {
    while (
      this.inbound.size > 0 || [...this.outbound.values()].some((q) => q.busy) || this.recording.size > 0 ||
      this.remembering.size > 0
    ) {
      await Promise.all([
        ...this.inbound.values(),
        ...[...this.outbound.values()].map((q) => q.idle()),
        ...this.recording.values(),
        ...this.remembering,
      ]);
    }
  }

  /** Stops accepting messages and abandons pending retries. */
  stop(): void {
    this.stopped = true;
    this.abort.abort();
    this.resume();
    for (const q of this.outbound.values()) q.clear();
  }

  /**
   * Routes one event into the delivery queues of its targets; resolves (once routed) with a promise of its
   * settlement, see {@link publish}. What happens at each target is up to the event's kind: see {@link dispatch}.
   */
  private async route(
    event: BridgeEvent,
    facts: Promise<RouteFacts> | null,
  ): Promise<{ settled: Promise<boolean> }> {
    const { network, channel } = event.portal;
    if (this.isOwnEcho(event)) {
      this.stats.echoesDropped++;
      log.debug("Dropped the echo of our own delivery in {network} {channel}", { network, channel, event });
      return DROPPED;
    }
    const ids = ownIds(event);
    const keys = ids.map((id) => idKey(network, channel, id));
    // In memory and at its turn: an event routed before this one (a copy of it, our own delivery) is known here
    // even when the store had not recorded it yet when this event's facts were read.
    if (keys.some((k) => this.inFlight.has(k) || this.settledEvents.has(k))) {
      this.stats.duplicatesDropped++;
      return DROPPED;
    }
    const { seen, link, mapping: found } = await (facts ?? this.factsOf(event));
    if (seen) {
      // Handled before the last restart, fetched again by a catch-up.
      this.stats.duplicatesDropped++;
      return DROPPED;
    }
    if (link) {
      if (link.source !== network) {
        this.stats.echoesDropped++;
        log.debug("Dropped an echo of a bridged message in {network} {channel}", { network, channel, event });
      } else {
        // Seen twice, e.g. replayed by a catch-up after a reconnect: bridged once already.
        this.stats.duplicatesDropped++;
      }
      return DROPPED;
    }
    // A direct conversation the message before this one opened after these facts were read is stored by now.
    const mapping = found ??
      (event.direct ? await this.store.getMapping(network, channel) ?? await this.openDirect(event) : null);
    if (!mapping) {
      this.stats.unmapped++;
      log.debug("Ignored a {kind} from unmapped {network} channel {channel}", {
        kind: event.kind,
        network,
        channel,
      });
      return DROPPED;
    }
    const targets = Object.entries(mapping.channels).filter(([n]) => n !== network && this.bridges.has(n));
    let pending = targets.length;
    if (pending === 0) return DROPPED;
    for (const k of keys) this.inFlight.add(k);
    let allHandled = true;
    let resolve!: (handled: boolean) => void;
    const settledAll = new Promise<boolean>((r) => resolve = r);
    const settled = (handled: boolean) => {
      allHandled &&= handled;
      if (--pending > 0) return;
      for (const k of keys) {
        this.inFlight.delete(k);
        if (allHandled) this.settledEvents.add(k);
      }
      // Settled for the source (which may then move its read position past it) once the record is durable; the
      // queue goes on meanwhile (a replay before then is still known here), so records of a burst share commits.
      if (allHandled && remembersSeen(event)) this.rememberSeen(event).then(() => resolve(true));
      else resolve(allHandled);
    };
    for (const [target, targetChannel] of targets) {
      const route = { source: network, target, targetChannel, deliveryId: deliveryIdFor(event, target) };
      if (event.kind === "reactions") this.handlerContext.reactions.queued({ ...route, event });
      if (event.kind !== "message") {
        this.enqueue({ ...route, event }, settled);
        continue;
      }
      const dm: DirectionalMessage = { ...route, message: event };
      // Not awaited: the next message is routed meanwhile, and its write joins the same commit.
      const { entry, durable } = this.outbox.accept(dm);
      durable.catch((err) =>
        // The source's read position still waits for the delivery: a crash now is caught up from there.
        log.warn(
          "Could not write a delivery to {target} {channel} to the outbox; delivering it anyway: {error}",
          { target, channel: targetChannel, error: errorMessage(err) },
        )
      );
      this.accepted.set(dm, entry);
      this.enqueue(dm, settled);
    }
    return { settled: settledAll };
  }

  /** True when `event` carries the delivery id of one of our own recent deliveries to its channel: its echo. */
  private isOwnEcho(event: BridgeEvent): boolean {
    const { network, channel } = event.portal;
    return event.deliveryId !== undefined &&
      this.ownDeliveries.has(idKey(network, channel, event.deliveryId));
  }

  /**
   * What the store knows that routing `event` needs (see {@link Store.routeFacts}), read at once. A failed read fails
   * the event's routing at its turn (logged there), not before.
   */
  private factsOf(event: BridgeEvent): Promise<RouteFacts> {
    const { network, channel } = event.portal;
    const facts = this.store.routeFacts(
      network,
      channel,
      ownIds(event),
      remembersSeen(event) ? event.eventId : undefined,
    );
    // Awaited only when the event gets that far (an echo is dropped before): never an unhandled rejection.
    facts.catch(() => {});
    return facts;
  }

  /**
   * The mapping of a one-to-one conversation not yet mapped (`event.direct` set), made by opening the conversation on
   * the addressee's network; null when `event` is not direct or the conversation cannot be opened (logged, and the
   * event dropped: the source connector refuses what it knows cannot be delivered before it gets here).
   */
  private async openDirect(event: BridgeEvent): Promise<ChannelMapping | null> {
    const { direct, portal, sender } = event;
    if (!direct || direct.network === portal.network || event.kind !== "message") return null;
    const bridge = this.bridges.get(direct.network);
    if (!bridge || !isDirectCapable(bridge)) return null;
    try {
      const channel = await bridge.openDirect({ user: direct.id, remote: sender });
      const mapping: ChannelMapping = {
        channels: { [portal.network]: portal.channel, [direct.network]: channel },
        origin: "direct",
        createdBy: sender.id,
        createdAt: Date.now(),
      };
      const added = await this.store.addMapping(mapping);
      // Opened from both sides at once: the first mapping stored wins, for both.
      if (!added.ok) return await this.store.getMapping(portal.network, portal.channel);
      log.info("Opened a direct conversation: {network} {channel} ↔ {target} {targetChannel}", {
        network: portal.network,
        channel: portal.channel,
        target: direct.network,
        targetChannel: channel,
      });
      return mapping;
    } catch (err) {
      this.stats.failed++;
      log.warn("Could not open a direct conversation from {network} {channel} on {target}: {error}", {
        network: portal.network,
        channel: portal.channel,
        target: direct.network,
        error: errorMessage(err),
      });
      // Only the addressee's network can tell (an unknown or deactivated user): its author hears why, where the
      // source network can say it, rather than nothing.
      if (event.kind === "message") this.noticeUndeliverable(event, direct.network, err);
      return null;
    }
  }

  /**
   * Hands one delivery to the handler of its kind, at its turn in the target channel's queue. A message stays the
   * `DirectionalMessage` it was routed as, from the queue to the connector.
   */
  private dispatch(d: Delivery): Work {
    const ctx = this.handlerContext;
    if ("message" in d) return handleMessage(d, ctx);
    const done = this.handleEvent(d);
    // Written only when done: the next delivery follows an edit, a removal… only once it is through.
    return { written: done.then(() => {}), done };
  }

  private handleEvent(d: Exclude<Delivery, DirectionalMessage>): Promise<boolean> {
    const ctx = this.handlerContext;
    const { event } = d;
    switch (event.kind) {
      case "edit":
        return handleEdit({ ...d, event }, ctx);
      case "remove":
        return handleRemove({ ...d, event }, ctx);
      case "reactions":
        return handleReactions({ ...d, event }, ctx);
      case "typing":
        return handleTyping({ ...d, event }, ctx);
      case "membership":
        return handleMembership({ ...d, event }, ctx);
    }
  }

  /**
   * Tells the author of a message given up on for good, when its network can: in the background, so that the
   * notice (a call to the source network) never holds up the target's queue.
   */
  private noticeUndeliverable(message: BridgeMessage, target: string, err: unknown): void {
    const { network, channel } = message.portal;
    const origin = this.bridges.get(network);
    if (!origin || !isNoticeCapable(origin)) return;
    const reason = (err instanceof BridgeError && err.notice) || `the ${target} side refused it`;
    origin.notifyUndeliverable(message, reason).catch((e) =>
      log.warn("Could not tell the author of an undelivered message in {network} {channel}: {error}", {
        network,
        channel,
        error: errorMessage(e),
      })
    );
  }

  /**
   * Records `event` as handled, in the outbox's next commit (shared with the other writes made meanwhile). A failed
   * write only costs a second delivery of the event after a restart, which its handler takes again.
   */
  private rememberSeen(event: BridgeEvent): Promise<void> {
    const { network, channel } = event.portal;
    const written = this.outbox.seen({ network, channel, eventId: event.eventId }).catch((err) =>
      log.warn("Could not record a handled {kind} from {network} {channel}: {error}", {
        kind: event.kind,
        network,
        channel,
        error: errorMessage(err),
      })
    ).finally(() => this.remembering.delete(written));
    this.remembering.add(written);
    return written;
  }

  private enqueue(d: Delivery, settled: (handled: boolean) => void): void {
    const key = `${d.target}\u0000${d.targetChannel}`;
    let queue = this.outbound.get(key);
    if (!queue) {
      queue = new DeliveryQueue((item) => this.dispatch(item), {
        window: isPipeliningBridge(this.bridges.get(d.target)!) ? PIPELINE_WINDOW : 1,
        // The other kinds, and replies, look their target up in the id map at their turn: the message they point at
        // must be confirmed and recorded by then, not merely written.
        barrier: (item) => !("message" in item) || item.message.replyTo !== undefined,
      });
      this.outbound.set(key, queue);
    }
    // Settled once its record is written, which the next send of the queue need not wait for (the next settlement
    // does).
    queue.push(d, async (handled) => {
      await ("message" in d ? this.recording.get(d) : undefined);
      settled(handled);
    });
  }

  /**
   * Delivers one message, retrying transient failures with backoff until it lands or the bus stops. `done`: true
   * when it landed or was given up on for good; false when the bus stopped first. `written` resolves once it is on
   * the wire (dispatched, with a pipelining connector) or else done, so that the queue's next message may follow.
   */
  private deliver(dm: DirectionalMessage, as: DirectionalMessage = dm): Work {
    let markWritten!: () => void;
    const written = new Promise<void>((resolve) => markWritten = resolve);
    const done = this.deliverNow(dm, as, markWritten).finally(markWritten);
    const key = `${dm.target}\u0000${dm.targetChannel}`;
    const underway = this.unrecorded.get(key) ?? new Set();
    this.unrecorded.set(key, underway);
    const recorded = done.then(() => this.recording.get(dm)).catch(() => {}).finally(() => {
      underway.delete(recorded);
      if (underway.size === 0 && this.unrecorded.get(key) === underway) this.unrecorded.delete(key);
    });
    underway.add(recorded);
    return { written, done };
  }

  /**
   * Waits until the messages under way to `channel` of `network` now are recorded (at most
   * {@link UNDERWAY_WAIT_MS}); true when there were any. Our delivery's echo, seen by someone who answers it, can
   * come back on another stream before the delivery's own confirmation (a component puppet's reflection, a reply
   * read by the bridge's session): the answer's parent is then found once this resolves.
   */
  private async deliveredTo(network: string, channel: string): Promise<boolean> {
    const underway = this.unrecorded.get(`${network}\u0000${channel}`);
    if (!underway || underway.size === 0) return false;
    const timeout = new AbortController();
    const stop = () => timeout.abort();
    this.abort.signal.addEventListener("abort", stop, { once: true });
    try {
      await Promise.race([Promise.all(underway), sleep(UNDERWAY_WAIT_MS, timeout.signal)]);
    } finally {
      timeout.abort();
      this.abort.signal.removeEventListener("abort", stop);
    }
    return true;
  }

  /** Delivers `dm` (the message accepted and recorded) by handing the connector `as`. */
  private async deliverNow(
    dm: DirectionalMessage,
    as: DirectionalMessage,
    markWritten: () => void,
  ): Promise<boolean> {
    // Sent without waiting for its outbox write: until it is recorded and settled, its source's read position has
    // not moved past it, so a crash before that write replays it from the source, with the same delivery id. Nor
    // does its record wait for it: the outbox commits in order, so the record never lands before the entry.
    const entry = this.accepted.get(dm);
    await this.gate;
    const bridge = this.bridges.get(dm.target)!;
    let endAttempts!: () => void;
    const attemptsOver = new Promise<void>((resolve) => endAttempts = resolve);
    const send = isPipeliningBridge(bridge)
      ? this.pipelined(bridge, as, markWritten, attemptsOver)
      : () => bridge.send(as);
    const done = await this.attempt(dm, send).finally(endAttempts);
    if (!done.ok) {
      // Given up on for good (its author told, where the network allows): out of the outbox, where it would only be
      // given up on again at the next start, and its source ids recorded, with no copy on the target, so that a
      // catch-up fetching it again after a restart (the read position's margin) drops it instead of delivering it.
      if (done.handled) await this.outbox.delivered(entry, givenUpLink(dm)).catch(() => {});
      return done.handled;
    }
    const sent: SentRefs = done.value;
    // The message is out: a failure to record it must not send it again. Recorded, and out of the outbox, in one
    // commit, shared with the writes made meanwhile. An echo arriving before it is recognised by its delivery id, a
    // copy by its source id (in flight until settled).
    const recorded = this.outbox.delivered(entry, linkFor(dm, sent)).catch((err) =>
      log.error(
        "Delivered a message to {target} {channel} but could not record it in the id map: {error}",
        {
          target: dm.target,
          channel: dm.targetChannel,
          error: errorMessage(err),
        },
      )
    ).finally(() => {
      // Forgotten once written, also for a message no queue item stands for (an edit's fallback).
      if (this.recording.get(dm) === recorded) this.recording.delete(dm);
    });
    this.recording.set(dm, recorded);
    return true;
  }

  /**
   * One attempt at `dm` through a pipelining connector: dispatched (`markWritten` then lets the queue write the next
   * message), then confirmed. A transient failure after it was written holds the queue until its retry is written
   * in turn: the retry goes out before anything new, so the message lands after the (at most
   * {@link PIPELINE_WINDOW} - 1) messages written behind it, and no later. Several failing at once (a lost
   * connection) are each retried by their own loop, in about the order they failed (the backoff has no jitter).
   */
  private pipelined(
    bridge: PipeliningBridge,
    dm: DirectionalMessage,
    markWritten: () => void,
    attemptsOver: Promise<void>,
  ): () => Promise<SentRefs> {
    const queue = this.outbound.get(`${dm.target}\u0000${dm.targetChannel}`)!;
    let rewritten: (() => void) | undefined;
    return async () => {
      const { confirmed } = await bridge.dispatch(dm);
      markWritten();
      rewritten?.();
      try {
        return await confirmed;
      } catch (err) {
        // Released when the retry is written, or when the attempts end (given up on, or the bus stopped).
        if (isTransient(err)) {
          queue.hold(Promise.race([new Promise<void>((r) => rewritten = r), attemptsOver]));
        }
        throw err;
      }
    };
  }

  /**
   * Runs `send`, the delivery of `d`, retrying transient failures with backoff until it lands or the bus stops.
   * Its delivery id is remembered first, so that an echo arriving before `send` returns is recognised.
   */
  private async attempt<T>(d: Delivery, send: () => Promise<T>): Promise<Attempt<T>> {
    this.ownDeliveries.add(idKey(d.target, d.targetChannel, d.deliveryId));
    const backoff = new Backoff(this.retry);
    for (let attempt = 1;; attempt++) {
      if (this.stopped) return { ok: false, handled: false };
      try {
        const value = await send();
        this.stats.delivered++;
        return { ok: true, value };
      } catch (err) {
        if (!isTransient(err)) {
          this.stats.failed++;
          log.error("Gave up delivering a {kind} from {source} to {target} {channel}: {error}", {
            kind: eventOf(d).kind,
            source: d.source,
            target: d.target,
            channel: d.targetChannel,
            error: errorMessage(err),
          });
          if ("message" in d) this.noticeUndeliverable(d.message, d.target, err);
          return { ok: false, handled: true };
        }
        this.stats.retried++;
        const wait = backoff.next(retryAfter(err));
        log.warn(
          "Delivery to {target} {channel} failed (attempt {attempt}), retrying in {wait} ms: {error}",
          {
            target: d.target,
            channel: d.targetChannel,
            attempt,
            wait,
            error: errorMessage(err),
          },
        );
        await sleep(wait, this.abort.signal);
      }
    }
  }
}

/**
 * The delivery id of `event` to `target`: derived from the event's own id, so that the same event fetched again
 * after a restart (a catch-up replays what was not confirmed) is sent with the same id, and a server that
 * deduplicates by it (Mattermost's `pending_post_id`) recognises a create whose answer the crash lost.
 */
export function deliveryIdFor(event: BridgeEvent, target: string): string {
  return createHash("sha256")
    .update([event.portal.network, event.portal.channel, event.eventId, target].join("\u0000"))
    .digest("base64url")
    .slice(0, 22);
}

/** The id-map record of `dm`, delivered as `sent`. */
function linkFor(dm: DirectionalMessage, sent: SentRefs): MessageLink {
  return {
    id: crypto.randomUUID(),
    source: dm.source,
    refs: {
      [dm.source]: {
        channel: dm.message.portal.channel,
        ids: dm.message.ids,
        // Who wrote it: an edit or removal of it must come from them (handlers/authorship.ts).
        parts: [{ sender: { kind: "author", id: dm.message.sender.id }, ...threadOf(dm.message) }],
      },
      [dm.target]: {
        channel: dm.targetChannel,
        ids: sent.ids,
        parts: sent.parts?.length ? sent.parts : [{ sender: { kind: "unknown" } }],
      },
    },
    createdAt: Date.now(),
  };
}

/** The id-map record of a message given up on: its source side only, as a delivered message's would be. */
function givenUpLink(dm: DirectionalMessage): MessageLink {
  const { [dm.target]: _, ...source } = linkFor(dm, { ids: [] }).refs;
  return { id: crypto.randomUUID(), source: dm.source, refs: source, createdAt: Date.now() };
}

/**
 * Where a message sits in a thread on its source network, for its part there: so that a reply to it on another
 * network finds the thread (Mattermost takes only a thread's root as the parent).
 */
function threadOf(message: DirectionalMessage["message"]): Pick<MessagePart, "threadRoot" | "replyTo"> {
  const reply = message.replyTo;
  if (!reply) return {};
  return { replyTo: reply.targetId, ...(reply.thread ? { threadRoot: reply.thread } : {}) };
}

/**
 * Whether a replay of `event` is recognised across restarts by its recorded id (`Store.eventSeen`): edits, removals
 * and reactions. Messages are in the id map; typing is momentary, not worth a write.
 */
function remembersSeen(event: BridgeEvent): boolean {
  return event.kind === "edit" || event.kind === "remove" || event.kind === "reactions";
}

/** The event's own ids, never the id of the message it points at: that one is known by design. */
function ownIds(event: BridgeEvent): string[] {
  return event.kind === "message" ? event.ids : [event.eventId];
}

/** What {@link MessageBus.route} answers for a message that needs no delivery. */
const DROPPED = { settled: Promise.resolve(true) };

/** One key for an id within a network's channel: a message id (in flight) or a delivery id (our own output). */
function idKey(network: string, channel: string, id: string): string {
  return `${network}\u0000${channel}\u0000${id}`;
}

function retryAfter(err: unknown): number {
  const ms = (err as { retryAfterMs?: unknown })?.retryAfterMs;
  return typeof ms === "number" ? ms : 0;
}
