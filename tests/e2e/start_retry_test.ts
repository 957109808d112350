import assert from "node:assert/strict";
import { PASSWORD, runMain, startWorld } from "../helpers/harness.ts";
import { spawnBridge } from "../helpers/bridge_process.ts";
import { connectXmppUser } from "../helpers/xmpp_user.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "the real process waits for an XMPP server that is down at start, answering 503 meanwhile, then bridges",
  opts,
  async () => {
    const w = await startWorld();
    await w.alice.stop();
    await w.prosody.kill();
    // The room is gone with the server (not persistent): let the bridge create it when it gets there.
    const bridge = spawnBridge(w.env({ BRIDGE_CREATE_ROOMS: "true" }), w.httpPort);
    try {
      await bridge.waitForLog(/Cannot connect to .*xmpp.* yet/, 2);
      assert.ok(bridge.running(), "still running after two failed attempts");
      const waiting = await bridge.healthz();
      assert.equal(waiting?.status, 503);
      const xmpp = waiting!.body.bridges.find((b) => b.network === "xmpp")!;
      assert.equal(xmpp.connected, false);
      assert.match(xmpp.detail, /not connected yet \(attempt \d+\): .*connection refused/);
      assert.equal(waiting!.body.bridges.find((b) => b.network === "mattermost")!.connected, true);

      await w.prosody.restart();
      await bridge.waitForHealth(200, { timeoutMs: 45_000 });
      const alice = await connectXmppUser(w.prosody, "alice", PASSWORD, "back");
      try {
        await alice.joinRoom(w.room, "alice");
        await w.mm.postAs(w.bob.id, w.channel.id, "the server is up");
        await alice.waitForMessages(w.room, (m) => m.body === "<bob> the server is up", 1, 10_000);
      } finally {
        await alice.stop();
      }
    } finally {
      assert.equal(await bridge.stop(), 0);
      await w.stop();
    }
  },
);

Deno.test("SIGTERM while waiting for a server ends the real process with 0", opts, async () => {
  const w = await startWorld();
  await w.alice.stop();
  await w.prosody.kill();
  const bridge = spawnBridge(w.env(), w.httpPort);
  try {
    await bridge.waitForLog(/Cannot connect to .*xmpp.* yet/);
  } finally {
    assert.equal(await bridge.stop(), 0);
    assert.match(bridge.log(), /SIGTERM.*while starting/);
    await w.stop();
  }
});

Deno.test(
  "refused credentials end the real process with exit code 3, naming what was refused",
  opts,
  async () => {
    const w = await startWorld();
    try {
      const xmpp = await runMain([], { ...w.env({ XMPP_PASSWORD: "wrong-password" }), LOG_FORMAT: "json" });
      assert.equal(xmpp.code, 3, xmpp.stderr + xmpp.stdout);
      assert.match(
        xmpp.stdout + xmpp.stderr,
        /refused the password for bridge@localhost.*check XMPP_PASSWORD/,
      );
      const mm = await runMain([], {
        ...w.env({ MM_TOKEN: "wrongtoken1234567890abcdefg" }),
        LOG_FORMAT: "json",
      });
      assert.equal(mm.code, 3, mm.stderr + mm.stdout);
      assert.match(mm.stdout + mm.stderr, /MM_TOKEN/);
    } finally {
      await w.stop();
    }
  },
);
