/**
 * The XMPP side of direct conversations without a server: the channel id of a 1:1 conversation (never taken for a
 * room, nor a room for one), the allowed domains, and 1:1 stanzas read with the 1:1 id rules and refused with an
 * error reply to the sender's full JID.
 */
import assert from "node:assert/strict";
import { xml } from "@xmpp/client-core";
import { directChannel, domainAllowed, isDirectChannel, parseDirectChannel } from "../../src/xmpp/direct.ts";
import {
  asChat,
  carriesContent,
  chatIds,
  parseChat,
  readChat,
  refusal,
} from "../../src/xmpp/direct_chats.ts";
import type { IncomingBase } from "../../src/xmpp/incoming.ts";

Deno.test("a direct channel names both ends, bare and lowercased, and parses back", () => {
  const channel = directChannel("Alice@Example.org/phone", "MM_bob@example.org");
  assert.equal(channel, "alice@example.org<>mm_bob@example.org");
  assert.deepEqual(parseDirectChannel(channel), { peer: "alice@example.org", ghost: "mm_bob@example.org" });
  assert.equal(isDirectChannel(channel), true);
});

Deno.test("a room's JID is never a direct channel, nor is a malformed pair", () => {
  for (const room of ["hall@conference.example.org", "a<b@conference.example.org", "x@y/z"]) {
    assert.equal(isDirectChannel(room), false, room);
  }
  for (const bad of ["<>bob@example.org", "alice@example.org<>", "alice<>bob@example.org", "a@b<>c@d<>e@f"]) {
    assert.equal(parseDirectChannel(bad), undefined, bad);
  }
});

Deno.test("allowed domains: exact, or subdomains with *.", () => {
  assert.equal(domainAllowed("alice@example.org/phone", ["example.org"]), true);
  assert.equal(domainAllowed("alice@chat.example.org", ["example.org"]), false);
  assert.equal(domainAllowed("alice@chat.example.org", ["*.example.org"]), true);
  assert.equal(domainAllowed("mallory@evilexample.org", ["*.example.org"]), false);
  assert.equal(domainAllowed("alice@EXAMPLE.org", ["Example.Org"]), true);
});

const base = (channel: string): IncomingBase => ({
  eventId: "e1",
  ids: ["m1", "o1"],
  portal: { network: "xmpp", channel },
  sender: { network: "xmpp", id: "alice@example.org", name: "alice" },
  timestamp: 1,
});

Deno.test("a 1:1 message is read with its ids unqualified: its id, then its origin-id", () => {
  const chat = parseChat(
    xml(
      "message",
      { type: "chat", from: "alice@example.org/phone", to: "bob@bridge.example.org", id: "m1" },
      xml("body", {}, "hi *there*"),
      xml("origin-id", { xmlns: "urn:xmpp:sid:0", id: "o1" }),
    ),
  )!;
  assert.deepEqual(chatIds(chat), ["m1", "o1"]);
  assert.equal(carriesContent(chat), true);
  const event = readChat(chat, base("c"), (t) => t.toUpperCase());
  assert.equal(event?.kind, "message");
  assert.equal(event?.kind === "message" && event.text, "HI *THERE*");
});

Deno.test("a 1:1 correction, retraction and reactions point at the id they name, unqualified", () => {
  const from = { type: "chat", from: "alice@example.org/phone", to: "bob@bridge.example.org" };
  const edit = readChat(
    parseChat(
      xml(
        "message",
        { ...from, id: "m2" },
        xml("body", {}, "fixed"),
        xml("replace", { xmlns: "urn:xmpp:message-correct:0", id: "m1" }),
      ),
    )!,
    base("c"),
    (t) => t,
  );
  assert.deepEqual(edit?.kind === "edit" && [edit.targetId, edit.text], ["m1", "fixed"]);
  const retraction = readChat(
    parseChat(xml("message", from, xml("retract", { xmlns: "urn:xmpp:message-retract:1", id: "o1" })))!,
    base("c"),
    (t) => t,
  );
  assert.deepEqual(retraction?.kind === "remove" && retraction.targetId, "o1");
  const reactions = readChat(
    parseChat(
      xml(
        "message",
        from,
        xml("reactions", { xmlns: "urn:xmpp:reactions:0", id: "d1" }, xml("reaction", {}, "👍")),
      ),
    )!,
    base("c"),
    (t) => t,
  );
  assert.deepEqual(reactions?.kind === "reactions" && [reactions.targetId, reactions.emojis], ["d1", ["👍"]]);
});

Deno.test("chat states, receipts and errors carry nothing to answer; groupchat is not a 1:1 message", () => {
  const states = parseChat(
    xml(
      "message",
      { type: "chat", from: "alice@example.org/phone", to: "bob@b" },
      xml("composing", { xmlns: "http://jabber.org/protocol/chatstates" }),
    ),
  )!;
  assert.equal(carriesContent(states), false);
  const bounce = parseChat(
    xml("message", { type: "error", from: "alice@example.org", to: "bob@b" }, xml("body", {}, "x")),
  )!;
  assert.equal(carriesContent(bounce), false);
  assert.equal(parseChat(xml("message", { type: "groupchat", from: "room@muc/alice" })), null);
  assert.equal(parseChat(xml("message", { type: "chat", from: "example.org" })), null, "from a server");
});

Deno.test("a refusal goes to the sender's full JID, from the address written to, with the message's id", () => {
  const chat = parseChat(
    xml(
      "message",
      { type: "chat", from: "alice@example.org/phone", to: "nobody@bridge.example.org", id: "m9" },
      xml("body", {}, "hello?"),
    ),
  )!;
  const error = refusal(chat, "item-not-found", "nobody is here");
  assert.equal(error.attrs.type, "error");
  assert.equal(error.attrs.to, "alice@example.org/phone");
  assert.equal(error.attrs.from, "nobody@bridge.example.org");
  assert.equal(error.attrs.id, "m9");
  const condition = error.getChild("error")!;
  assert.equal(condition.attrs.type, "cancel");
  assert.ok(condition.getChild("item-not-found", "urn:ietf:params:xml:ns:xmpp-stanzas"));
  assert.equal(condition.getChildText("text"), "nobody is here");
});

Deno.test("a stanza built for a room becomes a 1:1 chat with the same children", () => {
  const stanza = asChat(
    xml("message", { type: "groupchat", to: "x<>y", id: "d1" }, xml("body", {}, "hi")),
    "alice@example.org",
  );
  assert.equal(stanza.attrs.type, "chat");
  assert.equal(stanza.attrs.to, "alice@example.org");
  assert.equal(stanza.getChildText("body"), "hi");
});
