/**
 * Multi-byte characters whose bytes reach the bridge in two socket reads from Mattermost arrive intact.
 *
 * The same proxy as in xmpp_utf8_test.ts sits between the bridge and the Mattermost stand-in (REST and websocket)
 * and cuts what the stand-in sends inside multi-byte characters, each piece read on its own. Deno's WebSocket
 * decodes a whole (reassembled) text message, and fetch's `.json()`/`.text()` the whole body, so this holds
 * today; the test keeps it so if the Mattermost side ever reads a stream chunk by chunk.
 */
import assert from "node:assert/strict";
import { startWorld } from "../helpers/harness.ts";
import { startSplittingProxy } from "../helpers/splitting_proxy.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** 2-, 3- and 4-byte characters, next to ASCII and each other. */
const MIXED = "é 中 😀 — ça marche: 日本語, Ελληνικά, עברית, 🎉👍🏽 x😀y中zé";

Deno.test(
  "multi-byte characters cut across reads from Mattermost (websocket and REST) reach the room intact",
  opts,
  async () => {
    const w = await startWorld();
    const proxy = await startSplittingProxy({ targetPort: Number(new URL(w.mm.url).port) });
    try {
      await w.startBridge({ MM_URL: `http://127.0.0.1:${proxy.port}` });
      const fromBridge = (body: string) => w.alice.waitForMessages(w.room, (m) => m.body === body, 1, 15_000);

      // The websocket's `posted` event, cut inside every character.
      let cuts = proxy.cuts;
      await w.mm.postAs(w.bob.id, w.channel.id, MIXED);
      await fromBridge(`<bob> ${MIXED}`);
      assert.ok(proxy.cuts - cuts >= 40, `only ${proxy.cuts - cuts} cuts`);

      // A new websocket session: the missed post is caught up over REST (see resilience_e2e_test.ts). Before the
      // long post below, because a catch-up fetches again what came shortly before (a margin), and cutting 50 KB
      // inside every character would take minutes.
      cuts = proxy.cuts;
      w.mm.restartWebsocketSessions();
      await w.mm.postAs(w.bob.id, w.channel.id, `missed ${MIXED}`);
      await fromBridge(`<bob> missed ${MIXED}`);
      assert.ok(proxy.cuts - cuts >= 40, `only ${proxy.cuts - cuts} cuts`);
      // The longest post Mattermost allows, ~50 KB of multi-byte text, cut every ~2 KB.
      proxy.minSpacing = 2_000;
      const line = "中文和日本語のテキスト 😀🎉 éàüß Ελληνικά\n";
      const long = [...line.repeat(Math.ceil(16_383 / [...line].length))].slice(0, 16_383).join("");
      cuts = proxy.cuts;
      await w.mm.postAs(w.bob.id, w.channel.id, long);
      await fromBridge(`<bob> ${long}`);
      assert.ok(proxy.cuts - cuts >= 20, `only ${proxy.cuts - cuts} cuts`);
    } finally {
      await proxy.close();
      await w.stop();
    }
  },
);
