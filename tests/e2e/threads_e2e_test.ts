/**
 * Threads and replies through the whole bridge, against real Prosody and the Mattermost stand-in: a Mattermost
 * thread becomes one XMPP `<thread>` of XEP-0461 replies with XEP-0428 fallback quotes; an XMPP reply (to anything
 * in a thread) becomes a post in the thread's root; a parent that never crossed is quoted; and the ids come from
 * the stored map after a restart.
 *
 * One Prosody serves every test of the file; each test has its own room.
 */
import assert from "node:assert/strict";
import { xml } from "@xmpp/client-core";
import { componentEnv, postsMatching, startWorld, type World } from "../helpers/harness.ts";
import type { GroupchatMessage } from "../helpers/xmpp_user.ts";
import { type Prosody, startProsody } from "../helpers/prosody.ts";
import { NS_FALLBACK, NS_REPLY } from "../../src/xmpp/protocol/ns.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

let shared: Prosody | undefined;
let rooms = 0;

/** Runs `body` in a world of its own (own room, stand-in and state) on the file's Prosody. */
async function inWorld(body: (w: World) => Promise<void>): Promise<void> {
  shared ??= await startProsody();
  const w = await startWorld({ sharedProsody: shared, room: `threads${++rooms}` });
  try {
    await body(w);
  } finally {
    await w.stop();
  }
}

const IBR = { BRIDGE_GHOST_MODE: "ibr", BRIDGE_SECRET_KEY: "a-long-random-key-for-the-tests-0123456789" };

/** The message whose body ends with `text`, from `nick`, as alice received it. */
async function inRoom(w: World, nick: string, text: string): Promise<GroupchatMessage> {
  const [m] = await w.alice.waitForMessages(
    w.room,
    (m) => m.nick === nick && !!m.body?.endsWith(text),
    1,
    15_000,
  );
  return m;
}

/** What a received message says about replies: its reply element, thread and fallback range. */
function replyOf(m: GroupchatMessage) {
  const reply = m.stanza.getChild("reply", NS_REPLY);
  const range = m.stanza.getChildren("fallback", NS_FALLBACK).find((f: { attrs: Record<string, unknown> }) =>
    f.attrs.for === NS_REPLY
  )?.getChild(
    "body",
  );
  return {
    id: reply?.attrs.id as string | undefined,
    to: reply?.attrs.to as string | undefined,
    thread: m.stanza.getChildText("thread") ?? undefined,
    fallback: range ? [Number(range.attrs.start), Number(range.attrs.end)] : undefined,
  };
}

/** Alice answers `parentStanzaId` the way Dino and Conversations do: reply, fallback quote of `quote`. */
function aliceReplies(w: World, parentStanzaId: string, quote: string, text: string, to?: string) {
  const lines = `> ${quote}\n`;
  return w.alice.sendGroupchat(w.room, lines + text, {
    children: [
      xml("reply", { xmlns: NS_REPLY, id: parentStanzaId, ...(to ? { to } : {}) }),
      xml(
        "fallback",
        { xmlns: NS_FALLBACK, for: NS_REPLY },
        xml("body", { start: "0", end: String([...lines].length) }),
      ),
    ],
  });
}

/** The bridge's post of `text` (the bot's, ending with it). */
async function bridged(w: World, text: string) {
  const [post] = await postsMatching(
    w.mm,
    w.channel.id,
    (p) => p.user_id === w.mm.bot.id && p.message.endsWith(text),
    1,
  );
  return post;
}

