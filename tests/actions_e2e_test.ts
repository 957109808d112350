import assert from "node:assert/strict";
import { postsMatching, startWorld, type World } from "./harness.ts";

// xmpp.js and the Mattermost websocket client keep internal timers that outlive a test by a few ms.
const opts = { sanitizeOps: false, sanitizeResources: false };

/** What Mattermost's `/me waves` creates: a `me` post whose message is `*waves*`. */
function meAs(w: World, userId: string, text: string) {
  return w.mm.postAs(userId, w.channel.id, `*${text}*`, { type: "me" });
}

Deno.test(
  "relay: /me on either side arrives as an action, * bob … in the room and a me post",
  opts,
  async () => {
    const w = await startWorld();
    try {
      const bridge = await w.startBridge();
      await meAs(w, w.bob.id, "waves at everyone 👋");
      const [got] = await w.alice.waitForMessages(w.room, (m) => m.nick === "bridge", 1, 10_000);
      assert.equal(got.body, "* bob waves at everyone 👋");

      await w.alice.sendGroupchat(w.room, "/me dances");
      const [post] = await postsMatching(w.mm, w.channel.id, (p) => p.user_id === w.mm.bot.id, 1);
      assert.equal(post.type, "me");
      assert.equal(post.message, "*dances*");
      assert.equal(post.props?.override_username, "alice (xmpp)");

      await bridge.manager.bus.drain();
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(w.alice.messages.filter((m) => m.nick === "bridge").length, 1, "no echo");
      assert.equal(w.mm.posts(w.channel.id).filter((p) => p.user_id === w.mm.bot.id).length, 1, "no echo");
    } finally {
      await w.stop();
    }
  },
);

Deno.test("prefix mode: an XMPP /me is a me post with the bold name before the action", opts, async () => {
  const w = await startWorld({ mattermost: { enablePostUsernameOverride: false } });
  try {
    await w.startBridge({ BRIDGE_MM_DISPLAY: "prefix" });
    await w.alice.sendGroupchat(w.room, "/me shrugs");
    const [post] = await postsMatching(w.mm, w.channel.id, (p) => p.user_id === w.mm.bot.id, 1);
    assert.equal(post.type, "me");
    assert.equal(post.message, "**alice (xmpp)** *shrugs*");
  } finally {
    await w.stop();
  }
});

Deno.test(
  "ibr: a ghost acts with /me under its own nick, and an XMPP /me becomes a me post",
  opts,
  async () => {
    const w = await startWorld();
    try {
      await w.startBridge({
        BRIDGE_GHOST_MODE: "ibr",
        BRIDGE_SECRET_KEY: "a-long-random-key-for-the-tests-0123456789",
      });
      await meAs(w, w.bob.id, "nods");
      const [got] = await w.alice.waitForMessages(w.room, (m) => m.nick === "bob", 1, 15_000);
      assert.equal(got.body, "/me nods");

      await w.alice.sendGroupchat(w.room, "/me nods back");
      const [post] = await postsMatching(w.mm, w.channel.id, (p) => p.user_id === w.mm.bot.id, 1);
      assert.equal(post.type, "me");
      assert.equal(post.message, "*nods back*");
    } finally {
      await w.stop();
    }
  },
);
