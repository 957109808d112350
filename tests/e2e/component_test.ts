/**
 * The `component` ghost mode against a real Prosody: puppets of an XEP-0114 component speak in a room as
 * themselves, as the human occupant "alice" sees it.
 */
import assert from "node:assert/strict";
import { xml } from "@xmpp/client-core";
import type { Element } from "@xmpp/xml";
import { BridgeError } from "../../src/core/errors.ts";
import type { GhostAuthor } from "../../src/xmpp/intents/ghosts.ts";
import { ComponentPuppets } from "../../src/xmpp/intents/puppets.ts";
import { buildGroupchat } from "../../src/xmpp/protocol/stanza.ts";
import { type Prosody, startProsody } from "../helpers/prosody.ts";
import { connectXmppUser, type XmppUser } from "../helpers/xmpp_user.ts";

const PASSWORD = "alice-password";
const NS_DISCO_INFO = "http://jabber.org/protocol/disco#info";
const NS_MUC_USER = "http://jabber.org/protocol/muc#user";
const BOB = { id: "mm-user-bob", name: "bob", displayName: "Bob Builder" };
const CAROL = { id: "mm-user-carol", name: "carol" };

interface World {
  prosody: Prosody;
  alice: XmppUser;
  room: string;
  puppets: ComponentPuppets;
}

/** A Prosody, alice in a fresh room, and started puppets; everything is stopped after `fn`, also on failure. */
async function withWorld(fn: (w: World) => Promise<void>): Promise<void> {
  const prosody = await startProsody();
  let alice: XmppUser | undefined;
  let puppets: ComponentPuppets | undefined;
  try {
    await prosody.register("alice", PASSWORD);
    alice = await connectXmppUser(prosody, "alice", PASSWORD, { resource: "test", reconnect: true });
    const room = `lobby@${prosody.mucDomain}`;
    await alice.joinRoom(room, "alice");
    puppets = new ComponentPuppets({
      service: prosody.componentService,
      domain: prosody.componentDomain,
      secret: prosody.componentSecret,
      reflectionTimeoutMs: 5_000,
      joinTimeoutMs: 5_000,
      reconnectDelayMs: 250,
    });
    await puppets.start();
    await fn({ prosody, alice, room, puppets });
  } catch (err) {
    throw new Error(`${err instanceof Error ? err.stack : err}\n${prosody.logTail(30)}`);
  } finally {
    await puppets?.stop();
    await alice?.stop();
    await prosody.stop();
  }
}

/** Resolves with the first presence from `from` (room/nick) that `match` accepts. */
function presenceFrom(
  user: XmppUser,
  from: string,
  match: (presence: Element) => boolean,
  timeoutMs = 10_000,
): Promise<Element> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no matching presence from ${from} within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = user.onStanza((stanza) => {
      if (!stanza.is("presence") || stanza.attrs.from !== from || !match(stanza)) return;
      clearTimeout(timer);
      off();
      resolve(stanza);
    });
  });
}

/** Says `body` in `room` as `author`'s puppet, as the connector does: its intent joins, sends, awaits the reflection. */
async function sendAs(
  puppets: ComponentPuppets,
  author: GhostAuthor,
  room: string,
  body: string,
  id: string,
) {
  const intent = await puppets.intentFor(author);
  await intent.ensureJoined(room);
  return await intent.sendAwaitingReflection(room, buildGroupchat(room, body, id), id);
}

const available = (presence: Element) => presence.attrs.type === undefined;
const unavailable = (presence: Element) => presence.attrs.type === "unavailable";

function statusCodes(presence: Element): string[] {
  return presence.getChild("x", NS_MUC_USER)?.getChildren("status").map((s: Element) => s.attrs.code) ?? [];
}

