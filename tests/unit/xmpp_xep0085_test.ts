import assert from "node:assert/strict";
import { xml } from "@xmpp/client-core";
import type { IncomingBase } from "../../src/xmpp/incoming.ts";
import { NS_CHAT_STATES } from "../../src/xmpp/protocol/ns.ts";
import { parseGroupchat } from "../../src/xmpp/protocol/stanza.ts";
import { chatStateOf, ChatStates, readChatState } from "../../src/xmpp/xeps/xep0085.ts";
import type { Element } from "../../src/xmpp/session/client.ts";
import { waitUntil } from "../helpers/wait.ts";

const ROOM = "room@conference.example.org";

const BASE: IncomingBase = {
  eventId: "alice/cs1",
  ids: ["alice/cs1"],
  portal: { network: "xmpp", channel: ROOM },
  sender: { network: "xmpp", id: "occ-alice", name: "alice" },
  timestamp: 1,
};

function incoming(...children: Element[]) {
  return parseGroupchat(
    xml("message", { from: `${ROOM}/alice`, type: "groupchat", id: "cs1" }, ...children),
  )!;
}

Deno.test("composing starts typing, paused ends it, each with an event id of its own", () => {
  const first = readChatState(incoming(xml("composing", { xmlns: NS_CHAT_STATES })), BASE);
  const again = readChatState(incoming(xml("composing", { xmlns: NS_CHAT_STATES })), BASE);
  assert.equal(first?.kind, "typing");
  assert.equal(first?.kind === "typing" && first.active, true);
  assert.notEqual(first?.eventId, again?.eventId, "a client may reuse one stanza id for its chat states");
  const paused = readChatState(incoming(xml("paused", { xmlns: NS_CHAT_STATES })), BASE);
  assert.equal(paused?.kind === "typing" && paused.active, false);
});

Deno.test("a message with a body is not a chat state, and a caught-up chat state is dropped", () => {
  const withBody = incoming(xml("body", {}, "hi"), xml("active", { xmlns: NS_CHAT_STATES }));
  assert.equal(readChatState(withBody, BASE), undefined);
  assert.equal(
    readChatState(incoming(xml("composing", { xmlns: NS_CHAT_STATES })), { ...BASE, caughtUp: true }),
    null,
  );
  assert.equal(readChatState(incoming(xml("x", { xmlns: "urn:example" })), BASE), undefined);
});

Deno.test("ChatStates writes changes only, holds one that comes too soon, and marks the next message active", async () => {
  const written: string[] = [];
  const write = (el: Element) => {
    written.push(chatStateOf(el)!);
    return Promise.resolve();
  };
  const states = new ChatStates(100);
  await states.set(ROOM, "bob", "composing", write);
  await states.set(ROOM, "bob", "composing", write);
  assert.deepEqual(written, ["composing"]);
  // Too soon after the composing: held, and the newest held change wins.
  await states.set(ROOM, "bob", "paused", write);
  assert.deepEqual(written, ["composing"]);
  await waitUntil("the held paused", () => written.length === 2);
  assert.deepEqual(written, ["composing", "paused"]);
  const message = xml("message", { type: "groupchat", to: ROOM }, xml("body", {}, "hi"));
  states.messageSent(ROOM, "bob", message);
  assert.equal(chatStateOf(message), "active");
  // Once active again, the next message needs no marker.
  const next = xml("message", { type: "groupchat", to: ROOM }, xml("body", {}, "again"));
  states.messageSent(ROOM, "bob", next);
  assert.equal(chatStateOf(next), undefined);
  states.clear();
});
