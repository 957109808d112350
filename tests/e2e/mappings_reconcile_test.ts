import assert from "node:assert/strict";
import { PASSWORD, startWorld, type World } from "../helpers/harness.ts";
import { spawnBridge } from "../helpers/bridge_process.ts";
import { connectXmppUser } from "../helpers/xmpp_user.ts";
import { Store } from "../../src/core/store.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** The nicks present in `room`, as a newcomer sees them on joining (the room is created if it does not exist). */
async function occupants(w: World, room: string): Promise<string[]> {
  const carol = await connectXmppUser(
    w.prosody,
    "carol",
    PASSWORD,
    `look-${crypto.randomUUID().slice(0, 8)}`,
  );
  try {
    const nicks = new Set<string>();
    carol.onStanza((s) => {
      const from = String(s.attrs.from ?? "");
      if (!s.is("presence") || !from.startsWith(`${room}/`)) return;
      const nick = from.slice(room.length + 1);
      if (s.attrs.type === "unavailable") nicks.delete(nick);
      else nicks.add(nick);
    });
    await carol.joinRoom(room, "carol");
    await carol.leaveRoom(room);
    nicks.delete("carol");
    return [...nicks].sort();
  } finally {
    await carol.stop();
  }
}

/** The mappings in the state file, read after the bridge has exited. */
async function storedMappings(kvPath: string) {
  const store = await Store.open(kvPath);
  try {
    return (await store.listMappings()).map((m) => ({
      channels: m.channels,
      origin: m.origin,
      source: m.source,
    }));
  } finally {
    store.close();
  }
}

Deno.test(
  "a static mapping follows BRIDGE_MAPPINGS across restarts of the real process; a command mapping is left alone",
  opts,
  async () => {
    const w = await startWorld({ mapped: false, mattermost: { botTeamRole: "admin" } });
    try {
      await w.prosody.register("carol", PASSWORD);
      const team = w.mm.team.name;
      const typo = "hal@conference.localhost";
      // A second pair, mapped by an admin with the command; its room exists because alice is in it.
      const ops = w.mm.createChannel("ops");
      const opsRoom = "ops@conference.localhost";
      w.mm.addMember(ops.id, w.mm.admin.id);
      await w.alice.joinRoom(opsRoom, "alice");

      // 1. The typo: the bridge creates and joins the mistyped room (allowed here), and the admin maps ops.
      let bridge = spawnBridge(
        w.env({ BRIDGE_MAPPINGS: `${team}/${w.channel.name}=${typo}`, BRIDGE_CREATE_ROOMS: "true" }),
        w.httpPort,
      );
      try {
        await bridge.waitForHealth(200);
        const mapped = await w.mm.invokeCommand({
          trigger: "xmppbridge",
          channelId: ops.id,
          userId: w.mm.admin.id,
          text: `map ${opsRoom}`,
        });
        assert.match((mapped.body as { text: string }).text, /Mapped this channel/);
        assert.deepEqual(await occupants(w, typo), ["bridge"]);
      } finally {
        assert.equal(await bridge.stop(), 0);
      }

      // 2. The fix: the bridge joins the right room, leaves the wrong one alone, and the typo mapping is gone.
      bridge = spawnBridge(w.env({ BRIDGE_MAPPINGS: `${team}/${w.channel.name}=${w.room}` }), w.httpPort);
      try {
        const health = await bridge.waitForHealth(200);
        assert.deepEqual(health.failedMappings, []);
        await w.mm.postAs(w.bob.id, w.channel.id, "after the fix");
        await w.alice.waitForMessages(w.room, (m) => m.body === "<bob> after the fix", 1, 10_000);
        assert.deepEqual(await occupants(w, typo), []);
        assert.deepEqual(await occupants(w, opsRoom), ["alice", "bridge"]);
        assert.match(bridge.log(), /Removed static mapping/);
      } finally {
        assert.equal(await bridge.stop(), 0);
      }
      assert.deepEqual(
        (await storedMappings(w.kvPath)).sort((a, b) => a.origin.localeCompare(b.origin)),
        [
          { channels: { mattermost: ops.id, xmpp: opsRoom }, origin: "command", source: undefined },
          {
            channels: { mattermost: w.channel.id, xmpp: w.room },
            origin: "static",
            source: { mattermost: `${team}/${w.channel.name}`, xmpp: w.room },
          },
        ],
      );

      // 3. The entry removed, and a new one colliding with the command mapping: it names the blocker and the way out.
      bridge = spawnBridge(w.env({ BRIDGE_MAPPINGS: `${team}/${w.channel.name}=${opsRoom}` }), w.httpPort);
      try {
        const health = await bridge.waitForHealth(503, { ready: true });
        assert.equal(health.failedMappings.length, 1);
        const [failed] = health.failedMappings;
        assert.equal(failed.mapping, `mattermost:${team}/${w.channel.name} = xmpp:${opsRoom}`);
        assert.match(
          failed.error,
          new RegExp(`xmpp ${opsRoom} is already in the mapping mattermost ${ops.id}`),
        );
        assert.match(failed.error, /made with \/xmppbridge map by user \w+/);
        assert.match(failed.error, /`\/xmppbridge unmap`/);
        assert.match(failed.error, new RegExp(`mmxmpp mappings unmap ${opsRoom}`));
      } finally {
        assert.equal(await bridge.stop(), 0);
      }
      assert.deepEqual(await storedMappings(w.kvPath), [
        { channels: { mattermost: ops.id, xmpp: opsRoom }, origin: "command", source: undefined },
      ]);
    } finally {
      await w.stop();
    }
  },
);

