import assert from "node:assert/strict";
import { xml } from "@xmpp/client-core";
import type { MessageRef } from "../../src/core/message.ts";
import type { IncomingBase } from "../../src/xmpp/incoming.ts";
import { NS_REACTIONS, NS_SID } from "../../src/xmpp/protocol/ns.ts";
import { parseGroupchat } from "../../src/xmpp/protocol/stanza.ts";
import { buildReactions, reactionTargetId, readReactions } from "../../src/xmpp/xeps/xep0444.ts";

const ROOM = "room@conference.example.org";

const BASE: IncomingBase = {
  eventId: "stanza-r1",
  ids: ["stanza-r1", "alice/r1"],
  portal: { network: "xmpp", channel: ROOM },
  sender: { network: "xmpp", id: "occ-alice", name: "alice" },
  timestamp: 1,
};

function incoming(...children: ReturnType<typeof xml>[]) {
  const stanza = xml("message", { from: `${ROOM}/alice`, type: "groupchat", id: "r1" }, ...children);
  return parseGroupchat(stanza)!;
}

function reactionsEl(id: string | undefined, emojis: string[]) {
  return xml(
    "reactions",
    { xmlns: NS_REACTIONS, ...(id ? { id } : {}) },
    ...emojis.map((e) => xml("reaction", {}, e)),
  );
}

Deno.test("XEP-0444: an occupant's reactions are read as their complete set on the message named", () => {
  const table: Array<[what: string, children: ReturnType<typeof xml>[], want: unknown]> = [
    ["a set", [reactionsEl("s1", ["👍", "🎉"])], { targetId: "s1", emojis: ["👍", "🎉"] }],
    ["an empty set withdraws all", [reactionsEl("s1", [])], { targetId: "s1", emojis: [] }],
    ["duplicates and blanks are dropped", [reactionsEl("s1", ["👍", " ", "👍"])], {
      targetId: "s1",
      emojis: ["👍"],
    }],
    ["no id: dropped", [reactionsEl(undefined, ["👍"])], null],
    ["a plain message is not mine", [xml("body", {}, "hi")], undefined],
    [
      "reactions in another namespace are not mine",
      [xml("reactions", { xmlns: "urn:xmpp:other", id: "s1" })],
      undefined,
    ],
  ];
  for (const [what, children, want] of table) {
    const event = readReactions(incoming(...children), BASE);
    if (want === null || want === undefined) {
      assert.equal(event, want, what);
      continue;
    }
    assert.ok(event && event.kind === "reactions", what);
    assert.deepEqual({ targetId: event.targetId, emojis: event.emojis }, want, what);
    assert.equal(event.eventId, "stanza-r1", what);
    assert.deepEqual(event.sender, BASE.sender, what);
    assert.ok(!("ids" in event), `${what}: a reactions event carries no message ids`);
  }
});

Deno.test("XEP-0444: at most 64 reactions of at most 80 characters are read from one stanza", () => {
  const many = Array.from({ length: 200 }, (_, i) => `e${i}`);
  const event = readReactions(incoming(reactionsEl("s1", ["x".repeat(81), ...many])), BASE);
  assert.ok(event && event.kind === "reactions");
  assert.equal(event.emojis.length, 64);
  assert.equal(event.emojis[0], "e0", "the over-long one is left out");
});

Deno.test("XEP-0444: reactions point at the room's stanza-id of the message, else the sender's id", () => {
  const table: Array<[what: string, ref: MessageRef, want: string]> = [
    ["sent by the bridge and reflected", {
      channel: ROOM,
      ids: ["d1", "st1"],
      parts: [{ messageId: "d1", originId: "d1", stanzaId: "st1", sender: { kind: "relay" } }],
    }, "st1"],
    ["received from the room", {
      channel: ROOM,
      ids: ["st2", "alice/o2", "alice/m2"],
      parts: [{ sender: { kind: "author" } }],
    }, "st2"],
    ["received from a room without stanza-ids", {
      channel: ROOM,
      ids: ["alice/o3"],
      parts: [{ sender: { kind: "author" } }],
    }, "o3"],
    ["sent, never reflected with a stanza-id", {
      channel: ROOM,
      ids: ["d4"],
      parts: [{ messageId: "d4", originId: "d4", sender: { kind: "ghost", id: "mm_bob@localhost" } }],
    }, "d4"],
  ];
  for (const [what, ref, want] of table) assert.equal(reactionTargetId(ref), want, what);
});

Deno.test("XEP-0444: the bridge's reactions message carries the set, its origin-id and a store hint", () => {
  const stanza = buildReactions(ROOM, "st1", ["👍", "🎉"], "d9");
  assert.equal(stanza.attrs.type, "groupchat");
  assert.equal(stanza.attrs.to, ROOM);
  const el = stanza.getChild("reactions", NS_REACTIONS)!;
  assert.equal(el.attrs.id, "st1");
  assert.deepEqual(el.getChildren("reaction").map((r: ReturnType<typeof xml>) => r.getText()), ["👍", "🎉"]);
  assert.equal(stanza.getChild("origin-id", NS_SID)?.attrs.id, "d9");
  assert.ok(stanza.getChild("store", "urn:xmpp:hints"));
  assert.equal(stanza.getChild("body"), undefined, "no body: clients without XEP-0444 show nothing");
});
