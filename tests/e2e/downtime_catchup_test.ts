/**
 * Posts made on Mattermost while the bridge is down are bridged when it starts again: the position each channel
 * was read to is kept in the state file (Deno KV), and the start fetches what came after it, in order, once.
 */
import assert from "node:assert/strict";
import { postsMatching, startWorld } from "../helpers/harness.ts";
import { captureLogs } from "../helpers/log_capture.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "posts made while the bridge is down arrive after its restart, in order, each once",
  opts,
  async () => {
    const w = await startWorld();
    try {
      const first = await w.startBridge();
      await w.mm.postAs(w.bob.id, w.channel.id, "before the restart");
      await w.alice.waitForMessages(w.room, (m) => m.body === "<bob> before the restart");
      await first.stop();

      const missed = Array.from({ length: 20 }, (_, i) => `said while down ${i}`);
      for (const text of missed) await w.mm.postAs(w.bob.id, w.channel.id, text);

      await w.startBridge();
      const got = await w.alice.waitForMessages(
        w.room,
        (m) => m.body?.startsWith("<bob> said while down") ?? false,
        20,
        15_000,
      );
      assert.deepEqual(got.map((m) => m.body), missed.map((t) => `<bob> ${t}`));
      // Nothing from before the stop comes again, and nothing comes twice.
      await w.mm.postAs(w.bob.id, w.channel.id, "after the restart");
      await w.alice.waitForMessages(w.room, (m) => m.body === "<bob> after the restart");
      const bodies = w.alice.messages.filter((m) => m.room === w.room && m.nick === "bridge").map((m) =>
        m.body
      );
      assert.equal(bodies.filter((b) => b === "<bob> before the restart").length, 1, bodies.join("\n"));
      assert.equal(new Set(bodies).size, bodies.length, `a message came twice:\n${bodies.join("\n")}`);
      console.log(
        `downtime catch-up: ${got.length} of ${missed.length} missed posts bridged, in order, 0 duplicated`,
      );
    } finally {
      await w.stop();
    }
  },
);

Deno.test(
  "a restart skips, and counts in a warning, posts older than BRIDGE_CATCHUP_MAX_AGE",
  opts,
  async () => {
    const w = await startWorld();
    try {
      const first = await w.startBridge({ BRIDGE_CATCHUP_MAX_AGE: "2s" });
      await w.mm.postAs(w.bob.id, w.channel.id, "seen");
      await w.alice.waitForMessages(w.room, (m) => m.body === "<bob> seen");
      await first.stop();

      for (let i = 0; i < 3; i++) await w.mm.postAs(w.bob.id, w.channel.id, `too old ${i}`);
      await new Promise((r) => setTimeout(r, 3_000));
      await w.mm.postAs(w.bob.id, w.channel.id, "recent enough");

      await captureLogs(async (records) => {
        await w.startBridge({ BRIDGE_CATCHUP_MAX_AGE: "2s" });
        await w.alice.waitForMessages(w.room, (m) => m.body === "<bob> recent enough");
        const skipped = records.find((r) => String(r.rawMessage).startsWith("Skipped {count} post(s)"));
        assert.ok(skipped, "no warning counted the skipped posts");
        assert.equal(skipped.properties.count, 3);
        assert.equal(skipped.level, "warning");
      });
      assert.equal(w.alice.messages.filter((m) => m.body?.includes("too old")).length, 0);
    } finally {
      await w.stop();
    }
  },
);

Deno.test(
  "messages said in the room while the bridge is down come from its archive after the restart",
  opts,
  async () => {
    const w = await startWorld();
    try {
      const first = await w.startBridge();
      await w.alice.sendGroupchat(w.room, "before the restart");
      await postsMatching(w.mm, w.channel.id, (p) => p.message === "before the restart", 1);
      await first.stop();

      // More than the 20 messages of history a room replays at join: only the archive has them all.
      const missed = Array.from({ length: 30 }, (_, i) => `said in the room while down ${i}`);
      for (const text of missed) await w.alice.sendGroupchat(w.room, text);

      await captureLogs(async (records) => {
        await w.startBridge();
        const got = await postsMatching(
          w.mm,
          w.channel.id,
          (p) => p.message.startsWith("said in the room"),
          30,
          20_000,
        );
        assert.deepEqual(got.map((p) => p.message), missed);
        const fetched = records.find((r) => String(r.rawMessage).startsWith("Fetched {count} message(s)"));
        assert.ok(fetched, "the archive catch-up was not logged");
      });
      // Nothing twice, nothing from before the stop again, and live messages still flow.
      await w.alice.sendGroupchat(w.room, "after the restart");
      await postsMatching(w.mm, w.channel.id, (p) => p.message === "after the restart", 1);
      const messages = w.mm.posts(w.channel.id).filter((p) => p.user_id === w.mm.bot.id).map((p) =>
        p.message
      );
      assert.equal(messages.filter((m) => m === "before the restart").length, 1, messages.join("\n"));
      assert.equal(new Set(messages).size, messages.length, `a message came twice:\n${messages.join("\n")}`);
      console.log(`downtime catch-up (XMPP): 30 of 30 missed messages bridged, in order, 0 duplicated`);
    } finally {
      await w.stop();
    }
  },
);
