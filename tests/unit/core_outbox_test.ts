/**
 * The durable outbox under the bus, on a real Deno KV file: written before a send, removed with the id-map record,
 * delivered again by the next process.
 */
import assert from "node:assert/strict";
import type { Bridge } from "../../src/core/bridge.ts";
import { deliveryIdFor, MessageBus, type RetryPolicy } from "../../src/core/bus.ts";
import { BridgeError } from "../../src/core/errors.ts";
import type { BridgeMessage } from "../../src/core/message.ts";
import { type BatchWrite, Store } from "../../src/core/store.ts";
import { FakeBridge } from "../helpers/fake_bridge.ts";
import { sleep, waitUntil } from "../helpers/wait.ts";

const MM = "mattermost";
const XMPP = "xmpp";
const CHAN = "chan1";
const ROOM = "room@conference.example.org";
const FAST: RetryPolicy = { initialMs: 5, maxMs: 20 };

/** One bridge process: a Store on `path` with a bus over two fake connectors. */
interface Process {
  store: Store;
  mm: FakeBridge;
  xmpp: FakeBridge;
  bus: MessageBus;
}

async function open(path: string): Promise<Process> {
  const store = await Store.open(path);
  const mm = new FakeBridge(MM);
  const xmpp = new FakeBridge(XMPP);
  const bus = new MessageBus(store, new Map<string, Bridge>([[MM, mm], [XMPP, xmpp]]), FAST);
  return { store, mm, xmpp, bus };
}

