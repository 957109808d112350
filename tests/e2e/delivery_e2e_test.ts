/**
 * Outbound delivery to Mattermost when creates fail or their answers get lost, and echo prevention with each of its
 * two layers on its own: the real bridge, real Prosody and the stand-in with its fault hooks.
 */
import assert from "node:assert/strict";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { postsMatching, sharedWorlds, type World } from "../helpers/harness.ts";

// xmpp.js and the Mattermost websocket client keep internal timers that outlive a test by a few ms.
const opts = { sanitizeOps: false, sanitizeResources: false };
/** One Prosody for the file; each test has its own room, stand-in and store. */
const worlds = sharedWorlds("delivery");

/** The bridge's posts in the mapped channel, in order. */
function bridgePosts(w: World): string[] {
  return w.mm.posts(w.channel.id).filter((p) => p.user_id === w.mm.bot.id).map((p) => p.message);
}

/**
 * Proves that nothing more comes from the bridge into the room: a post made now on Mattermost travels the same
 * ordered paths (the connector's post queue, the bus's queue for the room, the room) behind anything still under way,
 * so once alice sees it, any echo would have arrived before it.
 */
async function lastBridgeMessages(w: World, sentinel: string): Promise<string[]> {
  await w.mm.postAs(w.bob.id, w.channel.id, sentinel);
  await w.alice.waitForMessages(w.room, (m) => m.body === `<bob> ${sentinel}`, 1, 10_000);
  return w.alice.messages.filter((m) => m.nick === "bridge" && m.body !== `<bob> ${sentinel}`)
    .map((m) => m.body ?? "");
}

Deno.test(
  "a create whose answer is lost is retried with the same pending_post_id and posted once",
  opts,
  async () => {
    const w = await worlds.start();
    try {
      const bridge = await w.startBridge();
      w.mm.failPostCreates({ kind: "lose-answer" });
      await w.alice.sendGroupchat(w.room, "exactly once");
      await w.alice.sendGroupchat(w.room, "and then this");
      await postsMatching(w.mm, w.channel.id, (p) => p.message === "and then this", 1);
      await bridge.manager.bus.drain();
      assert.deepEqual(bridgePosts(w), ["exactly once", "and then this"]);
      const stats = bridge.manager.stats();
      assert.ok(stats.retried >= 1, "the lost answer was retried");
      assert.equal(stats.delivered, 2);
    } finally {
      await w.stop();
    }
  },
);

Deno.test(
  "a long message whose second post fails is retried from that post: each piece posted once, in order",
  opts,
  async () => {
    // The bridge retries after 100 ms; a 20 ms pending_post_id lifetime stands for an outage longer than the server's
    // 30 s, so the server's de-duplication cannot hide a piece posted twice.
    const w = await worlds.start({ mattermost: { pendingPostIdTtlMs: 20 } });
    try {
      const bridge = await w.startBridge();
      const text = Array.from({ length: 1_500 }, (_, i) => `word${i} `).join("").repeat(2);
      assert.ok([...text].length > 16_383 && [...text].length <= 2 * 16_383);
      w.mm.failPostCreates({ kind: "server-error" }, { skip: 1 });
      await w.alice.sendGroupchat(w.room, text);
      await postsMatching(w.mm, w.channel.id, (p) => p.user_id === w.mm.bot.id, 2, 10_000);
      await bridge.manager.bus.drain();
      const posts = bridgePosts(w);
      assert.equal(posts.length, 2, `posts of ${posts.map((p) => [...p].length).join(", ")} runes`);
      assert.equal(posts.join(""), text);
      assert.ok(bridge.manager.stats().retried >= 1);
    } finally {
      await w.stop();
    }
  },
);

