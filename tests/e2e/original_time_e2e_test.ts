/**
 * Messages bridged late by a catch-up keep their original time: as a XEP-0203 delay from the bridge on XMPP (which
 * Prosody passes to every occupant), and as the `mmxmpp_original_time` prop on Mattermost. Live messages carry
 * neither. Real Prosody, the Mattermost stand-in, the bridge stopped and started again.
 */
import assert from "node:assert/strict";
import { xml } from "@xmpp/client";
import type { Element } from "@xmpp/xml";
import { componentEnv, PASSWORD, postsMatching, sharedWorlds, waitFor } from "../helpers/harness.ts";
import { connectXmppUser, type XmppUser } from "../helpers/xmpp_user.ts";
import { ORIGINAL_TIME_PROP } from "../../src/mattermost/post.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
/** One Prosody for the file; each test has its own rooms, stand-in and store. */
const worlds = sharedWorlds("original-time");
const NS_DELAY = "urn:xmpp:delay";
const NS_MAM = "urn:xmpp:mam:2";

/** The delay elements of a stanza, as `{from, stamp}`. */
function delays(stanza: Element): Array<{ from?: string; stamp?: string }> {
  return stanza.getChildren("delay", NS_DELAY).map((d: Element) => ({
    from: d.attrs.from,
    stamp: d.attrs.stamp,
  }));
}

/** Every archived message of `room` by body, with the archive's time for it (ms), asked by `user` itself. */
async function archiveTimes(user: XmppUser, room: string): Promise<Map<string, number>> {
  const queryId = crypto.randomUUID();
  const times = new Map<string, number>();
  const off = user.onStanza((stanza) => {
    const result = stanza.getChild("result", NS_MAM);
    if (result?.attrs.queryid !== queryId) return;
    const forwarded = result.getChild("forwarded", "urn:xmpp:forward:0");
    const body = forwarded?.getChild("message")?.getChildText("body");
    const stamp = forwarded?.getChild("delay", NS_DELAY)?.attrs.stamp;
    if (body && stamp) times.set(body, Date.parse(stamp));
  });
  try {
    await user.iq(
      xml("iq", { type: "set", to: room }, xml("query", { xmlns: NS_MAM, queryid: queryId })),
      10_000,
    );
  } finally {
    off();
  }
  return times;
}

Deno.test(
  "Prosody passes a sender's XEP-0203 delay through to the sender's reflection and to other occupants",
  opts,
  async () => {
    const prosody = await worlds.prosody.get();
    const users: XmppUser[] = [];
    try {
      for (const name of ["alice", "carol", "dave"]) {
        await worlds.prosody.register(name, PASSWORD);
        users.push(await connectXmppUser(prosody, name, PASSWORD));
      }
      const [alice, carol, dave] = users;
      const room = "delays@conference.localhost";
      await alice.joinRoom(room, "alice");
      await carol.joinRoom(room, "carol");
      const stamp = "2026-01-02T03:04:05.678Z";
      const id = await alice.sendGroupchat(room, "said earlier", {
        children: [xml("delay", { xmlns: NS_DELAY, from: "alice@localhost", stamp })],
      });
      const [reflection] = await alice.waitForMessages(room, (m) => m.id === id);
      const [copy] = await carol.waitForMessages(room, (m) => m.id === id);
      assert.deepEqual(delays(reflection.stanza), [{ from: "alice@localhost", stamp }]);
      assert.deepEqual(delays(copy.stanza), [{ from: "alice@localhost", stamp }]);
      // Replayed as history, the room adds its own delay after the sender's: the one from the room marks history.
      await dave.joinRoom(room, "dave", { maxstanzas: 5 });
      const [history] = await dave.waitForMessages(room, (m) => m.id === id);
      const replayed = delays(history.stanza);
      assert.deepEqual(replayed[0], { from: "alice@localhost", stamp });
      assert.equal(replayed[1]?.from, room);
    } finally {
      for (const user of users) await user.stop();
    }
  },
);

Deno.test(
  "posts made while the bridge was down reach the room with a delay at their create_at; live ones without",
  opts,
  async () => {
    const w = await worlds.start();
    try {
      const first = await w.startBridge();
      await w.mm.postAs(w.bob.id, w.channel.id, "live before");
      await w.alice.waitForMessages(w.room, (m) => m.body === "<bob> live before");
      await first.stop();

      const missed = [
        await w.mm.postAs(w.bob.id, w.channel.id, "missed one"),
        await w.mm.postAs(w.bob.id, w.channel.id, "missed two"),
      ];
      await w.startBridge();
      const got = await w.alice.waitForMessages(
        w.room,
        (m) => m.body?.startsWith("<bob> missed") ?? false,
        2,
        15_000,
      );
      assert.deepEqual(got.map((m) => m.body), ["<bob> missed one", "<bob> missed two"]);
      for (const [i, message] of got.entries()) {
        const [delay, ...more] = delays(message.stanza);
        assert.equal(more.length, 0);
        assert.equal(delay?.from, "bridge@localhost");
        assert.equal(Date.parse(delay?.stamp ?? ""), missed[i].create_at, "the post's create_at, to the ms");
      }

      await w.mm.postAs(w.bob.id, w.channel.id, "live after");
      const [live] = await w.alice.waitForMessages(w.room, (m) => m.body === "<bob> live after");
      const [before] = w.alice.messages.filter((m) => m.body === "<bob> live before");
      assert.deepEqual(delays(live.stanza), []);
      assert.deepEqual(delays(before.stanza), []);
      console.log(`original time (MM→XMPP): 2 of 2 caught-up posts carry a delay at their create_at`);
    } finally {
      await w.stop();
    }
  },
);