/** A temp KV path with CHAN ↔ ROOM mapped; removed after `fn`. */
async function withPath(fn: (path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "mmxmpp-outbox-" });
  const path = `${dir}/state.kv`;
  const store = await Store.open(path);
  const res = await store.addMapping({
    channels: { [MM]: CHAN, [XMPP]: ROOM },
    origin: "command",
    createdAt: 0,
  });
  store.close();
  assert.ok(res.ok);
  try {
    await fn(path);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function mmPost(id: string, text = `text of ${id}`): BridgeMessage {
  return {
    kind: "message",
    eventId: id,
    portal: { network: MM, channel: CHAN },
    ids: [id],
    sender: { network: MM, id: "u1", name: "alice" },
    text,
    timestamp: 1,
  };
}

Deno.test("an accepted message is in the outbox before it is sent and leaves it in the commit that records it", async () => {
  await withPath(async (path) => {
    const p = await open(path);
    try {
      const inOutboxAtSend: string[] = [];
      p.xmpp.behave = async (dm) => {
        inOutboxAtSend.push(...(await p.store.listOutbox()).map((e) => e.delivery.deliveryId));
        assert.equal(dm.deliveryId, deliveryIdFor(mmPost("post1"), XMPP));
      };
      // Hold the record, to look between "sent" and "recorded".
      const real = p.store.writeBatch.bind(p.store);
      let release!: () => void;
      const held = new Promise<void>((r) => release = r);
      const delivers: BatchWrite[] = [];
      p.store.writeBatch = async (writes) => {
        if (writes.some((w) => w.kind === "deliver")) {
          delivers.push(...writes);
          await held;
        }
        return real(writes);
      };
      p.bus.publish(mmPost("post1"));
      await waitUntil("the record", () => delivers.length > 0);
      assert.deepEqual(inOutboxAtSend, [deliveryIdFor(mmPost("post1"), XMPP)], "written before the send");
      assert.equal((await p.store.listOutbox()).length, 1, "still there while unrecorded");
      assert.equal(await p.store.findLink(MM, CHAN, "post1"), null);
      release();
      await p.bus.drain();
      assert.deepEqual(await p.store.listOutbox(), [], "gone once recorded");
      assert.equal((await p.store.findLink(XMPP, ROOM, "xmpp-1"))?.refs[MM].ids[0], "post1");
      const deliver = delivers.find((w) => w.kind === "deliver");
      assert.ok(
        deliver?.kind === "deliver" && deliver.entry,
        "the record removes the entry in the same commit",
      );
    } finally {
      p.bus.stop();
      p.store.close();
    }
  });
});

Deno.test("the next message goes out without waiting for the commit of the one before; none settles before its commits", async () => {
  await withPath(async (path) => {
    const p = await open(path);
    try {
      // Every commit held until released: the store is slow.
      const real = p.store.writeBatch.bind(p.store);
      let release!: () => void;
      const held = new Promise<void>((r) => release = r);
      let commits = 0;
      p.store.writeBatch = async (writes) => {
        commits++;
        await held;
        return real(writes);
      };
      const settled: boolean[] = [];
      const all = [0, 1, 2].map((i) => p.bus.publish(mmPost(`post${i}`)).then((ok) => settled.push(ok)));
      // A connector that takes one message at a time (no pipelining) gets all three meanwhile.
      await waitUntil("all three sent", () => p.xmpp.sent.length === 3);
      await sleep(20);
      assert.deepEqual(
        settled,
        [],
        "none settled (acknowledged to its source) while its writes are not durable",
      );
      assert.ok(commits >= 1);
      release();
      await Promise.all(all);
      assert.deepEqual(settled, [true, true, true]);
      assert.deepEqual(await p.store.listOutbox(), [], "each record removed its entry");
      for (let i = 0; i < 3; i++) assert.ok(await p.store.findLink(MM, CHAN, `post${i}`));
    } finally {
      p.bus.stop();
      p.store.close();
    }
  });
});

Deno.test("what a process left in the outbox is delivered by the next, in order, with the same delivery ids", async () => {
  await withPath(async (path) => {
    const texts = ["one", "two", "three", "four", "five"];
    const first = await open(path);
    // The first process never gets a send through: it dies with everything accepted and nothing recorded.
    first.xmpp.behave = () => new Promise(() => {});
    texts.forEach((t, i) => first.bus.publish(mmPost(`post${i}`, t)));
    await waitUntil("the outbox", () => first.xmpp.calls === 1);
    let left = 0;
    for (let i = 0; i < 100 && left < texts.length; i++) {
      left = (await first.store.listOutbox()).length;
      await sleep(5);
    }
    assert.equal(left, texts.length);
    first.bus.stop();
    first.store.close();

    const second = await open(path);
    try {
      assert.equal(await second.bus.restore(), texts.length);
      await sleep(50);
      assert.equal(second.xmpp.calls, 0, "held until resume()");
      // A catch-up fetches one of them again meanwhile: it is in flight, not delivered twice.
      assert.equal(await second.bus.publish(mmPost("post2", "three")), true);
      second.bus.resume();
      await second.bus.drain();
      assert.deepEqual(second.xmpp.sent.map((dm) => dm.message.text), texts);
      assert.deepEqual(
        second.xmpp.sent.map((dm) => dm.deliveryId),
        texts.map((t, i) => deliveryIdFor(mmPost(`post${i}`, t), XMPP)),
      );
      assert.deepEqual(await second.store.listOutbox(), []);
      for (let i = 0; i < texts.length; i++) assert.ok(await second.store.findLink(MM, CHAN, `post${i}`));
      // A fresh message goes after them.
      await second.bus.publish(mmPost("post9", "six"));
      assert.equal(second.xmpp.sent.at(-1)?.message.text, "six");
    } finally {
      second.bus.stop();
      second.store.close();
    }
  });
});

Deno.test("a delivery given up on for good leaves the outbox", async () => {
  await withPath(async (path) => {
    const p = await open(path);
    try {
      p.xmpp.behave = () => Promise.reject(new BridgeError("no access to the room"));
      assert.equal(await p.bus.publish(mmPost("post1")), true);
      assert.equal(p.bus.stats.failed, 1);
      assert.deepEqual(await p.store.listOutbox(), []);
    } finally {
      p.bus.stop();
      p.store.close();
    }
  });
});

Deno.test("a message too large for one KV value is still delivered, without an outbox entry", async () => {
  await withPath(async (path) => {
    const p = await open(path);
    try {
      const text = "x".repeat(70_000);
      assert.equal(await p.bus.publish(mmPost("big", text)), true);
      assert.equal(p.xmpp.sent[0]?.message.text, text);
      assert.ok(await p.store.findLink(MM, CHAN, "big"), "recorded");
      assert.deepEqual(await p.store.listOutbox(), []);
    } finally {
      p.bus.stop();
      p.store.close();
    }
  });
});

Deno.test("the outbox and id-map writes of a burst share atomic commits", async () => {
  await withPath(async (path) => {
    const p = await open(path);
    try {
      const real = p.store.writeBatch.bind(p.store);
      let commits = 0;
      let writes = 0;
      p.store.writeBatch = (batch) => {
        commits++;
        writes += batch.length;
        return real(batch);
      };
      const n = 200;
      for (let i = 0; i < n; i++) p.bus.publish(mmPost(`post${i}`));
      await p.bus.drain();
      assert.equal(p.xmpp.sent.length, n);
      assert.equal(writes, 2 * n, "one accept and one record each");
      console.log(`${n} messages: ${writes} writes in ${commits} commits`);
      // Fewer commits than messages: cheaper than the one id-map commit per message made before the outbox.
      assert.ok(commits < n, `${writes} writes took ${commits} commits`);
      assert.deepEqual(await p.store.listOutbox(), []);
    } finally {
      p.bus.stop();
      p.store.close();
    }
  });
});

Deno.test("a burst of large messages is split into commits within Deno KV's limits: none fails", async () => {
  await withPath(async (path) => {
    const p = await open(path);
    try {
      const real = p.store.writeBatch.bind(p.store);
      const failed: number[] = [];
      p.store.writeBatch = (batch) =>
        real(batch).catch((err) => {
          failed.push(batch.length);
          throw err;
        });
      // 30 accepts of 40,000 characters each: over 1 MB together, against 800 KiB a commit.
      const n = 30;
      for (let i = 0; i < n; i++) p.bus.publish(mmPost(`big${i}`, `${i} ${"é".repeat(40_000)}`));
      await p.bus.drain();
      assert.equal(p.xmpp.sent.length, n);
      assert.deepEqual(failed, [], "no commit over the limits (each would fail, then be written one by one)");
      assert.deepEqual(await p.store.listOutbox(), []);
      for (let i = 0; i < n; i++) assert.ok(await p.store.findLink(MM, CHAN, `big${i}`));
    } finally {
      p.bus.stop();
      p.store.close();
    }
  });
});

Deno.test("a message's attachments survive in the outbox: the next process delivers them as they were", async () => {
  await withPath(async (path) => {
    const attachments = [
      {
        name: "cat photo.png",
        mimeType: "image/png",
        size: 3000,
        source: "file1",
        url: "https://mm/files/file1",
      },
      { name: "notes.txt", source: "file2" },
    ];
    const first = await open(path);
    first.xmpp.behave = () => new Promise(() => {});
    first.bus.publish({ ...mmPost("post1", ""), attachments });
    await waitUntil("the send", () => first.xmpp.calls === 1);
    for (let i = 0; i < 100 && (await first.store.listOutbox()).length === 0; i++) await sleep(5);
    first.bus.stop();
    first.store.close();

    const second = await open(path);
    try {
      assert.equal(await second.bus.restore(), 1);
      second.bus.resume();
      await second.bus.drain();
      assert.deepEqual(second.xmpp.sent.map((dm) => dm.message.attachments), [attachments]);
    } finally {
      second.bus.stop();
      second.store.close();
    }
  });
});
