/**
 * The XMPP connector against a real Prosody: a late reflection whose alias cannot be stored, a stop whose ghost
 * provider fails, reconnection backoff, pipelined dispatches (relay and component puppets), and bounces.
 *
 * One Prosody serves every test of the file; each test has rooms of its own.
 */
import assert from "node:assert/strict";
import type { SentRefs } from "../../src/core/message.ts";
import { fileProsody, waitFor } from "../helpers/harness.ts";
import { quietContext, toRoom, xmppConnectorOn } from "../helpers/connector_kit.ts";
import { connectXmppUser } from "../helpers/xmpp_user.ts";
import type { Element } from "@xmpp/xml";
import type { GhostProvider } from "../../src/xmpp/intents/ghosts.ts";
import { ComponentPuppets } from "../../src/xmpp/intents/puppets.ts";
import type { XmppBridge } from "../../src/xmpp/connector.ts";

const PASSWORD = "late-reflection-pw-31";
const shared = fileProsody("xmpp connector");

/** The file's Prosody with the bridge's and alice's accounts. */
async function prosodyWithAccounts() {
  const prosody = await shared.get();
  await shared.register("bridge", PASSWORD);
  await shared.register("alice", PASSWORD);
  return prosody;
}

Deno.test("a late reflection whose alias cannot be stored is logged, not an unhandled rejection", async () => {
  const prosody = await prosodyWithAccounts();
  // The waiter gives up before the room can reflect: the reflection then comes late.
  const bridge = await xmppConnectorOn(prosody, PASSWORD, { reflectionTimeoutMs: 1 });
  const aliases: string[] = [];
  const ctx = quietContext({
    addMessageAlias: (_room, knownId) => {
      aliases.push(knownId);
      return Promise.reject(new Error("the store is closed"));
    },
  });
  const room = `late@${prosody.mucDomain}`;
  try {
    await bridge.start(ctx);
    await waitFor(() => bridge.health().connected, "the session");
    await bridge.joinChannel(room);
    const dm = toRoom(room, 1, "hello");
    await assert.rejects(bridge.send(dm));
    // An unhandled rejection fails the test (and would end the bridge's process).
    await waitFor(() => aliases.includes(dm.deliveryId), "the late reflection");
  } finally {
    await bridge.stop();
  }
});

/** A ghost provider with no ghosts whose `stop` is `stop`. */
function ghostsStopping(mode: string, stop: () => Promise<void>): GhostProvider {
  return {
    mode,
    start: () => Promise.resolve(),
    intentFor: () => Promise.resolve(null),
    presentIn: () => undefined,
    setStatus: () => Promise.resolve(),
    isGhost: () => false,
    retire: () => Promise.resolve(),
    leaveRoom: () => Promise.resolve(),
    stop,
  };
}

/**
 * A connector with `ghosts`, in a room of its own that alice is in, started and joined; `stopping` runs with it, told
 * when alice sees the bridge's occupant leave.
 */
async function stopInRoom(
  name: string,
  ghosts: GhostProvider,
  stopping: (bridge: XmppBridge, bridgeLeft: () => boolean) => Promise<void>,
): Promise<void> {
  const prosody = await prosodyWithAccounts();
  const alice = await connectXmppUser(prosody, "alice", PASSWORD, { resource: "test" });
  const room = `${name}@${prosody.mucDomain}`;
  const bridge = await xmppConnectorOn(prosody, PASSWORD, { ghosts });
  let left = false;
  try {
    await alice.joinRoom(room, "alice");
    alice.onStanza((s: Element) => {
      if (s.is("presence") && s.attrs.from === `${room}/bridge` && s.attrs.type === "unavailable") {
        left = true;
      }
    });
    await bridge.start(quietContext());
    await waitFor(() => bridge.health().connected, "the session");
    await bridge.joinChannel(room);
    await stopping(bridge, () => left);
  } finally {
    await bridge.stop().catch(() => {});
    await alice.stop();
  }
}

Deno.test("stop() ends the bridge's XMPP session even when its ghost provider fails to stop", async () => {
  const ghosts = ghostsStopping("failing", () => Promise.reject(new Error("the ghosts could not stop")));
  await stopInRoom("stop", ghosts, async (bridge, bridgeLeft) => {
    await assert.rejects(bridge.stop(), /the ghosts could not stop/);
    await waitFor(bridgeLeft, "the bridge's occupant to leave the room");
    assert.equal(bridge.health().detail, "stopped");
  });
});

