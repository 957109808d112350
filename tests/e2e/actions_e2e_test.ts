import assert from "node:assert/strict";
import { postsMatching, startWorld, type World } from "../helpers/harness.ts";
import { connectClient } from "../mm_server/test_support.ts";
import { explicitMentions } from "../mm_server/mentions.ts";

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

Deno.test(
  "@channel, @all and @here from XMPP notify nobody unless BRIDGE_ALLOW_CHANNEL_MENTIONS=true",
  opts,
  async () => {
    const w = await startWorld();
    const bob = connectClient(w.mm, w.bob.token);
    try {
      await bob.waitFor((m) => m.event === "hello");
      /** The `mentions` of the `posted` event bob gets for the bridged copy of `text`. */
      const mentionsFor = async (text: string) => {
        await w.alice.sendGroupchat(w.room, text);
        const event = await bob.waitFor(
          (m) =>
            m.event === "posted" &&
            JSON.parse(m.data.post).message.replaceAll("\u2060", "") === text.replace("\\", "\\\\"),
          10_000,
        );
        const post = JSON.parse(event.data.post);
        return { post, mentions: event.data.mentions ? JSON.parse(event.data.mentions) : [] };
      };

      let bridge = await w.startBridge();
      const typed = "@channel lunch? \\@all, (@HERE) cc @bob";
      const { post, mentions } = await mentionsFor(typed);
      assert.deepEqual(mentions, [w.bob.id], "only bob, by name");
      const counted = explicitMentions(post.message);
      assert.ok(!counted.channel && !counted.all && !counted.here, post.message);
      // The backslash is escaped so that Mattermost's Markdown shows it (xmpp_format_test.ts).
      assert.equal(post.message.replaceAll("\u2060", ""), typed.replace("\\", "\\\\"), "reads as typed");

      await bridge.stop();
      bridge = await w.startBridge({ BRIDGE_ALLOW_CHANNEL_MENTIONS: "true" });
      const allowed = await mentionsFor("@channel meeting now");
      assert.equal(allowed.post.message, "@channel meeting now");
      assert.ok(allowed.mentions.includes(w.bob.id), "bob is notified through @channel");
    } finally {
      bob.close();
      await w.stop();
    }
  },
);
