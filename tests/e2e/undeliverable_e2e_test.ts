/**
 * A message that can never be delivered is told to its sender where the network allows it: on XMPP as an error
 * reply to the message (through the room, so clients mark that message failed); on Mattermost as an ephemeral post,
 * or — the Go server refuses those to a default bot — as a reply in the post's thread. Real Prosody, the stand-in.
 */
import assert from "node:assert/strict";
import { xml } from "@xmpp/client-core";
import type { Element } from "@xmpp/xml";
import { postsMatching, startWorld, waitFor, type World } from "../helpers/harness.ts";
import { captureLogs } from "../helpers/log_capture.ts";
import { connectClient } from "../mm_server/test_support.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
const NS_MUC_ADMIN = "http://jabber.org/protocol/muc#admin";

/** Every `<message type="error">` alice receives. */
function errorsTo(w: World): Element[] {
  const seen: Element[] = [];
  w.alice.onStanza((s: Element) => {
    if (s.is("message") && s.attrs.type === "error") seen.push(s);
  });
  return seen;
}

/** alice (the room's owner: she created it) bans the bridge's account; resolves once the bridge has seen it. */
async function banBridge(w: World, records: Array<{ rawMessage: unknown }>): Promise<void> {
  await w.alice.iq(
    xml(
      "iq",
      { type: "set", to: w.room },
      xml("query", { xmlns: NS_MUC_ADMIN }, xml("item", { jid: "bridge@localhost", affiliation: "outcast" })),
    ),
  );
  await waitFor(() => records.some((r) => String(r.rawMessage).startsWith("Banned from")), "the ban");
}

Deno.test(
  "an XMPP message Mattermost refuses for good comes back to its sender as an error on that message",
  opts,
  async () => {
    const w = await startWorld();
    try {
      await w.startBridge();
      await w.alice.sendGroupchat(w.room, "before");
      await postsMatching(w.mm, w.channel.id, (p) => p.message === "before", 1);
      const errors = errorsTo(w);
      const bridgeLeft: Element[] = [];
      w.alice.onStanza((s: Element) => {
        if (s.is("presence") && s.attrs.from === `${w.room}/bridge` && s.attrs.type === "unavailable") {
          bridgeLeft.push(s);
        }
      });

      // The bot loses its place in the channel: every create is 403 until it is back.
      w.mm.removeMember(w.channel.id, w.mm.bot.id);
      const id = await w.alice.sendGroupchat(w.room, "refused by Mattermost");
      await waitFor(() => errors.length > 0, "the error notice", 10_000);
      const [notice] = errors;
      assert.equal(notice.attrs.id, id, "the notice answers the very message");
      assert.equal(notice.attrs.from, `${w.room}/bridge`, "it comes through the room, filed under it");
      const error = notice.getChild("error")!;
      assert.ok(error.getChild("not-acceptable", NS_STANZAS));
      const text = error.getChildText("text", NS_STANZAS) ?? "";
      assert.equal(
        text,
        "Your message could not be bridged: Mattermost does not let the bridge post in that channel.",
      );
      for (const secret of [w.mm.bot.token, w.channel.id, w.mm.url, "403", "app_error"]) {
        assert.ok(!text.includes(secret), `the notice shows ${secret}`);
      }

      // The bridge was not kicked for it (Prosody kicks for some error conditions), and later messages flow.
      w.mm.addMember(w.channel.id, w.mm.bot.id);
      await w.alice.sendGroupchat(w.room, "after");
      await postsMatching(w.mm, w.channel.id, (p) => p.message === "after", 1);
      assert.equal(errors.length, 1);
      assert.deepEqual(bridgeLeft.map(String), [], "the room kicked the bridge for its notice");
      assert.ok(!w.mm.posts(w.channel.id).some((p) => p.message === "refused by Mattermost"));
    } finally {
      await w.stop();
    }
  },
);

Deno.test(
  "a post the room refuses for good (the bridge banned) is told to its author in its thread, the bot lacking ephemeral posts",
  opts,
  async () => {
    await captureLogs(async (records) => {
      const w = await startWorld();
      try {
        await w.startBridge();
        await w.mm.postAs(w.bob.id, w.channel.id, "before");
        await w.alice.waitForMessages(w.room, (m) => m.body === "<bob> before");
        await banBridge(w, records);

        const root = await w.mm.postAs(w.bob.id, w.channel.id, "said after the ban");
        const reply = await w.mm.postAs(w.bob.id, w.channel.id, "and in its thread", { root_id: root.id });
        const notices = await postsMatching(
          w.mm,
          w.channel.id,
          (p) => p.user_id === w.mm.bot.id && p.root_id !== "",
          2,
          15_000,
        );
        const expected = "@bob Your message could not be bridged: the XMPP room has banned the bridge.";
        assert.deepEqual(notices.map((p) => [p.root_id, p.message]), [[root.id, expected], [
          root.id,
          expected,
        ]]);
        assert.notEqual(reply.root_id, "");
        // The server refused the ephemeral post once; the bridge did not ask again for the second notice.
        const ephemeral = w.mm.requestLog.filter((r) => r.path === "/api/v4/posts/ephemeral");
        assert.deepEqual(ephemeral.map((r) => r.status), [403]);
        assert.ok(!w.alice.messages.some((m) => m.body?.includes("said after the ban")));
        // The notices are the bridge's own posts: not bridged anywhere.
        assert.ok(!w.alice.messages.some((m) => m.body?.includes("could not be bridged")));
      } finally {
        await w.stop();
      }
    });
  },
);

Deno.test(
  "with create_post_ephemeral granted, the author alone sees the notice, as an ephemeral post",
  opts,
  async () => {
    await captureLogs(async (records) => {
      const w = await startWorld({
        mattermost: { addedRolePermissions: { system_user: ["create_post_ephemeral"] } },
      });
      const bob = connectClient(w.mm, w.bob.token);
      try {
        await w.startBridge();
        await bob.waitFor((m) => m.event === "hello");
        await banBridge(w, records);
        await w.mm.postAs(w.bob.id, w.channel.id, "said after the ban");
        const event = await bob.waitFor((m) => m.event === "ephemeral_message", 10_000);
        const post = JSON.parse(event.data.post);
        assert.equal(post.message, "Your message could not be bridged: the XMPP room has banned the bridge.");
        assert.equal(post.channel_id, w.channel.id);
        assert.equal(post.user_id, w.mm.bot.id);
        assert.equal(event.broadcast.user_id, w.bob.id);
        assert.ok(!w.mm.posts(w.channel.id).some((p) => p.user_id === w.mm.bot.id && p.root_id !== ""));
      } finally {
        bob.close();
        await w.stop();
      }
    });
  },
);
