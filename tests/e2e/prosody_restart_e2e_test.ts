/**
 * Prosody killed (SIGKILL) and started again on the same ports and data while a Mattermost user keeps posting; the
 * bridge runs as its own process. Every post arrives in the room once, in order, counted in the room's archive
 * (the test's own occupant is cut off by the crash too, so it cannot count live).
 */
import assert from "node:assert/strict";
import { PASSWORD, startWorld, waitFor } from "../helpers/harness.ts";
import { spawnBridge } from "../helpers/bridge_process.ts";
import { readRoomArchive } from "../helpers/room_archive.ts";
import { tally } from "../helpers/tally.ts";
import { connectXmppUser } from "../helpers/xmpp_user.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "Prosody killed and restarted while a Mattermost user posts: every post in the room once, in order",
  opts,
  async () => {
    const w = await startWorld();
    try {
      const bridge = spawnBridge(w.env(), w.httpPort);
      try {
        await bridge.waitForHealth(200, { ready: true });
        await w.mm.postAs(w.bob.id, w.channel.id, "warm-up");
        await w.alice.waitForMessages(w.room, (m) => m.body === "<bob> warm-up", 1, 10_000);

        const said: string[] = [];
        let posting = true;
        const poster = (async () => {
          for (let i = 0; posting; i++) {
            said.push(`posted ${String(i).padStart(3, "0")}`);
            await w.mm.postAs(w.bob.id, w.channel.id, said[i]);
            await new Promise((r) => setTimeout(r, 100));
          }
        })();
        let atKill = 0, atRestart = 0;
        try {
          await waitFor(() => said.length >= 5, "a few posts");
          await w.prosody.kill();
          atKill = said.length;
          // /healthz says which side is down, and why.
          const down = await bridge.waitForHealth(503, { timeoutMs: 10_000 });
          const xmpp = down.bridges.find((b) => b.network === "xmpp")!;
          assert.equal(xmpp.connected, false);
          assert.match(xmpp.detail, /disconnected|offline|reconnecting/);
          await waitFor(() => said.length >= atKill + 10, "posts during the outage", 10_000);
          await w.prosody.restart();
          atRestart = said.length;
          await bridge.waitForHealth(200, { timeoutMs: 20_000 });
          await waitFor(() => said.length >= atRestart + 5, "posts after the restart", 10_000);
        } finally {
          posting = false;
          await poster;
        }

        const reader = await connectXmppUser(w.prosody, "alice", PASSWORD, "reader");
        try {
          await reader.joinRoom(w.room, "reader", { maxstanzas: 0 });
          const inRoom = async () =>
            (await readRoomArchive(reader, w.room)).filter((m) => m.nick === "bridge").map((m) =>
              m.body?.replace(/^<bob> /, "") ?? ""
            );
          let arrived: string[] = [];
          await waitFor(
            async () => {
              arrived = await inRoom();
              return said.every((t) => arrived.includes(t));
            },
            "every post in the room's archive",
            20_000,
          ).catch((err) => {
            throw new Error(`${err.message}: ${tally(said, arrived).line("Mattermost → room")}`);
          });
          // A double would come with the last ones: post once more and count after it arrived.
          await w.mm.postAs(w.bob.id, w.channel.id, "sentinel");
          await waitFor(async () => (arrived = await inRoom()).includes("sentinel"), "the sentinel", 10_000);
          const t = tally(said, arrived);
          console.log(
            `Prosody killed after post ${atKill}, back after post ${atRestart}: ` +
              t.line("Mattermost → room (archive)"),
          );
          assert.deepEqual(t.lost, []);
          assert.equal(t.doubled, 0, arrived.join("\n"));
          assert.ok(t.inOrder, `out of order:\n${arrived.join("\n")}`);
          assert.equal(arrived.filter((x) => x === "warm-up").length, 1, "the warm-up came again");
        } finally {
          await reader.stop();
        }
      } finally {
        await bridge.stop();
      }
    } finally {
      await w.stop();
    }
  },
);
