/**
 * The bridge manager: owns the connectors, the bus and the store, applies mappings and answers commands.
 *
 * @module
 */
import { Cursors } from "./cursors.ts";
import { getLogger } from "@logtape/logtape";
import {
  type Bridge,
  type BridgeContext,
  type BridgeHealth,
  FileUnavailable,
  isAvatarSource,
  isFileSource,
  isGhostingBridge,
  isProfileMirroring,
  isStatusMirroring,
} from "./bridge.ts";
import { type BusStats, MessageBus, type RetryPolicy } from "./bus.ts";
import { BridgeError, errorMessage, isTransient } from "./errors.ts";
import type { ChannelMapping, Store } from "./store.ts";
import { runCommand } from "./commands.ts";
import { Backoff } from "./backoff.ts";
import { settleWithin, sleep } from "./deadline.ts";

const log = getLogger(["mmxmpp", "manager"]);

/** A mapping as an admin wrote it: network name → channel reference in that network's own syntax. */
export type MappingRefs = Record<string, string>;

/** Outcome of {@link BridgeManager.map}. */
export interface MapResult {
  mapping: ChannelMapping;
  /** Problems that did not stop the mapping (e.g. the join failed and will be retried). */
  warnings: string[];
}

/** A configured mapping that could not be applied at start, and why. */
export interface MappingFailure {
  /** The entry as configured, e.g. `mattermost:team/town-square = xmpp:lobby@conference.example.org`. */
  mapping: string;
  error: string;
}

/** Options for {@link BridgeManager}. */
export interface ManagerOptions {
  /** Mappings from configuration (`BRIDGE_MAPPINGS`), reconciled with the store at every start. */
  staticMappings?: MappingRefs[];
  /**
   * When true, a static mapping may name a channel that does not exist yet; joining it creates it (an XMPP room).
   * When false (the default), such a mapping fails at start and says so.
   */
  createMissingChannels?: boolean;
  retry?: RetryPolicy;
  /** Waits between attempts to connect a network that cannot be reached at start. */
  startRetry?: RetryPolicy;
}

/** The one-line label of a configured entry, as logs, errors and `/healthz` show it. */
export function mappingLabel(refs: MappingRefs): string {
  return Object.entries(refs).sort(([a], [b]) => a.localeCompare(b)).map(([n, r]) => `${n}:${r}`).join(" = ");
}

/**
 * Starts and stops the bridges and wires them to the bus.
 *
 * @example
 * ```ts
 * const manager = new BridgeManager(store, [mattermost, xmpp], { staticMappings });
 * await manager.start();
 * // …
 * await manager.stop();
 * ```
 */
export class BridgeManager {
  readonly bus: MessageBus;
  /** How far each channel was read, kept across restarts. */
  readonly cursors: Cursors;
  /** Per source channel, the settlement of the last event received from it (see `MessageBus.publish`). */
  private readonly lastReceived = new Map<string, Promise<boolean>>();
  private readonly bridges: Map<string, Bridge>;
  private started = false;
  private ready = false;
  private readonly failures = new Map<string, MappingFailure>();
  /** Why a network is not connected yet while `start` keeps trying it. */
  private readonly connecting = new Map<string, string>();
  /** Aborts the connection attempts of a `start` in progress. */
  private starting?: AbortController;

  constructor(private readonly store: Store, bridges: Bridge[], private readonly opts: ManagerOptions = {}) {
    this.bridges = new Map(bridges.map((b) => [b.network, b]));
    this.bus = new MessageBus(store, this.bridges, opts.retry);
    this.cursors = new Cursors(store);
  }

