/**
 * Pipelined delivery (src/core/delivery_queue.ts through the bus): the bounded window, order on the wire, settlement
 * order, a failure in the middle of the window, the barrier before other kinds, and window 1 without the capability.
 * Real Store on a temp KV file, fake connectors whose confirmations the test releases by hand.
 */
import assert from "node:assert/strict";
import type { Bridge, Dispatched, PipeliningBridge } from "../../src/core/bridge.ts";
import { MessageBus, PIPELINE_WINDOW, type RetryPolicy } from "../../src/core/bus.ts";
import { BridgeError } from "../../src/core/errors.ts";
import type { BridgeEvent, BridgeMessage } from "../../src/core/events.ts";
import type { DirectionalMessage } from "../../src/core/message.ts";
import { Store } from "../../src/core/store.ts";
import { CapableFakeBridge, FakeBridge } from "../helpers/fake_bridge.ts";
import { waitUntil } from "../helpers/wait.ts";

const MM = "mattermost";
const XMPP = "xmpp";
const CHAN = "chan1";
const ROOM = "room@conference.example.org";
const FAST: RetryPolicy = { initialMs: 5, maxMs: 20 };

/**
 * A connector whose channel keeps the order of writes, as one XMPP stream does: `dispatch` writes at once and
 * `confirm` decides, per write, when and whether the network confirms it. Confirmed messages land in `sent`.
 */
class PipeliningFakeBridge extends CapableFakeBridge implements PipeliningBridge {
  /** Every message written, retries included, in the order written. */
  readonly wire: DirectionalMessage[] = [];
  /** Written and not yet confirmed or failed; and the most there ever were at once. */
  unconfirmed = 0;
  maxUnconfirmed = 0;
  /** Resolves to confirm write number `write` (1-based), rejects to fail it. Default: confirmed at once. */
  confirm: (dm: DirectionalMessage, write: number) => Promise<void> = () => Promise.resolve();
  /** How long writing `dm` takes. Default: no time. */
  writing: (dm: DirectionalMessage) => Promise<void> = () => Promise.resolve();

  async dispatch(dm: DirectionalMessage): Promise<Dispatched> {
    await this.writing(dm);
    const write = this.wire.push(dm);
    this.unconfirmed++;
    this.maxUnconfirmed = Math.max(this.maxUnconfirmed, this.unconfirmed);
    const confirmed = this.confirm(dm, write).finally(() => this.unconfirmed--).then(() => {
      this.sent.push(dm);
      return { ids: [`${this.network}-${write}`, `${this.network}-${write}-alt`] };
    });
    return { confirmed };
  }
}

interface Rig {
  store: Store;
  mm: FakeBridge;
  xmpp: PipeliningFakeBridge;
  bus: MessageBus;
}

interface Gate {
  resolve: () => void;
  reject: (err: Error) => void;
}

/** Confirmations held by the running test; failed at its end so that the drain ends whatever happened. */
const openGates: Gate[] = [];

/** CHAN ↔ ROOM mapped; XMPP pipelines, Mattermost does not. */
async function withBus(fn: (rig: Rig) => Promise<void>, retry = FAST): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "mmxmpp-queue-" });
  const store = await Store.open(`${dir}/state.kv`);
  const mm = new FakeBridge(MM);
  const xmpp = new PipeliningFakeBridge(XMPP);
  const bus = new MessageBus(store, new Map<string, Bridge>([[MM, mm], [XMPP, xmpp]]), retry);
  try {
    const res = await store.addMapping({
      channels: { [MM]: CHAN, [XMPP]: ROOM },
      origin: "command",
      createdAt: 0,
    });
    assert.ok(res.ok);
    await fn({ store, mm, xmpp, bus });
  } finally {
    bus.stop();
    for (const gate of openGates.splice(0)) gate.reject(new BridgeError("test over", { transient: true }));
    await bus.drain();
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function post(i: number): BridgeMessage {
  return {
    kind: "message",
    eventId: `post${i}`,
    portal: { network: MM, channel: CHAN },
    ids: [`post${i}`],
    sender: { network: MM, id: "user1", name: "alice" },
    text: `${i}`,
    timestamp: 1_700_000_000_000 + i,
  };
}

const numbers = (dms: DirectionalMessage[]) => dms.map((d) => Number(d.message.text));
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

/** Confirmations the test releases by hand, by write number. */
function heldConfirmations(xmpp: PipeliningFakeBridge): Map<number, Gate> {
  const gates = new Map<number, Gate>();
  xmpp.confirm = (_dm, write) =>
    new Promise<void>((resolve, reject) => {
      gates.set(write, { resolve, reject });
      openGates.push({ resolve, reject });
    });
  return gates;
}

/** Lets every pending promise and zero-delay timer run, a few times over. */
async function turns(n = 20): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setTimeout(r, 0));
}

