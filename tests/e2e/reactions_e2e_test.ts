/**
 * Reactions both ways (XEP-0444 ↔ Mattermost reactions), against real Prosody and the Mattermost stand-in: relay
 * mode (one occupant and one bot react for everyone: the union of their sets) and ibr ghost mode (each Mattermost
 * user reacts as their own ghost), across a bridge restart.
 *
 * One Prosody serves every test of the file; each test has its own room.
 */
import assert from "node:assert/strict";
import { xml } from "@xmpp/client-core";
import { NS_REACTIONS } from "../../src/xmpp/protocol/ns.ts";
import type { Element } from "../../src/xmpp/session/client.ts";
import {
  componentEnv,
  PASSWORD,
  postsMatching,
  startWorld,
  waitFor,
  type World,
} from "../helpers/harness.ts";
import { type Prosody, startProsody } from "../helpers/prosody.ts";
import { connectXmppUser, type GroupchatMessage, type XmppUser } from "../helpers/xmpp_user.ts";
import type { StandInOptions } from "../mm_server/server.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

let shared: Prosody | undefined;
let worlds = 0;

/** Runs `body` in a world of its own (room, stand-in, state) on the file's Prosody, with a second XMPP user. */
async function inWorld(
  body: (w: World, carol: XmppUser) => Promise<void>,
  mattermost: StandInOptions = {},
): Promise<void> {
  shared ??= await startProsody();
  const n = ++worlds;
  const w = await startWorld({ sharedProsody: shared, room: `reactions${n}`, mattermost });
  let carol: XmppUser | undefined;
  try {
    await shared.register(`carol${n}`, PASSWORD);
    carol = await connectXmppUser(shared, `carol${n}`, PASSWORD, "phone");
    await carol.joinRoom(w.room, "carol");
    await body(w, carol);
  } finally {
    await carol?.stop();
    await w.stop();
  }
}

/** `user` reacts to the room's message `stanzaId` with exactly `emojis` (XEP-0444: the complete set). */
function react(user: XmppUser, room: string, stanzaId: string, emojis: string[]): Promise<void> {
  return user.send(
    xml(
      "message",
      { to: room, type: "groupchat", id: crypto.randomUUID() },
      xml("reactions", { xmlns: NS_REACTIONS, id: stanzaId }, ...emojis.map((e) => xml("reaction", {}, e))),
    ),
  );
}

/** The reactions a room message carries: the id it points at and the set, or undefined when it has none. */
function reactionsOf(m: GroupchatMessage): { id: string; emojis: string[] } | undefined {
  const el = m.stanza.getChild("reactions", NS_REACTIONS);
  if (!el) return undefined;
  return { id: String(el.attrs.id), emojis: el.getChildren("reaction").map((r: Element) => r.getText()) };
}

/** Waits for `count` reactions messages from `nick` pointing at `stanzaId` with exactly `emojis` (in any order). */
async function expectReactions(
  user: XmppUser,
  room: string,
  nick: string,
  stanzaId: string,
  emojis: string[],
  count = 1,
): Promise<void> {
  const want = [...emojis].sort().join(" ");
  await user.waitForMessages(
    room,
    (m) => {
      const r = reactionsOf(m);
      return m.nick === nick && r?.id === stanzaId && [...r.emojis].sort().join(" ") === want;
    },
    count,
    15_000,
  );
}

/** How often the bridge read `postId`'s reactions over REST. */
function reactionReads(w: World, postId: string): number {
  return w.mm.requestLog.filter((r) => r.method === "GET" && r.path === `/api/v4/posts/${postId}/reactions`)
    .length;
}

/** The emoji names `userId` has on `postId`, sorted. */
function reactionsOn(w: World, postId: string, userId: string): string[] {
  const list = w.mm.post(postId)?.metadata?.reactions ?? [];
  return list.filter((r) => r.user_id === userId).map((r) => r.emoji_name).sort();
}

