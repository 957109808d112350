/**
 * Edits and deletions both ways, against a real Prosody and the Mattermost stand-in: XEP-0308 corrections and
 * XEP-0424 retractions from the JID that sent the original, `PUT /posts/{id}/patch` and `DELETE /posts/{id}` of the
 * bot's posts; a forged correction (another occupant under the author's old nick) is ignored; the ids survive a
 * restart. One Prosody for the file, a room per test.
 */
import assert from "node:assert/strict";
import { xml } from "@xmpp/client-core";
import { type Prosody, startProsody } from "../helpers/prosody.ts";
import {
  componentEnv,
  PASSWORD,
  postsMatching,
  startWorld,
  waitFor,
  type World,
} from "../helpers/harness.ts";
import { connectXmppUser, type GroupchatMessage } from "../helpers/xmpp_user.ts";
import { NS_CORRECT, NS_FALLBACK, NS_OCCUPANT_ID, NS_RETRACT } from "../../src/xmpp/protocol/ns.ts";
import { EDIT_MARK } from "../../src/core/handlers/edit.ts";
import type { Post } from "../mm_server/server.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const SECRET_KEY = "a-long-random-key-for-the-tests-0123456789";

let shared: Prosody | undefined;
let rooms = 0;

async function world(): Promise<World> {
  shared ??= await startProsody();
  return await startWorld({ sharedProsody: shared, room: `edits${++rooms}` });
}

/** The id a correction points at, if `m` is one. */
function replaces(m: GroupchatMessage): string | undefined {
  return m.stanza.getChild("replace", NS_CORRECT)?.attrs.id;
}

/** The id a retraction points at, if `m` is one. */
function retracts(m: GroupchatMessage): string | undefined {
  return m.stanza.getChild("retract", NS_RETRACT)?.attrs.id;
}

function correction(id: string) {
  return { children: [xml("replace", { xmlns: NS_CORRECT, id })] };
}

function retraction(stanzaId: string) {
  return {
    children: [xml("retract", { xmlns: NS_RETRACT, id: stanzaId }), xml("fallback", { xmlns: NS_FALLBACK })],
  };
}

/** The one live post whose message contains `text`, once there. */
async function postWith(w: World, text: string): Promise<Post> {
  const [post] = await postsMatching(w.mm, w.channel.id, (p) => p.message.includes(text), 1);
  return post;
}

/**
 * Mattermost → XMPP: an edit is a correction of the original's id from the JID that sent it (the relay's nick or
 * the ghost's), a second edit points at the original too; a deletion is a retraction of the room's stanza-id with a
 * fallback body. Nothing comes back: no post appears for our own corrections and retractions.
 */
async function mattermostToXmpp(w: World, senderNick: string): Promise<void> {
  const post = await w.mm.postAs(w.bob.id, w.channel.id, "helo wrold");
  const [original] = await w.alice.waitForMessages(
    w.room,
    (m) => !!m.body?.includes("helo wrold"),
    1,
    15_000,
  );
  assert.equal(original.nick, senderNick);
  await w.mm.editAs(w.bob.id, post.id, "hello world");
  await w.mm.editAs(w.bob.id, post.id, "hello, world");
  const fixes = await w.alice.waitForMessages(w.room, (m) => replaces(m) !== undefined, 2, 15_000);
  assert.deepEqual(
    fixes.map(replaces),
    [original.id, original.id],
    "a chain of edits points at the original",
  );
  assert.deepEqual(fixes.map((m) => m.from), [original.from, original.from], "from the same full JID");
  assert.ok(fixes[0].body?.endsWith("hello world") && fixes[1].body?.endsWith("hello, world"));
  assert.equal(
    fixes[1].body!.replace("hello, world", ""),
    original.body!.replace("helo wrold", ""),
    "same prefix",
  );

  await w.mm.deleteAs(w.bob.id, post.id);
  const [gone] = await w.alice.waitForMessages(w.room, (m) => retracts(m) !== undefined, 1, 15_000);
  assert.equal(retracts(gone), original.stanzaId, "a groupchat retraction names the room's stanza-id");
  assert.equal(gone.from, original.from);
  assert.ok(gone.body, "with a fallback body for clients without XEP-0424");

  // Our corrections and retraction came back from the room: none of them became a post.
  await w.alice.sendGroupchat(w.room, "sync one");
  await postWith(w, "sync one");
  assert.deepEqual(w.mm.posts(w.channel.id).map((p) => p.message).filter((m) => !m.includes("sync one")), []);
}

