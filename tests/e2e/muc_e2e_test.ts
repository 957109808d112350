import assert from "node:assert/strict";
import { xml } from "@xmpp/client-core";
import type { LogRecord } from "@logtape/logtape";
import { setupLogging, stopLogging } from "../../src/log.ts";
import { postsMatching, startWorld, waitFor, type World } from "../helpers/harness.ts";
import type { Element } from "@xmpp/xml";

const opts = { sanitizeOps: false, sanitizeResources: false };
const NS_MUC_ADMIN = "http://jabber.org/protocol/muc#admin";
const NS_MUC_USER = "http://jabber.org/protocol/muc#user";

/** alice (the room's owner: she created it) changes an occupant's role or a JID's affiliation. */
async function administer(w: World, item: Record<string, string>): Promise<void> {
  await w.alice.iq(
    xml("iq", { type: "set", to: w.room }, xml("query", { xmlns: NS_MUC_ADMIN }, xml("item", item))),
  );
}

/** Records the presences of the bridge's occupant ("bridge") that alice sees in the room. */
function watchBridgeOccupant(w: World): Array<{ available: boolean; codes: string[] }> {
  const seen: Array<{ available: boolean; codes: string[] }> = [];
  w.alice.onStanza((s: Element) => {
    if (!s.is("presence") || s.attrs.from !== `${w.room}/bridge`) return;
    const codes = s.getChild("x", NS_MUC_USER)?.getChildren("status").map((c: Element) =>
      String(c.attrs.code)
    );
    seen.push({ available: s.attrs.type !== "unavailable", codes: codes ?? [] });
  });
  return seen;
}

/** Proves both directions work: one message each way arrives. */
async function bothWays(w: World, tag: string): Promise<void> {
  await w.mm.postAs(w.bob.id, w.channel.id, `mm ${tag}`);
  await w.alice.waitForMessages(w.room, (m) => m.body === `<bob> mm ${tag}`, 1, 10_000);
  await w.alice.sendGroupchat(w.room, `xmpp ${tag}`);
  await postsMatching(w.mm, w.channel.id, (p) => p.message === `xmpp ${tag}`, 1, 10_000);
}

Deno.test("a kicked bridge rejoins, and both directions work again within seconds", opts, async () => {
  const w = await startWorld();
  try {
    await w.startBridge();
    await bothWays(w, "before");
    const presences = watchBridgeOccupant(w);
    await administer(w, { nick: "bridge", role: "none" });
    await waitFor(() => presences.some((p) => !p.available && p.codes.includes("307")), "the kick");
    // Posted while the bridge is out of the room: it is delivered once the bridge is back, not lost.
    await w.mm.postAs(w.bob.id, w.channel.id, "mm while kicked");
    await waitFor(() => presences.some((p) => p.available), "the bridge to rejoin", 10_000);
    await w.alice.waitForMessages(w.room, (m) => m.body === "<bob> mm while kicked", 1, 10_000);
    await bothWays(w, "after");
  } finally {
    await w.stop();
  }
});

Deno.test(
  "a bridge kicked again right after rejoining waits twice as long before the next rejoin",
  opts,
  async () => {
    const records: LogRecord[] = [];
    await setupLogging({ level: "info", format: "json", sink: (r) => records.push(r) });
    const w = await startWorld();
    try {
      await w.startBridge();
      const presences = watchBridgeOccupant(w);
      const outMs: number[] = [];
      for (let kick = 1; kick <= 2; kick++) {
        await administer(w, { nick: "bridge", role: "none" });
        await waitFor(() => presences.filter((p) => p.codes.includes("307")).length >= kick, `kick ${kick}`);
        const kickedAt = performance.now();
        await waitFor(() => presences.filter((p) => p.available).length >= kick, `rejoin ${kick}`, 10_000);
        outMs.push(performance.now() - kickedAt);
      }
      // A lower bound only: after the second kick the bridge really stayed out about 4 s, not 2 s.
      assert.ok(outMs[1] >= 3_500, `out of the room for ${Math.round(outMs[1])} ms after the second kick`);
      const waits = records
        .filter((r) => r.message.join("").startsWith("Rejoining"))
        .map((r) => r.properties.waitMs);
      assert.deepEqual(waits, [2_000, 4_000]);
      await bothWays(w, "after two kicks");
    } finally {
      await w.stop();
      await stopLogging();
    }
  },
);

Deno.test("a banned bridge does not rejoin and says so in one clear log line", opts, async () => {
  const records: LogRecord[] = [];
  await setupLogging({ level: "info", format: "json", sink: (r) => records.push(r) });
  const w = await startWorld();
  try {
    await w.startBridge();
    await bothWays(w, "before");
    const presences = watchBridgeOccupant(w);
    await administer(w, { jid: "bridge@localhost", affiliation: "outcast" });
    await waitFor(() => presences.some((p) => !p.available && p.codes.includes("301")), "the ban");
    await waitFor(
      () => records.some((r) => r.level === "error" && r.message.join("").startsWith("Banned from")),
      "the ban to be logged",
    );
    const line = records.find((r) => r.message.join("").startsWith("Banned from"))!;
    assert.equal(line.properties.room, w.room);
    assert.match(
      line.message.join(""),
      /not rejoining; lift the ban on bridge@localhost, then restart the bridge/,
    );
    // A kick is followed by a rejoin after 2 s; give a ban twice that before concluding there is none.
    await new Promise((r) => setTimeout(r, 4_000));
    const joins = w.prosody.mucJoinRequests().filter((j) => j.from.startsWith("bridge@localhost/"));
    assert.equal(joins.length, 1, "the bridge tried to join again after the ban");
    assert.ok(!presences.some((p) => p.available), "the bridge is back in the room");
  } finally {
    await w.stop();
    await stopLogging();
  }
});