Deno.test(
  "a proxy's HTML 413 is given up and logged without blocking the channel; a proxy's 502 is retried",
  opts,
  async () => {
    const records: LogRecord[] = [];
    await configure({
      reset: true,
      sinks: { memory: (r) => records.push(r) },
      loggers: [
        { category: ["mmxmpp"], lowestLevel: "info", sinks: ["memory"] },
        { category: ["logtape", "meta"], lowestLevel: "warning", sinks: [] },
      ],
    });
    const w = await worlds.start();
    try {
      const bridge = await w.startBridge();
      w.mm.failPostCreates({ kind: "proxy-error", status: 413 });
      await w.alice.sendGroupchat(w.room, "too large for the proxy");
      await w.alice.sendGroupchat(w.room, "next in line");
      await postsMatching(w.mm, w.channel.id, (p) => p.message === "next in line", 1, 10_000);
      assert.deepEqual(bridgePosts(w), ["next in line"]);
      assert.equal(bridge.manager.stats().failed, 1);
      const gaveUp = records.find((r) => r.level === "error" && String(r.rawMessage).startsWith("Gave up"));
      assert.ok(gaveUp, "giving up is logged as an error");
      assert.match(String(gaveUp.properties.error), /413/);

      w.mm.failPostCreates({ kind: "proxy-error", status: 502 }, { times: 2 });
      await w.alice.sendGroupchat(w.room, "through a flaky proxy");
      await postsMatching(w.mm, w.channel.id, (p) => p.message === "through a flaky proxy", 1, 10_000);
      await bridge.manager.bus.drain();
      assert.deepEqual(bridgePosts(w), ["next in line", "through a flaky proxy"]);
      assert.ok(bridge.manager.stats().retried >= 2);
      assert.equal(bridge.manager.stats().failed, 1);
    } finally {
      await w.stop();
      await reset();
    }
  },
);

for (const layer of ["filter", "deliveryId"] as const) {
  const alone = layer === "filter" ? "delivery id" : "connector filter";
  Deno.test(`with only the ${alone} guarding, 50 XMPP messages come back as 0 echoes`, opts, async () => {
    const w = await worlds.start();
    try {
      const bridge = await w.startBridge();
      bridge.mattermost.echoGuards[layer] = false;
      const sent = Array.from({ length: 50 }, (_, i) => `xmpp ${i}`);
      for (const text of sent) await w.alice.sendGroupchat(w.room, text);
      await postsMatching(w.mm, w.channel.id, (p) => p.user_id === w.mm.bot.id, 50, 20_000);
      await bridge.manager.bus.drain();
      assert.deepEqual(bridgePosts(w), sent);
      assert.deepEqual(await lastBridgeMessages(w, "sentinel"), []);
      // With the filter off, every one of the 50 posts reached the bus and was recognised there.
      if (layer === "filter") assert.equal(bridge.manager.stats().echoesDropped, 50);
    } finally {
      await w.stop();
    }
  });
}

for (const layer of ["filter", "deliveryId"] as const) {
  const alone = layer === "filter" ? "delivery id" : "connector filter";
  Deno.test(
    `XMPP ghosts: with only the ${alone} guarding, 50 Mattermost posts come back as 0 echoes`,
    opts,
    async () => {
      const w = await worlds.start();
      try {
        const bridge = await w.startBridge({ BRIDGE_GHOST_MODE: "ibr" });
        bridge.xmpp.echoGuards[layer] = false;
        const sent = Array.from({ length: 50 }, (_, i) => `mm ${i}`);
        for (const text of sent) await w.mm.postAs(w.bob.id, w.channel.id, text);
        // The ghost's messages reach the bridge's own session too, from a nick that is not the bridge's.
        const got = await w.alice.waitForMessages(w.room, (m) => m.nick === "bob", 50, 30_000);
        assert.deepEqual(got.map((m) => m.body), sent);
        // Sent after alice saw all 50, so the room hands it to the bridge after them, on the same ordered path.
        await w.alice.sendGroupchat(w.room, "sentinel");
        await postsMatching(w.mm, w.channel.id, (p) => p.message === "sentinel", 1, 10_000);
        await bridge.manager.bus.drain();
        assert.deepEqual(bridgePosts(w), ["sentinel"]);
        if (layer === "filter") assert.equal(bridge.manager.stats().echoesDropped, 50);
      } finally {
        await w.stop();
        // The next test's bridge registers bob's ghost afresh, as on a Prosody of its own.
        await w.prosody.unregister("mm_bob").catch(() => {});
      }
    },
  );
}

worlds.stopAfterAll();