Deno.test("a pipelining connector gets a window of messages on the wire before the first is confirmed, never more", async () => {
  await withBus(async ({ store, xmpp, bus }) => {
    const gates = heldConfirmations(xmpp);
    // Writes that take different times: the next must still wait until the one before it is written.
    xmpp.writing = (dm) => turns(Number(dm.message.text) % 3);
    const n = PIPELINE_WINDOW * 3;
    const settledOrder: number[] = [];
    for (let i = 0; i < n; i++) bus.publish(post(i)).then((ok) => ok && settledOrder.push(i));
    await waitUntil("all routed", () => bus.queued() === n);
    // Routing no longer waits on the store at each event's turn: the writes, each a few turns long, follow it.
    await waitUntil("a full window on the wire", () => xmpp.wire.length >= PIPELINE_WINDOW);
    await turns();
    assert.equal(xmpp.wire.length, PIPELINE_WINDOW, "nothing beyond the window before a confirmation");

    // Each confirmation of the oldest lets exactly one more out.
    gates.get(1)!.resolve();
    await waitUntil("the next write", () => xmpp.wire.length === PIPELINE_WINDOW + 1);
    await turns();
    assert.equal(xmpp.wire.length, PIPELINE_WINDOW + 1);

    // The rest confirmed newest first within what is out: neither the wire order nor the settlement order follows.
    let released = 1;
    while (released < n) {
      await waitUntil("more writes", () => xmpp.wire.length > released);
      const out = xmpp.wire.length;
      for (let w = out; w > released; w--) gates.get(w)!.resolve();
      released = out;
    }
    await bus.drain();
    assert.deepEqual(numbers(xmpp.wire), range(0, n), "written in the order published, each once");
    assert.equal(xmpp.maxUnconfirmed, PIPELINE_WINDOW);
    assert.deepEqual(settledOrder, range(0, n), "settled in the order published");
    assert.equal(bus.stats.delivered, n);
    for (let i = 0; i < n; i++) {
      const link = await store.findLink(MM, CHAN, `post${i}`);
      assert.deepEqual(
        link?.refs[XMPP].ids,
        [`xmpp-${i + 1}`, `xmpp-${i + 1}-alt`],
        `post${i} in the id map`,
      );
    }
  });
});

Deno.test("a transient failure in the middle of the window is retried before anything new: nothing doubled, nothing lost", async () => {
  await withBus(async ({ store, xmpp, bus }) => {
    const failing = 5;
    const failedWrite = failing + 1;
    const gates = heldConfirmations(xmpp);
    const n = 40;
    const settledOrder: number[] = [];
    const all = range(0, n).map((i) => bus.publish(post(i)).then((ok) => ok && settledOrder.push(i)));
    await waitUntil("a full window on the wire", () => xmpp.wire.length === PIPELINE_WINDOW);
    gates.get(failedWrite)!.reject(
      new BridgeError("the room did not reflect it in time", { transient: true }),
    );
    await turns();
    // Everything else on the wire is confirmed, newest first; room in the window, but the retry goes first.
    for (let w = PIPELINE_WINDOW; w >= 1; w--) if (w !== failedWrite) gates.get(w)!.resolve();
    await waitUntil("the retry and the rest", () => xmpp.wire.length === n + 1);
    assert.equal(
      numbers(xmpp.wire)[PIPELINE_WINDOW],
      failing,
      "the retry goes out first, before anything new",
    );
    assert.equal(
      xmpp.wire[PIPELINE_WINDOW].deliveryId,
      xmpp.wire[failing].deliveryId,
      "with its delivery id",
    );
    for (let w = PIPELINE_WINDOW + 1; w <= n + 1; w++) gates.get(w)!.resolve();
    await Promise.all(all);
    await bus.drain();

    assert.deepEqual(numbers(xmpp.wire), [
      ...range(0, PIPELINE_WINDOW),
      failing,
      ...range(PIPELINE_WINDOW, n),
    ]);
    assert.deepEqual(numbers(xmpp.sent).sort((a, b) => a - b), range(0, n), "each message confirmed once");
    assert.deepEqual(
      settledOrder,
      range(0, n),
      "settled in the order published, the retried one in its place",
    );
    assert.equal(bus.stats.delivered, n);
    assert.equal(bus.stats.retried, 1);
    const retried = await store.findLink(MM, CHAN, `post${failing}`);
    assert.deepEqual(retried?.refs[XMPP].ids, [
      `xmpp-${PIPELINE_WINDOW + 1}`,
      `xmpp-${PIPELINE_WINDOW + 1}-alt`,
    ]);
    for (let i = 0; i < n; i++) {
      assert.ok(await store.findLink(MM, CHAN, `post${i}`), `post${i} in the id map`);
    }
    // A backoff long enough for the rest of the window to be confirmed (and room made for new messages) meanwhile.
  }, { initialMs: 200, maxMs: 200 });
});

