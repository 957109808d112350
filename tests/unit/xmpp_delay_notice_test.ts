/**
 * XEP-0203 delays the bridge writes on caught-up messages and reads on incoming ones, and the stanza that tells an
 * occupant their message was not delivered.
 */
import assert from "node:assert/strict";
import { xml } from "@xmpp/client-core";
import type { Element } from "../../src/xmpp/session/client.ts";
import { buildGroupchat, parseGroupchat } from "../../src/xmpp/protocol/stanza.ts";
import { senderMessageId, undeliverableNotice } from "../../src/xmpp/protocol/undeliverable.ts";
import { NS_DELAY, NS_SID, NS_STANZAS } from "../../src/xmpp/protocol/ns.ts";

const ROOM = "room@conference.example.org";

Deno.test("a delay the sender put on a live message is not the room's history: it is bridged as live", () => {
  const parsed = parseGroupchat(
    xml(
      "message",
      { type: "groupchat", from: `${ROOM}/other-bridge` },
      xml("body", {}, "said an hour ago elsewhere"),
      xml("delay", { xmlns: NS_DELAY, from: "other-bridge@example.org", stamp: "2026-01-02T03:04:05.678Z" }),
    ),
  );
  assert.equal(parsed?.delayed, false);
  assert.equal(parsed?.stamp, undefined);
});

Deno.test("history of a message that carried a sender's delay is still history, at the room's time", () => {
  const parsed = parseGroupchat(
    xml(
      "message",
      { type: "groupchat", from: `${ROOM}/bridge` },
      xml("body", {}, "caught up"),
      xml("delay", { xmlns: NS_DELAY, from: "bridge@example.org", stamp: "2026-01-02T03:04:05.678Z" }),
      xml("delay", { xmlns: NS_DELAY, from: "Room@Conference.example.org", stamp: "2026-01-02T04:00:00Z" }),
    ),
  );
  assert.equal(parsed?.delayed, true);
  assert.equal(parsed?.stamp, Date.parse("2026-01-02T04:00:00Z"));
});

Deno.test("buildGroupchat with a delay carries the original time to the millisecond and the bridge as its source", () => {
  const stamp = Date.UTC(2026, 0, 2, 3, 4, 5, 678);
  const built = buildGroupchat(ROOM, "hi", "id-1", { stamp, from: "bridge@example.org" });
  const delay = built.getChild("delay", NS_DELAY);
  assert.equal(delay?.attrs.stamp, "2026-01-02T03:04:05.678Z");
  assert.equal(delay?.attrs.from, "bridge@example.org");
  assert.equal(Date.parse(delay?.attrs.stamp), stamp);
  assert.equal(buildGroupchat(ROOM, "hi", "id-2").getChild("delay", NS_DELAY), undefined, "live: no delay");
  // As the room reflects it, it reads as a live message (the delay is the bridge's, not the room's).
  built.attrs.from = `${ROOM}/bridge`;
  built.append(xml("stanza-id", { xmlns: NS_SID, id: "sid", by: ROOM }));
  assert.equal(parseGroupchat(built)?.delayed, false);
});

Deno.test("senderMessageId finds the occupant's own id among the nick-qualified ids, even with a / in the nick", () => {
  assert.equal(
    senderMessageId({ ids: ["sid-1", "alice/origin", "alice/msg-1"], sender: { name: "alice" } }),
    "msg-1",
  );
  assert.equal(senderMessageId({ ids: ["sid-1", "a/b/x"], sender: { name: "a/b" } }), "x");
  assert.equal(senderMessageId({ ids: ["sid-1"], sender: { name: "alice" } }), undefined);
});

Deno.test("the notice is an error reply to the occupant's message, with a condition rooms route instead of kicking", () => {
  const notice = undeliverableNotice(`${ROOM}/alice`, "msg-1", "Your message could not be bridged: why.");
  assert.equal(notice.attrs.type, "error");
  assert.equal(notice.attrs.to, `${ROOM}/alice`);
  assert.equal(notice.attrs.id, "msg-1");
  const error = notice.getChild("error");
  assert.equal(error?.attrs.type, "cancel");
  const condition = error?.getChildElements().find((c: Element) =>
    c.attrs.xmlns === NS_STANZAS && c.name !== "text"
  );
  // Prosody's muc/util.lib.lua kicks the sender of these; the notice must never use one.
  const kickable = [
    "gone",
    "internal-server-error",
    "item-not-found",
    "jid-malformed",
    "recipient-unavailable",
    "redirect",
    "remote-server-not-found",
    "remote-server-timeout",
    "service-unavailable",
  ];
  assert.ok(condition && !kickable.includes(condition.name), condition?.name);
  assert.equal(error?.getChildText("text", NS_STANZAS), "Your message could not be bridged: why.");
});

Deno.test("a message without an id gets the notice as a private message instead", () => {
  const notice = undeliverableNotice(`${ROOM}/alice`, undefined, "Your message could not be bridged: why.");
  assert.equal(notice.attrs.type, "chat");
  assert.equal(notice.getChildText("body"), "Your message could not be bridged: why.");
});
