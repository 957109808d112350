/**
 * XEP-0461 replies with `<thread>` and the XEP-0428 fallback quote (src/xmpp/xeps/xep0461.ts): built and read back,
 * offsets in code points, and what a reader does with malformed or partial markup.
 */
import assert from "node:assert/strict";
import { xml } from "@xmpp/client-core";
import type { MessageRef } from "../../src/core/message.ts";
import { NS_FALLBACK, NS_REPLY } from "../../src/xmpp/protocol/ns.ts";
import { buildGroupchat } from "../../src/xmpp/protocol/stanza.ts";
import { addReply, readReply, replyPointer } from "../../src/xmpp/xeps/xep0461.ts";

const ROOM = "room@conference.example.org";

Deno.test("a built reply reads back as the same reply, its quote cut out of the body (offsets in code points)", () => {
  const stanza = buildGroupchat(ROOM, "ok 👍", "m2");
  const quote = "> bob: 🍕 tonight?\n";
  addReply(stanza, { id: "stanza-1", to: `${ROOM}/bridge`, thread: "m1" }, quote);
  assert.equal(stanza.getChildText("body"), quote + "ok 👍");
  const range = stanza.getChild("fallback", NS_FALLBACK)!;
  assert.equal(range.attrs.for, NS_REPLY);
  assert.deepEqual(range.getChild("body")!.attrs, { start: "0", end: String([...quote].length) });
  assert.deepEqual(stanza.getChild("reply", NS_REPLY)!.attrs, {
    xmlns: NS_REPLY,
    id: "stanza-1",
    to: `${ROOM}/bridge`,
  });
  assert.equal(stanza.getChildText("thread"), "m1");

  const read = readReply(stanza, stanza.getChildText("body")!);
  assert.equal(read.body, "ok 👍");
  assert.deepEqual(read.replyTo, {
    targetId: "stanza-1",
    otherIds: ["bridge/stanza-1"],
    thread: "m1",
    quote: "bob: 🍕 tonight?",
  });
});

Deno.test("reading replies: thread alone, no fallback, a fallback out of range, the author from `to`", () => {
  const msg = (body: string, ...children: ReturnType<typeof xml>[]) =>
    xml("message", { type: "groupchat" }, xml("body", {}, body), ...children);
  assert.deepEqual(readReply(msg("plain"), "plain"), { body: "plain" });
  assert.deepEqual(readReply(msg("in thread", xml("thread", {}, "t1")), "in thread"), {
    replyTo: { targetId: "t1", thread: "t1" },
    body: "in thread",
  });
  const noFallback = msg("> quoted by hand\nreply", xml("reply", { xmlns: NS_REPLY, id: "s1" }));
  assert.deepEqual(readReply(noFallback, "> quoted by hand\nreply"), {
    replyTo: { targetId: "s1" },
    body: "> quoted by hand\nreply",
  });
  const outOfRange = msg(
    "short",
    xml("reply", { xmlns: NS_REPLY, id: "s1" }),
    xml("fallback", { xmlns: NS_FALLBACK, for: NS_REPLY }, xml("body", { start: "0", end: "99" })),
  );
  assert.equal(readReply(outOfRange, "short").body, "short", "a range that does not fit cuts nothing");
  const otherFallback = msg(
    "> x\nhi",
    xml("reply", { xmlns: NS_REPLY, id: "s1" }),
    xml(
      "fallback",
      { xmlns: NS_FALLBACK, for: "urn:xmpp:message-retract:1" },
      xml("body", { start: "0", end: "4" }),
    ),
  );
  assert.equal(readReply(otherFallback, "> x\nhi").body, "> x\nhi", "only the reply's fallback is cut");
  const withTo = msg(
    "> pizza?\nyes",
    xml("reply", { xmlns: NS_REPLY, id: "s1", to: `${ROOM}/carol` }),
    xml("fallback", { xmlns: NS_FALLBACK, for: NS_REPLY }, xml("body", { start: "0", end: "9" })),
  );
  assert.deepEqual(readReply(withTo, "> pizza?\nyes"), {
    replyTo: { targetId: "s1", otherIds: ["carol/s1"], quote: "pizza?", author: "carol" },
    body: "yes",
  });
});

Deno.test("a reply points at the parent's stanza-id, in the parent's thread or one named after the parent", () => {
  const none = () => undefined;
  const bridged: MessageRef = {
    channel: ROOM,
    ids: ["m1", "s1"],
    parts: [{ messageId: "m1", originId: "m1", stanzaId: "s1", sender: { kind: "relay" } }],
  };
  assert.deepEqual(replyPointer(bridged, () => `${ROOM}/bridge`), {
    id: "s1",
    to: `${ROOM}/bridge`,
    thread: "m1",
  });
  const inThread: MessageRef = { ...bridged, parts: [{ ...bridged.parts[0], threadRoot: "m0" }] };
  assert.equal(replyPointer(inThread, none)?.thread, "m0");
  const received: MessageRef = {
    channel: ROOM,
    ids: ["s9", "alice/o9"],
    parts: [{ sender: { kind: "author" } }],
  };
  assert.deepEqual(replyPointer(received, none), { id: "s9", thread: "s9" });
  assert.equal(replyPointer({ channel: ROOM, ids: [], parts: [] }, none), undefined);
});