Deno.test("when everything on the wire fails (a lost connection), all of it is retried before anything new", async () => {
  await withBus(async ({ xmpp, bus }) => {
    const gates = heldConfirmations(xmpp);
    const n = PIPELINE_WINDOW + 8;
    for (let i = 0; i < n; i++) bus.publish(post(i));
    await waitUntil("a full window on the wire", () => xmpp.wire.length === PIPELINE_WINDOW);
    for (let w = 1; w <= PIPELINE_WINDOW; w++) {
      gates.get(w)!.reject(new BridgeError("connection lost", { transient: true }));
    }
    await waitUntil("the retries", () => xmpp.wire.length >= 2 * PIPELINE_WINDOW);
    await turns();
    assert.equal(xmpp.wire.length, 2 * PIPELINE_WINDOW, "nothing new while retries are held back");
    assert.deepEqual(
      numbers(xmpp.wire.slice(PIPELINE_WINDOW)).sort((a, b) => a - b),
      range(0, PIPELINE_WINDOW),
      "each retried once",
    );
    const released = new Set<number>();
    while (bus.stats.delivered < n) {
      for (const [w, gate] of gates) {
        if (!released.has(w) && w > PIPELINE_WINDOW) (released.add(w), gate.resolve());
      }
      await turns(1);
    }
    await bus.drain();
    assert.deepEqual(numbers(xmpp.wire.slice(2 * PIPELINE_WINDOW)), range(PIPELINE_WINDOW, n));
    assert.deepEqual(numbers(xmpp.sent).sort((a, b) => a - b), range(0, n));
    assert.equal(bus.stats.retried, PIPELINE_WINDOW);
  });
});

Deno.test("a permanent failure in the window is given up alone; the messages around it land once", async () => {
  await withBus(async ({ xmpp, bus }) => {
    xmpp.confirm = (dm) =>
      dm.message.text === "3"
        ? Promise.reject(new BridgeError("forbidden", { transient: false }))
        : Promise.resolve();
    const settled = await Promise.all(range(0, 10).map((i) => bus.publish(post(i))));
    await bus.drain();
    assert.deepEqual(settled, range(0, 10).map(() => true));
    assert.deepEqual(numbers(xmpp.wire), range(0, 10));
    assert.deepEqual(numbers(xmpp.sent), range(0, 10).filter((i) => i !== 3));
    assert.equal(bus.stats.failed, 1);
  });
});

Deno.test("a reaction waits until the message before it is confirmed and recorded; what follows waits for the reaction", async () => {
  await withBus(async ({ xmpp, bus }) => {
    const gates = heldConfirmations(xmpp);
    bus.publish(post(0));
    const reaction: BridgeEvent = {
      kind: "reactions",
      eventId: "reaction1",
      portal: { network: MM, channel: CHAN },
      sender: { network: MM, id: "user2", name: "bob" },
      targetId: "post0",
      emojis: ["👍"],
      timestamp: 1_700_000_000_100,
    };
    bus.publish(reaction);
    bus.publish(post(1));
    await waitUntil("the message on the wire", () => xmpp.wire.length === 1);
    await turns();
    assert.equal(xmpp.applied.length, 0, "the reaction waits for the confirmation");
    assert.equal(xmpp.wire.length, 1, "the message after the reaction waits for it");
    gates.get(1)!.resolve();
    await waitUntil("the next message", () => xmpp.wire.length === 2);
    gates.get(2)!.resolve();
    await bus.drain();
    assert.equal(bus.stats.unresolved, 0, "the reaction found its message in the id map");
    assert.equal(xmpp.applied.length, 1);
    const applied = xmpp.applied[0];
    assert.equal(applied.kind, "reactions");
    assert.deepEqual(applied.kind === "reactions" && applied.delivery.targetMessage.ids, [
      "xmpp-1",
      "xmpp-1-alt",
    ]);
  });
});

Deno.test("a connector that cannot pipeline gets one message at a time", async () => {
  await withBus(async ({ mm, bus }) => {
    let running = 0;
    let most = 0;
    mm.behave = async () => {
      most = Math.max(most, ++running);
      await new Promise((r) => setTimeout(r, 1));
      running--;
    };
    for (let i = 0; i < 20; i++) {
      bus.publish({
        ...post(i),
        portal: { network: XMPP, channel: ROOM },
        ids: [`stanza${i}`],
        eventId: `s${i}`,
      });
    }
    await bus.drain();
    assert.equal(most, 1);
    assert.deepEqual(numbers(mm.sent), range(0, 20));
  });
});
