/**
 * The core's part in direct messages and user changes: a one-to-one conversation is mapped by its first message
 * (the addressee's connector opens it), joins and leaves reach the stand-in's connector, and status and profile
 * changes reach every other connector that mirrors them. Real Store on a temp KV file, fake connectors.
 */
import assert from "node:assert/strict";
import type {
  Bridge,
  BridgeContext,
  DirectCapable,
  MembershipCapable,
  ProfileMirroring,
  StatusChange,
  StatusMirroring,
} from "../../src/core/bridge.ts";
import { MessageBus, type RetryPolicy } from "../../src/core/bus.ts";
import { BridgeError } from "../../src/core/errors.ts";
import type { BridgeMessage, Sender } from "../../src/core/events.ts";
import { BridgeManager } from "../../src/core/manager.ts";
import type { MembershipDelivery } from "../../src/core/message.ts";
import { Store } from "../../src/core/store.ts";
import { FakeBridge } from "../helpers/fake_bridge.ts";
import { waitUntil } from "../helpers/wait.ts";

const FAST: RetryPolicy = { initialMs: 5, maxMs: 20 };
const XMPP_DM = "carol@example.org>alice@ghosts.example.org";

/** A fake connector that opens direct conversations and follows memberships, statuses and profiles. */
class DirectFake extends FakeBridge
  implements DirectCapable, MembershipCapable, StatusMirroring, ProfileMirroring {
  readonly opened: { user: string; remote: Sender }[] = [];
  readonly memberships: MembershipDelivery[] = [];
  readonly statuses: StatusChange[] = [];
  readonly profiles: Sender[] = [];
  refuse?: string;
  context?: BridgeContext;

  override start(ctx: BridgeContext): Promise<void> {
    this.context = ctx;
    return Promise.resolve();
  }

  openDirect(input: { user: string; remote: Sender }): Promise<string> {
    if (this.refuse) return Promise.reject(new BridgeError(this.refuse));
    this.opened.push(input);
    return Promise.resolve(`dm-${input.user}-${input.remote.id}`);
  }
  sendMembership(d: MembershipDelivery): Promise<void> {
    this.memberships.push(d);
    return Promise.resolve();
  }
  sendStatus(change: StatusChange): Promise<void> {
    this.statuses.push(change);
    return Promise.resolve();
  }
  sendProfile(sender: Sender): Promise<void> {
    this.profiles.push(sender);
    return Promise.resolve();
  }
}

const carol: Sender = { network: "xmpp", id: "carol@example.org", name: "carol" };

function chat(id: string, text: string): BridgeMessage {
  return {
    kind: "message",
    eventId: id,
    ids: [id],
    portal: { network: "xmpp", channel: XMPP_DM },
    sender: carol,
    text,
    timestamp: 1,
    direct: { network: "mattermost", id: "alice-id" },
  };
}

async function withRig(
  fn: (rig: { store: Store; mm: DirectFake; xmpp: FakeBridge; bus: MessageBus }) => Promise<void>,
) {
  const dir = await Deno.makeTempDir({ prefix: "mmxmpp-direct-" });
  const store = await Store.open(`${dir}/state.kv`);
  const mm = new DirectFake("mattermost");
  const xmpp = new FakeBridge("xmpp");
  const bus = new MessageBus(store, new Map<string, Bridge>([["mattermost", mm], ["xmpp", xmpp]]), FAST);
  try {
    await fn({ store, mm, xmpp, bus });
  } finally {
    bus.stop();
    await bus.drain();
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("the first direct message opens the conversation on the other network and maps it; later ones reuse it", async () => {
  await withRig(async ({ store, mm, bus }) => {
    bus.publish(chat("m1", "hi alice"));
    bus.publish(chat("m2", "are you there?"));
    await bus.drain();
    assert.equal(mm.opened.length, 1, "opened once");
    assert.deepEqual(mm.opened[0], { user: "alice-id", remote: carol });
    assert.deepEqual(mm.sent.map((d) => [d.targetChannel, d.message.text]), [
      ["dm-alice-id-carol@example.org", "hi alice"],
      ["dm-alice-id-carol@example.org", "are you there?"],
    ]);
    const mapping = await store.getMapping("mattermost", "dm-alice-id-carol@example.org");
    assert.equal(mapping?.origin, "direct");
    assert.equal(mapping?.channels.xmpp, XMPP_DM, "mapped both ways: an answer finds its way back");
  });
});

Deno.test("a direct conversation that cannot be opened delivers nothing, maps nothing and is counted", async () => {
  await withRig(async ({ store, mm, bus }) => {
    mm.refuse = "puppets are turned off";
    bus.publish(chat("m1", "hi"));
    await bus.drain();
    assert.equal(mm.sent.length, 0);
    assert.equal(await store.getMapping("xmpp", XMPP_DM), null);
    assert.equal(bus.stats.failed, 1);
  });
});

Deno.test("an event without `direct` from an unmapped channel opens nothing", async () => {
  await withRig(async ({ mm, bus }) => {
    const { direct: _, ...plain } = chat("m1", "hi");
    bus.publish(plain);
    await bus.drain();
    assert.equal(mm.opened.length, 0);
    assert.equal(bus.stats.unmapped, 1);
  });
});

Deno.test("a join and a leave reach the target's stand-in in order", async () => {
  await withRig(async ({ store, mm, bus }) => {
    await store.addMapping({
      channels: { mattermost: "c1", xmpp: "room@muc" },
      origin: "command",
      createdAt: 1,
    });
    for (const [i, present] of [true, false].entries()) {
      bus.publish({
        kind: "membership",
        eventId: `p${i}`,
        portal: { network: "xmpp", channel: "room@muc" },
        sender: carol,
        timestamp: i,
        present,
      });
    }
    await bus.drain();
    assert.deepEqual(mm.memberships.map((d) => [d.targetChannel, d.event.present]), [["c1", true], [
      "c1",
      false,
    ]]);
  });
});

Deno.test("status and profile changes reach every other connector that mirrors them, not their source", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mmxmpp-direct-" });
  const store = await Store.open(`${dir}/state.kv`);
  const mm = new DirectFake("mattermost");
  const xmpp = new DirectFake("xmpp");
  const manager = new BridgeManager(store, [mm, xmpp], { retry: FAST });
  try {
    await manager.start();
    const ctx = xmpp.context!;
    ctx.statusChanged({ sender: carol, status: "dnd" });
    ctx.profileChanged({ ...carol, displayName: "Carol C." });
    await waitUntil("the changes to be mirrored", () => mm.statuses.length === 1 && mm.profiles.length === 1);
    assert.deepEqual(mm.statuses, [{ sender: carol, status: "dnd" }]);
    assert.equal(mm.profiles[0].displayName, "Carol C.");
    assert.equal(xmpp.statuses.length + xmpp.profiles.length, 0, "never back to the source");
  } finally {
    await manager.stop();
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
});