Deno.test(
  "relay: two XMPP users react with the same emoji, one withdraws across a restart, the bot's reaction stays; Mattermost users' union reaches the room",
  opts,
  () =>
    inWorld(async (w, carol) => {
      let bridge = await w.startBridge();
      const botId = w.mm.bot.id;

      // XMPP → Mattermost: the bot reacts for both.
      await w.mm.postAs(w.bob.id, w.channel.id, "react to me");
      const [relayed] = await w.alice.waitForMessages(
        w.room,
        (m) => m.body?.includes("react to me") ?? false,
      );
      assert.ok(relayed.stanzaId, "the room gave the relayed message a stanza-id");
      const postId = w.mm.posts(w.channel.id).find((p) => p.message === "react to me")!.id;
      await react(w.alice, w.room, relayed.stanzaId, ["👍"]);
      await react(carol, w.room, relayed.stanzaId, ["👍"]);
      await waitFor(() => reactionsOn(w, postId, botId).join() === "+1", "the bot's +1", 15_000);

      // A restart: the sets come from the store.
      await bridge.stop();
      bridge = await w.startBridge();
      await react(w.alice, w.room, relayed.stanzaId, []);
      // A reaction to another message, delivered after Alice's withdrawal (same channel, in order), tells that the
      // withdrawal was handled.
      await w.mm.postAs(w.bob.id, w.channel.id, "marker");
      const [marker] = await w.alice.waitForMessages(w.room, (m) => m.body?.includes("marker") ?? false);
      const markerId = w.mm.posts(w.channel.id).find((p) => p.message === "marker")!.id;
      await react(carol, w.room, marker.stanzaId!, ["🎉"]);
      await waitFor(
        () => reactionsOn(w, markerId, botId).join() === "tada",
        "the bot's tada on the marker",
        15_000,
      );
      assert.deepEqual(reactionsOn(w, postId, botId), ["+1"], "Carol still has 👍: the bot keeps it");
      // A custom emoji as :name: becomes that Mattermost emoji; text Mattermost has no emoji for is left out.
      w.mm.createCustomEmoji("party_parrot");
      await react(carol, w.room, relayed.stanzaId, ["👍", ":party_parrot:", "not an emoji"]);
      await waitFor(() => reactionsOn(w, postId, botId).length === 2, "the bot's party_parrot", 15_000);
      assert.deepEqual(reactionsOn(w, postId, botId), ["+1", "party_parrot"]);
      await react(carol, w.room, relayed.stanzaId, []);
      await waitFor(
        () => reactionsOn(w, postId, botId).length === 0,
        "the bot's reactions withdrawn",
        15_000,
      );

      // Mattermost → XMPP: the relay shows the union of every Mattermost user's set.
      await w.alice.sendGroupchat(w.room, "and to me");
      const [fromAlice] = await w.alice.waitForMessages(
        w.room,
        (m) => m.body === "and to me" && !!m.stanzaId,
      );
      const [bridged] = await postsMatching(w.mm, w.channel.id, (p) => p.message.includes("and to me"), 1);
      const dave = w.mm.createUser("dave");
      w.mm.addMember(w.channel.id, dave.id);
      const all = ["👍", "😄", ":party_parrot:"];
      await w.mm.reactAs(w.bob.id, bridged.id, "+1");
      await expectReactions(w.alice, w.room, "bridge", fromAlice.stanzaId!, ["👍"]);
      // Dave's own set is 😄 alone; the relay shows Bob's 👍 too.
      await w.mm.reactAs(dave.id, bridged.id, "smile");
      await expectReactions(w.alice, w.room, "bridge", fromAlice.stanzaId!, ["👍", "😄"]);
      // A custom emoji has no Unicode form: it goes as :name:.
      await w.mm.reactAs(dave.id, bridged.id, "party_parrot");
      await expectReactions(w.alice, w.room, "bridge", fromAlice.stanzaId!, all);
      // Dave's thumbsup is Bob's 👍 under another name: the same set again.
      await w.mm.reactAs(dave.id, bridged.id, "thumbsup");
      await expectReactions(w.alice, w.room, "bridge", fromAlice.stanzaId!, all, 2);
      // Bob withdraws his 👍: Dave still has it, so the relay keeps it (Bob's own set is empty).
      await w.mm.unreactAs(w.bob.id, bridged.id, "+1");
      await expectReactions(w.alice, w.room, "bridge", fromAlice.stanzaId!, all, 3);
      await w.mm.unreactAs(dave.id, bridged.id, "smile");
      await expectReactions(w.alice, w.room, "bridge", fromAlice.stanzaId!, ["👍", ":party_parrot:"]);
      await bridge.manager.bus.drain();

      // Echoes: the bot's own reactions never came back to the room, and the relay's never went to Mattermost.
      const fromBridgeOnFirst = w.alice.messages.filter((m) =>
        m.room === w.room && m.nick === "bridge" && reactionsOf(m)?.id === relayed.stanzaId
      );
      assert.equal(fromBridgeOnFirst.length, 0, "the bot's reactions were not bridged back");
      const botOnSecond = reactionsOn(w, bridged.id, botId);
      assert.deepEqual(botOnSecond, [], "the relay's reactions were not bridged back");
    }),
);