Deno.test(
  "relay: a Mattermost thread is one XMPP thread of XEP-0461 replies, and XMPP replies join it",
  opts,
  () =>
    inWorld(async (w) => {
      const old = await w.mm.postAs(w.bob.id, w.channel.id, "old question");
      await w.startBridge();
      const root = await w.mm.postAs(w.bob.id, w.channel.id, "where do we eat?");
      const rootMsg = await inRoom(w, "bridge", "where do we eat?");
      assert.deepEqual(replyOf(rootMsg), {
        id: undefined,
        to: undefined,
        thread: undefined,
        fallback: undefined,
      });

      // Mattermost → XMPP: each reply points at the root's stanza-id, in the thread named after the root's id.
      await w.mm.postAs(w.bob.id, w.channel.id, "pizza", { root_id: root.id });
      const first = await inRoom(w, "bridge", "pizza");
      const quote = "> bob: where do we eat?\n";
      assert.equal(first.body, `${quote}<bob> pizza`);
      assert.deepEqual(replyOf(first), {
        id: rootMsg.stanzaId,
        to: `${w.room}/bridge`,
        thread: rootMsg.id,
        fallback: [0, [...quote].length],
      });
      await w.mm.postAs(w.bob.id, w.channel.id, "or sushi", { root_id: root.id });
      const second = await inRoom(w, "bridge", "or sushi");
      assert.equal(replyOf(second).thread, rootMsg.id, "one thread for every reply");
      assert.equal(replyOf(second).id, rootMsg.stanzaId);

      // A reply right behind its root (the relay writes ahead of reflections) still finds it.
      const quick = await w.mm.postAs(w.bob.id, w.channel.id, "quick root");
      await w.mm.postAs(w.bob.id, w.channel.id, "quick reply", { root_id: quick.id });
      const quickRoot = await inRoom(w, "bridge", "quick root");
      assert.equal(replyOf(await inRoom(w, "bridge", "quick reply")).id, quickRoot.stanzaId);

      // XMPP → Mattermost: a reply to a reply goes into its thread's root, without the fallback quote.
      await aliceReplies(w, first.stanzaId!, "bob: pizza", "pizza it is", first.from);
      const answer = await bridged(w, "pizza it is");
      assert.equal(answer.root_id, root.id);
      assert.equal(answer.message, "pizza it is");
      // … also a reply to a reply bridged from XMPP (its post is a reply in the thread there).
      const [mine] = await w.alice.waitForMessages(w.room, (m) =>
        m.nick === "alice" && !!m.body?.endsWith("pizza it is"));
      await aliceReplies(w, mine.stanzaId!, "alice: pizza it is", "with extra cheese");
      assert.equal((await bridged(w, "with extra cheese")).root_id, root.id);

      // A reply to a message written in the room: its post becomes the root.
      await w.alice.sendGroupchat(w.room, "who brings drinks?");
      const [own] = await w.alice.waitForMessages(
        w.room,
        (m) =>
          m.nick === "alice" && m.body === "who brings drinks?",
      );
      const ownPost = await bridged(w, "who brings drinks?");
      await aliceReplies(w, own.stanzaId!, "alice: who brings drinks?", "me!");
      assert.equal((await bridged(w, "me!")).root_id, ownPost.id);
      // A client that points at the sender's own message id (not the room's stanza-id) is understood too.
      await aliceReplies(w, own.id!, "alice: who brings drinks?", "me too!", own.from);
      assert.equal((await bridged(w, "me too!")).root_id, ownPost.id);
      // … and a Mattermost reply there points back at the room's message.
      await w.mm.postAs(w.bob.id, w.channel.id, "I do", { root_id: ownPost.id });
      const back = await inRoom(w, "bridge", "I do");
      assert.equal(replyOf(back).id, own.stanzaId);
      assert.equal(replyOf(back).thread, own.stanzaId);
      assert.equal(back.body, "> alice (xmpp): who brings drinks?\n<bob> I do");

      // A thread an XMPP client names itself: its first message becomes the root, the next ones follow it there.
      const native = { children: [xml("thread", {}, "client-thread-1")] };
      await w.alice.sendGroupchat(w.room, "shall we vote?", native);
      const nativeRoot = await bridged(w, "shall we vote?");
      assert.equal(nativeRoot.root_id, "");
      await w.alice.sendGroupchat(w.room, "I vote yes", native);
      assert.equal((await bridged(w, "I vote yes")).root_id, nativeRoot.id);
      await w.mm.postAs(w.bob.id, w.channel.id, "yes too", { root_id: nativeRoot.id });
      assert.equal(
        replyOf(await inRoom(w, "bridge", "yes too")).thread,
        "client-thread-1",
        "the client's thread",
      );
      // … and a client's thread id on a reply to a bridged message names that message's thread.
      await w.alice.sendGroupchat(w.room, "> bob: where do we eat?\nthai?", {
        children: [
          xml("reply", { xmlns: NS_REPLY, id: rootMsg.stanzaId! }),
          xml("fallback", { xmlns: NS_FALLBACK, for: NS_REPLY }, xml("body", { start: "0", end: "24" })),
          xml("thread", {}, "client-thread-2"),
        ],
      });
      assert.equal((await bridged(w, "thai?")).root_id, root.id);
      await w.alice.sendGroupchat(w.room, "or indian", { children: [xml("thread", {}, "client-thread-2")] });
      assert.equal((await bridged(w, "or indian")).root_id, root.id);

      // Parents that never crossed are quoted, in a message of its own.
      await aliceReplies(w, "never-bridged-id", "carol: old news", "agreed");
      const orphan = await bridged(w, "agreed");
      assert.equal(orphan.root_id, "");
      assert.equal(orphan.message, "> carol: old news\n\nagreed");
      await w.mm.postAs(w.bob.id, w.channel.id, "late answer", { root_id: old.id });
      const late = await inRoom(w, "bridge", "late answer");
      assert.equal(late.body, "> bob: old question\n<bob> late answer");
      assert.equal(replyOf(late).id, undefined);

      // A root deleted on Mattermost after it crossed: the server refuses it as a root, and the reply stands alone.
      await w.mm.deleteAs(w.mm.bot.id, ownPost.id);
      await aliceReplies(w, own.stanzaId!, "alice: who brings drinks?", "nobody?");
      const alone = await bridged(w, "nobody?");
      assert.equal(alone.root_id, "");
      assert.equal(alone.message, "> alice: who brings drinks?\n\nnobody?");
    }),
);

