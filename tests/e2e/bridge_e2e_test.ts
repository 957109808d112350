import assert from "node:assert/strict";
import { xml } from "@xmpp/client-core";
import { PASSWORD, postsMatching, sharedWorlds, startWorld } from "../helpers/harness.ts";
import { connectXmppUser } from "../helpers/xmpp_user.ts";
import { type Post, startMattermostStandIn } from "../mm_server/server.ts";

// xmpp.js and the Mattermost websocket client keep internal timers that outlive a test by a few ms.
const opts = { sanitizeOps: false, sanitizeResources: false };
/** One Prosody for the file (but for the test that needs one configured otherwise); each test has its own room. */
const worlds = sharedWorlds("bridge");

Deno.test(
  "a Mattermost post reaches the room and an XMPP message becomes a post, text intact",
  opts,
  async () => {
    const w = await worlds.start();
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
      // As Markdown that shows it as typed: a blank line ends the quote, and the tab stays indentation (no-break
      // spaces) instead of starting a code block.
      assert.equal(post.message, "Hej 🇸🇪 från XMPP\n> quoted\n\n\u00a0\u00a0\u00a0\u00a0tabbed");
      assert.equal(post.props?.override_username, "alice (xmpp)");
      assert.equal(post.props?.from_webhook, "true");
      assert.equal(post.props?.mmxmpp_bridged, "xmpp");
    } finally {
      await w.stop();
    }
  },
);

Deno.test("50 messages each way arrive once, in order, and nothing is echoed back", opts, async () => {
  const w = await worlds.start();
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
    // A sentinel each way after the 50: an echo of any of them would come back on the same ordered paths before it.
    await w.mm.postAs(w.bob.id, w.channel.id, "sentinel");
    await w.alice.sendGroupchat(w.room, "sentinel");
    await w.alice.waitForMessages(w.room, (m) => m.body === "<bob> sentinel", 1, 10_000);
    await postsMatching(w.mm, w.channel.id, (p) => p.user_id === w.mm.bot.id && p.message === "sentinel", 1);
    await bridge.manager.bus.drain();
    const sentinel = (text?: string) => text?.endsWith("sentinel") ?? false;
    assert.equal(w.alice.messages.filter((m) => m.nick === "bridge" && !sentinel(m.body)).length, 50);
    assert.equal(
      w.mm.posts(w.channel.id).filter((p) => p.user_id === w.mm.bot.id && !sentinel(p.message)).length,
      50,
    );
    assert.equal(w.mm.posts(w.channel.id).filter((p) => p.message.startsWith("<bob>")).length, 0);
    // 50 each way and the two sentinels.
    const stats = bridge.manager.stats();
    assert.equal(stats.delivered, 102);
    assert.equal(stats.failed, 0);
    const metrics = await (await fetch(`http://127.0.0.1:${w.httpPort}/metrics`)).text();
    assert.match(metrics, /^mmxmpp_messages_delivered_total 102$/m);
    assert.match(metrics, /^mmxmpp_messages_received_total 102$/m);
    assert.match(metrics, /^mmxmpp_connected\{network="xmpp"\} 1$/m);
    assert.match(metrics, /^mmxmpp_mappings 1$/m);
  } finally {
    await w.stop();
  }
});

Deno.test("an unmapped channel stays silent and an unmapped room is never joined", opts, async () => {
  const w = await worlds.start();
  try {
    // The file's Prosody has seen the other tests' joins: this test's come after these.
    const earlier = w.prosody.mucJoinRequests().length;
    const bridge = await w.startBridge();
    const other = w.mm.createChannel("elsewhere");
    w.mm.addMember(other.id, w.bob.id);
    w.mm.addMember(other.id, w.mm.bot.id);
    const otherRoom = "lounge@conference.localhost";
    await w.alice.joinRoom(otherRoom, "alice");
    await w.mm.postAs(w.bob.id, other.id, "not for XMPP");
    await w.alice.sendGroupchat(otherRoom, "not for Mattermost");
    // A mapped message each way after them proves the bridge was live while they went by.
    await w.mm.postAs(w.bob.id, w.channel.id, "mapped");
    await w.alice.waitForMessages(w.room, (m) => m.body === "<bob> mapped", 1, 10_000);
    await w.alice.sendGroupchat(w.room, "mapped too");
    await postsMatching(w.mm, w.channel.id, (p) => p.message === "mapped too", 1, 10_000);
    await bridge.manager.bus.drain();
    // The bot is a member of the other channel, so its posts reach the bridge, which must drop them: counted.
    assert.equal(bridge.manager.stats().unmapped, 1);
    assert.equal(w.alice.messages.filter((m) => m.body?.includes("not for XMPP")).length, 0);
    assert.equal(w.mm.posts(other.id).filter((p) => p.user_id === w.mm.bot.id).length, 0);
    assert.equal(w.mm.posts(w.channel.id).filter((p) => p.message.includes("not for Mattermost")).length, 0);
    // The bridge hears only rooms it joins: it asked to join the mapped room and nothing else.
    const joins = w.prosody.mucJoinRequests().slice(earlier).filter((j) =>
      j.from.startsWith("bridge@localhost/")
    );
    assert.deepEqual(joins.map((j) => j.to.split("/")[0]), [w.room]);
  } finally {
    await w.stop();
  }
});