Deno.test("stop() ends the bridge's own session while its ghosts are still stopping, not after them", async () => {
  let released = false;
  let resolveStop = () => {};
  const release = () => {
    released = true;
    resolveStop();
  };
  // As ghosts waiting for their rooms to confirm their departures.
  const ghosts = ghostsStopping(
    "slow",
    () => released ? Promise.resolve() : new Promise<void>((resolve) => resolveStop = resolve),
  );
  await stopInRoom("stop-side", ghosts, async (bridge, bridgeLeft) => {
    try {
      const stopped = bridge.stop();
      await waitFor(bridgeLeft, "the bridge's occupant to leave while the ghosts are stopping");
      release();
      await stopped;
      assert.equal(bridge.health().detail, "stopped");
    } finally {
      // Before the last stop, which would wait for the ghosts.
      release();
    }
  });
});

Deno.test("while the server is down the session retries after 1 s, 2 s, 4 s …, and from 1 s again once back", async () => {
  const prosody = await prosodyWithAccounts();
  const bridge = await xmppConnectorOn(prosody, PASSWORD);
  /** The distinct waits /healthz has announced so far, in order. */
  const announced: number[] = [];
  const watch = setInterval(() => {
    const wait = Number(/next attempt in ([\d.]+) s/.exec(bridge.health().detail)?.[1]);
    if (wait && announced.at(-1) !== wait) announced.push(wait);
  }, 20);
  try {
    await bridge.start(quietContext());
    await waitFor(() => bridge.health().connected, "the session");
    await prosody.kill();
    await waitFor(() => announced.length >= 3, "three failed attempts", 20_000);
    assert.deepEqual(announced.slice(0, 3), [1, 2, 4]);
    await prosody.restart();
    await waitFor(() => bridge.health().connected, "the session back", 20_000);
    announced.length = 0;
    await prosody.kill();
    await waitFor(() => announced.length >= 1, "the first attempt after the second outage", 20_000);
    assert.equal(announced[0], 1);
  } finally {
    clearInterval(watch);
    await bridge.stop();
    // The next tests share this Prosody.
    await prosody.restart();
  }
});

/**
 * Dispatches `dms` one after the other as the core does (each once the last dispatch resolved) and counts those
 * whose confirmation had already come when their dispatch resolved. Only microtasks run in between, no socket read:
 * a dispatch that does not wait for the room's reflection cannot have it yet.
 */
async function dispatchAll(bridge: XmppBridge, dms: ReturnType<typeof toRoom>[]) {
  const confirmations: Promise<SentRefs>[] = [];
  let confirmedAtDispatch = 0;
  for (const dm of dms) {
    const { confirmed } = await bridge.dispatch(dm);
    let settled = false;
    confirmed.then(() => settled = true, () => settled = true);
    for (let k = 0; k < 5; k++) await Promise.resolve();
    if (settled) confirmedAtDispatch++;
    confirmations.push(confirmed);
  }
  return { confirmations, confirmedAtDispatch };
}

Deno.test("60 dispatches, none confirmed when written, all reach the room in order, each confirmed with its stanza-id", async () => {
  const prosody = await prosodyWithAccounts();
  const alice = await connectXmppUser(prosody, "alice", PASSWORD, { resource: "test" });
  const bridge = await xmppConnectorOn(prosody, PASSWORD);
  const room = `pipeline@${prosody.mucDomain}`;
  const n = 60;
  try {
    await alice.joinRoom(room, "alice", { maxstanzas: 0 });
    await bridge.start(quietContext());
    await waitFor(() => bridge.health().connected, "the session");
    await bridge.joinChannel(room);
    const dms = Array.from({ length: n }, (_, i) => toRoom(room, i, `pipelined ${i}`));
    const { confirmations, confirmedAtDispatch } = await dispatchAll(bridge, dms);
    assert.equal(confirmedAtDispatch, 0, "dispatch waited for reflections");
    const refs = await Promise.all(confirmations);
    for (const r of refs) assert.equal(r.ids.length, 2, "origin-id and the room's stanza-id");
    const seen = await alice.waitForMessages(room, (m) => m.nick === "bridge", n);
    assert.deepEqual(seen.map((m) => m.body), Array.from({ length: n }, (_, i) => `<bob> pipelined ${i}`));
    assert.deepEqual(seen.map((m) => m.stanzaId), refs.map((r) => r.ids[1]));
  } finally {
    await bridge.stop();
    await alice.stop();
  }
});

