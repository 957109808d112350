import assert from "node:assert/strict";
import type { Bridge } from "../../src/core/bridge.ts";
import { MessageBus, type RetryPolicy } from "../../src/core/bus.ts";
import { BridgeError } from "../../src/core/errors.ts";
import type { BridgeEvent, BridgeMessage, BridgeReactions, Sender } from "../../src/core/events.ts";
import { distinct } from "../../src/core/handlers/reactions.ts";
import type { DirectionalEvent, ReactionsDelivery } from "../../src/core/message.ts";
import { ReactionCoalescer } from "../../src/core/reaction_coalescer.ts";
import { Store } from "../../src/core/store.ts";
import { CapableFakeBridge } from "../helpers/fake_bridge.ts";

const MM = "mattermost";
const XMPP = "xmpp";
const CHAN = "chan1";
const ROOM = "room@conference.example.org";
const FAST: RetryPolicy = { initialMs: 5, maxMs: 20 };
const ALICE: Sender = { network: XMPP, id: `${ROOM}/alice`, name: "alice" };
const CAROL: Sender = { network: XMPP, id: `${ROOM}/carol`, name: "carol" };

interface Rig {
  store: Store;
  mm: CapableFakeBridge;
  xmpp: CapableFakeBridge;
  bus: MessageBus;
}

