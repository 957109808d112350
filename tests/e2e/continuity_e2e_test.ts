/**
 * The bridge as its own process, through the interruptions an operator meets: down while both sides talk, stopped
 * and started while people keep talking, and a Mattermost websocket gap with the server's queue kept and with it
 * lost. Each test counts and prints what arrived on each side: 0 lost, 0 doubled, in order.
 *
 * One Prosody serves every test of the file; each test has its own room (an archive outlives its room).
 */
import assert from "node:assert/strict";
import { sharedWorlds, waitFor, type World } from "../helpers/harness.ts";
import { type BridgeProcess, spawnReadyBridge } from "../helpers/bridge_process.ts";
import { tally } from "../helpers/tally.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

const worlds = sharedWorlds("continuity");

/** Runs `body` in a world of its own (own room, stand-in and state) on the file's Prosody. */
function inWorld(body: (w: World) => Promise<void>): Promise<void> {
  return worlds.run(body);
}

/** What Mattermost users said, as the room shows it (relayed by the bridge). */
function inRoom(w: World): string[] {
  return w.alice.messages.filter((m) => m.room === w.room && m.nick === "bridge").map((m) =>
    m.body?.replace(/^<bob> /, "") ?? ""
  );
}

/** What the room said, as the channel shows it (posted by the bridge's bot). */
function inChannel(w: World): string[] {
  return w.mm.posts(w.channel.id).filter((p) => p.user_id === w.mm.bot.id).map((p) => p.message);
}

/** Waits until every one of `said` shows in `shown()`, then says "sentinel" both ways so that a late double shows. */
async function settle(w: World, said: { mm: string[]; xmpp: string[] }, timeoutMs = 20_000): Promise<void> {
  const all = (shown: string[], want: string[]) => want.every((t) => shown.includes(t));
  await waitFor(() => all(inRoom(w), said.mm) && all(inChannel(w), said.xmpp), "everything said", timeoutMs)
    .catch((err) => {
      throw new Error(
        `${err.message}\n${tally(said.mm, inRoom(w)).line("Mattermost → room")}\n` +
          `${tally(said.xmpp, inChannel(w)).line("room → Mattermost")}`,
      );
    });
  await w.mm.postAs(w.bob.id, w.channel.id, "sentinel");
  await w.alice.sendGroupchat(w.room, "sentinel");
  await waitFor(() => inRoom(w).includes("sentinel") && inChannel(w).includes("sentinel"), "the sentinels");
}

/** Prints and asserts 0 lost, 0 doubled, in order on both sides. */
function assertComplete(w: World, label: string, said: { mm: string[]; xmpp: string[] }): void {
  const toRoom = tally(said.mm, inRoom(w));
  const toChannel = tally(said.xmpp, inChannel(w));
  console.log(toRoom.line(`${label}, Mattermost → room`));
  if (said.xmpp.length > 0) console.log(toChannel.line(`${label}, room → Mattermost`));
  for (const [t, arrived] of [[toRoom, inRoom(w)], [toChannel, inChannel(w)]] as const) {
    assert.deepEqual(t.lost, []);
    assert.equal(t.doubled, 0);
    assert.ok(t.inOrder, `out of order:\n${arrived.join("\n")}`);
  }
}

function started(w: World): Promise<BridgeProcess> {
  return spawnReadyBridge(w.env(), w.httpPort);
}

Deno.test(
  "the bridge down while 20 messages are said on each side: after its restart 0 lost, 0 doubled, in order",
  opts,
  () =>
    inWorld(async (w) => {
      let bridge = await started(w);
      try {
        await w.mm.postAs(w.bob.id, w.channel.id, "warm-up");
        await w.alice.sendGroupchat(w.room, "warm-up");
        await waitFor(() => inRoom(w).includes("warm-up") && inChannel(w).includes("warm-up"), "warm-up");
        assert.equal(await bridge.stop(), 0);

        const said = { mm: [] as string[], xmpp: [] as string[] };
        for (let i = 0; i < 20; i++) {
          said.mm.push(`said on Mattermost while down ${i}`);
          await w.mm.postAs(w.bob.id, w.channel.id, said.mm[i]);
          said.xmpp.push(`said in the room while down ${i}`);
          await w.alice.sendGroupchat(w.room, said.xmpp[i]);
        }
        bridge = await started(w);
        await settle(w, said);
        assertComplete(w, "down while both sides talk", said);
        assert.equal(inRoom(w).filter((t) => t === "warm-up").length, 1, "the warm-up came again");
        assert.equal(inChannel(w).filter((t) => t === "warm-up").length, 1, "the warm-up came again");
      } finally {
        await bridge.stop();
      }
    }),
);