Deno.test("a puppet's first message goes out right behind its join, before the room has listed its occupants", async () => {
  await withWorld(async ({ alice, room, puppets }) => {
    // A room with some occupants, whose presences the room sends the newcomer before its own.
    for (const [i, author] of ["dora", "erin", "fred", "gina"].entries()) {
      await sendAs(
        puppets,
        { id: `mm-${author}`, name: author },
        room,
        `${author} here`,
        `origin-crowd-${i}`,
      );
    }
    const intent = await puppets.intentFor(BOB);
    await intent!.ensureJoined(room);
    // The room has not answered yet: the join presence is only written.
    assert.equal(puppets.presentIn(BOB.id, room), undefined, "speaks before its join is confirmed");
    const sent = await intent!.sendAwaitingReflection(
      room,
      buildGroupchat(room, "right away", "origin-fast"),
      "origin-fast",
    );
    const [seen] = await alice.waitForMessages(room, (m) => m.originId === "origin-fast");
    assert.equal(seen.nick, "bob");
    assert.equal(sent.stanzaId, seen.stanzaId, "accepted from an occupant, and confirmed");
    assert.ok(puppets.presentIn(BOB.id, room), "joined by then");
  });
});

Deno.test("puppets speak in the room under their own nicks, confirmed by the room's stanza-id", async () => {
  await withWorld(async ({ alice, room, puppets }) => {
    const bobJoined = presenceFrom(alice, `${room}/bob`, available);
    const bobSent = await sendAs(puppets, BOB, room, "hello from bob", "origin-bob-1");
    const carolSent = await sendAs(puppets, CAROL, room, "and from carol", "origin-carol-1");
    // alice owns the room, so she sees the occupant's real JID: the puppet's own.
    const item = (await bobJoined).getChild("x", NS_MUC_USER)?.getChild("item");
    assert.equal(item?.attrs.jid, "bob@bridge.localhost/mmxmpp");

    const [bob] = await alice.waitForMessages(room, (m) => m.body === "hello from bob");
    const [carol] = await alice.waitForMessages(room, (m) => m.body === "and from carol");
    assert.equal(bob.nick, "bob");
    assert.equal(bob.id, "origin-bob-1");
    assert.equal(bob.originId, "origin-bob-1");
    assert.ok(bob.stanzaId, "the room stamps a stanza-id");
    assert.equal(bobSent.stanzaId, bob.stanzaId);
    assert.equal(carol.nick, "carol");
    assert.equal(carol.originId, "origin-carol-1");
    assert.equal(carolSent.stanzaId, carol.stanzaId);

    assert.ok(puppets.isGhost(room, "bob"));
    assert.ok(puppets.isGhost(room, "carol"));
    assert.ok(!puppets.isGhost(room, "alice"));
    assert.ok(!puppets.isGhost(`other@conference.localhost`, "bob"));

    // A second message needs no second join.
    const second = await sendAs(puppets, BOB, room, "again", "origin-bob-2");
    const [again] = await alice.waitForMessages(room, (m) => m.originId === "origin-bob-2");
    assert.equal(again.nick, "bob");
    assert.equal(second.stanzaId, again.stanzaId);
    assert.equal(alice.messages.filter((m) => m.nick === "bob").length, 2);
  });
});

Deno.test("the nick format can use the display name", async () => {
  await withWorld(async ({ prosody, alice, room, puppets }) => {
    await puppets.stop();
    const named = new ComponentPuppets({
      service: prosody.componentService,
      domain: prosody.componentDomain,
      secret: prosody.componentSecret,
      nickFormat: "{displayname} (mm)",
    });
    await named.start();
    try {
      await sendAs(named, BOB, room, "by display name", "origin-named");
      const [msg] = await alice.waitForMessages(room, (m) => m.originId === "origin-named");
      assert.equal(msg.nick, "Bob Builder (mm)");
      assert.ok(named.isGhost(room, "Bob Builder (mm)"));
    } finally {
      await named.stop();
    }
  });
});

