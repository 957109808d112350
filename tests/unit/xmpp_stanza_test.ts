import assert from "node:assert/strict";
import { xml } from "@xmpp/client-core";
import { BridgeError } from "../../src/core/errors.ts";
import { normalizeRoomJid } from "../../src/xmpp/protocol/jid.ts";
import { buildGroupchat, parseBody, parseGroupchat, renderBody } from "../../src/xmpp/protocol/stanza.ts";
import { NS_SID } from "../../src/xmpp/protocol/ns.ts";

const ROOM = "room@conference.example.org";
const NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";

Deno.test("parseGroupchat extracts room (lowercased), nick, id, origin-id, room stanza-id and body", () => {
  const stanza = xml(
    "message",
    {
      type: "groupchat",
      from: "Room@Conference.Example.org/Alice Smith",
      to: "bridge@example.org/r",
      id: "m1",
    },
    xml("body", {}, "héllo 😀\nline two"),
    xml("origin-id", { xmlns: NS_SID, id: "origin-1" }),
    xml("stanza-id", { xmlns: NS_SID, id: "sid-1", by: "room@conference.example.org" }),
    xml("occupant-id", { xmlns: "urn:xmpp:occupant-id:0", id: "occ-1" }),
  );
  const parsed = parseGroupchat(stanza);
  assert.deepEqual(parsed, {
    room: ROOM,
    nick: "Alice Smith",
    id: "m1",
    originId: "origin-1",
    stanzaId: "sid-1",
    occupantId: "occ-1",
    body: "héllo 😀\nline two",
    subject: undefined,
    delayed: false,
    stamp: undefined,
    error: undefined,
    stanza,
  });
});

Deno.test("a stanza-id whose by is not the room is ignored as forged", () => {
  const stanza = xml(
    "message",
    { type: "groupchat", from: `${ROOM}/mallory`, id: "m2" },
    xml("body", {}, "hi"),
    xml("stanza-id", { xmlns: NS_SID, id: "forged", by: "mallory@example.org" }),
  );
  assert.equal(parseGroupchat(stanza)?.stanzaId, undefined);
});

Deno.test("the room's stanza-id is found among forged ones, and by is compared case-insensitively", () => {
  const stanza = xml(
    "message",
    { type: "groupchat", from: `${ROOM}/mallory` },
    xml("body", {}, "hi"),
    xml("stanza-id", { xmlns: NS_SID, id: "forged", by: "bridge@example.org" }),
    xml("stanza-id", { xmlns: NS_SID, id: "real", by: "Room@Conference.example.org" }),
  );
  assert.equal(parseGroupchat(stanza)?.stanzaId, "real");
});

Deno.test("a stanza-id or origin-id in another namespace is not taken", () => {
  const stanza = xml(
    "message",
    { type: "groupchat", from: `${ROOM}/bob` },
    xml("body", {}, "hi"),
    xml("stanza-id", { xmlns: "urn:example:other", id: "x", by: ROOM }),
    xml("origin-id", { xmlns: "urn:example:other", id: "y" }),
  );
  const parsed = parseGroupchat(stanza);
  assert.equal(parsed?.stanzaId, undefined);
  assert.equal(parsed?.originId, undefined);
});

Deno.test("a delayed (history) message is marked delayed with its original time", () => {
  const stamp = "2024-02-03T04:05:06Z";
  const stanza = xml(
    "message",
    { type: "groupchat", from: `${ROOM}/bob` },
    xml("body", {}, "old"),
    xml("delay", { xmlns: "urn:xmpp:delay", from: ROOM, stamp }),
  );
  const parsed = parseGroupchat(stanza);
  assert.equal(parsed?.delayed, true);
  assert.equal(parsed?.stamp, Date.parse(stamp));
});

Deno.test("a delay with an unreadable stamp is still delayed, without a time", () => {
  const stanza = xml(
    "message",
    { type: "groupchat", from: `${ROOM}/bob` },
    xml("body", {}, "old"),
    xml("delay", { xmlns: "urn:xmpp:delay", stamp: "yesterday-ish" }),
  );
  const parsed = parseGroupchat(stanza);
  assert.equal(parsed?.delayed, true);
  assert.equal(parsed?.stamp, undefined);
});

Deno.test("a subject change is parsed with its subject and no body", () => {
  const stanza = xml(
    "message",
    { type: "groupchat", from: `${ROOM}/admin` },
    xml("subject", {}, "New topic"),
  );
  const parsed = parseGroupchat(stanza);
  assert.equal(parsed?.subject, "New topic");
  assert.equal(parsed?.body, undefined);
});

Deno.test("a message from the room itself has an empty nick", () => {
  const stanza = xml(
    "message",
    { type: "groupchat", from: ROOM },
    xml("body", {}, "This room is not anonymous"),
  );
  const parsed = parseGroupchat(stanza);
  assert.equal(parsed?.room, ROOM);
  assert.equal(parsed?.nick, "");
});