Deno.test(
  "the bridge stopped and started again while users keep talking: 0 lost, 0 doubled, in order",
  opts,
  () =>
    inWorld(async (w) => {
      let bridge = await started(w);
      try {
        const said = { mm: [] as string[], xmpp: [] as string[] };
        let talking = true;
        // One person on each side, a message every 100 ms, until told to stop.
        const talk = async (side: "mm" | "xmpp") => {
          for (let i = 0; talking; i++) {
            const text = `${side === "mm" ? "Mattermost" : "room"} talk ${String(i).padStart(3, "0")}`;
            said[side].push(text);
            if (side === "mm") await w.mm.postAs(w.bob.id, w.channel.id, text);
            else await w.alice.sendGroupchat(w.room, text);
            await new Promise((r) => setTimeout(r, 100));
          }
        };
        const talkers = Promise.all([talk("mm"), talk("xmpp")]);
        try {
          await waitFor(() => inRoom(w).length >= 5 && inChannel(w).length >= 5, "some talk across", 10_000);
          assert.equal(await bridge.stop(), 0);
          const atStop = { mm: said.mm.length, xmpp: said.xmpp.length };
          bridge = await started(w);
          const atStart = { mm: said.mm.length, xmpp: said.xmpp.length };
          // Keep talking a little after the start too.
          const after = said.mm.length + 10;
          await waitFor(() => said.mm.length >= after, "talk after the start", 10_000);
          console.log(
            `stopped after ${atStop.mm}/${atStop.xmpp} messages (Mattermost/room), back after ` +
              `${atStart.mm}/${atStart.xmpp}`,
          );
          assert.ok(atStart.mm > atStop.mm && atStart.xmpp > atStop.xmpp, "nobody talked during the gap");
        } finally {
          talking = false;
          await talkers;
        }
        await settle(w, said);
        assertComplete(w, "stop and start while talking", said);
      } finally {
        await bridge.stop();
      }
    }),
);

/**
 * Drops the bridge's websocket and refuses its reconnects while bob posts 20 messages, then lets it back; with
 * `forgetQueue` the server has forgotten the connection by then (its reaper ran), so a new hello follows.
 */
async function websocketGap(w: World, label: string, forgetQueue: boolean): Promise<void> {
  const bridge = await started(w);
  try {
    await w.mm.postAs(w.bob.id, w.channel.id, "warm-up");
    await waitFor(() => inRoom(w).includes("warm-up"), "warm-up");
    // The server stays up but its proxy refuses upgrades for a while: the connection is kept, with its queue.
    // Refused from before the drop, so every post below is made while the bridge cannot be connected.
    w.mm.refuseWebsockets(true);
    w.mm.dropWebsockets();
    const said = { mm: Array.from({ length: 20 }, (_, i) => `said in the gap ${i}`), xmpp: [] };
    for (const text of said.mm) await w.mm.postAs(w.bob.id, w.channel.id, text);
    // The reaper forgets a dropped connection idle for over 5 minutes: its queue is gone, a new hello follows.
    if (forgetQueue) w.mm.runWebsocketReaper(Date.now() + 6 * 60_000);
    // Let back in before its first reconnect (3 s after the drop) when the posts were quick, else at a later one.
    w.mm.refuseWebsockets(false);
    await settle(w, said);
    assertComplete(w, label, said);
  } finally {
    await bridge.stop();
  }
}

Deno.test(
  "a websocket gap in which the server keeps the bridge's queue: resumed, 0 lost, 0 doubled, in order",
  opts,
  () => inWorld((w) => websocketGap(w, "websocket gap, queue kept", false)),
);

Deno.test(
  "a websocket gap after which the server has forgotten the bridge's queue: caught up, 0 lost, 0 doubled, in order",
  opts,
  () => inWorld((w) => websocketGap(w, "websocket gap, queue lost", true)),
);

worlds.stopAfterAll();