/** Mattermost's post limit in runes (model.PostMessageMaxRunesV2), pinned here, not imported from the bridge. */
const LIMIT = 16_383;

/** `n` runes without a space or line break: cycling CJK ideographs, so that any lost or repeated run shows. */
function cjk(n: number): string {
  return Array.from({ length: n }, (_, i) => String.fromCodePoint(0x4e00 + (i * 7) % 20_000)).join("");
}

/** `n` runes of one long URL whose query is base64 (no space or line break anywhere). */
function longUrl(n: number): string {
  const head = "https://example.org/download?blob=";
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i++) bytes[i] = (i * 31 + 7) % 256;
  return (head + btoa(String.fromCharCode(...bytes.subarray(0, n)))).slice(0, n);
}

/** Where two texts first differ, in runes, or undefined when they are equal. */
function firstDifference(got: string, want: string): string | undefined {
  const [g, w] = [[...got], [...want]];
  const i = g.findIndex((rune, at) => rune !== w[at]);
  const at = i >= 0 ? i : g.length !== w.length ? Math.min(g.length, w.length) : -1;
  if (at < 0) return undefined;
  const show = (rune?: string) =>
    rune === undefined ? "the end" : `U+${rune.codePointAt(0)!.toString(16).toUpperCase()}`;
  return `rune ${at} of ${w.length} is ${show(g[at])}, expected ${show(w[at])} (got ${g.length} runes)`;
}

Deno.test("the stand-in, like Mattermost, accepts a 16,383-rune post and refuses a 16,384-rune one", async () => {
  const mm = await startMattermostStandIn();
  try {
    const bob = mm.createUser("bob");
    const channel = mm.createChannel("limits");
    mm.addMember(channel.id, bob.id);
    const post = (message: string) =>
      fetch(`${mm.url}/api/v4/posts`, {
        method: "POST",
        headers: { Authorization: `Bearer ${bob.token}`, "Content-Type": "application/json" },
        body: JSON.stringify({ channel_id: channel.id, message }),
      });
    const ok = await post(cjk(LIMIT));
    assert.equal(ok.status, 201, await ok.text());
    const tooLong = await post(cjk(LIMIT + 1));
    assert.equal(tooLong.status, 400);
    assert.equal((await tooLong.json()).id, "model.post.is_valid.message_length.app_error");
  } finally {
    await mm.close();
  }
});

Deno.test(
  "an XMPP message of exactly 16,383 runes without spaces is one post; 16,384 runes are two, nothing lost",
  opts,
  async () => {
    const w = await worlds.start();
    try {
      await w.startBridge();
      const fromBridge = (p: Post) => p.user_id === w.mm.bot.id;
      const cases = [cjk(LIMIT), cjk(LIMIT + 1), longUrl(LIMIT), longUrl(LIMIT + 1)];
      for (const text of cases) assert.ok(!/\s/.test(text));
      assert.deepEqual(cases.map((t) => [...t].length), [LIMIT, LIMIT + 1, LIMIT, LIMIT + 1]);
      let seen = 0;
      for (const text of cases) {
        const expected = [...text].length > LIMIT ? 2 : 1;
        await w.alice.sendGroupchat(w.room, text);
        const posts = (await postsMatching(w.mm, w.channel.id, fromBridge, seen + expected, 15_000)).slice(
          seen,
        );
        seen += expected;
        assert.equal(posts.length, expected, `${[...text].length} runes become ${expected} post(s)`);
        const diff = firstDifference(posts.map((p) => p.message).join(""), text);
        assert.equal(diff, undefined, `nothing lost, nothing added, in order: ${diff}`);
        if (expected === 2) {
          assert.equal([...posts[0].message].length, LIMIT, "the hard cut fills the first post to the limit");
        }
      }
      // Nothing more arrives: no retry of a refused piece, no extra post. A message after them takes the same
      // ordered path, so anything more would be posted before it.
      await w.alice.sendGroupchat(w.room, "sentinel");
      await postsMatching(w.mm, w.channel.id, (p) => fromBridge(p) && p.message === "sentinel", 1, 15_000);
      assert.equal(w.mm.posts(w.channel.id).filter(fromBridge).length, seen + 1);
    } finally {
      await w.stop();
    }
  },
);

