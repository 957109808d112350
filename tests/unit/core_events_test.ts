import assert from "node:assert/strict";
import type { LogRecord } from "@logtape/logtape";
import type { Bridge } from "../../src/core/bridge.ts";
import { MessageBus, type RetryPolicy } from "../../src/core/bus.ts";
import { BridgeError } from "../../src/core/errors.ts";
import {
  type BridgeEdit,
  type BridgeEvent,
  type BridgeMessage,
  eventProblem,
  type Sender,
} from "../../src/core/events.ts";
import { EDIT_MARK } from "../../src/core/handlers/edit.ts";
import { Store } from "../../src/core/store.ts";
import { CapableFakeBridge, FakeBridge } from "../helpers/fake_bridge.ts";
import { captureLogs } from "../helpers/log_capture.ts";
import { sleep, waitUntil } from "../helpers/wait.ts";

const MM = "mattermost";
const XMPP = "xmpp";
const CHAN = "chan1";
const ROOM = "room@conference.example.org";
const FAST: RetryPolicy = { initialMs: 5, maxMs: 20 };
const ALICE: Sender = { network: MM, id: "user1", name: "alice" };
const BOB: Sender = { network: XMPP, id: `${ROOM}/bob`, name: "bob" };

interface Rig {
  store: Store;
  /** Mattermost: edits, removals, reactions and typing unless `incapable`. */
  mm: FakeBridge;
  /** XMPP: every capability. */
  xmpp: CapableFakeBridge;
  bus: MessageBus;
}

/**
 * A real Store on a temp KV file with CHAN ↔ ROOM mapped, a capable XMPP fake, a Mattermost fake (capable unless
 * `mmIncapable`), and a bus. `fn` may close the bus and open another on the same store (a restart).
 */