/**
 * XMPP → Mattermost: a correction patches the bot's post (a chain still names the original id), a retraction
 * deletes it; a correction of an id never bridged becomes a new post marked as edited. The bot's own patches and
 * deletion do not come back to the room.
 */
async function xmppToMattermost(w: World): Promise<void> {
  const before = w.alice.messages.length;
  const id = await w.alice.sendGroupchat(w.room, "teh cat");
  const post = await postWith(w, "teh cat");
  await w.alice.sendGroupchat(w.room, "the cat", correction(id));
  await waitFor(
    () => w.mm.post(post.id)?.message.includes("the cat") ?? false,
    "the post to be patched",
    15_000,
  );
  await w.alice.sendGroupchat(w.room, "the cats", correction(id));
  await waitFor(() => w.mm.post(post.id)?.message.includes("the cats") ?? false, "the second edit", 15_000);
  const edited = w.mm.post(post.id)!;
  assert.ok(edited.edit_at > 0);
  assert.equal(edited.user_id, w.mm.bot.id, "the bot edited its own post");

  await w.alice.sendGroupchat(w.room, "fixed typo", correction("never-bridged-id"));
  await postWith(w, `${EDIT_MARK}fixed typo`);

  await w.alice.sendGroupchat(w.room, "oops, wrong room");
  const oops = await postWith(w, "oops, wrong room");
  const [said] = await w.alice.waitForMessages(w.room, (m) => m.body === "oops, wrong room", 1);
  await w.alice.sendGroupchat(w.room, "This person attempted to retract…", retraction(said.stanzaId!));
  await waitFor(() => (w.mm.post(oops.id)?.delete_at ?? 0) > 0, "the post to be deleted", 15_000);

  // Nothing the bot did came back as a correction, retraction or message.
  await w.mm.postAs(w.bob.id, w.channel.id, "sync two");
  await w.alice.waitForMessages(w.room, (m) => !!m.body?.includes("sync two"), 1, 15_000);
  const fromBridge = w.alice.messages.slice(before).filter((m) => m.nick !== "alice");
  assert.equal(fromBridge.length, 1, JSON.stringify(fromBridge.map((m) => m.body)));
  assert.ok(fromBridge[0].body?.includes("sync two"));
}

Deno.test(
  "relay: edits and deletions both ways; a forged correction is ignored and logged",
  opts,
  async () => {
    const w = await world();
    try {
      const bridge = await w.startBridge();
      await mattermostToXmpp(w, "bridge");
      await xmppToMattermost(w);

      // Matterbridge's hole (#1396, #1568): carol says something and leaves; mallory joins under her nick and
      // "corrects" her message. Without XEP-0421 or the room's say, the nick would pass for her.
      await w.prosody.register("carol", PASSWORD);
      await w.prosody.register("mallory", PASSWORD);
      const carol = await connectXmppUser(w.prosody, "carol", PASSWORD, "laptop");
      const mallory = await connectXmppUser(w.prosody, "mallory", PASSWORD, "laptop");
      try {
        await carol.joinRoom(w.room, "carol");
        const carolsId = await carol.sendGroupchat(w.room, "carol's own words");
        const carols = await postWith(w, "carol's own words");
        const [carolsMsg] = await carol.waitForMessages(w.room, (m) => m.id === carolsId, 1);
        await carol.leaveRoom(w.room);
        await mallory.joinRoom(w.room, "carol");
        await mallory.sendGroupchat(w.room, "carol says something else", correction(carolsId));
        await mallory.sendGroupchat(w.room, "gone", retraction(carolsMsg.stanzaId!));
        await mallory.sendGroupchat(w.room, "sync three");
        await postWith(w, "sync three");
        assert.ok(
          w.mm.post(carols.id)!.message.includes("carol's own words"),
          "the forged correction was not applied",
        );
        assert.equal(w.mm.post(carols.id)!.edit_at, 0);
        assert.equal(w.mm.post(carols.id)!.delete_at, 0, "nor the forged retraction");
        assert.equal(bridge.manager.bus.stats.notAuthor, 2, "both ignored and counted");
      } finally {
        await carol.stop();
        await mallory.stop();
      }
    } finally {
      await w.stop();
    }
  },
);

