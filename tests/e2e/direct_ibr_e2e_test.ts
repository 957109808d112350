/**
 * Direct messages with IBR ghosts (an XMPP account per Mattermost user) against real Prosody and the stand-in: a
 * chat to a ghost's account arrives through that ghost's own session, and a conversation survives a restart of the
 * bridge: its mapping and ids come from KV, its ghost is connected again at start, and what either side wrote while
 * the bridge was down (held by the XMPP server for the offline ghost; in the DM channel) is bridged then, at its
 * original time.
 *
 * A Prosody of its own: IBR ghosts leave accounts behind.
 */
import assert from "node:assert/strict";
import { xml } from "@xmpp/client-core";
import { postsMatching, startWorld, userIdOf, waitFor } from "../helpers/harness.ts";
import type { XmppUser } from "../helpers/xmpp_user.ts";
import type { Element } from "../../src/xmpp/session/client.ts";
import { sendChat } from "../helpers/xmpp_share.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** The 1:1 messages `user` receives from now on. */
function inbox(user: XmppUser): { stanzas: Element[]; stop: () => void } {
  const stanzas: Element[] = [];
  const stop = user.onStanza((s) => {
    if (s.is("message") && (s.attrs.type === "chat" || s.attrs.type === "error")) stanzas.push(s);
  });
  return { stanzas, stop };
}

Deno.test(
  "ibr: a chat to a ghost's account reaches the DM, and the conversation carries on across a bridge restart",
  opts,
  async () => {
    const w = await startWorld();
    const box = inbox(w.alice);
    try {
      const env = {
        BRIDGE_GHOST_MODE: "ibr",
        BRIDGE_SECRET_KEY: "a-test-key-of-sixteen-or-more",
        BRIDGE_MM_PUPPETS: "true",
        MM_ADMIN_TOKEN: w.mm.admin.token,
      };
      const first = await w.startBridge(env);
      // Bob speaks in the room: his ghost account is registered and online.
      await w.mm.postAs(w.bob.id, w.channel.id, "hello from bob");
      await w.alice.waitForMessages(w.room, (m) => m.body === "hello from bob", 1, 10_000);
      const ghost = "mm_bob@localhost";

      await sendChat(w.alice, ghost, "hi bob, privately", "ibr-1");
      const puppetId = await userIdOf(w.mm, "xmpp-alice", 10_000);
      await waitFor(
        () => w.mm.directChannelOf(w.bob.id, puppetId) !== undefined,
        "alice's DM with bob",
        10_000,
      );
      const dm = w.mm.directChannelOf(w.bob.id, puppetId)!;
      const [original] = await postsMatching(w.mm, dm, (p) => p.message === "hi bob, privately", 1);
      assert.equal(original.user_id, puppetId, "posted by alice's puppet");

      await w.mm.postAs(w.bob.id, dm, "hi alice");
      const answer = await waitForChat(box, (s) => s.getChildText("body") === "hi alice");
      assert.equal(String(answer.attrs.from).split("/")[0], ghost, "from bob's ghost account");

      await first.stop();
      // Written while the bridge is down: the server holds it for the offline ghost.
      await sendChat(w.alice, ghost, "are you still there?", "ibr-2");
      // Posted in the DM meanwhile: caught up at start, as in a room.
      await w.mm.postAs(w.bob.id, dm, "posted while the bridge was down");

      await w.startBridge(env);
      // The ghost is connected again at start (its conversation is mapped), and is handed what was held.
      const [held] = await postsMatching(w.mm, dm, (p) => p.message === "are you still there?", 1, 15_000);
      assert.equal(held.user_id, puppetId, "in the same DM, from the same puppet");
      const heldAt = held.props?.mmxmpp_original_time;
      assert.equal(typeof heldAt, "number", "shown at its original time (the server's delay stamp)");
      assert.ok((heldAt as number) < held.create_at, "which is before it was posted");
      const missed = await waitForChat(
        box,
        (s) => s.getChildText("body") === "posted while the bridge was down",
      );
      assert.equal(String(missed.attrs.from).split("/")[0], ghost);
      assert.ok(missed.getChild("delay", "urn:xmpp:delay"), "marked as late, with its original time");
      // A correction of a message from before the restart: its ids come from KV.
      await sendChat(
        w.alice,
        ghost,
        "hi bob, privately (fixed)",
        "ibr-3",
        xml("replace", { xmlns: "urn:xmpp:message-correct:0", id: "ibr-1" }),
      );
      await waitFor(
        () => w.mm.post(original.id)?.message === "hi bob, privately (fixed)",
        "the edit",
        10_000,
      );
      // And bob's answer after the restart goes to the same conversation.
      await w.mm.postAs(w.bob.id, dm, "still here");
      const later = await waitForChat(box, (s) => s.getChildText("body") === "still here");
      assert.equal(String(later.attrs.from).split("/")[0], ghost);
      assert.equal(w.mm.posts(w.channel.id).filter((p) => p.message.includes("privately")).length, 0);
    } finally {
      box.stop();
      await w.stop();
    }
  },
);

/** The first stanza of `box` that `match` accepts, waited for. */
async function waitForChat(box: { stanzas: Element[] }, match: (s: Element) => boolean): Promise<Element> {
  await waitFor(() => box.stanzas.some(match), "a chat", 10_000).catch((err) => {
    throw new Error(`${err.message}; got: ${box.stanzas.map((s) => s.toString().slice(0, 300)).join("\n")}`);
  });
  return box.stanzas.find(match)!;
}
