/**
 * The XMPP connector against a real Prosody: a late reflection whose alias cannot be stored, and a stop whose ghost
 * provider fails.
 */
import assert from "node:assert/strict";
import type { BridgeContext } from "../../src/core/bridge.ts";
import { deliveryIdFor } from "../../src/core/bus.ts";
import type { BridgeMessage, SentRefs } from "../../src/core/message.ts";
import { XmppBridge, type XmppBridgeOptions } from "../../src/xmpp/connector.ts";
import { waitFor } from "../helpers/harness.ts";
import { type Prosody, startProsody } from "../helpers/prosody.ts";
import { connectXmppUser } from "../helpers/xmpp_user.ts";
import type { Element } from "@xmpp/xml";
import type { GhostProvider } from "../../src/xmpp/intents/ghosts.ts";

const PASSWORD = "late-reflection-pw-31";

/** The bridge's XMPP connector for `bridge@localhost` on `prosody`, with `extra` options. */
async function bridgeOn(prosody: Prosody, extra: Partial<XmppBridgeOptions>): Promise<XmppBridge> {
  return new XmppBridge({
    jid: "bridge@localhost",
    password: PASSWORD,
    service: prosody.service,
    resource: "test",
    mucNick: "bridge",
    nameFormat: "<{username}> ",
    tls: { ca: await Deno.readTextFile(prosody.caFile) },
    ...extra,
  });
}

Deno.test("a late reflection whose alias cannot be stored is logged, not an unhandled rejection", async () => {
  const prosody = await startProsody();
  await prosody.register("bridge", PASSWORD);
  // The waiter gives up before the room can reflect: the reflection then comes late.
  const bridge = await bridgeOn(prosody, { reflectionTimeoutMs: 1 });
  const aliases: string[] = [];
  const ctx: BridgeContext = {
    receive: () => {},
    addMessageAlias: (_room, knownId) => {
      aliases.push(knownId);
      return Promise.reject(new Error("the store is closed"));
    },
    mappedChannels: () => Promise.resolve([]),
    runCommand: () => Promise.resolve(""),
    userDeactivated: () => {},
    loadCursor: () => Promise.resolve(undefined),
    saveCursor: () => {},
    openFile: () => Promise.reject(new Error("this test copies no files")),
  };
  const room = `late@${prosody.mucDomain}`;
  try {
    await bridge.start(ctx);
    await waitFor(() => bridge.health().connected, "the session");
    await bridge.joinChannel(room);
    const message: BridgeMessage = {
      kind: "message",
      eventId: "p1",
      portal: { network: "mattermost", channel: "c" },
      ids: ["p1"],
      sender: { network: "mattermost", id: "u1", name: "bob" },
      text: "hello",
      timestamp: Date.now(),
    };
    const deliveryId = deliveryIdFor(message, "xmpp");
    await assert.rejects(
      bridge.send({ source: "mattermost", target: "xmpp", targetChannel: room, message, deliveryId }),
    );
    // An unhandled rejection fails the test (and would end the bridge's process).
    await waitFor(() => aliases.includes(deliveryId), "the late reflection");
  } finally {
    await bridge.stop();
    await prosody.stop();
  }
});

Deno.test("stop() ends the bridge's XMPP session even when its ghost provider fails to stop", async () => {
  const prosody = await startProsody();
  await prosody.register("bridge", PASSWORD);
  await prosody.register("alice", PASSWORD);
  const alice = await connectXmppUser(prosody, "alice", PASSWORD, { resource: "test" });
  const room = `stop@${prosody.mucDomain}`;
  const ghosts: GhostProvider = {
    mode: "failing",
    start: () => Promise.resolve(),
    intentFor: () => Promise.resolve(null),
    isGhost: () => false,
    retire: () => Promise.resolve(),
    leaveRoom: () => Promise.resolve(),
    stop: () => Promise.reject(new Error("the ghosts could not stop")),
  };
  const bridge = await bridgeOn(prosody, { ghosts });
  const ctx: BridgeContext = {
    receive: () => {},
    addMessageAlias: () => Promise.resolve(),
    mappedChannels: () => Promise.resolve([]),
    runCommand: () => Promise.resolve(""),
    userDeactivated: () => {},
    loadCursor: () => Promise.resolve(undefined),
    saveCursor: () => {},
    openFile: () => Promise.reject(new Error("this test copies no files")),
  };
  let bridgeLeft = false;
  try {
    await alice.joinRoom(room, "alice");
    alice.onStanza((s: Element) => {
      if (s.is("presence") && s.attrs.from === `${room}/bridge` && s.attrs.type === "unavailable") {
        bridgeLeft = true;
      }
    });
    await bridge.start(ctx);
    await waitFor(() => bridge.health().connected, "the session");
    await bridge.joinChannel(room);
    await assert.rejects(bridge.stop(), /the ghosts could not stop/);
    await waitFor(() => bridgeLeft, "the bridge's occupant to leave the room");
    assert.equal(bridge.health().detail, "stopped");
  } finally {
    await bridge.stop().catch(() => {});
    await alice.stop();
    await prosody.stop();
  }
});

