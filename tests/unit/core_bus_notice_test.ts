/**
 * A message the bus gives up on for good is reported to its author through the source connector's optional
 * NoticeCapable capability; a message that lands after retries is not.
 */
import assert from "node:assert/strict";
import type { Bridge } from "../../src/core/bridge.ts";
import { MessageBus } from "../../src/core/bus.ts";
import { BridgeError } from "../../src/core/errors.ts";
import type { BridgeMessage } from "../../src/core/message.ts";
import { Store } from "../../src/core/store.ts";
import { FakeBridge } from "../helpers/fake_bridge.ts";

const CHAN = "chan1";
const ROOM = "room@conference.example.org";

/** A fake network whose users can be told about undelivered messages. */
class NoticingBridge extends FakeBridge {
  readonly notices: Array<{ message: BridgeMessage; reason: string }> = [];
  notifyUndeliverable(message: BridgeMessage, reason: string): Promise<void> {
    this.notices.push({ message, reason });
    return Promise.resolve();
  }
}

async function withBus(
  fn: (rig: { mm: NoticingBridge; xmpp: FakeBridge; bus: MessageBus }) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "mmxmpp-notice-" });
  const store = await Store.open(`${dir}/state.kv`);
  const mm = new NoticingBridge("mattermost");
  const xmpp = new FakeBridge("xmpp");
  const bus = new MessageBus(store, new Map<string, Bridge>([["mattermost", mm], ["xmpp", xmpp]]), {
    initialMs: 5,
    maxMs: 20,
  });
  try {
    const res = await store.addMapping({
      channels: { mattermost: CHAN, xmpp: ROOM },
      origin: "command",
      createdAt: Date.now(),
    });
    assert.ok(res.ok);
    await fn({ mm, xmpp, bus });
  } finally {
    bus.stop();
    await bus.drain();
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function post(id: string): BridgeMessage {
  return {
    kind: "message",
    eventId: id,
    portal: { network: "mattermost", channel: CHAN },
    ids: [id],
    sender: { network: "mattermost", id: "u1", name: "bob" },
    text: `text of ${id}`,
    timestamp: 1_700_000_000_000,
  };
}

async function settle(): Promise<void> {
  // The notice goes out in the background, after the delivery settled.
  for (let i = 0; i < 10; i++) await new Promise((r) => setTimeout(r, 0));
}

Deno.test("a permanent failure is told to the author once, with the target's sentence for it", async () => {
  await withBus(async ({ mm, xmpp, bus }) => {
    xmpp.behave = (dm) =>
      dm.message.ids[0] === "p1"
        ? Promise.reject(
          new BridgeError("banned from room@…", { notice: "the XMPP room has banned the bridge" }),
        )
        : Promise.resolve();
    assert.equal(await bus.publish(post("p1")), true);
    assert.equal(await bus.publish(post("p2")), true);
    await settle();
    assert.deepEqual(mm.notices.map((n) => [n.message.ids[0], n.reason]), [
      ["p1", "the XMPP room has banned the bridge"],
    ]);
    assert.equal(xmpp.calls, 2, "a permanent failure is not retried");
  });
});

Deno.test("without a sentence from the target, the notice names the network and says nothing internal", async () => {
  await withBus(async ({ mm, xmpp, bus }) => {
    xmpp.behave = () =>
      Promise.reject(new BridgeError("cannot send to room@conference.example.org: secret detail"));
    await bus.publish(post("p1"));
    await settle();
    assert.deepEqual(mm.notices.map((n) => n.reason), ["the xmpp side refused it"]);
  });
});

Deno.test("a message delivered after transient failures causes no notice", async () => {
  await withBus(async ({ mm, xmpp, bus }) => {
    xmpp.behave = (_dm, call) =>
      call < 3 ? Promise.reject(new BridgeError("down", { transient: true })) : Promise.resolve();
    assert.equal(await bus.publish(post("p1")), true);
    await settle();
    assert.equal(xmpp.sent.length, 1);
    assert.deepEqual(mm.notices, []);
  });
});

Deno.test("a source network without the capability is simply not told", async () => {
  await withBus(async ({ mm, xmpp, bus }) => {
    mm.behave = () => Promise.reject(new BridgeError("refused", { notice: "Mattermost refused it" }));
    const fromXmpp: BridgeMessage = {
      ...post("x1"),
      eventId: "x1",
      portal: { network: "xmpp", channel: ROOM },
      ids: ["x1"],
    };
    assert.equal(await bus.publish(fromXmpp), true);
    await settle();
    assert.equal(bus.stats.failed, 1);
    assert.deepEqual(mm.notices, [], "the target is never the one told");
    assert.equal(xmpp.calls, 0);
  });
});
