/**
 * An in-memory connector for tests and benchmarks of the protocol-agnostic core.
 *
 * @module
 */
import {
  type Bridge,
  type BridgeContext,
  type BridgeHealth,
  MESSAGES_ONLY,
  type PortalCapabilities,
} from "../../src/core/bridge.ts";
import type { DirectionalMessage, SentRefs } from "../../src/core/message.ts";

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