  /**
   * Connects every bridge, reconciles the static mappings with the store and joins every mapped channel.
   *
   * A network that cannot be reached (a transient failure) is tried again with backoff, as after a disconnect,
   * until it answers or `signal` aborts; a permanent failure (refused credentials, bad settings) is thrown at once.
   */
  async start(signal?: AbortSignal): Promise<void> {
    // Set first so that `stop` also cleans up after a start that failed half-way.
    this.started = true;
    const giveUp = this.starting = new AbortController();
    // Before any connector receives: what the outbox holds is then known to be in flight.
    await this.bus.restore();
    const abort = () => giveUp.abort(signal?.reason);
    signal?.addEventListener("abort", abort, { once: true });
    try {
      const results = await Promise.allSettled(
        [...this.bridges.values()].map((bridge) =>
          this.connect(bridge, giveUp.signal).catch((err) => {
            // One network failed for good: the others stop trying.
            giveUp.abort(err);
            throw err;
          })
        ),
      );
      signal?.throwIfAborted();
      const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failed) throw failed.reason;
    } finally {
      signal?.removeEventListener("abort", abort);
      this.starting = undefined;
    }
    this.bus.resume();
    const skipJoin = await this.reconcileStatic(this.opts.staticMappings ?? []);
    for (const mapping of await this.store.listMappings()) {
      // Direct conversations are not rooms to join: their connectors keep them reachable (DirectCapable).
      if (mapping.origin !== "direct" && !skipJoin.has(mappingKey(mapping))) await this.joinBoth(mapping);
    }
    this.ready = true;
  }

  /** True once `start` has connected every bridge and joined every mapped channel, until `stop`. */
  isReady(): boolean {
    return this.ready;
  }

  /** Configured mappings the last start could not apply; `/healthz` is not ready while there are any. */
  mappingFailures(): MappingFailure[] {
    return [...this.failures.values()];
  }

  /** Lets queued messages go out (up to `graceMs`), then stops the bus and every bridge. */
  async stop(graceMs = 2_000): Promise<void> {
    if (!this.started) return;
    this.started = false;
    this.starting?.abort(new BridgeError("the bridge is stopping"));
    this.ready = false;
    await settleWithin(this.bus.drain(), graceMs);
    this.bus.stop();
    await Promise.all([...this.bridges.values()].map((b) => b.stop()));
    await this.cursors.stop();
  }

  /** Health of every bridge; one that `start` is still trying to reach says why it is not connected yet. */
  health(): BridgeHealth[] {
    return [...this.bridges.values()].map((b) => {
      const health = b.health();
      const waiting = this.connecting.get(b.network);
      return waiting && !health.connected ? { ...health, detail: waiting } : health;
    });
  }

  /** Counters of the bus. */
  stats(): BusStats & { queued: number } {
    return { ...this.bus.stats, queued: this.bus.queued() };
  }

  /** All mappings. */
  listMappings(): Promise<ChannelMapping[]> {
    return this.store.listMappings();
  }

  /** The mapping of one channel. */
  getMapping(network: string, channel: string): Promise<ChannelMapping | null> {
    return this.store.getMapping(network, channel);
  }

  /**
   * Maps `channel` of `network` to the channel `peerRef` names on the other network, then joins both.
   * Throws a BridgeError when the reference is bad or either side is already mapped. A failed join does not undo
   * the mapping; it is reported in `warnings`.
   */
  async map(network: string, channel: string, peerRef: string, createdBy?: string): Promise<MapResult> {
    const peer = this.peerOf(network);
    const peerChannel = await peer.resolveChannel(peerRef, { mustExist: true });
    const mapping: ChannelMapping = {
      channels: { [network]: channel, [peer.network]: peerChannel },
      origin: "command",
      createdBy,
      createdAt: Date.now(),
    };
    const res = await this.store.addMapping(mapping);
    if (!res.ok) {
      const other = Object.entries(res.conflict.existing.channels).find(([n]) => n !== res.conflict.network);
      throw new BridgeError(
        `${res.conflict.network} channel ${mapping.channels[res.conflict.network]} is already mapped` +
          (other ? ` to ${other[0]} ${other[1]}` : "") + ". Unmap it first.",
      );
    }
    log.info("Mapped {a} to {b}", { a: `${network}:${channel}`, b: `${peer.network}:${peerChannel}` });
    return { mapping, warnings: await this.joinBoth(mapping) };
  }

  /** Removes the mapping of `channel` on both sides and leaves the channels. Returns the removed mapping. */
  async unmap(network: string, channel: string): Promise<ChannelMapping | null> {
    const removed = await this.store.removeMapping(network, channel);
    if (!removed) return null;
    log.info("Unmapped {channels}", { channels: removed.channels });
    for (const [n, c] of Object.entries(removed.channels)) {
      await this.bridges.get(n)?.leaveChannel(c).catch((err) =>
        log.warn("Could not leave {network} {channel}: {error}", {
          network: n,
          channel: c,
          error: errorMessage(err),
        })
      );
    }
    return removed;
  }

  /** The one other network of a two-network bridge. */
  peerOf(network: string): Bridge {
    const others = [...this.bridges.values()].filter((b) => b.network !== network);
    if (others.length !== 1) throw new BridgeError(`cannot tell which network to map ${network} to`);
    return others[0];
  }

  private contextFor(network: string): BridgeContext {
    return {
      receive: (event) => {
        const settled = this.bus.publish(event);
        // Optional chaining: the bus drops (and logs) an event without a portal; it must not throw here.
        this.lastReceived.set(`${network}\u0000${event.portal?.channel}`, settled);
      },
      addMessageAlias: async (channel, knownId, newId, name) => {
        await this.store.addAlias(network, channel, knownId, newId, name);
      },
      mappedChannels: async () =>
        (await this.store.listMappings()).map((m) => m.channels[network]).filter((c): c is string => !!c),
      runCommand: (input) => runCommand(this, { network, ...input }),
      loadCursor: (channel) => this.cursors.load(network, channel),
      // A channel is read past a message only once that message is delivered (or dropped, or given up on): after a
      // crash or a stop with messages still queued, the next catch-up fetches them again.
      saveCursor: (channel, position) => {
        const last = this.lastReceived.get(`${network}\u0000${channel}`) ?? Promise.resolve(true);
        last.then((handled) => {
          if (handled) this.cursors.advance(network, channel, position);
        });
      },
      openFile: (source, attachment, opts) => {
        const bridge = this.bridges.get(source);
        if (!bridge || !isFileSource(bridge)) {
          return Promise.reject(new FileUnavailable("failed", `${source} cannot serve files`));
        }
        return bridge.openFile(attachment, opts);
      },
      openAvatar: (source, sender, opts) => {
        const bridge = this.bridges.get(source);
        if (!bridge || !isAvatarSource(bridge) || !sender.avatar) {
          return Promise.reject(new FileUnavailable("failed", `${source} cannot serve this picture`));
        }
        return bridge.openAvatar(sender, opts);
      },
      statusChanged: (change) => {
        this.toOthers(network, "status", isStatusMirroring, (b) => b.sendStatus(change), change.sender.id);
      },
      profileChanged: (sender) => {
        this.toOthers(network, "profile", isProfileMirroring, (b) => b.sendProfile(sender), sender.id);
      },
      userDeactivated: (userId) => {
        for (const bridge of this.bridges.values()) {
          if (bridge.network === network || !isGhostingBridge(bridge)) continue;
          bridge.remoteUserGone(network, userId).catch((err) =>
            log.warn("Could not retire the {network} stand-in of {userId}: {error}", {
              network: bridge.network,
              userId,
              error: errorMessage(err),
            })
          );
        }
      },
    };
  }

  /** Hands a user change from `network` to every other connector that mirrors it; failures are logged. */
  private toOthers<B extends Bridge>(
    network: string,
    what: string,
    can: (bridge: Bridge) => bridge is B,
    apply: (bridge: B) => Promise<void>,
    userId: string,
  ): void {
    for (const bridge of this.bridges.values()) {
      if (bridge.network === network || !can(bridge)) continue;
      apply(bridge).catch((err) =>
        log.info("Could not mirror the {what} of {network} user {userId} on {target}: {error}", {
          what,
          network,
          userId,
          target: bridge.network,
          error: errorMessage(err),
        })
      );
    }
  }

  /** Starts one bridge, retrying transient failures with backoff until it is up or `signal` aborts. */
  private async connect(bridge: Bridge, signal: AbortSignal): Promise<void> {
    const backoff = new Backoff(this.opts.startRetry ?? { initialMs: 1_000, maxMs: 30_000 });
    // One abort listener for all attempts, not one per attempt; handled here too, as no race may be watching it.
    const stopped = aborted(signal);
    stopped.catch(() => {});
    for (let attempt = 1;; attempt++) {
      signal.throwIfAborted();
      try {
        // A connect that hangs (a firewall dropping packets) must not hold up a SIGTERM.
        await Promise.race([bridge.start(this.contextFor(bridge.network)), stopped]);
        this.connecting.delete(bridge.network);
        log.info("Started the {network} connector", { network: bridge.network });
        return;
      } catch (err) {
        // Only a failure the connector marked transient is worth another try; anything else needs a person.
        if (!(err instanceof BridgeError && err.transient) || signal.aborted) throw err;
        const delay = backoff.next(err.retryAfterMs);
        const seconds = delay / 1000;
        this.connecting.set(
          bridge.network,
          `not connected yet (attempt ${attempt}): ${errorMessage(err)}; retrying in ${seconds} s`,
        );
        log.warn("Cannot connect to {network} yet (attempt {attempt}): {error}; retrying in {seconds} s", {
          network: bridge.network,
          attempt,
          error: errorMessage(err),
          seconds,
        });
        await sleep(delay, signal);
        signal.throwIfAborted();
      }
    }
  }

  /**
   * Makes the stored static mappings follow the configured entries: adds new ones, replaces changed ones, removes
   * those no longer configured. Mappings made by command are never touched; an entry that collides with one is
   * reported with the way to remove it. Returns the keys of stored mappings not to join now (their entry failed).
   *
   * Static mappings stored before schema 2 do not know their entry: one equal to a configured entry is adopted by
   * it; the others are removed, unless some entry could not be resolved (it may be that entry), then kept until a
   * start where every entry resolves.
   */
  private async reconcileStatic(entries: MappingRefs[]): Promise<Set<string>> {
    this.failures.clear();
    const skipJoin = new Set<string>();
    const fail = (refs: MappingRefs, error: string) => {
      const mapping = mappingLabel(refs);
      this.failures.set(mapping, { mapping, error });
      log.error("Static mapping {mapping} is not applied: {error}", { mapping, error });
    };

    // 1. Resolve every entry to channel ids; a failure keeps whatever that entry stored before.
    const resolved = new Map<string, { refs: MappingRefs; channels: Record<string, string> }>();
    const unresolved = new Set<string>();
    for (const refs of entries) {
      const label = mappingLabel(refs);
      try {
        resolved.set(label, { refs, channels: await this.resolveEntry(refs) });
      } catch (err) {
        unresolved.add(label);
        fail(refs, errorMessage(err));
      }
    }

    // 2. Keep, adopt or remove what is stored.
    const stored = (await this.store.listMappings()).filter((m) => m.origin === "static");
    const kept = new Set<string>();
    for (const mapping of stored) {
      const label = mapping.source ? mappingLabel(mapping.source) : undefined;
      const entry = label
        ? resolved.get(label)
        : [...resolved.values()].find((e) => sameChannels(e.channels, mapping.channels));
      if (entry && sameChannels(entry.channels, mapping.channels)) {
        kept.add(mappingLabel(entry.refs));
        if (!label) await this.replace(mapping, { ...mapping, source: entry.refs });
        continue;
      }
      if (label && unresolved.has(label)) {
        skipJoin.add(mappingKey(mapping));
        continue;
      }
      if (!label && unresolved.size > 0) {
        log.warn(
          "Kept static mapping {channels} from an older version: it may belong to an entry that could not be resolved",
          { channels: mapping.channels },
        );
        continue;
      }
      await this.unmap(Object.keys(mapping.channels)[0], Object.values(mapping.channels)[0]);
      log.info("Removed static mapping {channels}: it is no longer in BRIDGE_MAPPINGS", {
        channels: mapping.channels,
      });
    }

    // 3. Add the entries not stored yet.
    for (const [label, { refs, channels }] of resolved) {
      if (kept.has(label)) continue;
      const res = await this.store.addMapping({
        channels,
        origin: "static",
        source: refs,
        createdAt: Date.now(),
      });
      if (res.ok) {
        log.info("Applied static mapping {mapping}", { mapping: label });
        continue;
      }
      if (sameChannels(res.conflict.existing.channels, channels)) {
        // An admin mapped the very same pair by command: nothing to apply, and that mapping stays theirs.
        log.info("Static mapping {mapping} is already mapped by command", { mapping: label });
        continue;
      }
      fail(
        refs,
        describeBlocker(res.conflict.network, channels[res.conflict.network], res.conflict.existing),
      );
    }
    return skipJoin;
  }

  /**
   * Resolves each side of a configured entry. A channel must exist unless the manager may create channels; one
   * that does not exist but could be created by joining it (an XMPP room) is reported with the way to allow that.
   */
  private async resolveEntry(refs: MappingRefs): Promise<Record<string, string>> {
    const channels: Record<string, string> = {};
    const mustExist = !this.opts.createMissingChannels;
    for (const [network, ref] of Object.entries(refs)) {
      const bridge = this.bridges.get(network);
      if (!bridge) throw new BridgeError(`no ${network} connector is configured`);
      try {
        channels[network] = await bridge.resolveChannel(ref, { mustExist });
      } catch (err) {
        if (!mustExist || isTransient(err)) throw err;
        const creatable = await bridge.resolveChannel(ref, { mustExist: false }).then(
          () => true,
          () => false,
        );
        if (!creatable) throw err;
        throw new BridgeError(
          `${
            errorMessage(err)
          }: create it there, or set BRIDGE_CREATE_ROOMS=true to let the bridge create it`,
        );
      }
    }
    return channels;
  }

  /** Rewrites a stored mapping (both sides) as `updated`. */
  private async replace(old: ChannelMapping, updated: ChannelMapping): Promise<void> {
    const [network, channel] = Object.entries(old.channels)[0];
    await this.store.removeMapping(network, channel);
    const res = await this.store.addMapping(updated);
    if (!res.ok) throw new BridgeError(`could not rewrite the mapping of ${channel}: it changed meanwhile`);
  }

  private async joinBoth(mapping: ChannelMapping): Promise<string[]> {
    const warnings: string[] = [];
    for (const [network, channel] of Object.entries(mapping.channels)) {
      const bridge = this.bridges.get(network);
      if (!bridge) continue;
      try {
        await bridge.joinChannel(channel);
      } catch (err) {
        const text = `could not join ${network} ${channel}: ${errorMessage(err)}`;
        log.warn("Could not join {network} {channel}: {error}", {
          network,
          channel,
          error: errorMessage(err),
        });
        warnings.push(text);
      }
    }
    return warnings;
  }
}

/** A stable key of a stored mapping. */
function mappingKey(mapping: ChannelMapping): string {
  return JSON.stringify(Object.entries(mapping.channels).sort());
}

function sameChannels(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}

/** Names the mapping that blocks a static entry and how to remove it. */
function describeBlocker(network: string, channel: string, existing: ChannelMapping): string {
  const pair = Object.entries(existing.channels).map(([n, c]) => `${n} ${c}`).join(" ↔ ");
  const how = existing.origin === "command"
    ? `made with /xmppbridge map${existing.createdBy ? ` by user ${existing.createdBy}` : ""}`
    : "a static mapping";
  return `${network} ${channel} is already in the mapping ${pair} (${how}). Remove that mapping with ` +
    `\`/xmppbridge unmap\` in its Mattermost channel, or \`mmxmpp mappings unmap ${channel}\` while the bridge ` +
    "is stopped, then restart; or remove this entry from BRIDGE_MAPPINGS";
}

/** Rejects as soon as `signal` aborts; never resolves. */
function aborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
}
