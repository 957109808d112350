/**
 * Replies through the bus (src/core/handlers/message.ts): the parent is found on the target at delivery, also
 * right behind it in a pipelined channel; a parent that never got there, or sits in another channel, leaves the
 * reply without one (its connector quotes it); the source's part records the thread. Real Store on a temp KV file,
 * fake connectors.
 */
import assert from "node:assert/strict";
import type { Bridge, Dispatched, PipeliningBridge } from "../../src/core/bridge.ts";
import { MessageBus } from "../../src/core/bus.ts";
import { type BridgeMessage, eventProblem, type ReplyTo } from "../../src/core/events.ts";
import type { DirectionalMessage } from "../../src/core/message.ts";
import { quoteLines, standaloneQuote } from "../../src/core/reply.ts";
import { Store } from "../../src/core/store.ts";
import { FakeBridge } from "../helpers/fake_bridge.ts";

const MM = "mattermost";
const XMPP = "xmpp";
const CHAN = "chan1";
const ROOM = "room@conference.example.org";

/** Writes at once; each confirmation waits for `release()` (as a room's reflection would). */
class HeldPipeline extends FakeBridge implements PipeliningBridge {
  readonly wire: DirectionalMessage[] = [];
  private readonly held: Array<() => void> = [];

  dispatch(dm: DirectionalMessage): Promise<Dispatched> {
    const n = this.wire.push(dm);
    const confirmed = new Promise<void>((resolve) => this.held.push(resolve)).then(() => {
      this.sent.push(dm);
      return { ids: [`xmpp-${n}`], parts: [{ messageId: `xmpp-${n}`, sender: { kind: "relay" as const } }] };
    });
    return Promise.resolve({ confirmed });
  }

  /** Confirms everything written so far. */
  release(): void {
    for (const resolve of this.held.splice(0)) resolve();
  }
}