Deno.test("component puppets share one stream: 40 dispatches by two puppets go ahead of their reflections, in order", async () => {
  const prosody = await prosodyWithAccounts();
  const alice = await connectXmppUser(prosody, "alice", PASSWORD, { resource: "test" });
  const ghosts = new ComponentPuppets({
    service: prosody.componentService,
    domain: prosody.componentDomain,
    secret: prosody.componentSecret,
  });
  const bridge = await xmppConnectorOn(prosody, PASSWORD, { ghosts });
  const room = `puppets-pipeline@${prosody.mucDomain}`;
  const authors = [{ id: "u-bob", name: "bob" }, { id: "u-carol", name: "carol" }];
  const n = 40;
  try {
    await alice.joinRoom(room, "alice", { maxstanzas: 0 });
    await bridge.start(quietContext());
    await waitFor(() => bridge.health().connected, "the session");
    await bridge.joinChannel(room);
    // Turns of three, so that the author changes within the window and on the stream.
    const dms = Array.from(
      { length: n },
      (_, i) => toRoom(room, i, `puppet ${i}`, authors[Math.floor(i / 3) % 2]),
    );
    const { confirmations, confirmedAtDispatch } = await dispatchAll(bridge, dms);
    assert.equal(confirmedAtDispatch, 0, "dispatch waited for the puppets' reflections");
    const refs = await Promise.all(confirmations);
    for (const r of refs) assert.equal(r.ids.length, 2, "origin-id and the room's stanza-id");
    assert.deepEqual(
      refs.map((r) => r.parts?.[0].sender),
      dms.map((dm) => ({ kind: "puppet", id: `${dm.message.sender.name}@${prosody.componentDomain}` })),
    );
    const seen = await alice.waitForMessages(room, (m) => m.nick === "bob" || m.nick === "carol", n);
    assert.deepEqual(
      seen.map((m) => `${m.nick}: ${m.body}`),
      dms.map((dm) => `${dm.message.sender.name}: ${dm.message.text}`),
    );
    assert.deepEqual(seen.map((m) => m.stanzaId), refs.map((r) => r.ids[1]));
  } finally {
    await bridge.stop();
    await alice.stop();
  }
});

Deno.test("a window of 32 bounced messages starts one rejoin of the room, not 32", async () => {
  const prosody = await prosodyWithAccounts();
  const alice = await connectXmppUser(prosody, "alice", PASSWORD, { resource: "test" });
  const bridge = await xmppConnectorOn(prosody, PASSWORD);
  const room = `bounces@${prosody.mucDomain}`;
  const joins = () => prosody.mucJoinRequests().filter((r) => r.to === `${room}/bridge`).length;
  try {
    await alice.joinRoom(room, "alice", { maxstanzas: 0 });
    await bridge.start(quietContext());
    await waitFor(() => bridge.health().connected, "the session");
    // The connector believes it is in the room, but the room has no such occupant (as after a kick whose presence
    // was lost): the room bounces every message it sends.
    bridge["muc"].rooms.set(room, { wantedNick: "bridge", nick: "bridge", joined: true });
    const dms = Array.from({ length: 32 }, (_, i) => toRoom(room, i, `bounced ${i}`));
    const { confirmations } = await dispatchAll(bridge, dms);
    const outcomes = await Promise.allSettled(confirmations);
    assert.ok(
      outcomes.every((o) => o.status === "rejected" && /refused a message/.test(String(o.reason))),
      "every message bounced",
    );
    // The rejoin is done once a message gets through again; by then every rejoin started has sent its join.
    await waitFor(
      () => bridge["muc"].nickIn(room) !== undefined && !bridge["catchingUp"].has(room),
      "the rejoin",
    );
    await bridge.send(toRoom(room, 99, "after the rejoin"));
    await alice.waitForMessages(room, (m) => m.body === "<bob> after the rejoin", 1);
    assert.equal(joins(), 1, "join requests after 32 bounces");
  } finally {
    await bridge.stop();
    await alice.stop();
  }
});

shared.stopAfterAll();