for (const mode of ["ibr", "component"] as const) {
  Deno.test(
    `${mode}: a ghost's thread reply points at the root, and an XMPP reply to a ghost's message joins its thread`,
    opts,
    () =>
      inWorld(async (w) => {
        await w.startBridge(
          mode === "ibr" ? IBR : {
            ...componentEnv(w.prosody),
          },
        );
        const root = await w.mm.postAs(w.bob.id, w.channel.id, "release on friday?");
        const rootMsg = await inRoom(w, "bob", "release on friday?");
        await w.mm.postAs(w.bob.id, w.channel.id, "or monday", { root_id: root.id });
        const reply = await inRoom(w, "bob", "or monday");
        const quote = "> bob: release on friday?\n";
        assert.equal(reply.body, `${quote}or monday`, "the ghost speaks for itself: no name prefix");
        assert.deepEqual(replyOf(reply), {
          id: rootMsg.stanzaId,
          to: undefined,
          thread: rootMsg.id,
          fallback: [0, [...quote].length],
        });

        await aliceReplies(w, reply.stanzaId!, "bob: or monday", "friday please", reply.from);
        const answer = await bridged(w, "friday please");
        assert.equal(answer.root_id, root.id, "a reply to a reply goes to the thread's root");
        assert.equal(answer.message, "friday please");

        // A `<thread>` alone (no XEP-0461) stands for the thread's root.
        await w.alice.sendGroupchat(w.room, "also tuesday works", {
          children: [xml("thread", {}, rootMsg.id!)],
        });
        assert.equal((await bridged(w, "also tuesday works")).root_id, root.id);
      }),
  );
}

Deno.test(
  "restart: replies after a restart find their parents in the stored map, both ways",
  opts,
  () =>
    inWorld(async (w) => {
      let bridge = await w.startBridge();
      const root = await w.mm.postAs(w.bob.id, w.channel.id, "standup moved?");
      const rootMsg = await inRoom(w, "bridge", "standup moved?");
      await w.alice.sendGroupchat(w.room, "new idea");
      const [idea] = await w.alice.waitForMessages(
        w.room,
        (m) => m.nick === "alice" && m.body === "new idea",
      );
      const ideaPost = await bridged(w, "new idea");
      await bridge.manager.bus.drain();
      await bridge.stop();

      bridge = await w.startBridge();
      await w.mm.postAs(w.bob.id, w.channel.id, "yes, to 10:00", { root_id: root.id });
      const reply = await inRoom(w, "bridge", "yes, to 10:00");
      assert.equal(replyOf(reply).id, rootMsg.stanzaId);
      assert.equal(replyOf(reply).thread, rootMsg.id);
      await aliceReplies(w, reply.stanzaId!, "bob: yes, to 10:00", "thanks");
      assert.equal((await bridged(w, "thanks")).root_id, root.id);
      await aliceReplies(w, idea.stanzaId!, "alice: new idea", "details follow");
      assert.equal((await bridged(w, "details follow")).root_id, ideaPost.id);
    }),
);

Deno.test({
  name: "threads: stop the shared Prosody",
  ...opts,
  fn: async () => {
    await shared?.stop();
  },
});
