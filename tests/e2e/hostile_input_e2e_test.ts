/**
 * Hostile input, end to end, with the bridge as its own process: a stanza near Prosody's size limit, unknown
 * websocket events and stanza payloads, and a room destroyed or the bridge banned while messages are queued for
 * it. The bridge survives each with clear log lines and nothing else lost: a second mapped room keeps flowing both
 * ways, counted and printed, and `/healthz` says what is wrong.
 *
 * One Prosody serves every test of the file; each test has its own rooms.
 */
import assert from "node:assert/strict";
import { xml } from "@xmpp/client";
import type { Element } from "@xmpp/xml";
import { PASSWORD, sharedWorlds, waitFor, type World } from "../helpers/harness.ts";
import { type BridgeProcess, spawnReadyBridge } from "../helpers/bridge_process.ts";
import { startFrameInjector } from "../helpers/frame_injector.ts";
import { tally } from "../helpers/tally.ts";
import { connectXmppUser, type XmppUser } from "../helpers/xmpp_user.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

const NS_MUC_ADMIN = "http://jabber.org/protocol/muc#admin";
const NS_MUC_OWNER = "http://jabber.org/protocol/muc#owner";
const NS_DATA = "jabber:x:data";
/** Prosody 0.12's `c2s_stanza_size_limit` default (mod_c2s.lua: `1024*256`), in bytes of one stanza's XML. */
const PROSODY_STANZA_LIMIT = 256 * 1024;
/** Mattermost's `model.PostMessageMaxRunesV2`. */
const MM_MAX_RUNES = 16_383;

const worlds = sharedWorlds("hostile");

/** A world with a second mapped pair, `side`: a channel and a room that must keep flowing whatever the first has. */
interface TwoRooms {
  w: World;
  side: { channel: { id: string; name: string }; room: string };
  /** The bridge's environment with both mappings. */
  env: Record<string, string>;
}

async function inWorld(body: (t: TwoRooms) => Promise<void>): Promise<void> {
  const w = await worlds.start({ mapped: false });
  const n = w.room.match(/\d+/)![0];
  try {
    const channel = w.mm.createChannel(`side-${n}`, { displayName: `Side ${n}` });
    w.mm.addMember(channel.id, w.bob.id);
    const room = `side${n}@conference.localhost`;
    await w.alice.joinRoom(room, "alice");
    const team = w.mm.team.name;
    const env = w.env({
      BRIDGE_MAPPINGS: `${team}/${w.channel.name}=${w.room},${team}/${channel.name}=${room}`,
    });
    await body({ w, side: { channel, room }, env });
  } finally {
    await w.stop();
  }
}

/** Runs `body` with the bridge as its own process on `env` (default `t.env`); then it must shut down cleanly. */
async function withBridge(
  t: TwoRooms,
  body: (bridge: BridgeProcess) => Promise<void>,
  env = t.env,
): Promise<void> {
  const bridge = await spawnReadyBridge(env, t.w.httpPort);
  try {
    await body(bridge);
  } finally {
    assert.equal(await bridge.stop(), 0, "the bridge did not shut down cleanly");
  }
}

/**
 * A warm-up across, then bob posts 30 messages (`queued 00` …) in the background, so that the bridge has some queued
 * for the room; resolves once a few are across. `ids` maps each post's id to its text.
 */
async function queuePosts(
  w: World,
): Promise<{ said: string[]; ids: Map<string, string>; posting: Promise<void> }> {
  await w.mm.postAs(w.bob.id, w.channel.id, "warm-up");
  await w.alice.waitForMessages(w.room, (m) => m.body === "<bob> warm-up", 1, 10_000);
  const said = Array.from({ length: 30 }, (_, i) => `queued ${String(i).padStart(2, "0")}`);
  const ids = new Map<string, string>();
  const posting = (async () => {
    for (const text of said) ids.set((await w.mm.postAs(w.bob.id, w.channel.id, text)).id, text);
  })();
  await waitFor(() => relayed(w.alice, w.room).length >= 3, "some posts across");
  return { said, ids, posting };
}

/** What the bridge relayed into `room`, as `alice` saw it live, without the `<bob> ` prefix. */
function relayed(alice: XmppUser, room: string): string[] {
  return alice.messages.filter((m) => m.room === room && m.nick === "bridge").map((m) =>
    m.body?.replace(/^<bob> /, "") ?? ""
  );
}