async function withBus(
  opts: { mmIncapable?: boolean },
  fn: (rig: Rig, restart: () => MessageBus) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "mmxmpp-events-" });
  const store = await Store.open(`${dir}/state.kv`);
  const mm = opts.mmIncapable ? new FakeBridge(MM) : new CapableFakeBridge(MM);
  const xmpp = new CapableFakeBridge(XMPP);
  const open = () => new MessageBus(store, new Map<string, Bridge>([[MM, mm], [XMPP, xmpp]]), FAST);
  const rig = { store, mm, xmpp, bus: open() };
  try {
    const res = await store.addMapping({
      channels: { [MM]: CHAN, [XMPP]: ROOM },
      origin: "command",
      createdAt: Date.now(),
    });
    assert.ok(res.ok);
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

const HERE = { network: MM, channel: CHAN };

function post(id: string, text = `text of ${id}`): BridgeMessage {
  return { kind: "message", eventId: id, portal: HERE, sender: ALICE, ids: [id], text, timestamp: 1 };
}

/** An edit of `targetId`; `eventId` is the edit's own id (on Mattermost: post id and edit time). */
function edit(eventId: string, targetId: string, text: string): BridgeEdit {
  return { kind: "edit", eventId, portal: HERE, sender: ALICE, targetId, text, timestamp: 2 };
}

function remove(eventId: string, targetId: string): BridgeEvent {
  return { kind: "remove", eventId, portal: HERE, sender: ALICE, targetId, timestamp: 3 };
}

function reactions(eventId: string, targetId: string, emojis: string[]): BridgeEvent {
  return { kind: "reactions", eventId, portal: HERE, sender: ALICE, targetId, emojis, timestamp: 4 };
}

function typing(eventId: string): BridgeEvent {
  return { kind: "typing", eventId, portal: HERE, sender: ALICE, active: true, timestamp: 5 };
}

/** `event` done by Bob in the room instead of by Alice in the channel. */
function inRoom<E extends BridgeEvent>(event: E): E {
  return { ...event, portal: { network: XMPP, channel: ROOM }, sender: BOB };
}

Deno.test("each kind reaches its own capability on the target, in order, pointing at the bridged message", async () => {
  await withBus({}, async ({ xmpp, bus }) => {
    bus.publish(post("post1"));
    bus.publish(edit("post1@2", "post1", "fixed"));
    bus.publish(typing("typing-1"));
    bus.publish(remove("post1@del", "post1"));
    await bus.drain();
    assert.deepEqual(xmpp.sent.map((d) => d.message.text), ["text of post1"]);
    assert.deepEqual(xmpp.applied.map((c) => c.kind), ["edit", "typing", "remove"]);
    const [edited, typed, removed] = xmpp.applied;
    // The message on XMPP, as the fake's send answered it (it names no parts: recorded as sent by "unknown").
    const onXmpp = { channel: ROOM, ids: ["xmpp-1", "xmpp-1-alt"], parts: [{ sender: { kind: "unknown" } }] };
    assert.ok(edited.kind === "edit" && removed.kind === "remove" && typed.kind === "typing");
    assert.deepEqual(edited.delivery.targetMessage, onXmpp);
    assert.equal(edited.delivery.event.text, "fixed");
    assert.equal(edited.delivery.targetChannel, ROOM);
    assert.deepEqual(removed.delivery.targetMessage, onXmpp);
    assert.equal(typed.delivery.event.active, true);
    assert.equal(bus.stats.duplicatesDropped, 0, "an event is not a duplicate of the message it points at");
    assert.equal(bus.stats.echoesDropped, 0);
    assert.equal(bus.stats.delivered, 3, "typing is best effort, not counted");
  });
});

Deno.test("a reaction from the room to a message bridged into it reaches the original post", async () => {
  await withBus({}, async ({ mm, bus }) => {
    bus.publish(post("post1"));
    await bus.drain();
    // Bob reacts in the room to the bridged copy: its id on XMPP is one the id map recorded as our delivery.
    bus.publish(inRoom(reactions("stanza-r1", "xmpp-1", ["👍", "🎉"])));
    await bus.drain();
    assert.ok(mm instanceof CapableFakeBridge);
    assert.equal(mm.applied.length, 1);
    const [call] = mm.applied;
    assert.ok(call.kind === "reactions");
    assert.deepEqual(call.delivery.targetMessage, {
      channel: CHAN,
      ids: ["post1"],
      parts: [{ sender: { kind: "author", id: ALICE.id } }],
    });
    assert.deepEqual(call.delivery.event.emojis, ["👍", "🎉"]);
    assert.equal(bus.stats.echoesDropped, 0, "a reaction to our delivery is not its echo");
  });
});

Deno.test("an edit where the target cannot edit arrives as a new message marked as an edit, and is recorded", async () => {
  await withBus({ mmIncapable: true }, async ({ store, mm, xmpp, bus }) => {
    bus.publish(inRoom(post("s1", "helo")));
    bus.publish(inRoom(edit("s2", "s1", "hello")));
    await bus.drain();
    assert.deepEqual(mm.sent.map((d) => d.message.text), ["helo", `${EDIT_MARK}hello`]);
    const fallback = mm.sent[1];
    assert.equal(fallback.message.sender, BOB, "sent as the editor");
    assert.deepEqual(fallback.message.ids, ["s2"]);
    // Recorded like a message: a replay after a restart finds it in the id map.
    assert.equal((await store.findLink(XMPP, ROOM, "s2"))?.refs[MM].ids[0], "mattermost-2");
    assert.equal(xmpp.applied.length, 0);
  });
});

Deno.test("a capable connector whose channel says no edits gets the edit as a marked message", async () => {
  await withBus({}, async ({ xmpp, bus }) => {
    xmpp.caps = (channel) => ({ canEdit: channel !== ROOM, canRemove: true, reactions: true, typing: true });
    bus.publish(post("post1"));
    bus.publish(edit("post1@2", "post1", "fixed"));
    await bus.drain();
    assert.deepEqual(xmpp.sent.map((d) => d.message.text), ["text of post1", `${EDIT_MARK}fixed`]);
    assert.equal(xmpp.applied.length, 0);
  });
});

Deno.test("removals, reactions and typing a target cannot show are dropped and counted; nothing is posted", async () => {
  await withBus({}, async ({ xmpp, bus }) => {
    xmpp.caps = () => ({ canEdit: true, canRemove: false, reactions: false, typing: false });
    bus.publish(post("post1"));
    bus.publish(remove("post1@del", "post1"));
    bus.publish(typing("t1"));
    bus.publish(reactions("r1", "post1", ["👍"]));
    await bus.drain();
    assert.equal(xmpp.sent.length, 1);
    assert.equal(xmpp.applied.length, 0);
    assert.equal(bus.stats.unsupported, 3);
  });
  // Towards a connector without the capabilities at all: the same.
  await withBus({ mmIncapable: true }, async ({ mm, bus }) => {
    bus.publish(inRoom(post("s1")));
    bus.publish(inRoom(reactions("r1", "s1", ["👍"])));
    bus.publish(inRoom(remove("s1-del", "s1")));
    bus.publish(inRoom(typing("t1")));
    await bus.drain();
    assert.deepEqual(mm.sent.map((d) => d.message.ids[0]), ["s1"]);
    assert.equal(bus.stats.unsupported, 3);
  });
});

Deno.test("an edit of a message the id map does not know is posted as a new message marked as an edit", async () => {
  await withBus({}, async ({ xmpp, bus }) => {
    bus.publish(edit("old@2", "old", "edited before the channel was mapped"));
    await bus.drain();
    assert.deepEqual(xmpp.sent.map((d) => d.message.text), [
      `${EDIT_MARK}edited before the channel was mapped`,
    ]);
    assert.equal(xmpp.sent[0].message.sender, ALICE, "shown as the editor's own");
    assert.equal(xmpp.applied.length, 0);
  });
});

Deno.test("a removal of something never bridged is ignored quietly", async () => {
  await withBus({}, async ({ xmpp, bus }) => {
    bus.publish(remove("old@del", "old"));
    await bus.drain();
    assert.equal(xmpp.sent.length + xmpp.applied.length, 0);
    assert.equal(bus.stats.notAuthor + bus.stats.failed, 0);
  });
});

Deno.test("an edit or removal by anyone but the author is ignored, counted and logged; the author's goes", async () => {
  await withBus({}, async ({ xmpp, bus }) => {
    const logs: LogRecord[] = [];
    await captureLogs(async (records) => {
      bus.publish(inRoom(post("s1", "bob's words")));
      const mallory: Sender = { network: XMPP, id: "occupant-mallory", name: "bob" };
      // Same nick, another occupant: the hole matterbridge leaves open (#1396, #1568).
      bus.publish({ ...inRoom(edit("s2", "s1", "forged")), sender: mallory });
      bus.publish({ ...inRoom(remove("s3", "s1")), sender: mallory });
      await bus.drain();
      logs.push(...records);
    });
    assert.equal(bus.stats.notAuthor, 2);
    assert.equal(xmpp.applied.length, 0);
    const warning = logs.find((r) => r.message.join("").includes("not theirs"));
    assert.ok(warning, "the refusal is logged");
    assert.ok(!JSON.stringify(warning.properties).includes("forged"), "without what was written");
    // Wrong way round too: a Mattermost user cannot edit the copy of Bob's message.
    bus.publish(edit("post-x", "mattermost-1", "mine now"));
    await bus.drain();
    assert.equal(bus.stats.notAuthor, 3);
  });
  await withBus({ mmIncapable: true }, async ({ mm, bus }) => {
    bus.publish(inRoom(post("s1", "bob's words")));
    bus.publish(inRoom(edit("s2", "s1", "bob's better words")));
    await bus.drain();
    assert.deepEqual(mm.sent.map((d) => d.message.text), ["bob's words", `${EDIT_MARK}bob's better words`]);
    assert.equal(bus.stats.notAuthor, 0);
  });
});

Deno.test("a moderated removal needs no authorship; an unmoderated one by the moderator does", async () => {
  await withBus({}, async ({ mm, bus }) => {
    const mod: Sender = { network: XMPP, id: "occupant-mod", name: "mod" };
    bus.publish(inRoom(post("s1")));
    bus.publish({ ...inRoom(remove("s2", "s1")), sender: mod });
    bus.publish({ ...inRoom(remove("s3", "s1")), sender: mod, moderated: true } as BridgeEvent);
    await bus.drain();
    const capable = mm as CapableFakeBridge;
    assert.deepEqual(capable.applied.map((c) => [c.kind, c.delivery.event.eventId]), [["remove", "s3"]]);
    assert.equal(bus.stats.notAuthor, 1);
    // The copy of a Mattermost post in the room: the room's moderators have no say over the post.
    bus.publish(post("post9"));
    await bus.drain();
    bus.publish({ ...inRoom(remove("s4", "xmpp-1")), sender: mod, moderated: true } as BridgeEvent);
    await bus.drain();
    assert.equal(capable.applied.length, 1);
    assert.equal(bus.stats.notAuthor, 2);
  });
});

Deno.test("a message recorded before authors were kept cannot be edited (its author cannot be told)", async () => {
  await withBus({}, async ({ store, xmpp, bus }) => {
    await store.saveLink({
      id: "legacy",
      source: MM,
      refs: {
        [MM]: {
          channel: CHAN,
          ids: ["old-post"],
          parts: [{ postId: "old-post", sender: { kind: "author" } }],
        },
        [XMPP]: { channel: ROOM, ids: ["x1"], parts: [{ messageId: "x1", sender: { kind: "unknown" } }] },
      },
      createdAt: 0,
    });
    bus.publish(edit("old-post@2", "old-post", "new"));
    bus.publish(remove("old-post@del", "old-post"));
    await bus.drain();
    assert.equal(xmpp.applied.length + xmpp.sent.length, 0);
    assert.equal(bus.stats.notAuthor, 2);
  });
});

Deno.test("an edit published while its message is still being delivered is applied once the message is there", async () => {
  await withBus({}, async ({ xmpp, bus }) => {
    xmpp.behave = () => sleep(30);
    bus.publish(post("post1"));
    bus.publish(edit("post1@2", "post1", "fixed"));
    await bus.drain();
    assert.equal(xmpp.applied.length, 1);
    assert.equal(bus.stats.unresolved, 0);
  });
});

Deno.test("a replayed event (same eventId) is handled once, in flight, later, and after a restart", async () => {
  await withBus({ mmIncapable: true }, async ({ mm, xmpp, bus }, restart) => {
    // Capable target: the same edit three times, the second while the first is still being applied.
    let release!: () => void;
    xmpp.behaveOn = () => new Promise<void>((r) => release = r);
    bus.publish(post("post1"));
    bus.publish(edit("post1@2", "post1", "fixed"));
    bus.publish(edit("post1@2", "post1", "fixed"));
    await waitUntil("the first edit to be applied", () => release !== undefined, 3_000);
    xmpp.behaveOn = () => Promise.resolve();
    release();
    await bus.drain();
    bus.publish(edit("post1@2", "post1", "fixed"));
    bus.publish(remove("post1@del", "post1"));
    await bus.drain();
    bus.publish(remove("post1@del", "post1"));
    await bus.drain();
    assert.deepEqual(xmpp.applied.map((c) => c.kind), ["edit", "remove"]);
    assert.equal(bus.stats.duplicatesDropped, 3);

    // Incapable target: the edit became a message, which the id map remembers across a restart.
    bus.publish(inRoom(post("s1")));
    bus.publish(inRoom(edit("s2", "s1", "again")));
    await bus.drain();
    const next = restart();
    next.publish(inRoom(edit("s2", "s1", "again")));
    await next.drain();
    assert.deepEqual(mm.sent.map((d) => d.message.text), ["text of s1", `${EDIT_MARK}again`]);
    assert.equal(next.stats.duplicatesDropped, 1);
  });
});

Deno.test("the room's echo of our applied edit, carrying its delivery id, is dropped as an echo", async () => {
  await withBus({}, async ({ mm, xmpp, bus }) => {
    bus.publish(post("post1"));
    bus.publish(edit("post1@2", "post1", "fixed"));
    await bus.drain();
    const [call] = xmpp.applied;
    // The correction comes back from the room as an edit of the bridged copy, with the id we sent it with.
    bus.publish({ ...inRoom(edit("stanza-c1", "xmpp-1", "fixed")), deliveryId: call.delivery.deliveryId });
    await bus.drain();
    assert.equal(bus.stats.echoesDropped, 1);
    assert.ok(mm instanceof CapableFakeBridge);
    assert.equal(mm.applied.length, 0);
  });
});

Deno.test("a capability call that fails transiently is retried with the same delivery id; a permanent failure is not", async () => {
  await withBus({}, async ({ xmpp, bus }) => {
    const ids: string[] = [];
    xmpp.behaveOn = (d) => {
      ids.push(d.deliveryId);
      if (d.event.kind === "remove") {
        return Promise.reject(new BridgeError("not allowed", { transient: false }));
      }
      return ids.length < 3
        ? Promise.reject(new BridgeError("down", { transient: true }))
        : Promise.resolve();
    };
    bus.publish(post("post1"));
    bus.publish(edit("post1@2", "post1", "fixed"));
    bus.publish(remove("post1@del", "post1"));
    bus.publish(post("post2"));
    await bus.drain();
    assert.equal(new Set(ids.slice(0, 3)).size, 1);
    assert.deepEqual(xmpp.applied.map((c) => c.kind), ["edit"]);
    assert.equal(bus.stats.retried, 2);
    assert.equal(bus.stats.failed, 1);
    assert.deepEqual(xmpp.sent.map((d) => d.message.ids[0]), ["post1", "post2"], "later messages still go");
  });
});

Deno.test("an event of an unknown kind is dropped and logged without its content, and the next message goes", async () => {
  await withBus({}, async ({ xmpp, bus }) => {
    await captureLogs(async (records: LogRecord[]) => {
      const poll = { ...post("poll1", "secret question"), kind: "poll" } as unknown as BridgeEvent;
      assert.equal(await bus.publish(poll), true, "settled, so a read position can move past it");
      assert.equal(await bus.publish({ kind: "message" } as unknown as BridgeEvent), true);
      bus.publish(post("post2", "after the poll"));
      await bus.drain();
      assert.deepEqual(xmpp.sent.map((d) => d.message.text), ["after the poll"]);
      assert.equal(bus.stats.unhandled, 2);
      const warnings = records.filter((r) => r.level === "warning");
      assert.deepEqual(warnings.map((r) => r.properties.problem), ['unknown kind "poll"', "no eventId"]);
      assert.equal(warnings[0].properties.channel, CHAN);
      const aboveDebug = records.filter((r) => r.level !== "debug");
      assert.ok(!JSON.stringify(aboveDebug.map((r) => r.properties)).includes("secret question"));
    });
  });
});

Deno.test("eventProblem accepts every kind whole and names what is missing", () => {
  const whole: BridgeEvent[] = [
    post("p1"),
    edit("e1", "p1", "new"),
    remove("r1", "p1"),
    reactions("x1", "p1", []),
    typing("t1"),
  ];
  for (const event of whole) assert.equal(eventProblem(event), undefined, event.kind);
  const broken: Array<[unknown, string]> = [
    [null, "not an object"],
    [{ ...post("p1"), kind: undefined }, "no kind"],
    [{ ...post("p1"), kind: "poll" }, 'unknown kind "poll"'],
    [{ ...post("p1"), eventId: "" }, "no eventId"],
    [{ ...post("p1"), portal: { network: MM } }, "no portal"],
    [{ ...post("p1"), sender: undefined }, "no sender"],
    [{ ...post("p1"), ids: undefined }, "a message without ids"],
    [{ ...post("p1"), text: undefined }, "a message without text"],
    [{ ...edit("e1", "p1", "new"), text: 3 }, "an edit without text"],
    [{ ...remove("r1", "p1"), targetId: undefined }, "remove without a targetId"],
    [{ ...reactions("x1", "p1", []), emojis: "👍" }, "reactions without emojis"],
    [{ ...typing("t1"), active: "yes" }, "typing without active"],
  ];
  for (const [value, problem] of broken) assert.equal(eventProblem(value), problem);
});

Deno.test("a message its network gave no id (eventId made up at the edge) is still bridged", async () => {
  await withBus({}, async ({ mm, bus }) => {
    bus.publish({ ...inRoom(post("made-up-1", "no id at all")), ids: [] });
    await bus.drain();
    assert.deepEqual(mm.sent.map((d) => d.message.text), ["no id at all"]);
    assert.equal(bus.stats.unhandled, 0);
  });
});

Deno.test("a replayed edit, removal or reactions event is dropped by a new bus on the same store", async () => {
  await withBus({}, async (rig, restart) => {
    assert.equal(await rig.bus.publish(post("post1")), true);
    assert.equal(await rig.bus.publish(edit("post1:edit:2", "post1", "fixed")), true);
    assert.equal(await rig.bus.publish(reactions("post1:r:1", "post1", ["👍"])), true);
    assert.equal(await rig.bus.publish(remove("post1:delete", "post1")), true);
    assert.deepEqual(rig.xmpp.applied.map((c) => c.kind), ["edit", "reactions", "remove"]);
    assert.equal(await rig.store.eventSeen(MM, CHAN, "post1:edit:2"), true, "recorded once settled");

    // A restart: the in-memory memory of settled events is gone, the catch-up fetches the same changes again.
    const bus = restart();
    assert.equal(await bus.publish(edit("post1:edit:2", "post1", "fixed")), true);
    assert.equal(await bus.publish(reactions("post1:r:1", "post1", ["👍"])), true);
    assert.equal(await bus.publish(remove("post1:delete", "post1")), true);
    await bus.drain();
    assert.equal(rig.xmpp.applied.length, 3, "nothing applied twice");
    assert.equal(bus.stats.duplicatesDropped, 3);

    // Recognised by its id, not by what it points at: the next edit of the same message still goes.
    assert.equal(await bus.publish(edit("post1:edit:5", "post1", "fixed again")), true);
    assert.deepEqual(rig.xmpp.applied.map((c) => c.kind), ["edit", "reactions", "remove", "edit"]);
    // The same event id in another channel is another event.
    assert.equal(await rig.store.eventSeen(MM, "other", "post1:edit:2"), false);
  });
});