Deno.test(
  "ibr: a Mattermost user reacts as their own ghost with their complete set; a storm ends in its final set; XMPP reactions reach the bot",
  opts,
  () =>
    inWorld(async (w, carol) => {
      const bridge = await w.startBridge({ BRIDGE_GHOST_MODE: "ibr" });
      await w.alice.sendGroupchat(w.room, "ghosts react");
      const [fromAlice] = await w.alice.waitForMessages(w.room, (m) =>
        m.body === "ghosts react" && !!m.stanzaId);
      const [bridged] = await postsMatching(w.mm, w.channel.id, (p) =>
        p.message.includes("ghosts react"), 1);

      await w.mm.reactAs(w.bob.id, bridged.id, "+1");
      await expectReactions(w.alice, w.room, "bob", fromAlice.stanzaId!, ["👍"]);
      // A storm: each event folds into Bob's complete set; what the room ends with is the final one. The events
      // queued behind each other are read once (one GET of the post's reactions, not one per event).
      const readsBefore = reactionReads(w, bridged.id);
      for (const name of ["smile", "tada", "heart", "fire"]) await w.mm.reactAs(w.bob.id, bridged.id, name);
      for (const name of ["+1", "tada", "fire"]) await w.mm.unreactAs(w.bob.id, bridged.id, name);
      await expectReactions(w.alice, w.room, "bob", fromAlice.stanzaId!, ["😄", "❤️"]);
      const reads = reactionReads(w, bridged.id) - readsBefore;
      assert.ok(reads < 7, `7 changes, ${reads} reads of the post's reactions`);
      await bridge.manager.bus.drain();
      const last = w.alice.messages.filter((m) => m.room === w.room && m.nick === "bob" && reactionsOf(m)).at(
        -1,
      );
      assert.deepEqual(
        reactionsOf(last!)?.emojis.sort(),
        ["❤️", "😄"].sort(),
        "the final set is the last one",
      );
      // Another user's ghost shows that user's own set, not everyone's.
      const dave = w.mm.createUser("dave");
      w.mm.addMember(w.channel.id, dave.id);
      await w.mm.reactAs(dave.id, bridged.id, "eyes");
      await expectReactions(w.alice, w.room, "dave", fromAlice.stanzaId!, ["👀"]);

      // XMPP → Mattermost in ghost mode: Carol reacts to Bob's ghost's message; the bot shows it.
      await w.mm.postAs(w.bob.id, w.channel.id, "from my ghost");
      const [ghostMsg] = await w.alice.waitForMessages(
        w.room,
        (m) => m.nick === "bob" && m.body === "from my ghost" && !!m.stanzaId,
        1,
        15_000,
      );
      const postId = w.mm.posts(w.channel.id).find((p) => p.message === "from my ghost")!.id;
      // Custom emoji are off on this server: Mattermost refuses that one, the rest of the set still goes.
      w.mm.createCustomEmoji("party_parrot");
      await react(carol, w.room, ghostMsg.stanzaId!, [":party_parrot:", "🎉"]);
      await waitFor(() => reactionsOn(w, postId, w.mm.bot.id).join() === "tada", "the bot's tada", 15_000);
      // The ghost's own reactions were not taken for an XMPP user's.
      assert.deepEqual(reactionsOn(w, bridged.id, w.mm.bot.id), []);
    }, { enableCustomEmoji: false }),
);

Deno.test(
  "component: a Mattermost user's reactions come from their puppet, also after a restart",
  opts,
  () =>
    inWorld(async (w) => {
      const env = {
        ...componentEnv(w.prosody),
      };
      let bridge = await w.startBridge(env);
      await w.alice.sendGroupchat(w.room, "puppets react");
      const [fromAlice] = await w.alice.waitForMessages(w.room, (m) =>
        m.body === "puppets react" && !!m.stanzaId);
      const [bridged] = await postsMatching(w.mm, w.channel.id, (p) =>
        p.message.includes("puppets react"), 1);
      await w.mm.reactAs(w.bob.id, bridged.id, "+1");
      await expectReactions(w.alice, w.room, "bob", fromAlice.stanzaId!, ["👍"]);
      await bridge.stop();
      bridge = await w.startBridge(env);
      await w.mm.reactAs(w.bob.id, bridged.id, "smile");
      await expectReactions(w.alice, w.room, "bob", fromAlice.stanzaId!, ["👍", "😄"]);
      await w.mm.unreactAs(w.bob.id, bridged.id, "+1");
      await w.mm.unreactAs(w.bob.id, bridged.id, "smile");
      await expectReactions(w.alice, w.room, "bob", fromAlice.stanzaId!, []);
    }),
);

Deno.test({
  name: "reactions: stop the shared Prosody",
  ...opts,
  fn: async () => {
    await shared?.stop();
  },
});