Deno.test(
  "static mappings stored before they recorded their entry are adopted when configured and removed otherwise",
  opts,
  async () => {
    const w = await startWorld({ mapped: false, mattermost: { botTeamRole: "admin" } });
    try {
      const ops = w.mm.createChannel("ops");
      // As an older version stored them: static, without `source`.
      const store = await Store.open(w.kvPath);
      try {
        for (const [channel, room] of [[w.channel.id, w.room], [ops.id, "ops@conference.localhost"]]) {
          const res = await store.addMapping({
            channels: { mattermost: channel, xmpp: room },
            origin: "static",
            createdAt: 1,
          });
          assert.ok(res.ok);
        }
      } finally {
        store.close();
      }
      const entry = `${w.mm.team.name}/${w.channel.name}=${w.room}`;
      const bridge = await w.startBridge({ BRIDGE_MAPPINGS: entry });
      assert.deepEqual(await bridge.manager.listMappings(), [{
        channels: { mattermost: w.channel.id, xmpp: w.room },
        origin: "static",
        source: { mattermost: `${w.mm.team.name}/${w.channel.name}`, xmpp: w.room },
        createdAt: 1,
      }]);
      await w.mm.postAs(w.bob.id, w.channel.id, "adopted");
      await w.alice.waitForMessages(w.room, (m) => m.body === "<bob> adopted", 1, 10_000);

      // Unmapping a static mapping by command says that the next start brings it back.
      w.mm.addMember(w.channel.id, w.mm.admin.id);
      const reply = await w.mm.invokeCommand({
        trigger: "xmppbridge",
        channelId: w.channel.id,
        userId: w.mm.admin.id,
        text: "unmap",
      });
      assert.match(
        (reply.body as { text: string }).text,
        /comes from BRIDGE_MAPPINGS: remove the entry there too/,
      );
    } finally {
      await w.stop();
    }
  },
);

Deno.test(
  "a static entry equal to a mapping made by command is fine and leaves it a command mapping",
  opts,
  async () => {
    const w = await startWorld({ mapped: false });
    try {
      const first = await w.startBridge();
      await first.manager.map("mattermost", w.channel.id, w.room, w.mm.admin.id);
      await first.stop();
      const second = await w.startBridge({
        BRIDGE_MAPPINGS: `${w.mm.team.name}/${w.channel.name}=${w.room}`,
      });
      assert.deepEqual(second.manager.mappingFailures(), []);
      const res = await fetch(`http://127.0.0.1:${w.httpPort}/healthz`);
      assert.equal(res.status, 200, await res.text());
      const [mapping] = await second.manager.listMappings();
      assert.equal(mapping.origin, "command");
    } finally {
      await w.stop();
    }
  },
);