/** What the bridge posted in `channelId`. */
function posted(w: World, channelId: string): string[] {
  return w.mm.posts(channelId).filter((p) => p.user_id === w.mm.bot.id).map((p) => p.message);
}

/**
 * Talks `count` messages each way in the side pair, then checks and prints that every one arrived once, in order.
 */
async function sideKeepsFlowing(t: TwoRooms, label: string, count = 10): Promise<void> {
  const { w, side } = t;
  const said = { mm: [] as string[], xmpp: [] as string[] };
  for (let i = 0; i < count; i++) {
    said.mm.push(`${label}: side post ${i}`);
    await w.mm.postAs(w.bob.id, side.channel.id, said.mm[i]);
    said.xmpp.push(`${label}: side message ${i}`);
    await w.alice.sendGroupchat(side.room, said.xmpp[i]);
  }
  const done = () =>
    said.mm.every((s) => relayed(w.alice, side.room).includes(s)) &&
    said.xmpp.every((s) => posted(w, side.channel.id).includes(s));
  await waitFor(done, "the side pair's traffic", 20_000).catch(() => {});
  const toRoom = tally(said.mm, relayed(w.alice, side.room));
  const toChannel = tally(said.xmpp, posted(w, side.channel.id));
  console.log(toRoom.line(`${label}, other room, Mattermost → room`));
  console.log(toChannel.line(`${label}, other room, room → Mattermost`));
  for (const x of [toRoom, toChannel]) {
    assert.deepEqual(x.lost, []);
    assert.equal(x.doubled, 0);
    assert.ok(x.inOrder);
  }
}

/** Sends an IQ set with `query` to `room` as `user` and waits for the result (a StanzaError-like rejection else). */
function roomIq(user: XmppUser, room: string, query: Element): Promise<Element> {
  return user.iq(xml("iq", { type: "set", to: room }, query));
}

Deno.test(
  "a stanza near Prosody's size limit is split into posts Mattermost accepts; one over it stops nothing",
  opts,
  () =>
    inWorld(async (t) => {
      const { w } = t;
      await withBridge(t, async (bridge) => {
        // ~250 KiB of text in one stanza, just under the limit with its XML around it: 16 posts' worth.
        const near = Array.from({ length: 25_000 }, (_, i) => `w${i % 10}xyz67890`).join("").slice(
          0,
          250_000,
        );
        const stanzaBytes = new TextEncoder().encode(
          xml("message", { to: w.room, type: "groupchat", id: "x".repeat(36) }, xml("body", {}, near))
            .toString(),
        ).length;
        assert.ok(stanzaBytes < PROSODY_STANZA_LIMIT && stanzaBytes > PROSODY_STANZA_LIMIT - 16_384);
        await w.alice.sendGroupchat(w.room, near);
        const pieces = Math.ceil(near.length / MM_MAX_RUNES);
        const got = await w.mm.waitForPosts(w.channel.id, pieces, 20_000);
        assert.equal(got.length, pieces);
        assert.ok(got.every((p) => [...p.message].length <= MM_MAX_RUNES));
        assert.equal(got.map((p) => p.message).join(""), near, "the pieces do not add up to the message");
        console.log(`a ${stanzaBytes}-byte stanza became ${got.length} posts, joined back byte for byte`);

        // Over the limit. Prosody checks it only on the bytes of a stanza still unparsed after a read, so one that
        // arrives in few reads can pass: either way the bridge must carry on, and what passed arrives whole.
        await w.prosody.register("mallory", PASSWORD);
        const mallory = await connectXmppUser(w.prosody, "mallory", PASSWORD, "big");
        const over = "y".repeat(PROSODY_STANZA_LIMIT + 1_000);
        try {
          await mallory.joinRoom(w.room, "mallory");
          await mallory.sendGroupchat(w.room, over).catch(() => {});
          await mallory.sendGroupchat(w.room, "mallory after the big one").catch(() => {});
        } finally {
          await mallory.stop();
        }
        // The longest Mattermost post, all characters XML must escape, the other way: it stays under the limit.
        const escaped = "<&>".repeat(MM_MAX_RUNES / 3 - 2);
        await w.mm.postAs(w.bob.id, w.channel.id, escaped);
        await w.alice.waitForMessages(w.room, (m) => m.body === `<bob> ${escaped}`, 1, 15_000);
        await w.alice.sendGroupchat(w.room, "after the big ones");
        await waitFor(() => posted(w, w.channel.id).includes("after the big ones"), "the next message");
        const overPosts = posted(w, w.channel.id).filter((m) => m.startsWith("yyyy"));
        const passed = w.alice.messages.some((m) => m.nick === "mallory" && m.body === over);
        console.log(`Prosody ${passed ? "passed" : "refused"} a ${over.length}-byte body`);
        assert.equal(overPosts.join(""), passed ? over : "");
        assert.equal((await bridge.healthz())?.status, 200);
        await sideKeepsFlowing(t, "size limit");
      });
    }),
);

