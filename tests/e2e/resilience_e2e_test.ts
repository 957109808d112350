import assert from "node:assert/strict";
import { postsMatching, startWorld, waitFor } from "../helpers/harness.ts";
import { MALFORMED_EVENTS, RAW_MALFORMED_FRAMES } from "../helpers/malformed_frames.ts";
import { connectXmppUser } from "../helpers/xmpp_user.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "after Prosody is killed and restarted, the bridge reconnects, rejoins and bridges again",
  opts,
  async () => {
    const w = await startWorld();
    try {
      const bridge = await w.startBridge();
      await w.mm.postAs(w.bob.id, w.channel.id, "before the crash");
      await w.alice.waitForMessages(w.room, (m) => m.body === "<bob> before the crash", 1, 10_000);
      await w.alice.stop();

      await w.prosody.kill();
      await waitFor(
        () => !bridge.manager.health().find((h) => h.network === "xmpp")!.connected,
        "XMPP down",
        5_000,
      );
      // Posted while XMPP is down: must not be lost.
      await w.mm.postAs(w.bob.id, w.channel.id, "during the outage");
      await w.prosody.restart();
      await waitFor(
        () => bridge.manager.health().find((h) => h.network === "xmpp")!.connected,
        "XMPP back",
        15_000,
      );

      const alice = await connectXmppUser(w.prosody, "alice", "s3cret-Pa55word!", "laptop");
      try {
        await alice.joinRoom(w.room, "alice");
        // The room was not persistent: it is recreated by whoever joins first, and the bridge must be back in it.
        await alice.waitForMessages(w.room, (m) => m.body === "<bob> during the outage", 1, 20_000)
          .catch(async () => {
            // The outage message may have gone out before alice rejoined; it then is in the room history only.
            const hist = await connectXmppUser(w.prosody, "alice", "s3cret-Pa55word!", "hist");
            try {
              await hist.joinRoom(w.room, "alice-history", { maxstanzas: 20 });
              await hist.waitForMessages(w.room, (m) => m.body === "<bob> during the outage", 1, 5_000);
            } finally {
              await hist.stop();
            }
          });
        await w.mm.postAs(w.bob.id, w.channel.id, "after the restart");
        await alice.waitForMessages(w.room, (m) => m.body === "<bob> after the restart", 1, 15_000);
        await alice.sendGroupchat(w.room, "xmpp after the restart");
        await postsMatching(w.mm, w.channel.id, (p) => p.message === "xmpp after the restart", 1, 10_000);
      } finally {
        await alice.stop();
      }
    } finally {
      await w.stop();
    }
  },
);

Deno.test("posts made while the websocket is dropped are replayed and bridged once", opts, async () => {
  const w = await startWorld();
  try {
    const bridge = await w.startBridge();
    await w.mm.postAs(w.bob.id, w.channel.id, "warm-up");
    await w.alice.waitForMessages(w.room, (m) => m.body === "<bob> warm-up", 1, 10_000);
    w.mm.dropWebsockets();
    await w.mm.postAs(w.bob.id, w.channel.id, "missed 1");
    await w.mm.postAs(w.bob.id, w.channel.id, "missed 2");
    await w.alice.waitForMessages(w.room, (m) => m.body === "<bob> missed 2", 1, 15_000);
    await bridge.manager.bus.drain();
    const bodies = w.alice.messages.filter((m) => m.nick === "bridge").map((m) => m.body);
    assert.deepEqual(bodies, ["<bob> warm-up", "<bob> missed 1", "<bob> missed 2"]);
  } finally {
    await w.stop();
  }
});

Deno.test(
  "after a websocket session is lost (new hello), missed posts are caught up over REST",
  opts,
  async () => {
    const w = await startWorld();
    try {
      const bridge = await w.startBridge();
      await w.mm.postAs(w.bob.id, w.channel.id, "warm-up");
      await w.alice.waitForMessages(w.room, (m) => m.body === "<bob> warm-up", 1, 10_000);
      w.mm.restartWebsocketSessions();
      await w.mm.postAs(w.bob.id, w.channel.id, "lost 1");
      await w.mm.postAs(w.bob.id, w.channel.id, "lost 2");
      await w.alice.waitForMessages(w.room, (m) => m.body === "<bob> lost 2", 1, 15_000);
      await w.mm.postAs(w.bob.id, w.channel.id, "live again");
      await w.alice.waitForMessages(w.room, (m) => m.body === "<bob> live again", 1, 10_000);
      await bridge.manager.bus.drain();
      const bodies = w.alice.messages.filter((m) => m.nick === "bridge").map((m) => m.body);
      assert.deepEqual(bodies, ["<bob> warm-up", "<bob> lost 1", "<bob> lost 2", "<bob> live again"]);
    } finally {
      await w.stop();
    }
  },
);

Deno.test(
  "the bridge process survives malformed websocket frames and bridges the next post",
  opts,
  async () => {
    const w = await startWorld();
    const proc = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", new URL("../../main.ts", import.meta.url).pathname],
      env: { ...w.env(), LOG_FORMAT: "json", NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const output = Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
    const healthy = async () => {
      const res = await fetch(`http://127.0.0.1:${w.httpPort}/healthz`).catch(() => null);
      await res?.body?.cancel();
      return res?.status === 200;
    };
    try {
      await waitFor(healthy, "the bridge to report healthy", 20_000);
      await waitFor(() => w.mm.websocketCount(w.mm.bot.id) === 1, "the bridge's websocket");
      for (const frame of RAW_MALFORMED_FRAMES) w.mm.sendRawWebsocketFrame(w.mm.bot.id, frame);
      for (const [event, data] of MALFORMED_EVENTS) w.mm.sendWebsocketEvent(w.mm.bot.id, event, data);
      await w.mm.postAs(w.bob.id, w.channel.id, "after the garbage");
      await w.alice.waitForMessages(w.room, (m) => m.body === "<bob> after the garbage", 1, 15_000);
      assert.ok(await healthy(), "still healthy");
      proc.kill("SIGTERM");
      assert.equal((await proc.status).code, 0, "it was alive and shut down cleanly");
      const [stdout, stderr] = await output;
      assert.match(stdout + stderr, /Skipped a websocket frame that is not a Mattermost event/);
    } finally {
      try {
        proc.kill("SIGKILL");
      } catch { /* already exited */ }
      await proc.status;
      await output.catch(() => {});
      await w.stop();
    }
  },
);
