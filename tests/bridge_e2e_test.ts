import assert from "node:assert/strict";
import { postsMatching, startWorld } from "./harness.ts";

// xmpp.js and the Mattermost websocket client keep internal timers that outlive a test by a few ms.
const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "a Mattermost post reaches the room and an XMPP message becomes a post, text intact",
  opts,
  async () => {
    const w = await startWorld();
    try {
      await w.startBridge();
      const text = "Grüße 👋🏽 from Mattermost\nsecond line — ünïcödé 𝔘 and `code`";
      await w.mm.postAs(w.bob.id, w.channel.id, text);
      const [got] = await w.alice.waitForMessages(w.room, (m) => m.nick === "bridge", 1, 10_000);
      assert.equal(got.body, `<bob> ${text}`);
      assert.ok(got.originId, "the bridge's message carries an origin-id");

      const reply = "Hej 🇸🇪 från XMPP\n> quoted\n\ttabbed";
      await w.alice.sendGroupchat(w.room, reply);
      const [post] = await postsMatching(w.mm, w.channel.id, (p) => p.user_id === w.mm.bot.id, 1, 10_000);
      assert.equal(post.message, reply);
      assert.equal(post.props?.override_username, "alice (xmpp)");
      assert.equal(post.props?.from_webhook, "true");
      assert.equal(post.props?.mmxmpp_bridged, "xmpp");
    } finally {
      await w.stop();
    }
  },
);

Deno.test("50 messages each way arrive once, in order, and nothing is echoed back", opts, async () => {
  const w = await startWorld();
  try {
    const bridge = await w.startBridge();
    for (let i = 0; i < 50; i++) {
      await w.mm.postAs(w.bob.id, w.channel.id, `mm ${i}`);
      await w.alice.sendGroupchat(w.room, `xmpp ${i}`);
    }
    const fromMm = await w.alice.waitForMessages(w.room, (m) => m.nick === "bridge", 50, 20_000);
    assert.deepEqual(fromMm.map((m) => m.body), Array.from({ length: 50 }, (_, i) => `<bob> mm ${i}`));
    const posts = await postsMatching(w.mm, w.channel.id, (p) => p.user_id === w.mm.bot.id, 50, 20_000);
    assert.deepEqual(posts.map((p) => p.message), Array.from({ length: 50 }, (_, i) => `xmpp ${i}`));
    await bridge.manager.bus.drain();
    // Give any echo time to show up, then count: still exactly 50 each way.
    await new Promise((r) => setTimeout(r, 1_000));
    assert.equal(w.alice.messages.filter((m) => m.nick === "bridge").length, 50);
    assert.equal(w.mm.posts(w.channel.id).filter((p) => p.user_id === w.mm.bot.id).length, 50);
    assert.equal(w.mm.posts(w.channel.id).filter((p) => p.message.startsWith("<bob>")).length, 0);
    const stats = bridge.manager.stats();
    assert.equal(stats.delivered, 100);
    assert.equal(stats.failed, 0);
    const metrics = await (await fetch(`http://127.0.0.1:${w.httpPort}/metrics`)).text();
    assert.match(metrics, /^mmxmpp_messages_delivered_total 100$/m);
    assert.match(metrics, /^mmxmpp_messages_received_total 100$/m);
    assert.match(metrics, /^mmxmpp_connected\{network="xmpp"\} 1$/m);
    assert.match(metrics, /^mmxmpp_mappings 1$/m);
  } finally {
    await w.stop();
  }
});

Deno.test("an unmapped channel and an unmapped room stay silent", opts, async () => {
  const w = await startWorld();
  try {
    const bridge = await w.startBridge();
    const other = w.mm.createChannel("elsewhere");
    w.mm.addMember(other.id, w.bob.id);
    w.mm.addMember(other.id, w.mm.bot.id);
    const otherRoom = "lounge@conference.localhost";
    await w.alice.joinRoom(otherRoom, "alice");
    await w.mm.postAs(w.bob.id, other.id, "not for XMPP");
    await w.alice.sendGroupchat(otherRoom, "not for Mattermost");
    // A mapped message after them proves the bridge was live while they went by.
    await w.mm.postAs(w.bob.id, w.channel.id, "mapped");
    await w.alice.waitForMessages(w.room, (m) => m.body === "<bob> mapped", 1, 10_000);
    await bridge.manager.bus.drain();
    await w.alice.expectSilence(otherRoom, (m) => m.nick === "bridge", 500);
    assert.equal(w.alice.messages.filter((m) => m.body?.includes("not for XMPP")).length, 0);
    assert.equal(w.mm.posts(other.id).filter((p) => p.user_id === w.mm.bot.id).length, 0);
    // The bot is a member of the other channel, so its posts reach the bridge, which must drop them.
    assert.ok(bridge.manager.stats().unmapped >= 1);
  } finally {
    await w.stop();
  }
});

Deno.test("a 20,000-rune XMPP message arrives as ordered posts within Mattermost's limit", opts, async () => {
  const w = await startWorld();
  try {
    await w.startBridge();
    const line = "🚀 rocket science is the art of the possible.\n";
    let text = "";
    while ([...text].length < 20_000) text += line;
    text = [...text].slice(0, 20_000).join("");
    await w.alice.sendGroupchat(w.room, text);
    const posts = await postsMatching(w.mm, w.channel.id, (p) => p.user_id === w.mm.bot.id, 2, 10_000);
    assert.equal(posts.length, 2);
    for (const p of posts) assert.ok([...p.message].length <= 16_383);
    assert.equal(posts.map((p) => p.message).join(""), text);
    assert.ok(posts[0].create_at < posts[1].create_at);
  } finally {
    await w.stop();
  }
});