/** A real Store on a temp KV file with CHAN ↔ ROOM mapped, two capable fakes, and a bus; `restart` opens another. */
async function withBus(fn: (rig: Rig, restart: () => MessageBus) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "mmxmpp-reactions-" });
  const store = await Store.open(`${dir}/state.kv`);
  const mm = new CapableFakeBridge(MM);
  const xmpp = new CapableFakeBridge(XMPP);
  const open = () => new MessageBus(store, new Map<string, Bridge>([[MM, mm], [XMPP, xmpp]]), FAST);
  const rig = { store, mm, xmpp, bus: open() };
  try {
    await store.addMapping({ channels: { [MM]: CHAN, [XMPP]: ROOM }, origin: "command", createdAt: 0 });
    await fn(rig, () => {
      rig.bus.stop();
      return rig.bus = open();
    });
  } finally {
    rig.bus.stop();
    await rig.bus.drain();
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** A message said in the room by `sender`. */
function said(id: string, sender = ALICE): BridgeMessage {
  const portal = { network: XMPP, channel: ROOM };
  return { kind: "message", eventId: id, portal, sender, ids: [id], text: id, timestamp: 1 };
}

let events = 0;
/** `sender`'s complete set on the room's message `targetId`. */
function set(sender: Sender, targetId: string, emojis: string[]): BridgeEvent {
  const portal = { network: XMPP, channel: ROOM };
  return { kind: "reactions", eventId: `r${++events}`, portal, sender, targetId, emojis, timestamp: 2 };
}

function reactionCalls(bridge: CapableFakeBridge): ReactionsDelivery[] {
  return bridge.applied.flatMap((c) => c.kind === "reactions" ? [c.delivery] : []);
}

Deno.test("two senders with the same emoji: one withdrawing leaves it in the shared set, also after a restart", async () => {
  await withBus(async ({ mm, bus }, restart) => {
    bus.publish(said("m1"));
    await bus.drain();
    bus.publish(set(ALICE, "m1", ["👍"]));
    bus.publish(set(CAROL, "m1", ["👍", "🎉"]));
    await bus.drain();
    let calls = reactionCalls(mm);
    assert.deepEqual(calls.map((d) => d.shared), [["👍"], ["👍", "🎉"]]);
    assert.deepEqual(calls.map((d) => d.event.emojis), [["👍"], ["👍", "🎉"]]);

    const again = restart();
    again.publish(set(ALICE, "m1", []));
    await again.drain();
    calls = reactionCalls(mm);
    assert.deepEqual(calls.at(-1)!.event.emojis, [], "Alice's own set is empty");
    assert.deepEqual(calls.at(-1)!.shared, ["👍", "🎉"], "Carol's reactions, kept in the store, stay");
    again.publish(set(CAROL, "m1", []));
    await again.drain();
    assert.deepEqual(reactionCalls(mm).at(-1)!.shared, [], "nobody reacts any more");
  });
});

Deno.test("the shared set is per message: a reaction to another message does not mix in", async () => {
  await withBus(async ({ mm, bus }) => {
    bus.publish(said("m1"));
    bus.publish(said("m2"));
    await bus.drain();
    bus.publish(set(ALICE, "m1", ["👍"]));
    bus.publish(set(CAROL, "m2", ["🎉"]));
    await bus.drain();
    const [first, second] = reactionCalls(mm);
    assert.deepEqual(first.shared, ["👍"]);
    assert.deepEqual(second.shared, ["🎉"]);
    assert.notDeepEqual(first.targetMessage.ids, second.targetMessage.ids);
  });
});

Deno.test("a storm of one sender's sets is coalesced: only the newest waiting set is delivered", async () => {
  await withBus(async ({ mm, bus }) => {
    bus.publish(said("m1"));
    await bus.drain();
    // The target is slow: the first set is in the connector while the storm queues behind it.
    let release!: () => void;
    const held = new Promise<void>((r) => release = r);
    let entered!: () => void;
    const inConnector = new Promise<void>((r) => entered = r);
    let first = true;
    mm.behaveOn = () => first ? (first = false, entered(), held) : Promise.resolve();
    const storm = [["👍"], ["👍", "🎉"], ["🎉"], ["🎉", "❤️"], ["❤️"]];
    const settled = [bus.publish(set(ALICE, "m1", storm[0]))];
    await inConnector;
    for (const emojis of storm.slice(1)) settled.push(bus.publish(set(ALICE, "m1", emojis)));
    // Carol's set waits in the same queue and is not Alice's to supersede.
    settled.push(bus.publish(set(CAROL, "m1", ["👀"])));
    // Released once every set is queued for the channel (routing reads the store, one event after the other).
    while (bus.queued() < settled.length) await new Promise((r) => setTimeout(r, 2));
    release();
    assert.deepEqual(await Promise.all(settled), settled.map(() => true), "every set is settled");
    await bus.drain();
    const calls = reactionCalls(mm);
    assert.deepEqual(
      calls.map((d) => [d.event.sender.name, d.event.emojis]),
      [["alice", ["👍"]], ["alice", ["❤️"]], ["carol", ["👀"]]],
      "the first (already under way), then only the final set, then Carol's",
    );
    assert.deepEqual(calls.at(-1)!.shared, ["❤️", "👀"]);
  });
});

Deno.test("a set retried while the target is unreachable gives way to a newer one of the same sender", async () => {
  await withBus(async ({ mm, bus }) => {
    bus.publish(said("m1"));
    await bus.drain();
    let failures = 0;
    // The first set fails (transiently) until the newer one waits behind it, and then some: at most 20 times.
    mm.behaveOn = (d) => {
      const emojis = (d.event as BridgeReactions).emojis;
      if (emojis.includes("👍") && failures < 20) {
        failures++;
        return Promise.reject(new BridgeError("unreachable", { transient: true }));
      }
      return Promise.resolve();
    };
    bus.publish(set(ALICE, "m1", ["👍"]));
    while (failures < 2) await new Promise((r) => setTimeout(r, 2));
    bus.publish(set(ALICE, "m1", ["🎉"]));
    await bus.drain();
    assert.ok(failures < 20, `the stale set stopped being retried (${failures} failures)`);
    assert.deepEqual(reactionCalls(mm).map((d) => d.event.emojis), [["🎉"]]);
  });
});

Deno.test("ReactionCoalescer: the newest set of a slot supersedes older ones; other slots are independent", () => {
  const latest = new ReactionCoalescer();
  const d = (sender: Sender, targetId: string, target = MM): DirectionalEvent<BridgeReactions> => ({
    source: XMPP,
    target,
    targetChannel: CHAN,
    deliveryId: "x",
    event: set(sender, targetId, []) as BridgeReactions,
  });
  const first = d(ALICE, "m1");
  const second = d(ALICE, "m1");
  const other = d(CAROL, "m1");
  const elsewhere = d(ALICE, "m2");
  for (const x of [first, second, other, elsewhere]) latest.queued(x);
  assert.equal(latest.superseded(first), true);
  assert.equal(latest.superseded(second), false);
  assert.equal(latest.superseded(other), false);
  assert.equal(latest.superseded(elsewhere), false);
  assert.equal(latest.size, 0, "handled slots are forgotten");
  // A set never noted (e.g. queued before a restart) is delivered.
  assert.equal(latest.superseded(d(ALICE, "m3")), false);
});

Deno.test("distinct keeps the first of each emoji, in order", () => {
  const table: Array<[string[], string[]]> = [
    [[], []],
    [["👍"], ["👍"]],
    [["👍", "🎉", "👍"], ["👍", "🎉"]],
    [["🎉", "👍", "🎉", "👍"], ["🎉", "👍"]],
  ];
  for (const [input, want] of table) assert.deepEqual(distinct(input), want, JSON.stringify(input));
});

Deno.test("store: a sender's empty set is forgotten; sets are listed per message", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mmxmpp-reactions-store-" });
  const store = await Store.open(`${dir}/state.kv`);
  try {
    await store.setReactions(MM, CHAN, "p1", ALICE, ["👍"]);
    await store.setReactions(MM, CHAN, "p1", CAROL, ["🎉"]);
    await store.setReactions(MM, CHAN, "p2", CAROL, ["❤️"]);
    assert.deepEqual(await store.listReactions(MM, CHAN, "p1"), [["👍"], ["🎉"]]);
    await store.setReactions(MM, CHAN, "p1", ALICE, []);
    assert.deepEqual(await store.listReactions(MM, CHAN, "p1"), [["🎉"]]);
    assert.deepEqual(await store.listReactions(MM, CHAN, "p2"), [["❤️"]]);
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
});
