/**
 * The bridge manager: owns the connectors, the bus and the store, applies mappings and answers commands.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { type Bridge, type BridgeContext, type BridgeHealth, isGhostingBridge } from "./bridge.ts";
import { type BusStats, MessageBus, type RetryPolicy } from "./bus.ts";
import { BridgeError, errorMessage } from "./errors.ts";
import type { ChannelMapping, Store } from "./store.ts";
import { runCommand } from "./commands.ts";
import { settleWithin } from "./deadline.ts";

const log = getLogger(["mmxmpp", "manager"]);

/** A mapping as an admin wrote it: network name → channel reference in that network's own syntax. */
export type MappingRefs = Record<string, string>;

/** Outcome of {@link BridgeManager.map}. */
export interface MapResult {
  mapping: ChannelMapping;
  /** Problems that did not stop the mapping (e.g. the join failed and will be retried). */
  warnings: string[];
}

/** Options for {@link BridgeManager}. */
export interface ManagerOptions {
  /** Mappings from configuration, applied at every start. */
  staticMappings?: MappingRefs[];
  retry?: RetryPolicy;
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
  private readonly bridges: Map<string, Bridge>;
  private started = false;
  private ready = false;

  constructor(private readonly store: Store, bridges: Bridge[], private readonly opts: ManagerOptions = {}) {
    this.bridges = new Map(bridges.map((b) => [b.network, b]));
    this.bus = new MessageBus(store, this.bridges, opts.retry);
  }

  /** Starts every bridge, applies static mappings and joins every mapped channel. */
  async start(): Promise<void> {
    // Set first so that `stop` also cleans up after a start that failed half-way.
    this.started = true;
    for (const bridge of this.bridges.values()) {
      await bridge.start(this.contextFor(bridge.network));
      log.info("Started the {network} connector", { network: bridge.network });
    }
    for (const refs of this.opts.staticMappings ?? []) await this.applyStatic(refs);
    for (const mapping of await this.store.listMappings()) await this.joinBoth(mapping);
    this.ready = true;
  }

  /** True once `start` has connected every bridge and joined every mapped channel, until `stop`. */
  isReady(): boolean {
    return this.ready;
  }

  /** Lets queued messages go out (up to `graceMs`), then stops the bus and every bridge. */
  async stop(graceMs = 2_000): Promise<void> {
    if (!this.started) return;
    this.started = false;
    this.ready = false;
    await settleWithin(this.bus.drain(), graceMs);
    this.bus.stop();
    await Promise.all([...this.bridges.values()].map((b) => b.stop()));
  }

  /** Health of every bridge. */
  health(): BridgeHealth[] {
    return [...this.bridges.values()].map((b) => b.health());
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
      receive: (message) => this.bus.publish(message),
      addMessageAlias: async (channel, knownId, newId) => {
        await this.store.addAlias(network, channel, knownId, newId);
      },
      mappedChannels: async () =>
        (await this.store.listMappings()).map((m) => m.channels[network]).filter((c): c is string => !!c),
      runCommand: (input) => runCommand(this, { network, ...input }),
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

  private async applyStatic(refs: MappingRefs): Promise<void> {
    const label = Object.entries(refs).map(([n, r]) => `${n}:${r}`).join(" = ");
    try {
      const channels: Record<string, string> = {};
      for (const [network, ref] of Object.entries(refs)) {
        const bridge = this.bridges.get(network);
        if (!bridge) throw new BridgeError(`no ${network} connector is configured`);
        channels[network] = await bridge.resolveChannel(ref, { mustExist: false });
      }
      const res = await this.store.addMapping({ channels, origin: "static", createdAt: Date.now() });
      if (res.ok) {
        log.info("Applied static mapping {mapping}", { mapping: label });
        return;
      }
      const same = Object.entries(channels).every(([n, c]) => res.conflict.existing.channels[n] === c);
      if (!same) {
        log.error(
          "Static mapping {mapping} conflicts with an existing mapping of {network}; unmap that first",
          {
            mapping: label,
            network: res.conflict.network,
          },
        );
      }
    } catch (err) {
      log.error("Could not apply static mapping {mapping}: {error}", {
        mapping: label,
        error: errorMessage(err),
      });
    }
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
