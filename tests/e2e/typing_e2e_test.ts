/**
 * Typing across the bridge against a real Prosody and the Mattermost stand-in: Mattermost `typing` events become
 * XEP-0085 chat states of the typer's puppet, and an XMPP occupant's chat states become nothing on Mattermost
 * while it has no puppet there (the bot never types for anyone).
 */
import assert from "node:assert/strict";
import { xml } from "@xmpp/client-core";
import { componentEnv, postsMatching, sharedWorlds, waitFor, type World } from "../helpers/harness.ts";
import type { GroupchatMessage } from "../helpers/xmpp_user.ts";
import type { Element } from "../../src/xmpp/session/client.ts";
import { NS_CHAT_STATES } from "../../src/xmpp/protocol/ns.ts";
import { connectClient } from "../mm_server/test_support.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const worlds = sharedWorlds("typing");

/**
 * Typing counts as stopped this long after the last event: short, so that the tests need not wait 6 s, but longer
 * than the 1 s a ghost waits between two chat states (a shorter spell is coalesced away).
 */
const TYPING_TIMEOUT_MS = 1_500;

/** `POST /users/{id}/typing` as the user themself, as a Mattermost client does. */
async function typeAs(w: World, user: { id: string; token: string }): Promise<void> {
  const res = await fetch(`${w.mm.url}/api/v4/users/${user.id}/typing`, {
    method: "POST",
    headers: { Authorization: `Bearer ${user.token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ channel_id: w.channel.id }),
  });
  assert.equal(res.status, 200, await res.text());
}

/** The chat state a message of the room carries, if any. */
function stateOf(m: GroupchatMessage): string | undefined {
  return ["active", "composing", "paused", "inactive", "gone"].find((s) =>
    m.stanza.getChild(s, NS_CHAT_STATES) !== undefined
  );
}

Deno.test(
  "component: a Mattermost user's typing shows as their puppet's composing, once per spell, then paused",
  opts,
  async () => {
    await worlds.run(async (w) => {
      await w.startBridge(componentEnv(w.prosody), { typingTimeoutMs: TYPING_TIMEOUT_MS });
      const bobSays = (state: string) => (m: GroupchatMessage) => m.nick === "bob" && stateOf(m) === state;
      await w.mm.postAs(w.bob.id, w.channel.id, "hello");
      await w.alice.waitForMessages(w.room, (m) => m.nick === "bob" && m.body === "hello", 1, 15_000);

      // A burst of events (the webapp sends one every few seconds while its user types) is one spell.
      for (let i = 0; i < 5; i++) await typeAs(w, w.bob);
      const [composing] = await w.alice.waitForMessages(w.room, bobSays("composing"));
      assert.equal(composing.body, undefined, "a standalone chat state has no body");
      assert.ok(composing.stanza.getChild("no-store", "urn:xmpp:hints"), "chat states are not archived");
      await w.alice.waitForMessages(w.room, bobSays("paused"));
      assert.equal(w.alice.messages.filter(bobSays("composing")).length, 1, "one composing for the burst");

      // Typing again, then posting: the post ends the typing, marked active, and no paused follows it.
      await typeAs(w, w.bob);
      await w.alice.waitForMessages(w.room, bobSays("composing"), 2);
      await w.mm.postAs(w.bob.id, w.channel.id, "done typing");
      const [post] = await w.alice.waitForMessages(w.room, (m) => m.body === "done typing", 1, 10_000);
      assert.equal(stateOf(post), "active", "the message ends the composing");
      await w.alice.expectSilence(w.room, bobSays("paused"), TYPING_TIMEOUT_MS * 2);
    });
  },
);

Deno.test(
  "component: a user whose puppet is not in the room types unseen: no join just to type",
  opts,
  async () => {
    await worlds.run(async (w) => {
      const carol = w.mm.createUser("carol");
      w.mm.addMember(w.channel.id, carol.id);
      const carolPresences: Element[] = [];
      w.alice.onStanza((s: Element) => {
        if (s.is("presence") && s.attrs.from === `${w.room}/carol`) carolPresences.push(s);
      });
      await w.startBridge(componentEnv(w.prosody), { typingTimeoutMs: TYPING_TIMEOUT_MS });
      await typeAs(w, carol);
      // Bob's message after carol's typing: by then the typing went through the bridge (one queue per room).
      await w.mm.postAs(w.bob.id, w.channel.id, "after carol typed");
      await w.alice.waitForMessages(w.room, (m) => m.body === "after carol typed", 1, 15_000);
      assert.equal(w.alice.messages.filter((m) => m.nick === "carol").length, 0, "no chat state from carol");
      assert.equal(carolPresences.length, 0, "carol's puppet never joined the room");
    });
  },
);

Deno.test(
  "relay mode: Mattermost typing shows nothing in the room (the bridge types for no one)",
  opts,
  async () => {
    await worlds.run(async (w) => {
      await w.startBridge({}, { typingTimeoutMs: TYPING_TIMEOUT_MS });
      await typeAs(w, w.bob);
      await w.mm.postAs(w.bob.id, w.channel.id, "relayed");
      await w.alice.waitForMessages(w.room, (m) => m.body?.endsWith("relayed") ?? false, 1, 15_000);
      assert.equal(w.alice.messages.filter((m) => stateOf(m) !== undefined).length, 0);
    });
  },
);

Deno.test(
  "an XMPP occupant's composing without Mattermost puppets: the bot does not type for them",
  opts,
  async () => {
    await worlds.run(async (w) => {
      await w.startBridge({}, { typingTimeoutMs: TYPING_TIMEOUT_MS });
      await waitFor(() => w.mm.websocketCount() > 0, "the bridge's websocket");
      await w.alice.send(
        xml(
          "message",
          { type: "groupchat", to: w.room, id: "cs1" },
          xml("composing", { xmlns: NS_CHAT_STATES }),
        ),
      );
      await w.alice.sendGroupchat(w.room, "after composing");
      await waitFor(
        () => w.mm.posts(w.channel.id).some((p) => p.message.includes("after composing")),
        "alice's message on Mattermost",
        10_000,
      );
      assert.deepEqual(w.mm.requestLog.filter((r) => r.path.endsWith("/typing")), [], "no typing published");
    });
  },
);

/** Sends a body-less chat state from alice to the room, as an XMPP client does while its user types. */
function aliceState(w: World, state: string): Promise<void> {
  return w.alice.send(
    xml(
      "message",
      { type: "groupchat", to: w.room, id: crypto.randomUUID() },
      xml(state, { xmlns: NS_CHAT_STATES }),
    ),
  );
}

Deno.test(
  "puppets: an XMPP occupant's composing shows as their puppet typing on Mattermost, kept up until paused",
  opts,
  async () => {
    await worlds.run(async (w) => {
      await w.startBridge(
        { BRIDGE_MM_PUPPETS: "true", MM_ADMIN_TOKEN: w.mm.admin.token },
        { typingTimeoutMs: TYPING_TIMEOUT_MS },
      );
      await w.alice.sendGroupchat(w.room, "hi from alice");
      const [post] = await postsMatching(w.mm, w.channel.id, (p) => p.message === "hi from alice", 1);
      const puppetId = post.user_id;
      assert.notEqual(puppetId, w.mm.bot.id, "posted by alice's puppet");
      const bob = connectClient(w.mm, w.bob.token);
      try {
        await bob.waitFor((m) => m.event === "hello");
        const typingOf = (m: Record<string, unknown>) =>
          m.event === "typing" && (m.data as { user_id: string }).user_id === puppetId;
        await aliceState(w, "composing");
        const event = await bob.waitFor(typingOf, 10_000);
        assert.equal(event.broadcast.channel_id, w.channel.id);
        // Mattermost clients drop an indicator 5 s after the last event: it is published again while alice types.
        await waitFor(() => bob.events.filter(typingOf).length >= 2, "the typing kept up", 10_000);
        await aliceState(w, "paused");
        await w.alice.sendGroupchat(w.room, "after pausing");
        await postsMatching(w.mm, w.channel.id, (p) => p.message === "after pausing", 1);
        const shown = bob.events.filter(typingOf).length;
        // No more refreshes once paused (the next one would have come within 4 s).
        await new Promise((r) => setTimeout(r, 5_000));
        assert.equal(bob.events.filter(typingOf).length, shown, "no typing after paused");

        // Composing, then the message itself (clients send no paused before it): the post ends the typing.
        await aliceState(w, "composing");
        await waitFor(() => bob.events.filter(typingOf).length > shown, "typing again", 10_000);
        await w.alice.sendGroupchat(w.room, "sent while composing");
        await postsMatching(w.mm, w.channel.id, (p) => p.message === "sent while composing", 1);
        const atPost = bob.events.filter(typingOf).length;
        await new Promise((r) => setTimeout(r, 5_000));
        assert.equal(bob.events.filter(typingOf).length, atPost, "no typing after the post");
      } finally {
        bob.close();
      }
    });
  },
);

worlds.stopAfterAll();