Deno.test("an error bounce yields its defined condition and text", () => {
  const stanza = xml(
    "message",
    { type: "error", from: `${ROOM}/bridge`, id: "sent-1" },
    xml("body", {}, "what we sent"),
    xml(
      "error",
      { type: "modify", by: ROOM },
      xml("text", { xmlns: NS_STANZAS }, "You are not in the room"),
      xml("not-acceptable", { xmlns: NS_STANZAS }),
    ),
  );
  const parsed = parseGroupchat(stanza);
  assert.equal(parsed?.id, "sent-1");
  assert.deepEqual(parsed?.error, { condition: "not-acceptable", text: "You are not in the room" });
});

Deno.test("an error without a known condition reports undefined-condition", () => {
  const stanza = xml("message", { type: "error", from: ROOM }, xml("error", { type: "cancel" }));
  assert.deepEqual(parseGroupchat(stanza)?.error, { condition: "undefined-condition", text: undefined });
});

Deno.test("a groupchat message carries no error", () => {
  const stanza = xml("message", { type: "groupchat", from: `${ROOM}/bob` }, xml("body", {}, "x"));
  assert.equal(parseGroupchat(stanza)?.error, undefined);
});

Deno.test("parseGroupchat returns null for anything but a groupchat or error message from a room", () => {
  const body = () => xml("body", {}, "hi");
  assert.equal(parseGroupchat(xml("message", { type: "chat", from: `${ROOM}/bob` }, body())), null);
  assert.equal(parseGroupchat(xml("message", { from: `${ROOM}/bob` }, body())), null, "no type is normal");
  assert.equal(parseGroupchat(xml("message", { type: "headline", from: `${ROOM}/bob` }, body())), null);
  assert.equal(parseGroupchat(xml("presence", { type: "groupchat", from: `${ROOM}/bob` })), null);
  assert.equal(
    parseGroupchat(xml("message", { type: "groupchat", from: "conference.example.org" }, body())),
    null,
  );
  assert.equal(parseGroupchat(xml("message", { type: "groupchat" }, body())), null, "no from at all");
});

Deno.test("buildGroupchat builds a groupchat to the room whose origin-id equals its id", () => {
  const el = buildGroupchat(ROOM, "<b>&amp; 😀</b>", "abc-123");
  assert.equal(el.name, "message");
  assert.equal(el.attrs.type, "groupchat");
  assert.equal(el.attrs.to, ROOM);
  assert.equal(el.attrs.id, "abc-123");
  assert.equal(el.getChildText("body"), "<b>&amp; 😀</b>");
  const origin = el.getChild("origin-id", NS_SID);
  assert.ok(origin, "origin-id missing");
  assert.equal(origin.attrs.id, el.attrs.id);
  // The body text is escaped on the wire.
  assert.ok(el.toString().includes("&lt;b&gt;&amp;amp; 😀&lt;/b&gt;"), el.toString());
});

Deno.test("a built groupchat, as reflected by the room, parses back to the same ids and body", () => {
  const sent = buildGroupchat(ROOM, "round trip", "id-7");
  const reflected = xml(
    "message",
    { ...sent.attrs, from: `${ROOM}/bridge`, to: "bridge@example.org/res" },
    ...sent.children,
    xml("stanza-id", { xmlns: NS_SID, id: "room-sid", by: ROOM }),
  );
  const parsed = parseGroupchat(reflected);
  assert.equal(parsed?.id, "id-7");
  assert.equal(parsed?.originId, "id-7");
  assert.equal(parsed?.stanzaId, "room-sid");
  assert.equal(parsed?.body, "round trip");
  assert.equal(parsed?.nick, "bridge");
});

Deno.test("normalizeRoomJid lowercases a bare room JID and trims it", () => {
  assert.equal(normalizeRoomJid("Team@Conference.Example.org"), "team@conference.example.org");
  assert.equal(normalizeRoomJid("  dev@muc.localhost \n"), "dev@muc.localhost");
});

Deno.test("normalizeRoomJid rejects what is not room@service with a BridgeError naming the input", () => {
  for (const bad of ["noatsign", "a@b/res", "@b", "", "a@", "a b@c.org", "a@b@c"]) {
    assert.throws(() => normalizeRoomJid(bad), (err: unknown) => {
      assert.ok(err instanceof BridgeError, `${bad}: ${err}`);
      assert.ok(err.message.includes(`"${bad.trim()}"`), err.message);
      assert.match(err.message, /room@service/);
      assert.equal(err.transient, false);
      return true;
    }, `accepted ${JSON.stringify(bad)}`);
  }
});

Deno.test("parseBody reads a XEP-0245 /me body as an action, and nothing else", () => {
  assert.deepEqual(parseBody("/me waves 👋"), { text: "waves 👋", action: true });
  assert.deepEqual(parseBody("/me  two spaces"), { text: " two spaces", action: true });
  for (const body of ["/me", "/me ", "/me  \n ", "/meow", "/ME shouts", " /me indented", "say /me"]) {
    assert.deepEqual(parseBody(body), { text: body }, body);
  }
});

Deno.test("renderBody: /me from a ghost, * name from the relay, prefix for a relayed message", () => {
  assert.equal(renderBody("waves", { action: true }), "/me waves");
  assert.equal(renderBody("hi", {}), "hi");
  const relayedAs = { prefix: "<bob> ", name: "bob" };
  assert.equal(renderBody("waves", { action: true, relayedAs }), "* bob waves");
  assert.equal(renderBody("hi", { relayedAs }), "<bob> hi");
});