Deno.test("the id map links a post to the room's stanza-id and back", opts, async () => {
  const w = await worlds.start();
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
    // Typed parts: the room's message by its named ids, sent by the relaying occupant.
    assert.deepEqual(link.refs.xmpp.parts, [
      { messageId: msg.originId, originId: msg.originId, stanzaId: msg.stanzaId, sender: { kind: "relay" } },
    ]);
    assert.deepEqual(link.refs.mattermost.parts, [{ sender: { kind: "author", id: w.bob.id } }]);

    await w.alice.sendGroupchat(w.room, "and me");
    const [reply] = await postsMatching(w.mm, w.channel.id, (p) => p.message === "and me", 1, 10_000);
    await bridge.manager.bus.drain();
    const [sent] = w.alice.messages.filter((m) => m.body === "and me");
    const link2 = await bridge.store.findLink("mattermost", w.channel.id, reply.id);
    assert.ok(
      link2?.refs.xmpp.ids.includes(sent.stanzaId!),
      "the reflection's stanza-id names the XMPP side",
    );
    assert.deepEqual(link2?.refs.mattermost.parts, [{ postId: reply.id, sender: { kind: "relay" } }]);
  } finally {
    await w.stop();
  }
});

Deno.test(
  "history the room replays at join, subject changes and bodiless messages are not bridged",
  opts,
  async () => {
    // This room sends history even to a joiner that asks for none, so only the bridge's delayed filter is left.
    const w = await startWorld({ prosody: { mucIgnoresHistoryLimit: true } });
    try {
      await w.alice.sendGroupchat(w.room, "old history 1");
      await w.alice.sendGroupchat(w.room, "old history 2");
      // A control: the room does replay it to a joiner that asks for no history.
      const probe = await connectXmppUser(w.prosody, "alice", PASSWORD, "probe");
      try {
        await probe.joinRoom(w.room, "probe", { maxstanzas: 0 });
        const replayed = await probe.waitForMessages(w.room, (m) => m.delayed, 2);
        assert.deepEqual(replayed.map((m) => m.body), ["old history 1", "old history 2"]);
      } finally {
        await probe.stop();
      }

      const bridge = await w.startBridge();
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

Deno.test("the bridge asks for no history when it joins a room", opts, async () => {
  const w = await worlds.start();
  try {
    const earlier = w.prosody.mucJoinRequests().length;
    await w.startBridge();
    await w.mm.postAs(w.bob.id, w.channel.id, "joined?");
    await w.alice.waitForMessages(w.room, (m) => m.body === "<bob> joined?", 1, 10_000);
    const joins = w.prosody.mucJoinRequests().slice(earlier).filter((j) =>
      j.from.startsWith("bridge@localhost/")
    );
    assert.deepEqual(joins.map((j) => j.to), [`${w.room}/bridge`]);
    // What the room received, as the room serialized it: <x xmlns='…/muc'><history maxstanzas='0'/></x>.
    assert.match(joins[0].x, /<history\b[^>]*\bmaxstanzas=['"]0['"]/, joins[0].x);
  } finally {
    await w.stop();
  }
});

Deno.test("two users reusing the same message id are both bridged", opts, async () => {
  const w = await worlds.start();
  try {
    await w.startBridge();
    const carol = await connectXmppUser(w.prosody, "alice", PASSWORD, "carol");
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
    const w = await worlds.start();
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

worlds.stopAfterAll();