Deno.test("the component answers disco#info for itself and its puppets, and service-unavailable otherwise", async () => {
  await withWorld(async ({ prosody, alice, room, puppets }) => {
    await sendAs(puppets, BOB, room, "so that bob exists", "origin-disco");
    const disco = (to: string) =>
      alice.iq(xml("iq", { type: "get", to }, xml("query", { xmlns: NS_DISCO_INFO })));

    const component = (await disco(prosody.componentDomain)).getChild("query", NS_DISCO_INFO);
    assert.deepEqual(component.getChild("identity").attrs, {
      category: "gateway",
      type: "mattermost",
      name: "Mattermost bridge",
    });
    const features = component.getChildren("feature").map((f: Element) => f.attrs.var);
    assert.ok(features.includes(NS_DISCO_INFO));
    assert.ok(features.includes("http://jabber.org/protocol/muc"));

    for (const to of [`bob@${prosody.componentDomain}`, `bob@${prosody.componentDomain}/mmxmpp`]) {
      const bob = (await disco(to)).getChild("query", NS_DISCO_INFO);
      assert.equal(bob.getChild("identity").attrs.category, "client");
      assert.equal(bob.getChild("identity").attrs.name, "Bob Builder");
      assert.ok(bob.getChildren("feature").some((f: Element) => f.attrs.var === NS_DISCO_INFO));
      assert.ok(
        bob.getChildren("feature").some((f: Element) =>
          f.attrs.var === "http://jabber.org/protocol/chatstates"
        ),
        "puppets say they send chat states",
      );
    }

    const refused = (stanza: Element) =>
      assert.rejects(() => alice.iq(stanza), (err: { condition?: string }) => {
        assert.equal(err.condition, "service-unavailable");
        return true;
      });
    await refused(
      xml("iq", { type: "get", to: prosody.componentDomain }, xml("query", { xmlns: "urn:example:bogus" })),
    );
    await refused(
      xml(
        "iq",
        { type: "set", to: `bob@${prosody.componentDomain}` },
        xml("x", { xmlns: "urn:example:bogus" }),
      ),
    );
    await refused(
      xml(
        "iq",
        { type: "get", to: `nobody@${prosody.componentDomain}` },
        xml("query", { xmlns: NS_DISCO_INFO }),
      ),
    );
  });
});

Deno.test("a wrong component secret is refused with a clear error that does not contain the secret", async () => {
  const prosody = await startProsody();
  const secret = "not-the-component-secret-4711";
  const puppets = new ComponentPuppets({
    service: prosody.componentService,
    domain: prosody.componentDomain,
    secret,
  });
  try {
    await assert.rejects(() => puppets.start(), (err: BridgeError) => {
      assert.ok(err instanceof BridgeError);
      assert.match(
        err.message,
        /the server refused the handshake for bridge\.localhost \(not-authorized\): XMPP_COMPONENT_SECRET does not match/,
      );
      assert.ok(!err.transient);
      for (const text of [err.message, err.stack ?? "", String(err.cause), JSON.stringify(err)]) {
        assert.ok(!text.includes(secret), `the secret leaked into: ${text}`);
      }
      return true;
    });
  } finally {
    await puppets.stop();
    await prosody.stop();
  }
});

Deno.test("a retired puppet leaves every room, and leaveRoom makes every puppet leave", async () => {
  await withWorld(async ({ alice, room, puppets }) => {
    const other = `other@conference.localhost`;
    await alice.joinRoom(other, "alice");
    await sendAs(puppets, BOB, room, "bob in lobby", "origin-r1");
    await sendAs(puppets, BOB, other, "bob in other", "origin-r2");
    await sendAs(puppets, CAROL, room, "carol in lobby", "origin-r3");

    const bobLeftLobby = presenceFrom(alice, `${room}/bob`, unavailable);
    const bobLeftOther = presenceFrom(alice, `${other}/bob`, unavailable);
    await puppets.retire(BOB.id);
    await Promise.all([bobLeftLobby, bobLeftOther]);
    assert.ok(!puppets.isGhost(room, "bob"));
    assert.ok(puppets.isGhost(room, "carol"));

    const carolLeft = presenceFrom(alice, `${room}/carol`, unavailable);
    await puppets.leaveRoom(room);
    await carolLeft;
    assert.ok(!puppets.isGhost(room, "carol"));

    // Both come back with their next message.
    await sendAs(puppets, BOB, room, "bob is back", "origin-r4");
    await alice.waitForMessages(room, (m) => m.originId === "origin-r4" && m.nick === "bob");
  });
});

