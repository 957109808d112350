import assert from "node:assert/strict";
import type { BridgeContext } from "../src/core/bridge.ts";
import { BridgeManager } from "../src/core/manager.ts";
import { Store } from "../src/core/store.ts";
import { FakeBridge } from "./helpers/fake_bridge.ts";

/** A fake network that keeps the context the core gives it, to act as a connector would. */
class ContextBridge extends FakeBridge {
  ctx!: BridgeContext;
  override start(ctx: BridgeContext): Promise<void> {
    this.ctx = ctx;
    return Promise.resolve();
  }
}

Deno.test("a channel's read position is stored only once what came before it was delivered", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mmxmpp-manager-" });
  const store = await Store.open(`${dir}/state.kv`);
  const mm = new ContextBridge("mattermost");
  const xmpp = new ContextBridge("xmpp");
  const manager = new BridgeManager(store, [mm, xmpp], { retry: { initialMs: 5, maxMs: 20 } });
  try {
    const added = await store.addMapping({
      channels: { mattermost: "chan", xmpp: "room@conference.example.org" },
      origin: "command",
      createdAt: Date.now(),
    });
    assert.ok(added.ok);
    await manager.start();
    let release!: () => void;
    xmpp.behave = () => new Promise<void>((r) => release = r);

    mm.ctx.receive({
      network: "mattermost",
      channel: "chan",
      ids: ["post1"],
      author: { id: "u1", name: "bob" },
      text: "held up on the way",
      timestamp: 100,
    });
    mm.ctx.saveCursor("chan", 100);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(
      await store.getCursor("mattermost", "chan"),
      undefined,
      "read past a message not yet delivered",
    );

    release();
    await manager.bus.drain();
    await manager.cursors.flush();
    assert.equal(await store.getCursor("mattermost", "chan"), 100);
  } finally {
    await manager.stop();
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
});