Deno.test(
  "unknown websocket events and unknown stanza payloads are skipped; everything around them arrives once, in order",
  opts,
  () =>
    inWorld(async (t) => {
      const { w } = t;
      await withBridge(t, async (bridge) => {
        const said = { mm: [] as string[], xmpp: [] as string[] };
        const mmSays = async (text: string) => {
          said.mm.push(text);
          await w.mm.postAs(w.bob.id, w.channel.id, text);
        };
        const roomSays = async (text: string, children: Element[] = []) => {
          said.xmpp.push(text);
          await w.alice.sendGroupchat(w.room, text, { children });
        };
        await mmSays("before the unknown events");
        // Numbered like real events, so that the resume below must count past them.
        for (const [event, data] of UNKNOWN_EVENTS) w.mm.sendWebsocketEvent(w.mm.bot.id, event, data);
        await mmSays("between the unknown events");
        w.mm.sendRawWebsocketFrame(w.mm.bot.id, JSON.stringify({ event: "from_the_future", seq: 10_000 }));
        // A gap with the queue kept: the replay holds the unknown events too.
        w.mm.dropWebsockets();
        await mmSays("after a gap behind the unknown events");
        await waitFor(() => w.mm.websocketCount(w.mm.bot.id) === 1, "the websocket back", 15_000);
        await mmSays("after the resume");

        await roomSays("with unknown payloads", UNKNOWN_PAYLOADS());
        for (const stanza of UNKNOWN_STANZAS(w.room)) await w.alice.send(stanza);
        // The bridge's occupant is asked something it does not know: it must answer with an error, not stay silent.
        const asked = await w.alice.iq(
          xml("iq", { type: "get", to: `${w.room}/bridge` }, xml("query", { xmlns: "urn:example:unknown" })),
        ).then(() => "a result", (err) => String(err.condition ?? err.message));
        assert.match(asked, /service-unavailable|feature-not-implemented/);
        await roomSays("after the unknown stanzas");

        const done = () =>
          said.mm.every((s) => relayed(w.alice, w.room).includes(s)) &&
          said.xmpp.every((s) => posted(w, w.channel.id).includes(s));
        await waitFor(done, "everything said", 20_000).catch(() => {});
        const toRoom = tally(said.mm, relayed(w.alice, w.room));
        const toChannel = tally(said.xmpp, posted(w, w.channel.id));
        console.log(toRoom.line("unknown events, Mattermost → room"));
        console.log(toChannel.line("unknown payloads, room → Mattermost"));
        for (const x of [toRoom, toChannel]) {
          assert.deepEqual(x.lost, []);
          assert.equal(x.doubled, 0);
          assert.ok(x.inOrder);
        }
        // Nothing but the bodies was bridged: no post from a message without one.
        assert.deepEqual(posted(w, w.channel.id), said.xmpp);
        assert.equal((await bridge.healthz())?.status, 200);
        await sideKeepsFlowing(t, "unknown input");
      });
    }),
);