Deno.test("a kicked puppet joins again with its next message", async () => {
  await withWorld(async ({ alice, room, puppets }) => {
    await sendAs(puppets, BOB, room, "before the kick", "origin-k1");
    const kicked = presenceFrom(alice, `${room}/bob`, unavailable);
    // alice created the room, so she owns it and may kick.
    await alice.iq(
      xml(
        "iq",
        { type: "set", to: room },
        xml(
          "query",
          { xmlns: "http://jabber.org/protocol/muc#admin" },
          xml("item", { nick: "bob", role: "none" }),
        ),
      ),
    );
    assert.ok(statusCodes(await kicked).includes("307"));

    const rejoined = presenceFrom(alice, `${room}/bob`, available);
    const sent = await sendAs(puppets, BOB, room, "after the kick", "origin-k2");
    await rejoined;
    const [msg] = await alice.waitForMessages(room, (m) => m.originId === "origin-k2");
    assert.equal(msg.nick, "bob");
    assert.equal(sent.stanzaId, msg.stanzaId);
  });
});

Deno.test("a message the room refuses fails transiently, and the puppet joins again for the next", async () => {
  await withWorld(async ({ alice, room, puppets }) => {
    await sendAs(puppets, BOB, room, "with voice", "origin-v1");
    const setRole = (role: string) =>
      alice.iq(
        xml(
          "iq",
          { type: "set", to: room },
          xml("query", { xmlns: "http://jabber.org/protocol/muc#admin" }, xml("item", { nick: "bob", role })),
        ),
      );
    await setRole("visitor");
    await assert.rejects(
      () => sendAs(puppets, BOB, room, "without voice", "origin-v2"),
      (err: BridgeError) => {
        assert.ok(err instanceof BridgeError && err.transient);
        assert.match(err.message, /refused a message: forbidden/);
        return true;
      },
    );
    await setRole("participant");
    const sent = await sendAs(puppets, BOB, room, "voice again", "origin-v3");
    const [msg] = await alice.waitForMessages(room, (m) => m.originId === "origin-v3");
    assert.equal(msg.nick, "bob");
    assert.equal(sent.stanzaId, msg.stanzaId);
    assert.ok(!alice.messages.some((m) => m.originId === "origin-v2"));
  });
});

Deno.test("after the server restarts, puppets rejoin their rooms and speak again", async () => {
  await withWorld(async ({ prosody, alice, room, puppets }) => {
    await sendAs(puppets, BOB, room, "before the crash", "origin-c1");
    await sendAs(puppets, CAROL, room, "me too", "origin-c2");
    await prosody.kill();

    await assert.rejects(
      () => sendAs(puppets, BOB, room, "while down", "origin-c3"),
      (err: BridgeError) => err instanceof BridgeError && err.transient,
    );

    // The room did not survive; whoever comes first recreates it, and alice sees both puppets again unprompted.
    const bobBack = presenceFrom(alice, `${room}/bob`, available, 20_000);
    const carolBack = presenceFrom(alice, `${room}/carol`, available, 20_000);
    await prosody.restart();
    await Promise.all([bobBack, carolBack]);

    const sent = await sendAs(puppets, BOB, room, "after the crash", "origin-c4");
    const [msg] = await alice.waitForMessages(room, (m) => m.originId === "origin-c4", 1, 10_000);
    assert.equal(msg.nick, "bob");
    assert.equal(sent.stanzaId, msg.stanzaId);
  });
});

Deno.test("stop makes every puppet leave and closes the component", async () => {
  await withWorld(async ({ alice, room, puppets }) => {
    await sendAs(puppets, BOB, room, "bye", "origin-s1");
    await sendAs(puppets, CAROL, room, "bye too", "origin-s2");
    const left = Promise.all([
      presenceFrom(alice, `${room}/bob`, unavailable),
      presenceFrom(alice, `${room}/carol`, unavailable),
    ]);
    await puppets.stop();
    await left;
    await assert.rejects(
      () => sendAs(puppets, BOB, room, "after stop", "origin-s3"),
      (err: BridgeError) => err instanceof BridgeError && err.transient,
    );
  });
});
