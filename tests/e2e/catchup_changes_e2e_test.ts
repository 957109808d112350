/**
 * Edits and deletions made on Mattermost while the bridge is down, or during a websocket gap whose queue the server
 * lost, reach the room at the next catch-up (`?since=` lists every post with `update_at > since`, deleted ones
 * included): one XEP-0308 correction, one XEP-0424 retraction, and nothing again at a later restart. One Prosody for
 * the file, a room per test.
 */
import assert from "node:assert/strict";
import { type Prosody, startProsody } from "../helpers/prosody.ts";
import { startWorld, waitFor, type World } from "../helpers/harness.ts";
import { Store } from "../../src/core/store.ts";
import type { GroupchatMessage } from "../helpers/xmpp_user.ts";
import { NS_CORRECT, NS_RETRACT } from "../../src/xmpp/protocol/ns.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

let shared: Prosody | undefined;
let rooms = 0;

async function world(): Promise<World> {
  shared ??= await startProsody();
  return await startWorld({ sharedProsody: shared, room: `changes${++rooms}` });
}

/** The id a correction points at, if `m` is one. */
function replaces(m: GroupchatMessage): string | undefined {
  return m.stanza.getChild("replace", NS_CORRECT)?.attrs.id;
}

/** The id a retraction points at, if `m` is one. */
function retracts(m: GroupchatMessage): string | undefined {
  return m.stanza.getChild("retract", NS_RETRACT)?.attrs.id;
}

/** What the room got so far: the corrections and the retractions, as the ids they point at. */
function changesIn(w: World): { corrected: string[]; retracted: string[] } {
  const inRoom = w.alice.messages.filter((m) => m.room === w.room);
  return {
    corrected: inRoom.map(replaces).filter((id): id is string => id !== undefined),
    retracted: inRoom.map(retracts).filter((id): id is string => id !== undefined),
  };
}

/** Posts `text` as Bob and waits until the room has it: everything the bridge queued for the room before is there. */
async function sync(w: World, text: string): Promise<void> {
  await w.mm.postAs(w.bob.id, w.channel.id, text);
  await w.alice.waitForMessages(w.room, (m) => m.body?.endsWith(text) ?? false, 1, 20_000);
}

/** Two of Bob's posts, bridged: the room's copies. */
async function twoBridgedPosts(w: World) {
  const keep = await w.mm.postAs(w.bob.id, w.channel.id, "helo wrold");
  const drop = await w.mm.postAs(w.bob.id, w.channel.id, "wrong room");
  const [keptCopy, droppedCopy] = await w.alice.waitForMessages(
    w.room,
    (m) => (m.body?.includes("helo wrold") || m.body?.includes("wrong room")) ?? false,
    2,
    15_000,
  );
  return { keep, drop, keptCopy, droppedCopy };
}

for (const mode of ["relay", "ibr"] as const) {
  Deno.test(
    `${mode}: an edit and a deletion made while the bridge is down arrive after its restart, once, and never again`,
    opts,
    async () => {
      // In ibr mode the correction and retraction come from Bob's ghost, the JID that said the original.
      const env: Record<string, string> = mode === "ibr" ? { BRIDGE_GHOST_MODE: "ibr" } : {};
      const w = await world();
      try {
        const first = await w.startBridge(env);
        const { keep, drop, keptCopy, droppedCopy } = await twoBridgedPosts(w);
        await first.stop();

        await w.mm.editAs(w.bob.id, keep.id, "hello world");
        await w.mm.deleteAs(w.bob.id, drop.id);

        const second = await w.startBridge(env);
        const [fix] = await w.alice.waitForMessages(w.room, (m) => replaces(m) !== undefined, 1, 20_000);
        assert.ok(fix.body?.endsWith("hello world"), fix.body);
        assert.equal(fix.from, keptCopy.from, "from the JID that said the original");
        await w.alice.waitForMessages(w.room, (m) => retracts(m) !== undefined, 1, 20_000);
        await sync(w, "after the first restart");
        assert.deepEqual(changesIn(w), { corrected: [keptCopy.id], retracted: [droppedCopy.stanzaId] });
        await second.stop();
        // As if the room had been read on for two more minutes: the XMPP side's own catch-up (its archive from its
        // read position, less a minute) no longer shows the bridge its correction and retraction, so only the core's
        // record of handled events can tell that they went. Mattermost's read position stays where it was.
        const store = await Store.open(w.kvPath);
        await store.setCursors("xmpp", new Map([[w.room, Date.now() + 120_000]]));
        store.close();

        // The next start fetches the same edit and deletion again: the core knows them and sends nothing.
        await w.startBridge(env);
        await sync(w, "after the second restart");
        assert.deepEqual(changesIn(w), { corrected: [keptCopy.id], retracted: [droppedCopy.stanzaId] });
        // Nothing else was bridged twice either.
        const bodies = w.alice.messages.filter((m) => m.room === w.room && m.nick !== "alice").map((m) =>
          m.body
        );
        assert.equal(bodies.filter((b) => b?.includes("helo wrold")).length, 1, bodies.join("\n"));
      } finally {
        await w.stop();
      }
    },
  );
}

Deno.test(
  "an edit and a deletion made during a websocket gap whose queue the server lost arrive once",
  opts,
  async () => {
    const w = await world();
    try {
      await w.startBridge();
      const { keep, drop, keptCopy, droppedCopy } = await twoBridgedPosts(w);
      // A server restart: every websocket session forgotten, so nothing is replayed on reconnect.
      w.mm.refuseWebsockets(true);
      w.mm.restartWebsocketSessions();
      await waitFor(() => w.mm.websocketCount(w.mm.bot.id) === 0, "the websocket to drop");
      await w.mm.editAs(w.bob.id, keep.id, "hello world");
      await w.mm.deleteAs(w.bob.id, drop.id);
      w.mm.refuseWebsockets(false);

      const [fix] = await w.alice.waitForMessages(w.room, (m) => replaces(m) !== undefined, 1, 20_000);
      assert.ok(fix.body?.endsWith("hello world"), fix.body);
      await w.alice.waitForMessages(w.room, (m) => retracts(m) !== undefined, 1, 20_000);
      await sync(w, "after the gap");
      assert.deepEqual(changesIn(w), { corrected: [keptCopy.id], retracted: [droppedCopy.stanzaId] });
    } finally {
      await w.stop();
    }
  },
);

Deno.test("stop the shared Prosody", opts, async () => {
  await shared?.stop();
});
