/**
 * Formatting and mentions end to end: Mattermost Markdown arrives in the room as XEP-0393 styling and styling
 * arrives on Mattermost as Markdown (what is no styling escaped), mentions follow the users across, in relay and in
 * component mode; `@channel` from XMPP is defused unless allowed.
 *
 * One Prosody serves every test of the file; each test has its own room.
 */
import assert from "node:assert/strict";
import { xml } from "@xmpp/client-core";
import { componentEnv, postsMatching, startWorld, type World } from "../helpers/harness.ts";
import { type Prosody, startProsody } from "../helpers/prosody.ts";
import { connectClient } from "../mm_server/test_support.ts";
import { NS_STYLING } from "../../src/xmpp/protocol/ns.ts";

// xmpp.js and the Mattermost websocket client keep internal timers that outlive a test by a few ms.
const opts = { sanitizeOps: false, sanitizeResources: false };

let shared: Prosody | undefined;
let rooms = 0;

/** Runs `body` in a world of its own (own room, stand-in and state) on the file's Prosody. */
async function inWorld(body: (w: World) => Promise<void>): Promise<void> {
  shared ??= await startProsody();
  const w = await startWorld({ sharedProsody: shared, room: `format${++rooms}` });
  try {
    await body(w);
  } finally {
    await w.stop();
  }
}

/** The bot's posts in the channel, in order. */
function bridged(w: World, count: number) {
  return postsMatching(w.mm, w.channel.id, (p) => p.props?.mmxmpp_bridged === "xmpp", count);
}

Deno.test(
  "relay: Markdown becomes styling in the room, styling becomes Markdown on Mattermost",
  opts,
  () =>
    inWorld(async (w) => {
      await w.startBridge();
      await w.mm.postAs(
        w.bob.id,
        w.channel.id,
        "**bold** ~~gone~~ _it_ `x*y` [docs](https://example.org)\n> quoted\n# Title\n@alice look",
      );
      const [styled] = await w.alice.waitForMessages(w.room, (m) => m.nick === "bridge", 1, 10_000);
      assert.equal(
        styled.body,
        "<bob> *bold* ~gone~ _it_ `x*y` docs <https://example.org>\n> quoted\n*Title*\nalice look",
        "alice's @mention is her nick, which her client highlights",
      );

      await w.alice.sendGroupchat(
        w.room,
        "*bold* _it_ ~gone~ `code`\n1. not a list\n# not a heading\nsnake_case 2 * 3 | x",
      );
      await w.alice.sendGroupchat(w.room, "*not bold*", {
        children: [xml("unstyled", { xmlns: NS_STYLING })],
      });
      const [post, unstyled] = await bridged(w, 2);
      assert.equal(
        post.message,
        "**bold** _it_ ~~gone~~ `code`\n1\\. not a list\n\\# not a heading\nsnake_case 2 \\* 3 | x",
      );
      assert.equal(unstyled.message, "\\*not bold\\*", "<unstyled/>: the asterisks are text");
    }),
);

Deno.test("relay: /me keeps its formatting both ways", opts, () =>
  inWorld(async (w) => {
    await w.startBridge();
    // What Mattermost's `/me waves **hard**` posts.
    await w.mm.postAs(w.bob.id, w.channel.id, "*waves **hard***", { type: "me" });
    const [action] = await w.alice.waitForMessages(w.room, (m) => m.nick === "bridge", 1, 10_000);
    assert.equal(action.body, "* bob waves *hard*");

    await w.alice.sendGroupchat(w.room, "/me *really* dances");
    const [post] = await bridged(w, 1);
    assert.equal(post.type, "me");
    assert.equal(post.message, "***really** dances*");
  }));

Deno.test(
  "component: a puppet addressed by nick is an @mention of its user, and /me with styling goes both ways",
  opts,
  () =>
    inWorld(async (w) => {
      const bob = connectClient(w.mm, w.bob.token);
      try {
        await bob.waitFor((m) => m.event === "hello");
        await w.startBridge({
          ...componentEnv(w.prosody),
        });
        await w.mm.postAs(w.bob.id, w.channel.id, "hi **@alice**");
        const [hi] = await w.alice.waitForMessages(w.room, (m) => m.nick === "bob", 1, 15_000);
        assert.equal(hi.body, "hi *alice*");

        await w.alice.sendGroupchat(w.room, "bob: *look*");
        const event = await bob.waitFor(
          (m) => m.event === "posted" && JSON.parse(m.data.post).props?.mmxmpp_bridged === "xmpp",
          10_000,
        );
        assert.equal(JSON.parse(event.data.post).message, "@bob: **look**");
        assert.deepEqual(JSON.parse(event.data.mentions ?? "[]"), [w.bob.id], "bob is notified");

        await w.mm.postAs(w.bob.id, w.channel.id, "*nods **firmly***", { type: "me" });
        const [nod] = await w.alice.waitForMessages(w.room, (m) => m.nick === "bob" && m.body !== hi.body, 1);
        assert.equal(nod.body, "/me nods *firmly*");
        await w.alice.sendGroupchat(w.room, "/me waves at bob");
        const [, action] = await bridged(w, 2);
        assert.equal(action.type, "me");
        assert.equal(action.message, "*waves at bob*", "named in passing: no mention");
      } finally {
        bob.close();
      }
    }),
);

Deno.test("ibr: a ghost addressed by nick is an @mention of its user", opts, () =>
  inWorld(async (w) => {
    await w.startBridge({
      BRIDGE_GHOST_MODE: "ibr",
      BRIDGE_SECRET_KEY: "a-long-random-key-for-the-tests-0123456789",
    });
    await w.mm.postAs(w.bob.id, w.channel.id, "~~late~~ here");
    const [here] = await w.alice.waitForMessages(w.room, (m) => m.nick === "bob", 1, 15_000);
    assert.equal(here.body, "~late~ here");
    await w.alice.sendGroupchat(w.room, "Bob, _welcome_");
    const [post] = await bridged(w, 1);
    assert.equal(post.message, "@bob, _welcome_");
  }));

Deno.test(
  "@channel inside styling from XMPP notifies nobody, and everyone once BRIDGE_ALLOW_CHANNEL_MENTIONS=true",
  opts,
  () =>
    inWorld(async (w) => {
      const bob = connectClient(w.mm, w.bob.token);
      try {
        await bob.waitFor((m) => m.event === "hello");
        const posted = (text: string) =>
          bob.waitFor(
            (m) => m.event === "posted" && JSON.parse(m.data.post).message.replaceAll("\u2060", "") === text,
            10_000,
          );
        let bridge = await w.startBridge();
        await w.alice.sendGroupchat(w.room, "*@channel* look");
        const defused = await posted("**@channel** look");
        assert.equal(JSON.parse(defused.data.post).message, "**@\u2060channel** look");
        assert.equal(defused.data.mentions, undefined, "nobody is notified");

        await bridge.stop();
        bridge = await w.startBridge({ BRIDGE_ALLOW_CHANNEL_MENTIONS: "true" });
        await w.alice.sendGroupchat(w.room, "_@here_ now");
        const allowed = await posted("_@here_ now");
        assert.equal(JSON.parse(allowed.data.post).message, "_@here_ now");
        assert.deepEqual(JSON.parse(allowed.data.mentions), [w.bob.id], "bob is notified through @here");
      } finally {
        bob.close();
      }
    }),
);

Deno.test({
  name: "format: stop the shared Prosody",
  ...opts,
  fn: async () => {
    await shared?.stop();
  },
});
