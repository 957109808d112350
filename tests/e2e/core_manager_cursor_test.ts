import assert from "node:assert/strict";
import type { BridgeContext } from "../../src/core/bridge.ts";
import { Cursors } from "../../src/core/cursors.ts";
import { BridgeManager } from "../../src/core/manager.ts";
import { Store } from "../../src/core/store.ts";
import { FakeBridge } from "../helpers/fake_bridge.ts";
import { waitFor } from "../helpers/harness.ts";

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
      kind: "message",
      eventId: "post1",
      portal: { network: "mattermost", channel: "chan" },
      ids: ["post1"],
      sender: { network: "mattermost", id: "u1", name: "bob" },
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

Deno.test("a position advanced after stop() is written at once, with no timer left behind", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mmxmpp-cursors-" });
  const store = await Store.open(`${dir}/state.kv`);
  // A batch interval no test waits out: only an immediate write can land.
  const cursors = new Cursors(store, 3_600_000);
  try {
    cursors.advance("xmpp", "room@muc", 1);
    cursors.advance("xmpp", "room@muc", 2);
    await cursors.stop();
    assert.equal(await store.getCursor("xmpp", "room@muc"), 2);
    // A delivery that settled while the bridges were stopping.
    cursors.advance("xmpp", "room@muc", 3);
    await waitFor(async () => await store.getCursor("xmpp", "room@muc") === 3, "the late position");
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
});