Deno.test(
  "messages said in the room while the bridge was down reach Mattermost with their archived time in props",
  opts,
  async () => {
    const w = await worlds.start();
    try {
      const first = await w.startBridge();
      await w.alice.sendGroupchat(w.room, "live before");
      await postsMatching(w.mm, w.channel.id, (p) => p.message === "live before", 1);
      await first.stop();

      const saidFrom = Date.now();
      await w.alice.sendGroupchat(w.room, "missed one");
      await new Promise((r) => setTimeout(r, 1_100)); // a second apart: the archive stamps whole seconds
      await w.alice.sendGroupchat(w.room, "missed two");
      const saidUntil = Date.now();

      await w.startBridge();
      const got = await postsMatching(w.mm, w.channel.id, (p) => p.message.startsWith("missed"), 2, 20_000);
      const archived = await archiveTimes(w.alice, w.room);
      for (const post of got) {
        const original = post.props[ORIGINAL_TIME_PROP];
        assert.equal(original, archived.get(post.message), `${post.message}: the archive's time`);
        assert.ok(
          typeof original === "number" && original >= Math.floor(saidFrom / 1000) * 1000 &&
            original <= saidUntil,
          `${post.message}: ${original} is when it was said, not when it was bridged`,
        );
      }
      assert.ok((got[0].props[ORIGINAL_TIME_PROP] as number) < (got[1].props[ORIGINAL_TIME_PROP] as number));

      await w.alice.sendGroupchat(w.room, "live after");
      const [live] = await postsMatching(w.mm, w.channel.id, (p) => p.message === "live after", 1);
      const [before] = w.mm.posts(w.channel.id).filter((p) => p.message === "live before");
      assert.equal(ORIGINAL_TIME_PROP in live.props, false);
      assert.equal(ORIGINAL_TIME_PROP in before.props, false);
      console.log(`original time (XMPP→MM): 2 of 2 caught-up messages carry their archived time`);
    } finally {
      await w.stop();
    }
  },
);

Deno.test(
  "a live message another bridge stamped with its own delay is bridged, not taken for the room's history",
  opts,
  async () => {
    const w = await worlds.start();
    try {
      await w.startBridge();
      await w.alice.sendGroupchat(w.room, "relayed late by another bridge", {
        children: [xml("delay", { xmlns: NS_DELAY, from: "alice@localhost", stamp: "2026-01-02T03:04:05Z" })],
      });
      await w.alice.sendGroupchat(w.room, "plain");
      const got = await postsMatching(w.mm, w.channel.id, (p) => p.user_id === w.mm.bot.id, 2);
      assert.deepEqual(got.map((p) => p.message), ["relayed late by another bridge", "plain"]);
    } finally {
      await w.stop();
    }
  },
);

Deno.test(
  "a post fetched after a websocket gap whose queue the server lost reaches the room with a delay",
  opts,
  async () => {
    const w = await worlds.start();
    try {
      await w.startBridge();
      await w.mm.postAs(w.bob.id, w.channel.id, "live before");
      await w.alice.waitForMessages(w.room, (m) => m.body === "<bob> live before");
      // A server restart: every websocket session forgotten, so nothing is replayed on reconnect.
      w.mm.refuseWebsockets(true);
      w.mm.restartWebsocketSessions();
      await waitFor(() => w.mm.websocketCount(w.mm.bot.id) === 0, "the websocket to drop");
      const missed = await w.mm.postAs(w.bob.id, w.channel.id, "during the gap");
      w.mm.refuseWebsockets(false);
      const [late] = await w.alice.waitForMessages(
        w.room,
        (m) => m.body === "<bob> during the gap",
        1,
        20_000,
      );
      const [delay] = delays(late.stanza);
      assert.equal(Date.parse(delay?.stamp ?? ""), missed.create_at);
      await w.mm.postAs(w.bob.id, w.channel.id, "live after");
      const [live] = await w.alice.waitForMessages(w.room, (m) => m.body === "<bob> live after", 1, 10_000);
      assert.deepEqual(delays(live.stanza), []);
    } finally {
      await w.stop();
    }
  },
);

for (const mode of ["ibr", "component"] as const) {
  Deno.test(
    `${mode}: a caught-up post spoken by its author's own occupant carries the delay too`,
    opts,
    async () => {
      const w = await worlds.start();
      try {
        const env: Record<string, string> = mode === "ibr" ? { BRIDGE_GHOST_MODE: "ibr" } : {
          ...componentEnv(w.prosody),
        };
        const first = await w.startBridge(env);
        await w.mm.postAs(w.bob.id, w.channel.id, "live");
        const [live] = await w.alice.waitForMessages(
          w.room,
          (m) => m.nick === "bob" && m.body === "live",
          1,
          15_000,
        );
        assert.deepEqual(delays(live.stanza), []);
        await first.stop();

        const missed = await w.mm.postAs(w.bob.id, w.channel.id, "missed");
        await w.startBridge(env);
        const [late] = await w.alice.waitForMessages(w.room, (m) => m.body === "missed", 1, 15_000);
        assert.equal(late.nick, "bob", "spoken by bob's own occupant");
        const [delay] = delays(late.stanza);
        assert.equal(delay?.from, "bridge@localhost");
        assert.equal(Date.parse(delay?.stamp ?? ""), missed.create_at);
      } finally {
        await w.stop();
        // The next test's bridge registers bob's ghost afresh, as on a Prosody of its own.
        if (mode === "ibr") await w.prosody.unregister("mm_bob").catch(() => {});
      }
    },
  );
}

worlds.stopAfterAll();
