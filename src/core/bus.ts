/**
 * The message bus: routes each received message to the mapped channel on every other network, in order, with
 * retries, and records the id map. Every delivery goes through the durable outbox (outbox.ts): written before it
 * is attempted, removed when it is recorded, delivered again after a crash.
 *
 * Loop prevention happens three times: a message is never delivered to the network it came from; a message that
 * carries the delivery id of one of our own recent deliveries is its echo (recorded before sending, so this holds
 * even when the echo arrives before the send returns); and a message whose id is already in the id map is either
 * an echo of our own output or a replay of something already bridged. Such messages are dropped.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { getLogger } from "@logtape/logtape";
import type { Bridge } from "./bridge.ts";
import { sleep } from "./deadline.ts";
import { errorMessage, isTransient } from "./errors.ts";
import type { BridgeMessage, DirectionalMessage, SentRefs } from "./message.ts";
import { Outbox } from "./outbox.ts";
import type { MessageLink, OutboxEntry, Store } from "./store.ts";

const log = getLogger(["mmxmpp", "bus"]);

/** How many recent delivery ids are remembered to recognise their echoes. */
const OWN_DELIVERY_MEMORY = 10_000;

/** Counters the bus keeps; exported as metrics. */
export interface BusStats {
  received: number;
  delivered: number;
  retried: number;
  failed: number;
  echoesDropped: number;
  duplicatesDropped: number;
  unmapped: number;
}

