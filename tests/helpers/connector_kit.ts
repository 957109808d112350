/**
 * Parts for tests that drive a connector directly, without the core: a context that takes everything and keeps
 * nothing, the bridge's XMPP connector on a test Prosody, and messages as the core would hand them over.
 *
 * @module
 */
import type { BridgeContext } from "../../src/core/bridge.ts";
import { deliveryIdFor } from "../../src/core/bus.ts";
import type { BridgeMessage, DirectionalMessage } from "../../src/core/message.ts";
import { XmppBridge, type XmppBridgeOptions } from "../../src/xmpp/connector.ts";
import type { Prosody } from "./prosody.ts";

/** A context that accepts everything and remembers nothing; `overrides` replace single calls. */
export function quietContext(overrides: Partial<BridgeContext> = {}): BridgeContext {
  return {
    receive: () => {},
    addMessageAlias: () => Promise.resolve(),
    mappedChannels: () => Promise.resolve([]),
    runCommand: () => Promise.resolve(""),
    userDeactivated: () => {},
    loadCursor: () => Promise.resolve(undefined),
    saveCursor: () => {},
    openFile: () => Promise.reject(new Error("this test copies no files")),
    openAvatar: () => Promise.reject(new Error("this test copies no pictures")),
    statusChanged: () => {},
    profileChanged: () => {},
    ...overrides,
  };
}

/** The bridge's XMPP connector for `bridge@localhost` (password `password`) on `prosody`, with `extra` options. */
export async function xmppConnectorOn(
  prosody: Prosody,
  password: string,
  extra: Partial<XmppBridgeOptions> = {},
): Promise<XmppBridge> {
  return new XmppBridge({
    jid: "bridge@localhost",
    password,
    service: prosody.service,
    resource: "test",
    mucNick: "bridge",
    nameFormat: "<{username}> ",
    tls: { ca: await Deno.readTextFile(prosody.caFile) },
    ...extra,
  });
}

/**
 * A Mattermost message numbered `n` with `text`, from `author` (default bob), on its way to `room`, as the core
 * hands it to the XMPP connector.
 */
export function toRoom(
  room: string,
  n: number,
  text: string,
  author: { id: string; name: string } = { id: "u1", name: "bob" },
): DirectionalMessage {
  const message: BridgeMessage = {
    kind: "message",
    eventId: `p${n}`,
    portal: { network: "mattermost", channel: "c" },
    ids: [`p${n}`],
    sender: { network: "mattermost", ...author },
    text,
    timestamp: Date.now(),
  };
  return {
    source: "mattermost",
    target: "xmpp",
    targetChannel: room,
    message,
    deliveryId: deliveryIdFor(message, "xmpp"),
  };
}