Deno.test(
  "banned from a room while posts are queued for it: a clear log line and /healthz, the other room flows, each " +
    "queued post either reached the room before the ban or its author is told; after the ban is lifted and the " +
    "bridge restarted, nothing arrives twice and new posts flow",
  opts,
  () =>
    inWorld(async (t) => {
      const { w } = t;
      let bridge = await spawnReadyBridge(t.env, w.httpPort);
      try {
        const { said, ids, posting } = await queuePosts(w);
        await roomIq(
          w.alice,
          w.room,
          xml(
            "query",
            { xmlns: NS_MUC_ADMIN },
            xml("item", { affiliation: "outcast", jid: "bridge@localhost" }, xml("reason", {}, "testing")),
          ),
        );
        await posting;
        await bridge.waitForLog(/Banned from .*hostile/);
        const health = await bridge.healthz();
        const xmpp = health?.body.bridges.find((b) => b.network === "xmpp");
        assert.match(
          xmpp?.detail ?? "",
          /banned from hostile\d+@conference\.localhost/,
          JSON.stringify(health),
        );
        await sideKeepsFlowing(t, "banned");
        assert.ok(bridge.running(), "the bridge died");

        // A ban is the room's refusal: what it refused is told to its author (a thread reply, the default bot
        // lacking ephemeral posts), never silently dropped, and never delivered later as well.
        const told = () =>
          new Set(
            w.mm.posts(w.channel.id)
              .filter((p) => p.user_id === w.mm.bot.id && p.message.includes("could not be bridged"))
              .map((p) => ids.get(p.root_id))
              .filter((x): x is string => x !== undefined),
          );
        const accounted = () => said.every((s) => relayed(w.alice, w.room).includes(s) || told().has(s));
        await waitFor(accounted, "every queued post delivered or told", 20_000).catch(() => {});
        const beforeLift = relayed(w.alice, w.room).filter((m) => said.includes(m)).length;

        // Lift the ban and restart, as the log line says.
        await roomIq(
          w.alice,
          w.room,
          xml(
            "query",
            { xmlns: NS_MUC_ADMIN },
            xml("item", { affiliation: "none", jid: "bridge@localhost" }),
          ),
        );
        assert.equal(await bridge.stop(), 0);
        bridge = await spawnReadyBridge(t.env, w.httpPort);
        await w.mm.postAs(w.bob.id, w.channel.id, "after the lift");
        await w.alice.waitForMessages(w.room, (m) => m.body === "<bob> after the lift", 1, 20_000);
        await waitFor(accounted, "every queued post delivered or told", 20_000).catch(() => {});
        const inRoom = relayed(w.alice, w.room);
        const x = tally(said.filter((s) => !told().has(s)), inRoom);
        const both = said.filter((s) => inRoom.includes(s) && told().has(s));
        const neither = said.filter((s) => !inRoom.includes(s) && !told().has(s));
        console.log(
          `banned after ${beforeLift} of ${said.length}: ${told().size} told to their author, ` +
            `${neither.length} neither delivered nor told, ${both.length} both; ${x.line("delivered")}`,
        );
        assert.deepEqual(neither, [], "a post was lost without a word");
        assert.deepEqual(both, [], "a post its author was told about arrived anyway");
        assert.equal(x.doubled, 0);
        assert.ok(x.inOrder, inRoom.join("\n"));
        assert.equal(inRoom.filter((m) => m === "warm-up").length, 1);
      } finally {
        await bridge.stop();
      }
    }),
);

Deno.test(
  "a room destroyed while posts are queued for it: a clear log line and /healthz, the other room flows, no crash",
  opts,
  () =>
    inWorld(async (t) => {
      const { w } = t;
      // A persistent room, as an admin sets one up: destroying it leaves a tombstone, so nobody can just recreate it.
      await roomIq(w.alice, w.room, roomConfig({ "muc#roomconfig_persistentroom": "1" }));
      await withBridge(t, async (bridge) => {
        const { said, posting } = await queuePosts(w);
        await roomIq(
          w.alice,
          w.room,
          xml("query", { xmlns: NS_MUC_OWNER }, xml("destroy", {}, xml("reason", {}, "moved elsewhere"))),
        );
        await posting;
        const across = relayed(w.alice, w.room).filter((m) => said.includes(m)).length;
        await bridge.waitForLog(/hostile\d+@conference\.localhost.*destroyed|destroyed.*hostile\d+/);
        await waitFor(
          async () => {
            const detail = (await bridge.healthz())?.body.bridges.find((b) => b.network === "xmpp")?.detail ??
              "";
            return /hostile\d+@conference\.localhost (was )?destroyed/.test(detail);
          },
          "/healthz naming the destroyed room",
          10_000,
        ).catch(async (err) => {
          throw new Error(`${err.message}: ${JSON.stringify(await bridge.healthz())}`);
        });
        console.log(`room destroyed after ${across} of ${said.length} queued posts were across`);
        await sideKeepsFlowing(t, "destroyed");
        assert.ok(bridge.running(), "the bridge died");
        assert.equal(
          (await bridge.healthz())?.body.bridges.find((b) => b.network === "xmpp")?.connected,
          true,
        );
      });
    }),
);