Deno.test("while the server is down the session retries after 1 s, 2 s, 4 s …, and from 1 s again once back", async () => {
  const prosody = await startProsody();
  await prosody.register("bridge", PASSWORD);
  const bridge = await bridgeOn(prosody, {});
  const ctx: BridgeContext = {
    receive: () => {},
    addMessageAlias: () => Promise.resolve(),
    mappedChannels: () => Promise.resolve([]),
    runCommand: () => Promise.resolve(""),
    userDeactivated: () => {},
    loadCursor: () => Promise.resolve(undefined),
    saveCursor: () => {},
    openFile: () => Promise.reject(new Error("this test copies no files")),
  };
  /** The distinct waits /healthz has announced so far, in order. */
  const announced: number[] = [];
  const watch = setInterval(() => {
    const wait = Number(/next attempt in ([\d.]+) s/.exec(bridge.health().detail)?.[1]);
    if (wait && announced.at(-1) !== wait) announced.push(wait);
  }, 20);
  try {
    await bridge.start(ctx);
    await waitFor(() => bridge.health().connected, "the session");
    await prosody.kill();
    await waitFor(() => announced.length >= 3, "three failed attempts", 20_000);
    assert.deepEqual(announced.slice(0, 3), [1, 2, 4]);
    await prosody.restart();
    await waitFor(() => bridge.health().connected, "the session back", 20_000);
    announced.length = 0;
    await prosody.kill();
    await waitFor(() => announced.length >= 1, "the first attempt after the second outage", 20_000);
    assert.equal(announced[0], 1);
  } finally {
    clearInterval(watch);
    await bridge.stop();
    await prosody.stop();
  }
});

Deno.test("60 dispatches, none confirmed when written, all reach the room in order, each confirmed with its stanza-id", async () => {
  const prosody = await startProsody();
  await prosody.register("bridge", PASSWORD);
  await prosody.register("alice", PASSWORD);
  const alice = await connectXmppUser(prosody, "alice", PASSWORD, { resource: "test" });
  const bridge = await bridgeOn(prosody, {});
  const ctx: BridgeContext = {
    receive: () => {},
    addMessageAlias: () => Promise.resolve(),
    mappedChannels: () => Promise.resolve([]),
    runCommand: () => Promise.resolve(""),
    userDeactivated: () => {},
    loadCursor: () => Promise.resolve(undefined),
    saveCursor: () => {},
    openFile: () => Promise.reject(new Error("this test copies no files")),
  };
  const room = `pipeline@${prosody.mucDomain}`;
  const n = 60;
  try {
    await alice.joinRoom(room, "alice", { maxstanzas: 0 });
    await bridge.start(ctx);
    await waitFor(() => bridge.health().connected, "the session");
    await bridge.joinChannel(room);
    const confirmations: Promise<SentRefs>[] = [];
    let confirmedAtDispatch = 0;
    for (let i = 0; i < n; i++) {
      const message: BridgeMessage = {
        kind: "message",
        eventId: `p${i}`,
        portal: { network: "mattermost", channel: "c" },
        ids: [`p${i}`],
        sender: { network: "mattermost", id: "u1", name: "bob" },
        text: `pipelined ${i}`,
        timestamp: Date.now(),
      };
      const deliveryId = deliveryIdFor(message, "xmpp");
      const { confirmed } = await bridge.dispatch({
        source: "mattermost",
        target: "xmpp",
        targetChannel: room,
        message,
        deliveryId,
      });
      // Whether the room's reflection had already come when the write returned. Only microtasks run in between, no
      // socket read: if dispatch does not wait for the reflection, it cannot have come.
      let settled = false;
      confirmed.then(() => settled = true, () => settled = true);
      for (let k = 0; k < 5; k++) await Promise.resolve();
      if (settled) confirmedAtDispatch++;
      confirmations.push(confirmed);
    }
    assert.equal(confirmedAtDispatch, 0, "dispatch waited for reflections");
    const refs = await Promise.all(confirmations);
    for (const r of refs) assert.equal(r.ids.length, 2, "origin-id and the room's stanza-id");
    const seen = await alice.waitForMessages(room, (m) => m.nick === "bridge", n);
    assert.deepEqual(seen.map((m) => m.body), Array.from({ length: n }, (_, i) => `<bob> pipelined ${i}`));
    assert.deepEqual(seen.map((m) => m.stanzaId), refs.map((r) => r.ids[1]));
  } finally {
    await bridge.stop();
    await alice.stop();
    await prosody.stop();
  }
});
