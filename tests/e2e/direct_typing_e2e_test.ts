/**
 * Typing in direct messages against real Prosody and the Mattermost stand-in, with component puppets and Mattermost
 * puppets: an XMPP user's chat states to a puppet JID show as their puppet typing in the Mattermost DM, and the
 * Mattermost user typing there shows as `type="chat"` chat states from their puppet JID; neither comes back.
 */
import assert from "node:assert/strict";
import { xml } from "@xmpp/client-core";
import {
  componentEnv,
  postsMatching,
  sharedWorlds,
  startWorld,
  userIdOf,
  waitFor,
  type World,
} from "../helpers/harness.ts";
import type { XmppUser } from "../helpers/xmpp_user.ts";
import type { Element } from "../../src/xmpp/session/client.ts";
import { NS_CHAT_STATES } from "../../src/xmpp/protocol/ns.ts";
import { connectClient } from "../mm_server/test_support.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const worlds = sharedWorlds("dmtyping");

/** Short, so that the tests need not wait 6 s; longer than the 1 s between two chat states of one voice. */
const TYPING_TIMEOUT_MS = 1_500;

function directEnv(w: World): Record<string, string> {
  return {
    ...componentEnv(w.prosody),
    BRIDGE_MM_PUPPETS: "true",
    MM_ADMIN_TOKEN: w.mm.admin.token,
  };
}

/** The chat state a stanza carries, if any. */
function stateOf(s: Element): string | undefined {
  return ["active", "composing", "paused", "inactive", "gone"].find((state) =>
    s.getChild(state, NS_CHAT_STATES) !== undefined
  );
}

/** The 1:1 messages `user` receives from now on. */
function inbox(user: XmppUser): { stanzas: Element[]; stop: () => void } {
  const stanzas: Element[] = [];
  const stop = user.onStanza((s) => {
    if (s.is("message") && (s.attrs.type === "chat" || s.attrs.type === "error")) stanzas.push(s);
  });
  return { stanzas, stop };
}

/** A body-less chat state from `user` to `to`, as an XMPP client sends while its user types. */
function chatState(user: XmppUser, to: string, state: string): Promise<void> {
  return user.send(
    xml("message", { type: "chat", to, id: crypto.randomUUID() }, xml(state, { xmlns: NS_CHAT_STATES })),
  );
}

