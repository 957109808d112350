/**
 * A room's reflection of our own message that arrives after its waiter gave up is recorded as an alias of the
 * message; a store failing at that moment must not become an unhandled rejection (which ends the process).
 */
import assert from "node:assert/strict";
import type { BridgeContext } from "../src/core/bridge.ts";
import { deliveryIdFor } from "../src/core/bus.ts";
import type { BridgeMessage } from "../src/core/message.ts";
import { XmppBridge } from "../src/xmpp/connector.ts";
import { waitFor } from "./harness.ts";
import { startProsody } from "./helpers/prosody.ts";

const PASSWORD = "late-reflection-pw-31";

Deno.test("a late reflection whose alias cannot be stored is logged, not an unhandled rejection", async () => {
  const prosody = await startProsody();
  await prosody.register("bridge", PASSWORD);
  const bridge = new XmppBridge({
    jid: "bridge@localhost",
    password: PASSWORD,
    service: prosody.service,
    resource: "test",
    mucNick: "bridge",
    nameFormat: "<{username}> ",
    tls: { ca: await Deno.readTextFile(prosody.caFile) },
    // The waiter gives up before the room can reflect: the reflection then comes late.
    reflectionTimeoutMs: 1,
  });
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
  };
  const room = `late@${prosody.mucDomain}`;
  try {
    await bridge.start(ctx);
    await waitFor(() => bridge.health().connected, "the session");
    await bridge.joinChannel(room);
    const message: BridgeMessage = {
      network: "mattermost",
      channel: "c",
      ids: ["p1"],
      author: { id: "u1", name: "bob" },
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
