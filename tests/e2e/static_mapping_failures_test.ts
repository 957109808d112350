import assert from "node:assert/strict";
import { xml } from "@xmpp/client-core";
import { startWorld, type World } from "../helpers/harness.ts";
import type { HealthBody } from "../helpers/bridge_process.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

async function healthz(w: World): Promise<{ status: number; body: HealthBody }> {
  const res = await fetch(`http://127.0.0.1:${w.httpPort}/healthz`);
  return { status: res.status, body: await res.json() };
}

/** Whether `room` exists on the test server, asked as alice with disco#info. */
async function roomExists(w: World, room: string): Promise<boolean> {
  const query = xml(
    "iq",
    { type: "get", to: room },
    xml("query", { xmlns: "http://jabber.org/protocol/disco#info" }),
  );
  return await w.alice.iq(query).then(() => true, (err) => {
    if (err?.condition === "item-not-found") return false;
    throw err;
  });
}

Deno.test(
  "a configured mapping whose Mattermost channel does not exist keeps /healthz at 503 and names it",
  opts,
  async () => {
    const w = await startWorld();
    try {
      const team = w.mm.team.name;
      const good = `${team}/${w.channel.name}=${w.room}`;
      const bad = `${team}/no-such-channel=other@conference.localhost`;
      const bridge = await w.startBridge({ BRIDGE_MAPPINGS: `${good},${bad}` });
      const { status, body } = await healthz(w);
      assert.equal(status, 503);
      assert.equal(body.ok, false);
      assert.equal(body.ready, true);
      assert.ok(body.bridges.every((b) => b.connected));
      assert.equal(body.failedMappings.length, 1);
      assert.equal(
        body.failedMappings[0].mapping,
        `mattermost:${team}/no-such-channel = xmpp:other@conference.localhost`,
      );
      assert.match(body.failedMappings[0].error, /channel .*no-such-channel does not exist/);
      // The good entry is applied all the same.
      assert.equal((await bridge.manager.listMappings()).length, 1);
      await w.mm.postAs(w.bob.id, w.channel.id, "the good one works");
      await w.alice.waitForMessages(w.room, (m) => m.body === "<bob> the good one works", 1, 10_000);
    } finally {
      await w.stop();
    }
  },
);

Deno.test(
  "a static mapping to a room that does not exist is reported and the room not created; BRIDGE_CREATE_ROOMS=true creates it",
  opts,
  async () => {
    const w = await startWorld({ mapped: false });
    try {
      const room = "not-yet@conference.localhost";
      const entry = { BRIDGE_MAPPINGS: `${w.mm.team.name}/${w.channel.name}=${room}` };
      assert.equal(await roomExists(w, room), false);

      const first = await w.startBridge(entry);
      const { status, body } = await healthz(w);
      assert.equal(status, 503);
      assert.equal(body.failedMappings.length, 1);
      assert.match(body.failedMappings[0].error, /room not-yet@conference\.localhost does not exist/);
      assert.match(body.failedMappings[0].error, /BRIDGE_CREATE_ROOMS=true/);
      assert.equal(await roomExists(w, room), false, "the room was not created");
      assert.deepEqual(await first.manager.listMappings(), []);
      await first.stop();

      const second = await w.startBridge({ ...entry, BRIDGE_CREATE_ROOMS: "true" });
      assert.equal((await healthz(w)).status, 200);
      assert.equal(await roomExists(w, room), true, "the bridge created the room by joining it");
      assert.equal((await second.manager.listMappings()).length, 1);
    } finally {
      await w.stop();
    }
  },
);
