import assert from "node:assert/strict";
import type { BridgeContext } from "../../src/core/bridge.ts";
import { BridgeError } from "../../src/core/errors.ts";
import { BridgeManager } from "../../src/core/manager.ts";
import { Store } from "../../src/core/store.ts";
import { FakeBridge } from "../helpers/fake_bridge.ts";
import { captureLogs } from "../helpers/log_capture.ts";

/** A network whose first starts fail with `failures`, in turn, before one succeeds. */
class FlakyStart extends FakeBridge {
  starts = 0;
  constructor(network: string, private readonly failures: Error[]) {
    super(network);
  }
  override start(_ctx: BridgeContext): Promise<void> {
    const failure = this.failures[this.starts++];
    return failure ? Promise.reject(failure) : Promise.resolve();
  }
}

Deno.test("the start retry grows its waits and honours a wait the server asked for", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mmxmpp-manager-start-" });
  const store = await Store.open(`${dir}/state.kv`);
  const down = new BridgeError("server down", { transient: true });
  const limited = new BridgeError("rate-limited", { transient: true, retryAfterMs: 300 });
  const xmpp = new FlakyStart("xmpp", [down, down, limited, down]);
  const manager = new BridgeManager(store, [new FakeBridge("mattermost"), xmpp], {
    startRetry: { initialMs: 10, maxMs: 1_000 },
  });
  try {
    await captureLogs(async (records) => {
      await manager.start();
      const waits = records
        .filter((r) => r.message.join("").startsWith("Cannot connect to xmpp yet"))
        .map((r) => r.properties.seconds);
      assert.deepEqual(waits, [0.01, 0.02, 0.3, 0.08]);
    });
    assert.equal(xmpp.starts, 5);
  } finally {
    await manager.stop();
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
});