Deno.test("ibr ghosts: edits and deletions both ways, from the ghost's own JID", opts, async () => {
  const w = await world();
  try {
    await w.startBridge({ BRIDGE_GHOST_MODE: "ibr", BRIDGE_SECRET_KEY: SECRET_KEY });
    await mattermostToXmpp(w, "bob");
    await xmppToMattermost(w);
  } finally {
    await w.stop();
  }
});

Deno.test(
  "component puppets, across a restart: edits and deletions still find the messages bridged before it",
  opts,
  async () => {
    const w = await world();
    try {
      const puppets = {
        ...componentEnv(w.prosody),
      };
      let bridge = await w.startBridge(puppets);
      const post = await w.mm.postAs(w.bob.id, w.channel.id, "said before the restart");
      const [original] = await w.alice.waitForMessages(
        w.room,
        (m) => !!m.body?.includes("before the restart"),
        1,
      );
      const aliceId = await w.alice.sendGroupchat(w.room, "alice before the restart");
      const alicePost = await postWith(w, "alice before the restart");
      const doomedId = await w.alice.sendGroupchat(w.room, "doomed before the restart");
      const doomed = await postWith(w, "doomed before the restart");
      const [doomedMsg] = await w.alice.waitForMessages(w.room, (m) => m.id === doomedId, 1);
      // A correction by the puppet just before the stop: the room's archive hands it back to the restarted bridge,
      // before the puppet is in the room again to be recognised by its nick.
      await w.mm.editAs(w.bob.id, post.id, "edited before the restart");
      await w.alice.waitForMessages(w.room, (m) => m.body === "edited before the restart", 1, 15_000);
      await bridge.manager.bus.drain();
      await bridge.stop();

      bridge = await w.startBridge(puppets);
      await w.mm.editAs(w.bob.id, post.id, "edited after the restart");
      const [fix] = await w.alice.waitForMessages(
        w.room,
        (m) => m.body === "edited after the restart",
        1,
        15_000,
      );
      assert.equal(original.nick, "bob", "said by bob's puppet");
      assert.equal(replaces(fix), original.id);
      assert.equal(fix.from, original.from);
      assert.equal(fix.body, "edited after the restart");
      await w.mm.deleteAs(w.bob.id, post.id);
      const [gone] = await w.alice.waitForMessages(w.room, (m) => retracts(m) !== undefined, 1, 15_000);
      assert.equal(retracts(gone), original.stanzaId);
      assert.equal(gone.from, original.from);
      await w.alice.sendGroupchat(w.room, "alice after the restart", correction(aliceId));
      await waitFor(
        () => w.mm.post(alicePost.id)?.message.includes("alice after the restart") ?? false,
        "the post bridged before the restart to be patched",
        15_000,
      );
      await w.alice.sendGroupchat(w.room, "retracted", retraction(doomedMsg.stanzaId!));
      await waitFor(() => (w.mm.post(doomed.id)?.delete_at ?? 0) > 0, "the post to be deleted", 15_000);
      const echoed = w.mm.posts(w.channel.id).filter((p) => p.message.includes(EDIT_MARK));
      assert.deepEqual(
        echoed.map((p) => p.message),
        [],
        "our corrections from the archive did not come back",
      );
    } finally {
      await w.stop();
    }
  },
);