Deno.test(
  "a websocket text frame that is not UTF-8: the bridge reconnects, resumes, and loses nothing around it",
  opts,
  () =>
    inWorld(async (t) => {
      const { w } = t;
      const proxy = startFrameInjector(Number(new URL(w.mm.url).port));
      try {
        await withBridge(t, async (bridge) => {
          await w.mm.postAs(w.bob.id, w.channel.id, "warm-up");
          await w.alice.waitForMessages(w.room, (m) => m.body === "<bob> warm-up", 1, 10_000);
          // A posted event whose message holds bytes that are no UTF-8 (a lone continuation byte, 0xFF, a cut
          // sequence): RFC 6455 makes the client fail the connection (1007), so the server's queue must bridge the gap.
          const post = `{"id":"${"p".repeat(26)}","channel_id":"${w.channel.id}","user_id":"${w.bob.id}",` +
            `"message":"bad bytes: `;
          const bytes = concat(
            new TextEncoder().encode(`{"event":"posted","seq":9999,"data":{"post":${JSON.stringify(post)}`),
            new Uint8Array([0x80, 0xff, 0xe2, 0x82]),
            new TextEncoder().encode(`\"}"}}`),
          );
          assert.equal(proxy.inject(bytes), 1, "the bridge's websocket is not behind the proxy");
          const said = Array.from({ length: 10 }, (_, i) => `around the bad frame ${i}`);
          for (const text of said) await w.mm.postAs(w.bob.id, w.channel.id, text);
          await waitFor(() => said.every((s) => relayed(w.alice, w.room).includes(s)), "the posts", 20_000)
            .catch(() => {});
          const x = tally(said, relayed(w.alice, w.room));
          console.log(`${proxy.injected} frame of invalid UTF-8 injected: ${x.line("Mattermost → room")}`);
          assert.deepEqual(x.lost, []);
          assert.equal(x.doubled, 0);
          assert.ok(x.inOrder);
          assert.equal(proxy.injected, 1);
          assert.equal(relayed(w.alice, w.room).filter((m) => m.includes("bad bytes")).length, 0);
          // The gap has its cause in the log.
          await bridge.waitForLog(/The Mattermost websocket closed \(.*Invalid UTF-8.*\); reconnecting/i);
          await bridge.waitForHealth(200);
          await sideKeepsFlowing(t, "invalid UTF-8");
        }, { ...t.env, MM_URL: `http://127.0.0.1:${proxy.port}` });
      } finally {
        await proxy.close();
      }
    }),
);

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Events no Mattermost server of today sends (a newer server, a plugin): numbered and queued like real ones. */
const UNKNOWN_EVENTS: Array<[string, unknown]> = [
  ["custom_com.example.plugin_thing", { anything: [1, 2, 3] }],
  ["post_acknowledgement_added", { acknowledgement: "{}" }],
  ["future_event_kind", null],
  ["posted_v2", { post: JSON.stringify({ id: "x".repeat(26), message: "not a posted event" }) }],
];

/** Payloads nobody asked for, next to a body. */
function UNKNOWN_PAYLOADS(): Element[] {
  return [
    xml("thing", { xmlns: "urn:example:unknown" }, xml("deeper", {}, "text")),
    xml("x", { xmlns: "jabber:x:oob" }, xml("url", {}, "javascript:alert(1)")),
    xml("html", { xmlns: "http://jabber.org/protocol/xhtml-im" }, xml("script", {}, "alert(1)")),
  ];
}

/** Stanzas around the room with no body, or of kinds the bridge does not bridge. */
function UNKNOWN_STANZAS(room: string): Element[] {
  return [
    xml(
      "message",
      { to: room, type: "groupchat", id: crypto.randomUUID() },
      xml("thing", { xmlns: "urn:x" }),
    ),
    xml("message", { to: room, type: "groupchat" }, xml("subject", {}, "")),
    xml("message", { to: `${room}/bridge`, type: "chat" }, xml("body", {}, "a private word for the bridge")),
    xml("message", { to: `${room}/bridge`, type: "headline" }, xml("unknown", { xmlns: "urn:x" })),
    xml("presence", { to: `${room}/alice` }, xml("status", {}, "busy"), xml("thing", { xmlns: "urn:x" })),
  ];
}

/** A room configuration form submitting `fields`. */
function roomConfig(fields: Record<string, string>): Element {
  return xml(
    "query",
    { xmlns: NS_MUC_OWNER },
    xml(
      "x",
      { xmlns: NS_DATA, type: "submit" },
      xml("field", { var: "FORM_TYPE" }, xml("value", {}, "http://jabber.org/protocol/muc#roomconfig")),
      ...Object.entries(fields).map(([name, value]) => xml("field", { var: name }, xml("value", {}, value))),
    ),
  );
}

worlds.stopAfterAll();