async function withBus(
  fn: (rig: { store: Store; xmpp: HeldPipeline; mm: FakeBridge; bus: MessageBus }) => Promise<void>,
) {
  const dir = await Deno.makeTempDir({ prefix: "mmxmpp-replies-" });
  const store = await Store.open(`${dir}/state.kv`);
  const xmpp = new HeldPipeline(XMPP);
  const mm = new FakeBridge(MM);
  const bus = new MessageBus(store, new Map<string, Bridge>([[MM, mm], [XMPP, xmpp]]), {
    initialMs: 5,
    maxMs: 20,
  });
  try {
    assert.ok(
      (await store.addMapping({ channels: { [MM]: CHAN, [XMPP]: ROOM }, origin: "command", createdAt: 0 }))
        .ok,
    );
    await fn({ store, xmpp, mm, bus });
  } finally {
    bus.stop();
    xmpp.release();
    await bus.drain();
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function post(id: string, replyTo?: ReplyTo, channel = CHAN): BridgeMessage {
  return {
    kind: "message",
    eventId: id,
    portal: { network: MM, channel },
    ids: [id],
    sender: { network: MM, id: "u1", name: "bob" },
    text: `text of ${id}`,
    timestamp: 1_700_000_000_000,
    ...(replyTo ? { replyTo } : {}),
  };
}

/** Lets the queue run until `n` messages are written. */
async function written(xmpp: HeldPipeline, n: number): Promise<void> {
  while (xmpp.wire.length < n) await new Promise((r) => setTimeout(r, 5));
}

Deno.test("a reply right behind its parent waits for the parent's confirmation and gets its ref", async () => {
  await withBus(async ({ xmpp, bus }) => {
    bus.publish(post("root"));
    bus.publish(post("reply", { targetId: "root", thread: "root" }));
    await written(xmpp, 1);
    // Give the queue every chance to write the reply ahead of the root's confirmation: it must not.
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(xmpp.wire.length, 1, "the reply is not written before its parent is confirmed");
    xmpp.release();
    await written(xmpp, 2);
    xmpp.release();
    await bus.drain();
    assert.deepEqual(xmpp.wire[1].parent?.ids, ["xmpp-1"]);
    assert.equal(xmpp.wire[1].parent?.parts[0].messageId, "xmpp-1");
  });
});

Deno.test("an answer to our delivery that comes back before the delivery's confirmation still finds its parent", async () => {
  await withBus(async ({ xmpp, mm, bus }) => {
    bus.publish(post("root"));
    await written(xmpp, 1);
    // Someone in the room saw the message (as xmpp-1) and answered it before the room's confirmation was read:
    // a component puppet's reflection and the bridge's own session are two streams with no order between them.
    const answer: BridgeMessage = {
      ...post("answer", { targetId: "xmpp-1" }),
      portal: { network: XMPP, channel: ROOM },
      ids: ["answer"],
      sender: { network: XMPP, id: "alice", name: "alice" },
    };
    bus.publish(answer);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(mm.sent.length, 0, "the answer waits for its parent's record");
    xmpp.release();
    await bus.drain();
    assert.equal(mm.sent.length, 1);
    assert.deepEqual(mm.sent[0].parent?.ids, ["root"], "the answer points at the Mattermost post it answers");
  });
});

Deno.test("a reply is found by its thread when its own target is unknown, and records the thread on its source part", async () => {
  await withBus(async ({ store, xmpp, bus }) => {
    bus.publish(post("root"));
    await written(xmpp, 1);
    xmpp.release();
    await bus.drain();
    bus.publish(post("r2", { targetId: "gone", thread: "root" }));
    await written(xmpp, 2);
    xmpp.release();
    await bus.drain();
    assert.deepEqual(xmpp.wire[1].parent?.ids, ["xmpp-1"]);
    const link = await store.findLink(MM, CHAN, "r2");
    assert.deepEqual(link?.refs[MM].parts[0], {
      sender: { kind: "author", id: "u1" },
      threadRoot: "root",
      replyTo: "gone",
    });
  });
});

Deno.test("a reply whose parent never crossed goes without one, counted as unresolved, and is quoted", async () => {
  await withBus(async ({ xmpp, bus }) => {
    bus.publish(post("orphan", { targetId: "never", quote: "old news\nfrom monday", author: "carol" }));
    await written(xmpp, 1);
    xmpp.release();
    await bus.drain();
    assert.equal(xmpp.wire[0].parent, undefined);
    assert.equal(bus.stats.unresolved, 1);
    assert.equal(standaloneQuote(xmpp.wire[0]), "> carol: old news\n> from monday\n");
  });
});

Deno.test("quote lines: author on the first line, long parents cut, actions and resolved replies unquoted", () => {
  assert.equal(quoteLines({ targetId: "x", quote: "hi\n" }), "> hi\n");
  assert.equal(quoteLines({ targetId: "x" }), undefined);
  const long = quoteLines({ targetId: "x", quote: "é".repeat(400) })!;
  assert.equal([...long].length, "> ".length + 300 + "…\n".length);
  const dm: DirectionalMessage = {
    source: MM,
    target: XMPP,
    targetChannel: ROOM,
    deliveryId: "d",
    message: post("m", { targetId: "p", quote: "q" }),
  };
  assert.equal(standaloneQuote(dm), "> q\n");
  assert.equal(standaloneQuote({ ...dm, message: { ...dm.message, action: true } }), undefined);
  assert.equal(standaloneQuote({ ...dm, parent: { channel: ROOM, ids: ["p"], parts: [] } }), undefined);
});

Deno.test("a message whose replyTo has no targetId is refused by the core, naming what is missing", () => {
  assert.equal(eventProblem({ ...post("m"), replyTo: { quote: "q" } }), "a reply without a targetId");
  assert.equal(eventProblem(post("m", { targetId: "p" })), undefined);
});

Deno.test("a reply left in the outbox by a crash is stored without its parent and finds it at the next start", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mmxmpp-replies-" });
  const path = `${dir}/state.kv`;
  const open = async () => {
    const store = await Store.open(path);
    const xmpp = new HeldPipeline(XMPP);
    const bus = new MessageBus(store, new Map<string, Bridge>([[MM, new FakeBridge(MM)], [XMPP, xmpp]]), {
      initialMs: 5,
      maxMs: 20,
    });
    return { store, xmpp, bus };
  };
  try {
    const first = await open();
    assert.ok(
      (await first.store.addMapping({
        channels: { [MM]: CHAN, [XMPP]: ROOM },
        origin: "command",
        createdAt: 0,
      })).ok,
    );
    first.bus.publish(post("root"));
    await written(first.xmpp, 1);
    first.xmpp.release();
    await first.bus.drain();
    // The reply is written with its parent, and the process dies before the room confirms it.
    first.bus.publish(post("reply", { targetId: "root", thread: "root" }));
    await written(first.xmpp, 2);
    assert.deepEqual(first.xmpp.wire[1].parent?.ids, ["xmpp-1"]);
    // The outbox write goes along with the send, not before it.
    let entries = await first.store.listOutbox();
    while (entries.length === 0) {
      await new Promise((r) => setTimeout(r, 5));
      entries = await first.store.listOutbox();
    }
    const [entry] = entries;
    assert.deepEqual(entry.delivery.message.replyTo, { targetId: "root", thread: "root" });
    assert.equal("parent" in entry.delivery, false, "the outbox keeps the reply as accepted, unresolved");
    first.bus.stop();
    first.store.close();

    const second = await open();
    try {
      assert.equal(await second.bus.restore(), 1);
      second.bus.resume();
      await written(second.xmpp, 1);
      second.xmpp.release();
      await second.bus.drain();
      assert.deepEqual(second.xmpp.wire[0].parent?.ids, ["xmpp-1"], "the parent, from the stored map");
      assert.deepEqual(await second.store.listOutbox(), []);
    } finally {
      second.bus.stop();
      second.xmpp.release();
      await second.bus.drain();
      second.store.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