/** Retry timing; tests shorten it. */
export interface RetryPolicy {
  initialMs: number;
  maxMs: number;
}

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
  };
  /** One promise chain per source channel keeps routing in arrival order. */
  private readonly inbound = new Map<string, Promise<void>>();
  /** One queue per target channel keeps delivery in order and lets one slow channel not block the others. */
  private readonly outbound = new Map<string, DeliveryQueue>();
  /** Source ids of messages queued or being delivered: a copy arriving meanwhile is a duplicate too. */
  private readonly inFlight = new Set<string>();
  /** `network, channel, delivery id` of our recent deliveries, oldest first: a message carrying one is an echo. */
  private readonly ownDeliveries = new Set<string>();
  private stopped = false;
  /** Aborted by `stop` so that no backoff outlives the bus. */
  private readonly abort = new AbortController();
  private readonly outbox: Outbox;
  /** Each queued delivery's outbox entry, once durable (undefined when it could not be written). */
  private readonly accepted = new WeakMap<DirectionalMessage, Promise<OutboxEntry | undefined>>();
  /** Deliveries wait on this while restored ones are held for the connectors (see {@link restore}). */
  private gate: Promise<void> = Promise.resolve();
  private openGate?: () => void;
  private restored = false;
  /** Id-map records still being written, by delivery: a delivery is settled once recorded. */
  private readonly recording = new Map<DirectionalMessage, Promise<void>>();

  constructor(
    private readonly store: Store,
    private readonly bridges: ReadonlyMap<string, Bridge>,
    private readonly retry: RetryPolicy = { initialMs: 500, maxMs: 30_000 },
  ) {
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
      const keys = dm.message.ids.map((id) => idKey(dm.source, dm.message.channel, id));
      for (const k of keys) this.inFlight.add(k);
      this.rememberDelivery(idKey(dm.target, dm.targetChannel, dm.deliveryId));
      this.accepted.set(dm, Promise.resolve(entry));
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
   * Accepts a message from a connector. Never throws; routing and delivery happen in the background, in order.
   * The promise tells when the message is settled: true once it was delivered everywhere it goes, given up on for
   * good, or dropped (an echo, a duplicate, an unmapped channel); false when the bus stopped first or the message
   * could not be routed. A connector's read position may move past the message only on true.
   */
  publish(message: BridgeMessage): Promise<boolean> {
    if (this.stopped) return Promise.resolve(false);
    this.stats.received++;
    const key = `${message.network}\u0000${message.channel}`;
    const prev = this.inbound.get(key) ?? Promise.resolve();
    let done: Promise<boolean> = Promise.resolve(false);
    const next = prev.then(async () => {
      done = (await this.route(message)).settled;
    }).catch((err) => {
      done = Promise.resolve(false);
      log.error("Could not route a message from {network} {channel}: {error}", {
        network: message.network,
        channel: message.channel,
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
      this.inbound.size > 0 || [...this.outbound.values()].some((q) => q.busy) || this.recording.size > 0
    ) {
      await Promise.all([
        ...this.inbound.values(),
        ...[...this.outbound.values()].map((q) => q.idle()),
        ...this.recording.values(),
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
   * Routes one message into the delivery queues of its targets; resolves (once routed) with a promise of its
   * settlement, see {@link publish}.
   */
  private async route(message: BridgeMessage): Promise<{ settled: Promise<boolean> }> {
    if (
      message.deliveryId &&
      this.ownDeliveries.has(idKey(message.network, message.channel, message.deliveryId))
    ) {
      this.stats.echoesDropped++;
      log.debug("Dropped the echo of our own delivery in {network} {channel}", { ...message });
      return DROPPED;
    }
    const keys = message.ids.map((id) => idKey(message.network, message.channel, id));
    if (keys.some((k) => this.inFlight.has(k))) {
      this.stats.duplicatesDropped++;
      return DROPPED;
    }
    for (const id of message.ids) {
      const link = await this.store.findLink(message.network, message.channel, id);
      if (!link) continue;
      if (link.source !== message.network) {
        this.stats.echoesDropped++;
        log.debug("Dropped an echo of a bridged message in {network} {channel}", { ...message });
      } else {
        // Seen twice, e.g. replayed by a catch-up after a reconnect: bridged once already.
        this.stats.duplicatesDropped++;
      }
      return DROPPED;
    }
    const mapping = await this.store.getMapping(message.network, message.channel);
    if (!mapping) {
      this.stats.unmapped++;
      log.debug("Ignored a message from unmapped {network} channel {channel}", { ...message });
      return DROPPED;
    }
    const targets = Object.entries(mapping.channels).filter(([n]) =>
      n !== message.network && this.bridges.has(n)
    );
    let pending = targets.length;
    if (pending === 0) return DROPPED;
    for (const k of keys) this.inFlight.add(k);
    let allHandled = true;
    let resolve!: (handled: boolean) => void;
    const settledAll = new Promise<boolean>((r) => resolve = r);
    const settled = (handled: boolean) => {
      allHandled &&= handled;
      if (--pending > 0) return;
      for (const k of keys) this.inFlight.delete(k);
      resolve(allHandled);
    };
    for (const [target, targetChannel] of targets) {
      const dm = {
        source: message.network,
        target,
        targetChannel,
        message,
        deliveryId: deliveryIdFor(message, target),
      };
      // Not awaited: the next message is routed meanwhile, and its write joins the same commit.
      this.accepted.set(
        dm,
        this.outbox.accept(dm).catch((err) => {
          // The source's read position still waits for the delivery: a crash now is caught up from there.
          log.warn(
            "Could not write a delivery to {target} {channel} to the outbox; delivering it anyway: {error}",
            {
              target,
              channel: targetChannel,
              error: errorMessage(err),
            },
          );
          return undefined;
        }),
      );
      this.enqueue(dm, settled);
    }
    return { settled: settledAll };
  }

  private rememberDelivery(key: string): void {
    this.ownDeliveries.add(key);
    if (this.ownDeliveries.size > OWN_DELIVERY_MEMORY) {
      this.ownDeliveries.delete(this.ownDeliveries.values().next().value!);
    }
  }

  private enqueue(dm: DirectionalMessage, settled: (handled: boolean) => void): void {
    const key = `${dm.target}\u0000${dm.targetChannel}`;
    let queue = this.outbound.get(key);
    if (!queue) {
      queue = new DeliveryQueue((m) => this.deliver(m));
      this.outbound.set(key, queue);
    }
    // Settled once its record is written, which the next send of the queue need not wait for.
    queue.push(dm, (handled) => {
      const recorded = this.recording.get(dm);
      if (!recorded) return settled(handled);
      recorded.then(() => {
        this.recording.delete(dm);
        settled(handled);
      });
    });
  }

  /**
   * Delivers one message, retrying transient failures with backoff until it lands or the bus stops. True when it
   * landed or was given up on for good; false when the bus stopped first.
   */
  private async deliver(dm: DirectionalMessage): Promise<boolean> {
    const entry = await this.accepted.get(dm);
    await this.gate;
    const bridge = this.bridges.get(dm.target)!;
    this.rememberDelivery(idKey(dm.target, dm.targetChannel, dm.deliveryId));
    let delay = this.retry.initialMs;
    for (let attempt = 1;; attempt++) {
      if (this.stopped) return false;
      let sent: SentRefs;
      try {
        sent = await bridge.send(dm);
      } catch (err) {
        if (!isTransient(err)) {
          this.stats.failed++;
          // Left behind, it would only be given up on again at the next start.
          if (entry) await this.outbox.discard(entry).catch(() => {});
          log.error("Gave up delivering a message from {source} to {target} {channel}: {error}", {
            source: dm.source,
            target: dm.target,
            channel: dm.targetChannel,
            error: errorMessage(err),
          });
          return true;
        }
        this.stats.retried++;
        const wait = Math.min(this.retry.maxMs, Math.max(delay, retryAfter(err)));
        log.warn(
          "Delivery to {target} {channel} failed (attempt {attempt}), retrying in {wait} ms: {error}",
          {
            target: dm.target,
            channel: dm.targetChannel,
            attempt,
            wait,
            error: errorMessage(err),
          },
        );
        await sleep(wait, this.abort.signal);
        delay = Math.min(this.retry.maxMs, delay * 2);
        continue;
      }
      this.stats.delivered++;
      // The message is out: a failure to record it must not send it again.
      // Recorded, and out of the outbox, in one commit, shared with the writes made meanwhile. An echo arriving
      // before it is recognised by its delivery id, a copy by its source id (in flight until settled).
      this.recording.set(
        dm,
        this.outbox.delivered(entry, linkFor(dm, sent)).catch((err) =>
          log.error(
            "Delivered a message to {target} {channel} but could not record it in the id map: {error}",
            {
              target: dm.target,
              channel: dm.targetChannel,
              error: errorMessage(err),
            },
          )
        ),
      );
      return true;
    }
  }
}

/**
 * The delivery id of `message` to `target`: derived from the message's own id, so that the same message fetched
 * again after a restart (a catch-up replays what was not confirmed) is sent with the same id, and a server that
 * deduplicates by it (Mattermost's `pending_post_id`) recognises a create whose answer the crash lost.
 */
export function deliveryIdFor(message: BridgeMessage, target: string): string {
  return createHash("sha256")
    .update([message.network, message.channel, message.ids[0] ?? crypto.randomUUID(), target].join("\u0000"))
    .digest("base64url")
    .slice(0, 22);
}

/**
 * The id-map entry of `dm` delivered as `sent`: the source message as its author's one part, and the target's parts
 * as the connector reported them (one of unknown sender when it reported none).
 */
function linkFor(dm: DirectionalMessage, sent: SentRefs): MessageLink {
  return {
    id: crypto.randomUUID(),
    source: dm.source,
    refs: {
      [dm.source]: {
        channel: dm.message.channel,
        ids: dm.message.ids,
        parts: [{ sender: { kind: "author" } }],
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

/** A FIFO worked by one loop at a time; `settled(handled)` follows each item's work (false when cleared). */
class DeliveryQueue {
  private readonly items: Array<{ message: DirectionalMessage; settled: (handled: boolean) => void }> = [];
  private running: Promise<void> | null = null;

  constructor(private readonly work: (m: DirectionalMessage) => Promise<boolean>) {}

  get length(): number {
    return this.items.length;
  }

  get busy(): boolean {
    return this.running !== null;
  }

  push(message: DirectionalMessage, settled: (handled: boolean) => void): void {
    this.items.push({ message, settled });
    this.running ??= this.run();
  }

  idle(): Promise<void> {
    return this.running ?? Promise.resolve();
  }

  clear(): void {
    for (const item of this.items.splice(0)) item.settled(false);
  }

  private async run(): Promise<void> {
    try {
      while (this.items.length > 0) {
        const item = this.items.shift()!;
        let handled = false;
        try {
          handled = await this.work(item.message);
        } finally {
          item.settled(handled);
        }
      }
    } finally {
      this.running = null;
    }
  }
}