/** `POST /users/{id}/typing` in `channelId` as the user themself, as a Mattermost client does. */
async function typeAs(w: World, user: { id: string; token: string }, channelId: string): Promise<void> {
  const res = await fetch(`${w.mm.url}/api/v4/users/${user.id}/typing`, {
    method: "POST",
    headers: { Authorization: `Bearer ${user.token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ channel_id: channelId }),
  });
  assert.equal(res.status, 200, await res.text());
}

/** Opens the DM: alice writes to bob's puppet JID. Resolves with the DM channel and alice's puppet id. */
async function openDm(w: World, bobJid: string): Promise<{ dm: string; puppetId: string }> {
  await w.alice.send(xml("message", { type: "chat", to: bobJid, id: "dm-1" }, xml("body", {}, "hi bob")));
  const puppetId = await userIdOf(w.mm, "xmpp-alice");
  await waitFor(() => w.mm.directChannelOf(w.bob.id, puppetId) !== undefined, "the direct channel", 10_000);
  const dm = w.mm.directChannelOf(w.bob.id, puppetId)!;
  await postsMatching(w.mm, dm, (p) => p.message === "hi bob", 1);
  return { dm, puppetId };
}

Deno.test(
  "an XMPP user's composing in a 1:1 chat shows as their puppet typing in the DM, until paused",
  opts,
  async () => {
    await worlds.run(async (w) => {
      await w.startBridge(directEnv(w), { typingTimeoutMs: TYPING_TIMEOUT_MS });
      const bobJid = `bob@${w.prosody.componentDomain}`;
      const box = inbox(w.alice);
      const { dm, puppetId } = await openDm(w, bobJid);
      const bob = connectClient(w.mm, w.bob.token);
      try {
        await bob.waitFor((m) => m.event === "hello");
        const typingOf = (m: Record<string, unknown>) =>
          m.event === "typing" && (m.data as { user_id: string }).user_id === puppetId;
        await chatState(w.alice, bobJid, "composing");
        const event = await bob.waitFor(typingOf, 10_000);
        assert.equal(event.broadcast.channel_id, dm, "typing in the DM");
        await chatState(w.alice, bobJid, "paused");
        // Typing to an address that would refuse a message (the bridge's own) is not answered: it says nothing.
        await chatState(w.alice, "bridge@localhost", "composing");
        // A message after the pause, in the same queue: by then the paused went through.
        await w.alice.send(xml("message", { type: "chat", to: bobJid, id: "dm-2" }, xml("body", {}, "ok")));
        await postsMatching(w.mm, dm, (p) => p.message === "ok", 1);
        const shown = bob.events.filter(typingOf).length;
        // No refresh once paused (the next one would come within 4 s).
        await new Promise((r) => setTimeout(r, 5_000));
        assert.equal(bob.events.filter(typingOf).length, shown, "no typing after paused");
        // The puppet's typing is alice's: it never comes back to her as bob's.
        assert.equal(box.stanzas.filter((s) => stateOf(s) !== undefined).length, 0, "no chat state echoed");
        assert.equal(
          box.stanzas.filter((s) => s.attrs.type === "error").length,
          0,
          "chat states not refused",
        );
      } finally {
        bob.close();
        box.stop();
      }
    });
  },
);

Deno.test(
  "a Mattermost user typing in the DM shows as chat states from their puppet JID, composing then paused",
  opts,
  async () => {
    await worlds.run(async (w) => {
      await w.startBridge(directEnv(w), { typingTimeoutMs: TYPING_TIMEOUT_MS });
      const bobJid = `bob@${w.prosody.componentDomain}`;
      const box = inbox(w.alice);
      try {
        const { dm } = await openDm(w, bobJid);
        const fromBob = (state: string) => (s: Element) =>
          String(s.attrs.from).split("/")[0] === bobJid && stateOf(s) === state && !s.getChild("body");
        for (let i = 0; i < 3; i++) await typeAs(w, w.bob, dm);
        await waitFor(() => box.stanzas.some(fromBob("composing")), "bob's composing", 10_000);
        const composing = box.stanzas.find(fromBob("composing"))!;
        assert.equal(composing.attrs.type, "chat", "a 1:1 chat state");
        assert.ok(composing.getChild("no-store", "urn:xmpp:hints"), "chat states are not archived");
        await waitFor(() => box.stanzas.some(fromBob("paused")), "bob's paused", 10_000);
        assert.equal(box.stanzas.filter(fromBob("composing")).length, 1, "one composing for the burst");

        // Typing, then posting: the answer ends the typing, marked active, and no paused follows it.
        await typeAs(w, w.bob, dm);
        await waitFor(() => box.stanzas.filter(fromBob("composing")).length === 2, "composing again", 10_000);
        await w.mm.postAs(w.bob.id, dm, "hello alice");
        await waitFor(
          () => box.stanzas.some((s) => s.getChildText("body") === "hello alice"),
          "the answer",
          10_000,
        );
        const answer = box.stanzas.find((s) => s.getChildText("body") === "hello alice")!;
        assert.equal(stateOf(answer), "active", "the message ends the composing");
        await new Promise((r) => setTimeout(r, TYPING_TIMEOUT_MS * 2));
        assert.equal(box.stanzas.filter(fromBob("paused")).length, 1, "no paused after the answer");
      } finally {
        box.stop();
      }
    });
  },
);

Deno.test(
  "ibr: typing crosses a 1:1 chat with a ghost account both ways, from the ghost's own session",
  opts,
  async () => {
    // A Prosody of its own: IBR ghosts leave accounts behind.
    const w = await startWorld();
    const box = inbox(w.alice);
    const bob = connectClient(w.mm, w.bob.token);
    try {
      await w.startBridge({
        BRIDGE_GHOST_MODE: "ibr",
        BRIDGE_SECRET_KEY: "a-test-key-of-sixteen-or-more",
        BRIDGE_MM_PUPPETS: "true",
        MM_ADMIN_TOKEN: w.mm.admin.token,
      }, { typingTimeoutMs: TYPING_TIMEOUT_MS });
      // Bob speaks in the room: his ghost account is registered and online.
      await w.mm.postAs(w.bob.id, w.channel.id, "hello from bob");
      await w.alice.waitForMessages(w.room, (m) => m.body === "hello from bob", 1, 10_000);
      const ghost = "mm_bob@localhost";
      const { dm, puppetId } = await openDm(w, ghost);

      await typeAs(w, w.bob, dm);
      await waitFor(
        () =>
          box.stanzas.some((s) => String(s.attrs.from).split("/")[0] === ghost && stateOf(s) === "composing"),
        "bob's composing from his ghost",
        10_000,
      );

      await bob.waitFor((m) => m.event === "hello");
      await chatState(w.alice, ghost, "composing");
      const event = await bob.waitFor(
        (m) => m.event === "typing" && (m.data as { user_id: string }).user_id === puppetId,
        10_000,
      );
      assert.equal(event.broadcast.channel_id, dm);
    } finally {
      bob.close();
      box.stop();
      await w.stop();
    }
  },
);

worlds.stopAfterAll();
