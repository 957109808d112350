/**
 * An in-memory connector for tests and benchmarks of the protocol-agnostic core.
 *
 * @module
 */
import {
  type Bridge,
  type BridgeContext,
  type BridgeHealth,
  type EditCapable,
  MESSAGES_ONLY,
  type PortalCapabilities,
  type ReactionCapable,
  type RemoveCapable,
  type TypingCapable,
} from "../../src/core/bridge.ts";
import type { BridgeEvent } from "../../src/core/events.ts";
import type {
  DirectionalEvent,
  DirectionalMessage,
  EditDelivery,
  ReactionsDelivery,
  RemoveDelivery,
  SentRefs,
  TypingDelivery,
} from "../../src/core/message.ts";

/**
 * An in-memory network for the protocol-agnostic core. `behave` decides per call what `send` does: return normally,
 * throw, or wait first. Each delivery gets ids `<network>-<n>` and `<network>-<n>-alt`.
 */
export class FakeBridge implements Bridge {
  readonly sent: DirectionalMessage[] = [];
  /** Every call to send, including failed ones. */
  calls = 0;
  behave: (dm: DirectionalMessage, call: number) => Promise<void> = () => Promise.resolve();

  constructor(readonly network: string) {}

  start(_ctx: BridgeContext): Promise<void> {
    return Promise.resolve();
  }
  stop(): Promise<void> {
    return Promise.resolve();
  }
  async send(dm: DirectionalMessage): Promise<SentRefs> {
    const call = ++this.calls;
    await this.behave(dm, call);
    this.sent.push(dm);
    const n = this.sent.length;
    return { ids: [`${this.network}-${n}`, `${this.network}-${n}-alt`] };
  }
  resolveChannel(ref: string): Promise<string> {
    return Promise.resolve(ref);
  }
  joinChannel(): Promise<void> {
    return Promise.resolve();
  }
  leaveChannel(): Promise<void> {
    return Promise.resolve();
  }
  health(): BridgeHealth {
    return { network: this.network, connected: true, detail: "fake", since: 0 };
  }
  portalCapabilities(_channel: string): PortalCapabilities {
    return MESSAGES_ONLY;
  }
}

/** One call a {@link CapableFakeBridge} got, in order: which capability, and for which event. */
export type CapabilityCall =
  | { kind: "edit"; delivery: EditDelivery }
  | { kind: "remove"; delivery: RemoveDelivery }
  | { kind: "reactions"; delivery: ReactionsDelivery }
  | { kind: "typing"; delivery: TypingDelivery };

/**
 * A {@link FakeBridge} with every optional capability. `caps` decides per channel what it states (all yes by
 * default); `behaveOn` decides what a capability call does, as `behave` does for `send`.
 */
export class CapableFakeBridge extends FakeBridge
  implements EditCapable, RemoveCapable, ReactionCapable, TypingCapable {
  /** Capability calls that returned normally, in order. */
  readonly applied: CapabilityCall[] = [];
  behaveOn: (d: DirectionalEvent<BridgeEvent>, call: number) => Promise<void> = () => Promise.resolve();
  caps: (channel: string) => PortalCapabilities = () => ({
    canEdit: true,
    canRemove: true,
    reactions: true,
    typing: true,
  });

  override portalCapabilities(channel: string): PortalCapabilities {
    return this.caps(channel);
  }
  sendEdit(delivery: EditDelivery): Promise<void> {
    return this.apply({ kind: "edit", delivery });
  }
  sendRemove(delivery: RemoveDelivery): Promise<void> {
    return this.apply({ kind: "remove", delivery });
  }
  sendReactions(delivery: ReactionsDelivery): Promise<void> {
    return this.apply({ kind: "reactions", delivery });
  }
  sendTyping(delivery: TypingDelivery): Promise<void> {
    return this.apply({ kind: "typing", delivery });
  }

  private async apply(call: CapabilityCall): Promise<void> {
    await this.behaveOn(call.delivery, ++this.calls);
    this.applied.push(call);
  }
}
