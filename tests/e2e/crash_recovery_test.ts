/**
 * The bridge as its own process, killed with SIGKILL in the middle of a burst and started again: nothing is lost,
 * nothing is doubled, and the order holds. What it had not delivered is still in the room's archive (XMPP) or the
 * channel (Mattermost); a channel's read position moves past a message only once it is delivered, and a replayed
 * delivery carries the same id, so the server recognises a create whose answer the crash lost.
 */
import assert from "node:assert/strict";
import { startWorld, waitFor } from "../helpers/harness.ts";
import { spawnBridge } from "../helpers/bridge_process.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "SIGKILL in the middle of a 100-message burst from XMPP: after a restart, 0 lost, 0 doubled, in order",
  opts,
  async () => {
    const w = await startWorld();
    try {
      let bridge = spawnBridge(w.env(), w.httpPort);
      try {
        await bridge.waitForHealth(200);
        const burst = Array.from({ length: 100 }, (_, i) => `burst ${String(i).padStart(3, "0")}`);
        const bridged = () => w.mm.posts(w.channel.id).filter((p) => p.message.startsWith("burst "));
        const sending = (async () => {
          for (const text of burst) await w.alice.sendGroupchat(w.room, text);
        })();
        // Kill it once some, but not all, of the burst made it across.
        await waitFor(() => bridged().length >= 25, "a quarter of the burst on Mattermost", 20_000);
        assert.equal(await bridge.kill(), 137);
        const atKill = bridged().length;
        await sending;
        assert.ok(atKill < 100, `the whole burst was across before the kill (${atKill})`);

        bridge = spawnBridge(w.env(), w.httpPort);
        await bridge.waitForHealth(200);
        await waitFor(() => bridged().length >= 100, "the whole burst on Mattermost", 30_000).catch((err) => {
          throw new Error(`${err.message}: have ${bridged().length}`);
        });
        // Anything doubled would arrive just after: give it the time a catch-up takes, then count.
        await w.alice.sendGroupchat(w.room, "sentinel");
        await waitFor(
          () => w.mm.posts(w.channel.id).some((p) => p.message === "sentinel"),
          "the sentinel",
          10_000,
        );
        const got = bridged().map((p) => p.message);
        const lost = burst.filter((t) => !got.includes(t));
        const doubled = got.length - new Set(got).size;
        console.log(
          `SIGKILL mid-burst: ${atKill} of 100 across at the kill; after the restart ${lost.length} lost, ` +
            `${doubled} doubled, ${got.length} posts`,
        );
        assert.deepEqual(lost, []);
        assert.equal(doubled, 0, got.join("\n"));
        assert.deepEqual(got, burst, "out of order");
      } finally {
        await bridge.stop();
      }
    } finally {
      await w.stop();
    }
  },
);