Deno.test(
  "a message split into several posts: an edit patches, adds and deletes posts; a retraction removes all",
  opts,
  async () => {
    const w = await world();
    try {
      await w.startBridge();
      const long = (tag: string) => `${tag} ` + "word ".repeat(4_000);
      const live = () => w.mm.posts(w.channel.id).filter((p) => p.user_id === w.mm.bot.id);
      const id = await w.alice.sendGroupchat(w.room, long("first"));
      await waitFor(() => live().length === 2, "the long message as two posts", 15_000);
      const [a, b] = live();
      await w.alice.sendGroupchat(w.room, "short now", correction(id));
      await waitFor(() => w.mm.post(b.id)!.delete_at > 0, "the second post to go", 15_000);
      assert.ok(w.mm.post(a.id)!.message.endsWith("short now"));
      await w.alice.sendGroupchat(w.room, long("second"), correction(id));
      await waitFor(() => live().length === 2, "two posts again", 15_000);
      assert.equal(live()[0].id, a.id, "the first post is patched in place");
      assert.ok(live()[0].message.includes("second word"));
      const [said] = await w.alice.waitForMessages(w.room, (m) => m.id === id, 1);
      await w.alice.sendGroupchat(w.room, "retracted", retraction(said.stanzaId!));
      await waitFor(() => live().length === 0, "every post of the message to be deleted", 15_000);
    } finally {
      await w.stop();
    }
  },
);

Deno.test(
  "a room without occupant-ids that reveals real JIDs: the real JID decides who may correct a message",
  opts,
  async () => {
    const w = await startWorld({ prosody: { mucRealJidsOnly: true } });
    try {
      const bridge = await w.startBridge();
      await w.prosody.register("carol", PASSWORD);
      await w.prosody.register("mallory", PASSWORD);
      const carol = await connectXmppUser(w.prosody, "carol", PASSWORD, "laptop");
      const mallory = await connectXmppUser(w.prosody, "mallory", PASSWORD, "laptop");
      try {
        await carol.joinRoom(w.room, "carol");
        const carolsId = await carol.sendGroupchat(w.room, "carol's own words");
        const carols = await postWith(w, "carol's own words");
        const [said] = await carol.waitForMessages(w.room, (m) => m.id === carolsId, 1);
        assert.equal(said.stanza.getChild("occupant-id", NS_OCCUPANT_ID), undefined, "no XEP-0421 here");
        await carol.leaveRoom(w.room);
        await mallory.joinRoom(w.room, "carol");
        await mallory.sendGroupchat(w.room, "carol says something else", correction(carolsId));
        await mallory.sendGroupchat(w.room, "sync");
        await postWith(w, "sync");
        assert.equal(w.mm.post(carols.id)!.edit_at, 0, "another account under her nick may not correct her");
        assert.equal(bridge.manager.bus.stats.notAuthor, 1);
        await mallory.leaveRoom(w.room);
        // Carol again, under the same nick, from another of her devices: the same real JID.
        const phone = await connectXmppUser(w.prosody, "carol", PASSWORD, "phone");
        try {
          await phone.joinRoom(w.room, "carol");
          await phone.sendGroupchat(w.room, "carol's better words", correction(carolsId));
          await waitFor(
            () => w.mm.post(carols.id)?.message.includes("carol's better words") ?? false,
            "her own correction to be applied",
            15_000,
          );
        } finally {
          await phone.stop();
        }
      } finally {
        await carol.stop();
        await mallory.stop();
      }
    } finally {
      await w.stop();
    }
  },
);

Deno.test("stop the shared Prosody", opts, async () => {
  await shared?.stop();
  shared = undefined;
});
