import assert from "node:assert/strict";
import type { Bridge } from "../../src/core/bridge.ts";
import { deliveryIdFor, MessageBus, type RetryPolicy } from "../../src/core/bus.ts";
import { BridgeError } from "../../src/core/errors.ts";
import type { BridgeMessage, DirectionalMessage } from "../../src/core/message.ts";
import { Store } from "../../src/core/store.ts";
import { FakeBridge } from "../helpers/fake_bridge.ts";
import { sleep, waitUntil } from "../helpers/wait.ts";

const MM = "mattermost";
const XMPP = "xmpp";
const CHAN = "chan1";
const ROOM = "room@conference.example.org";
const FAST: RetryPolicy = { initialMs: 5, maxMs: 20 };

interface Rig {
  store: Store;
  mm: FakeBridge;
  xmpp: FakeBridge;
  bus: MessageBus;
  /** The state file, for a second handle on it (as `mmxmpp mappings` opens next to a running bridge). */
  path: string;
}

/** A real Store on a temp KV file with CHAN ↔ ROOM mapped, two fake bridges and a bus. */
async function withBus(retry: RetryPolicy, fn: (rig: Rig) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "mmxmpp-bus-" });
  const path = `${dir}/state.kv`;
  const store = await Store.open(path);
  const mm = new FakeBridge(MM);
  const xmpp = new FakeBridge(XMPP);
  const bus = new MessageBus(store, new Map<string, Bridge>([[MM, mm], [XMPP, xmpp]]), retry);
  try {
    const res = await store.addMapping({
      channels: { [MM]: CHAN, [XMPP]: ROOM },
      origin: "command",
      createdAt: Date.now(),
    });
    assert.ok(res.ok);
    await fn({ store, mm, xmpp, bus, path });
  } finally {
    bus.stop();
    await bus.drain();
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function mmPost(id: string, text = `text of ${id}`, channel = CHAN): BridgeMessage {
  return {
    kind: "message",
    eventId: id,
    portal: { network: MM, channel },
    ids: [id],
    sender: { network: MM, id: "user1", name: "alice" },
    text,
    timestamp: 1_700_000_000_000,
  };
}

function groupchat(ids: string[], text: string, room = ROOM): BridgeMessage {
  return {
    kind: "message",
    eventId: ids[0],
    portal: { network: XMPP, channel: room },
    ids,
    sender: { network: XMPP, id: `${room}/bob`, name: "bob" },
    text,
    timestamp: 1,
  };
}

Deno.test("a message is delivered to the mapped channel of the other network and not back to its source", async () => {
  await withBus(FAST, async ({ mm, xmpp, bus }) => {
    const msg = mmPost("post1", "héllo 😀\nsecond line");
    bus.publish(msg);
    await bus.drain();
    assert.equal(xmpp.sent.length, 1);
    const { deliveryId, ...routed } = xmpp.sent[0];
    assert.deepEqual(routed, { source: MM, target: XMPP, targetChannel: ROOM, message: msg });
    assert.equal(deliveryId, deliveryIdFor(msg, XMPP), "the delivery id is derived from the message");
    assert.equal(mm.sent.length, 0);
    assert.equal(bus.stats.received, 1);
    assert.equal(bus.stats.delivered, 1);

    // And the other way round.
    const reply = groupchat(["m1", "o1"], "hi back");
    bus.publish(reply);
    await bus.drain();
    assert.equal(mm.sent.length, 1);
    const { deliveryId: replyDelivery, ...routedReply } = mm.sent[0];
    assert.deepEqual(routedReply, { source: XMPP, target: MM, targetChannel: CHAN, message: reply });
    assert.notEqual(replyDelivery, deliveryId);
    assert.equal(xmpp.sent.length, 1);
    assert.equal(bus.stats.delivered, 2);
  });
});

Deno.test("a message from an unmapped channel is delivered nowhere and counted as unmapped", async () => {
  await withBus(FAST, async ({ mm, xmpp, bus }) => {
    bus.publish(mmPost("post1", "lost", "other-channel"));
    bus.publish(groupchat(["m1"], "lost too", "other@conference.example.org"));
    await bus.drain();
    assert.equal(xmpp.sent.length, 0);
    assert.equal(mm.sent.length, 0);
    assert.equal(bus.stats.unmapped, 2);
    assert.equal(bus.stats.delivered, 0);
  });
});

Deno.test("a mapping removed or added through another handle on the state file counts from the next message", async () => {
  await withBus(FAST, async ({ xmpp, bus, path }) => {
    assert.equal(await bus.publish(mmPost("post1", "mapped")), true);
    // What `mmxmpp mappings unmap` does while the bridge runs: its own Store on the same file.
    const other = await Store.open(path);
    try {
      assert.ok(await other.removeMapping(MM, CHAN));
      assert.equal(await bus.publish(mmPost("post2", "after the unmap")), true);
      assert.equal(bus.stats.unmapped, 1);
      assert.ok(
        (await other.addMapping({ channels: { [MM]: CHAN, [XMPP]: ROOM }, origin: "command", createdAt: 0 }))
          .ok,
      );
      assert.equal(await bus.publish(mmPost("post3", "mapped again")), true);
    } finally {
      other.close();
    }
    await bus.drain();
    assert.deepEqual(xmpp.sent.map((dm) => dm.message.text), ["mapped", "mapped again"]);
  });
});

Deno.test("a mapping to a network without a bridge delivers nothing there", async () => {
  await withBus(FAST, async ({ store, mm, xmpp, bus }) => {
    assert.ok(
      (await store.addMapping({
        channels: { [MM]: "chan-irc", irc: "#room" },
        origin: "command",
        createdAt: 0,
      })).ok,
    );
    bus.publish(mmPost("post1", "to irc", "chan-irc"));
    await bus.drain();
    assert.equal(xmpp.sent.length, 0);
    assert.equal(mm.sent.length, 0);
    assert.equal(bus.stats.delivered, 0);
  });
});

Deno.test("delivery records the id link: the target's ids resolve to the source's ids", async () => {
  await withBus(FAST, async ({ store, bus }) => {
    bus.publish(mmPost("post1"));
    await bus.drain();
    for (const id of ["xmpp-1", "xmpp-1-alt"]) {
      const link = await store.findLink(XMPP, ROOM, id);
      assert.ok(link, `no link for ${id}`);
      assert.equal(link.source, MM);
      assert.deepEqual(link.refs[MM], {
        channel: CHAN,
        ids: ["post1"],
        // Who wrote it, which an edit or removal of it must come from.
        parts: [{ sender: { kind: "author", id: mmPost("post1").sender.id } }],
      });
      // The fake connector reports no typed parts: one part of unknown sender stands for them.
      assert.deepEqual(link.refs[XMPP], {
        channel: ROOM,
        ids: ["xmpp-1", "xmpp-1-alt"],
        parts: [{ sender: { kind: "unknown" } }],
      });
    }
    assert.equal((await store.findLink(MM, CHAN, "post1"))?.refs[XMPP].ids[0], "xmpp-1");
  });
});

Deno.test("an incoming message carrying the id of one of our deliveries is dropped as an echo", async () => {
  await withBus(FAST, async ({ mm, xmpp, bus }) => {
    bus.publish(mmPost("post1"));
    await bus.drain();
    assert.equal(xmpp.sent.length, 1);
    // The room reflects our message: its own stanza-id first, then the origin-id we sent.
    bus.publish(groupchat(["stanza-new", "xmpp-1-alt"], "text of post1"));
    await bus.drain();
    assert.equal(mm.sent.length, 0);
    assert.equal(bus.stats.echoesDropped, 1);
    assert.equal(bus.stats.duplicatesDropped, 0);
    // A genuinely new message in the room still goes through.
    bus.publish(groupchat(["fresh"], "new"));
    await bus.drain();
    assert.equal(mm.sent.length, 1);
  });
});

Deno.test("a replayed message (same source id again later) is delivered once and counted as duplicate", async () => {
  await withBus(FAST, async ({ xmpp, bus }) => {
    bus.publish(mmPost("post1"));
    await bus.drain();
    bus.publish(mmPost("post1"));
    await bus.drain();
    assert.equal(xmpp.sent.length, 1);
    assert.equal(bus.stats.duplicatesDropped, 1);
    assert.equal(bus.stats.echoesDropped, 0);
    assert.equal(bus.stats.delivered, 1);
  });
});

Deno.test({
  name: "a message replayed while its first copy is still being delivered is delivered once",
  fn: async () => {
    await withBus(FAST, async ({ xmpp, bus }) => {
      xmpp.behave = () => sleep(30);
      bus.publish(mmPost("post1"));
      bus.publish(mmPost("post1"));
      await bus.drain();
      assert.equal(xmpp.sent.length, 1);
      assert.equal(bus.stats.duplicatesDropped, 1);
    });
  },
});

Deno.test("order is preserved per channel even when sends take random time", async () => {
  await withBus(FAST, async ({ store, mm, xmpp, bus }) => {
    assert.ok(
      (await store.addMapping({
        channels: { [MM]: "chan2", [XMPP]: "room2@conference.example.org" },
        origin: "command",
        createdAt: 0,
      })).ok,
    );
    const delay = () => sleep(Math.floor(Math.random() * 8));
    xmpp.behave = delay;
    mm.behave = delay;
    const n = 25;
    for (let i = 0; i < n; i++) {
      bus.publish(mmPost(`a${i}`, `a ${i}`, CHAN));
      bus.publish(mmPost(`b${i}`, `b ${i}`, "chan2"));
      bus.publish(groupchat([`x${i}`], `x ${i}`));
    }
    await bus.drain();
    const texts = (dms: DirectionalMessage[], channel: string) =>
      dms.filter((d) => d.targetChannel === channel).map((d) => d.message.text);
    const expected = (p: string) => Array.from({ length: n }, (_, i) => `${p} ${i}`);
    assert.deepEqual(texts(xmpp.sent, ROOM), expected("a"));
    assert.deepEqual(texts(xmpp.sent, "room2@conference.example.org"), expected("b"));
    assert.deepEqual(texts(mm.sent, CHAN), expected("x"));
    assert.equal(bus.stats.delivered, 3 * n);
  });
});

Deno.test("a slow channel does not hold up delivery to another channel", async () => {
  await withBus(FAST, async ({ store, xmpp, bus }) => {
    assert.ok(
      (await store.addMapping({
        channels: { [MM]: "chan2", [XMPP]: "room2@conference.example.org" },
        origin: "command",
        createdAt: 0,
      })).ok,
    );
    let release!: () => void;
    const blocked = new Promise<void>((r) => release = r);
    xmpp.behave = (dm) => dm.targetChannel === ROOM ? blocked : Promise.resolve();
    bus.publish(mmPost("slow", "slow", CHAN));
    bus.publish(mmPost("fast", "fast", "chan2"));
    await waitUntil("the fast channel's delivery", () => xmpp.sent.length === 1, 3_000);
    assert.equal(xmpp.sent[0].message.text, "fast");
    release();
    await bus.drain();
    assert.deepEqual(xmpp.sent.map((d) => d.message.text), ["fast", "slow"]);
  });
});

Deno.test("transient failures are retried and the message is delivered exactly once", async () => {
  await withBus(FAST, async ({ xmpp, bus }) => {
    const failures = 4;
    xmpp.behave = (_dm, call) => {
      if (call > failures) return Promise.resolve();
      // Mix a transient BridgeError with a plain error (which counts as transient too).
      return Promise.reject(
        call % 2 ? new BridgeError("server unreachable", { transient: true }) : new Error("ECONNRESET"),
      );
    };
    bus.publish(mmPost("post1"));
    await bus.drain();
    assert.equal(xmpp.calls, failures + 1);
    assert.equal(xmpp.sent.length, 1);
    assert.equal(bus.stats.retried, failures);
    assert.equal(bus.stats.delivered, 1);
    assert.equal(bus.stats.failed, 0);
  });
});

Deno.test("every retry of a delivery carries the same delivery id; each target gets its own", async () => {
  await withBus(FAST, async ({ xmpp, bus }) => {
    const seen: string[] = [];
    xmpp.behave = (dm, call) => {
      seen.push(dm.deliveryId);
      return call < 3 ? Promise.reject(new BridgeError("down", { transient: true })) : Promise.resolve();
    };
    bus.publish(mmPost("post1"));
    bus.publish(mmPost("post2"));
    await bus.drain();
    assert.equal(seen.length, 4);
    assert.equal(new Set(seen.slice(0, 3)).size, 1, "three attempts of post1, one id");
    assert.notEqual(seen[3], seen[0]);
  });
});

Deno.test("a message carrying the delivery id of our delivery is an echo, even while the send is still running", async () => {
  await withBus(FAST, async ({ mm, xmpp, bus }) => {
    let release!: () => void;
    const sending = new Promise<void>((r) => release = r);
    let inFlight: DirectionalMessage | undefined;
    xmpp.behave = (dm) => {
      inFlight = dm;
      return sending;
    };
    bus.publish(mmPost("post1"));
    await waitUntil("the send to start", () => inFlight !== undefined, 3_000);
    // The room reflects the delivery before its send returns: no id-map link exists yet.
    bus.publish({ ...groupchat(["stanza-9"], "text of post1"), deliveryId: inFlight!.deliveryId });
    // A message with a delivery id that is not ours is bridged.
    bus.publish({ ...groupchat(["stanza-10"], "hello"), deliveryId: "not-ours" });
    await waitUntil("the other message", () => mm.sent.length === 1, 3_000);
    release();
    await bus.drain();
    assert.equal(bus.stats.echoesDropped, 1);
    assert.deepEqual(mm.sent.map((d) => d.message.text), ["hello"]);
  });
});

Deno.test("the echo of our own delivery is dropped without a read of the store; other events are read once", async () => {
  await withBus(FAST, async ({ store, mm, xmpp, bus }) => {
    const reads: string[][] = [];
    const routeFacts = store.routeFacts.bind(store);
    store.routeFacts = (network, channel, ids, seenId) => {
      reads.push([...ids]);
      return routeFacts(network, channel, ids, seenId);
    };
    bus.publish(mmPost("post1"));
    await bus.drain();
    assert.equal(xmpp.sent.length, 1);
    // The room's reflection of that delivery, as every bridged message comes back, and a new message.
    bus.publish({ ...groupchat(["stanza-echo"], "text of post1"), deliveryId: xmpp.sent[0].deliveryId });
    bus.publish(groupchat(["stanza-new"], "hello"));
    await bus.drain();
    assert.equal(bus.stats.echoesDropped, 1);
    assert.deepEqual(mm.sent.map((d) => d.message.text), ["hello"]);
    assert.deepEqual(reads, [["post1"], ["stanza-new"]], "one read for each event but the echo");
  });
});

Deno.test("retries wait at least the Retry-After the peer asked for", async () => {
  await withBus({ initialMs: 5, maxMs: 1_000 }, async ({ xmpp, bus }) => {
    const times: number[] = [];
    xmpp.behave = (_dm, call) => {
      times.push(performance.now());
      return call === 1
        ? Promise.reject(new BridgeError("rate limited", { transient: true, retryAfterMs: 120 }))
        : Promise.resolve();
    };
    bus.publish(mmPost("post1"));
    await bus.drain();
    assert.equal(times.length, 2);
    assert.ok(times[1] - times[0] >= 110, `waited only ${times[1] - times[0]} ms`);
  });
});

Deno.test("a Retry-After longer than maxMs is capped at maxMs", async () => {
  await withBus(FAST, async ({ xmpp, bus }) => {
    xmpp.behave = (_dm, call) =>
      call === 1
        ? Promise.reject(new BridgeError("rate limited", { transient: true, retryAfterMs: 60_000 }))
        : Promise.resolve();
    const before = performance.now();
    bus.publish(mmPost("post1"));
    await bus.drain();
    assert.equal(xmpp.sent.length, 1);
    assert.ok(performance.now() - before < 2_000, "waited for the full Retry-After");
  });
});

Deno.test("a permanent BridgeError is not retried, is counted as failed, and later messages still go", async () => {
  await withBus(FAST, async ({ xmpp, bus }) => {
    xmpp.behave = (dm) =>
      dm.message.ids[0] === "bad"
        ? Promise.reject(new BridgeError("room does not exist", { transient: false }))
        : Promise.resolve();
    bus.publish(mmPost("bad"));
    bus.publish(mmPost("good"));
    await bus.drain();
    assert.equal(xmpp.calls, 2);
    assert.deepEqual(xmpp.sent.map((d) => d.message.ids[0]), ["good"]);
    assert.equal(bus.stats.failed, 1);
    assert.equal(bus.stats.retried, 0);
    assert.equal(bus.stats.delivered, 1);
  });
});

Deno.test("stop() cuts a pending backoff short and nothing is sent afterwards", async () => {
  await withBus({ initialMs: 60_000, maxMs: 60_000 }, async ({ xmpp, bus }) => {
    xmpp.behave = () => Promise.reject(new BridgeError("down", { transient: true }));
    bus.publish(mmPost("post1"));
    await waitUntil("the first failed attempt", () => bus.stats.retried === 1, 3_000);
    const before = performance.now();
    bus.stop();
    await bus.drain();
    assert.ok(performance.now() - before < 1_000, "drain waited for the backoff");
    assert.equal(xmpp.calls, 1);
    // A stopped bus accepts nothing more.
    bus.publish(mmPost("post2"));
    await bus.drain();
    assert.equal(bus.stats.received, 1);
    assert.equal(xmpp.calls, 1);
  });
});

Deno.test({
  name: "a failure to record the id map after a successful send does not send the message again",
  fn: async () => {
    await withBus(FAST, async ({ store, xmpp, bus }) => {
      const real = store.writeBatch.bind(store);
      store.writeBatch = (writes) =>
        writes.some((w) => w.kind === "deliver")
          ? Promise.reject(new Error("KV write failed"))
          : real(writes);
      bus.publish(mmPost("post1"));
      await bus.drain();
      assert.equal(xmpp.sent.length, 1);
    });
  },
});

Deno.test("publish settles true once delivered, true for a dropped duplicate, and false for what a stop abandoned", async () => {
  await withBus(FAST, async ({ bus, xmpp }) => {
    assert.equal(await bus.publish(mmPost("p1")), true);
    assert.equal(xmpp.sent.length, 1, "settled before the delivery");
    assert.equal(await bus.publish(mmPost("p1")), true, "a duplicate needs no delivery: it is settled");
    assert.equal(await bus.publish(mmPost("x", "elsewhere", "unmapped")), true);

    // The next delivery hangs until the bus stops: the message behind it is abandoned, not settled.
    let release!: () => void;
    xmpp.behave = () => new Promise<void>((r) => release = r);
    const hanging = bus.publish(mmPost("p2"));
    const behind = bus.publish(mmPost("p3"));
    await sleep(20);
    bus.stop();
    release();
    assert.equal(await behind, false);
    assert.equal(await bus.publish(mmPost("p4")), false, "a stopped bus accepts nothing");
    await hanging;
  });
});

Deno.test("a message gets the same delivery id every time it is routed, so a replay after a crash is recognised", () => {
  const a = deliveryIdFor(mmPost("p1"), XMPP);
  assert.equal(deliveryIdFor(mmPost("p1", "other text"), XMPP), a);
  assert.notEqual(deliveryIdFor(mmPost("p2"), XMPP), a);
  assert.notEqual(deliveryIdFor(mmPost("p1"), "other-network"), a);
  assert.match(a, /^[A-Za-z0-9_-]{22}$/);
});