Deno.test("the id map links a post to the room's stanza-id and back", opts, async () => {
  const w = await startWorld();
  try {
    const bridge = await w.startBridge();
    const post = await w.mm.postAs(w.bob.id, w.channel.id, "map me");
    const [msg] = await w.alice.waitForMessages(w.room, (m) => m.body === "<bob> map me", 1, 10_000);
    await bridge.manager.bus.drain();
    const link = await bridge.store.findLink("mattermost", w.channel.id, post.id);
    assert.ok(link, "the post is in the id map");
    assert.ok(msg.stanzaId && msg.originId);
    assert.ok(link.refs.xmpp.ids.includes(msg.stanzaId), "the room's stanza-id is recorded");
    assert.ok(link.refs.xmpp.ids.includes(msg.originId), "the origin-id is recorded");
    const back = await bridge.store.findLink("xmpp", w.room, msg.stanzaId);
    assert.equal(back?.refs.mattermost.ids[0], post.id);

    await w.alice.sendGroupchat(w.room, "and me");
    const [reply] = await postsMatching(w.mm, w.channel.id, (p) => p.message === "and me", 1, 10_000);
    await bridge.manager.bus.drain();
    const [sent] = w.alice.messages.filter((m) => m.body === "and me");
    const link2 = await bridge.store.findLink("mattermost", w.channel.id, reply.id);
    assert.ok(
      link2?.refs.xmpp.ids.includes(sent.stanzaId!),
      "the reflection's stanza-id names the XMPP side",
    );
  } finally {
    await w.stop();
  }
});

Deno.test(
  "history replayed at join, subject changes and bodiless messages are not bridged",
  opts,
  async () => {
    const w = await startWorld();
    try {
      // History that exists before the bridge joins.
      await w.alice.sendGroupchat(w.room, "old history");
      const bridge = await w.startBridge();
      const { xml } = await import("@xmpp/client-core");
      await w.alice.send(xml("message", { type: "groupchat", to: w.room }, xml("subject", {}, "New topic")));
      await w.alice.send(
        xml(
          "message",
          { type: "groupchat", to: w.room },
          xml("active", { xmlns: "http://jabber.org/protocol/chatstates" }),
        ),
      );
      await w.alice.sendGroupchat(w.room, "live");
      await postsMatching(w.mm, w.channel.id, (p) => p.message === "live", 1, 10_000);
      await bridge.manager.bus.drain();
      const bridged = w.mm.posts(w.channel.id).filter((p) => p.user_id === w.mm.bot.id).map((p) => p.message);
      assert.deepEqual(bridged, ["live"]);
    } finally {
      await w.stop();
    }
  },
);

Deno.test("two users reusing the same message id are both bridged", opts, async () => {
  const w = await startWorld();
  try {
    await w.startBridge();
    const { connectXmppUser } = await import("./helpers/xmpp_user.ts");
    const carol = await connectXmppUser(w.prosody, "alice", "s3cret-Pa55word!", "carol");
    try {
      await carol.joinRoom(w.room, "carol");
      // Naive clients number their messages; the ids collide across senders and must not merge messages.
      await w.alice.sendGroupchat(w.room, "from alice", { id: "1", originId: false });
      // Two senders' messages have no order until the room has seen the first.
      await carol.waitForMessages(w.room, (m) => m.body === "from alice", 1);
      await carol.sendGroupchat(w.room, "from carol", { id: "1", originId: false });
      await w.alice.waitForMessages(w.room, (m) => m.body === "from carol", 1);
      await w.alice.sendGroupchat(w.room, "alice again", { id: "2", originId: false });
      const posts = await postsMatching(w.mm, w.channel.id, (p) => p.user_id === w.mm.bot.id, 3);
      assert.deepEqual(posts.map((p) => p.message), ["from alice", "from carol", "alice again"]);
    } finally {
      await carol.stop();
    }
  } finally {
    await w.stop();
  }
});

Deno.test(
  "posts by the bridge's own account and posts carrying the bridge marker are not bridged to the room",
  opts,
  async () => {
    const w = await startWorld();
    try {
      await w.startBridge();
      // Made outside the bridge (no pending_post_id, no marker): only the bot's user id tells it apart, as for the
      // bridge's own posts replayed by a catch-up after a restart.
      await w.mm.postAs(w.mm.bot.id, w.channel.id, "by the bridge's account");
      // From another user but marked, as a second bridge instance's posts would be: only the marker tells.
      await w.mm.postAs(w.bob.id, w.channel.id, "marked as bridged", { props: { mmxmpp_bridged: "xmpp" } });
      // Posted after both, on the same ordered path: once the room has it, the two would have arrived before it.
      await w.mm.postAs(w.bob.id, w.channel.id, "sentinel");
      await w.alice.waitForMessages(w.room, (m) => m.body === "<bob> sentinel", 1, 10_000);
      assert.deepEqual(
        w.alice.messages.filter((m) => m.nick === "bridge").map((m) => m.body),
        ["<bob> sentinel"],
      );
    } finally {
      await w.stop();
    }
  },
);
