/**
 * Parts for tests that drive a connector directly, without the core: a context that takes everything and keeps
 * nothing, the bridge's XMPP connector on a test Prosody, messages as the core would hand them over, and one Prosody
 * shared by the tests of a file.
 *
 * @module
 */
import type { BridgeContext } from "../../src/core/bridge.ts";
import { deliveryIdFor } from "../../src/core/bus.ts";
import type { BridgeMessage, DirectionalMessage } from "../../src/core/message.ts";
import { XmppBridge, type XmppBridgeOptions } from "../../src/xmpp/connector.ts";
import { type Prosody, type ProsodyOptions, startProsody } from "./prosody.ts";

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

/** One Prosody for the tests of a file: see {@linkcode fileProsody}. */
export interface FileProsody {
  /** The file's Prosody, started on first use. */
  get(): Promise<Prosody>;
  /**
   * Registers the test that stops it: call once, after the file's other tests, so that it runs last. The accounts
   * registered through {@linkcode FileProsody.register} are forgotten with it.
   */
  stopAfterAll(): void;
  /** Registers `user` once per Prosody (prosodyctl is a process of its own each time). */
  register(user: string, password: string): Promise<void>;
}

/**
 * One Prosody shared by the tests of a file (each test then uses rooms of its own: archives outlive a room), started
 * by the first test that asks for it and stopped by a last test, `label: stop the shared Prosody`.
 *
 * @example
 * ```ts
 * const shared = fileProsody("connector");
 * Deno.test("…", async () => { const prosody = await shared.get(); … });
 * shared.stopAfterAll();
 * ```
 */
export function fileProsody(label: string, opts?: ProsodyOptions): FileProsody {
  let started: Promise<Prosody> | undefined;
  const registered = new Map<string, string>();
  const get = () => {
    started ??= startProsody(opts).catch((err) => {
      started = undefined;
      throw err;
    });
    return started;
  };
  return {
    get,
    stopAfterAll() {
      Deno.test({
        name: `${label}: stop the shared Prosody`,
        sanitizeOps: false,
        sanitizeResources: false,
        async fn() {
          const running = started;
          started = undefined;
          registered.clear();
          if (running) await (await running).stop();
        },
      });
    },
    async register(user, password) {
      if (registered.get(user) === password) return;
      await (await get()).register(user, password);
      registered.set(user, password);
    },
  };
}
