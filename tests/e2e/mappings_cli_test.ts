import assert from "node:assert/strict";
import { runMain, startWorld } from "../helpers/harness.ts";
import { Store } from "../../src/core/store.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

const BASE_ENV = {
  MM_URL: "https://chat.example.org",
  MM_TOKEN: "tok3n-value",
  MM_TEAM: "myteam",
  XMPP_JID: "bridge@example.org",
  XMPP_PASSWORD: "pa55word",
};

Deno.test("--check-config rejects the same channel or room in two BRIDGE_MAPPINGS entries", async () => {
  const room = await runMain(["--check-config"], {
    ...BASE_ENV,
    BRIDGE_MAPPINGS: "myteam/a=lobby@conference.example.org,myteam/b=Lobby@conference.example.org",
  });
  assert.equal(room.code, 2);
  assert.match(
    room.stderr,
    /BRIDGE_MAPPINGS entries "myteam\/a=lobby@conference\.example\.org" and "myteam\/b=Lobby@conference\.example\.org" both map room lobby@conference\.example\.org/,
  );
  // A bare channel name means the same channel as team/name with MM_TEAM.
  const channel = await runMain(["--check-config"], {
    ...BASE_ENV,
    BRIDGE_MAPPINGS: "town=a@conference.example.org,myteam/town=b@conference.example.org",
  });
  assert.equal(channel.code, 2);
  assert.match(channel.stderr, /both map channel myteam\/town: .*keep one of the entries/);
  const fine = await runMain(["--check-config"], {
    ...BASE_ENV,
    BRIDGE_MAPPINGS: "town=a@conference.example.org,myteam/dev=b@conference.example.org",
  });
  assert.equal(fine.code, 0, fine.stderr);
});

/** A state file holding one static and one command mapping, as the bridge writes them. */
async function stateFile(): Promise<{ dir: string; path: string }> {
  const dir = await Deno.makeTempDir({ prefix: "mmxmpp-cli-" });
  const path = `${dir}/state.kv`;
  const store = await Store.open(path);
  try {
    await store.addMapping({
      channels: { mattermost: "aaaaaaaaaaaaaaaaaaaaaaaaaa", xmpp: "lobby@conference.example.org" },
      origin: "static",
      source: { mattermost: "myteam/town-square", xmpp: "lobby@conference.example.org" },
      createdAt: Date.UTC(2026, 0, 2),
    });
    await store.addMapping({
      channels: { mattermost: "bbbbbbbbbbbbbbbbbbbbbbbbbb", xmpp: "dev@conference.example.org" },
      origin: "command",
      createdBy: "adminuserid",
      createdAt: Date.UTC(2026, 0, 3),
    });
  } finally {
    store.close();
  }
  return { dir, path };
}

async function mappingsIn(path: string) {
  const store = await Store.open(path);
  try {
    return (await store.listMappings()).map((m) => m.channels.xmpp).sort();
  } finally {
    store.close();
  }
}

Deno.test("mmxmpp mappings list and unmap work offline on the state file", async () => {
  const { dir, path } = await stateFile();
  try {
    const env = { BRIDGE_KV_PATH: path };
    const list = await runMain(["mappings", "list"], env);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /2 mapping\(s\) in .*state\.kv/);
    assert.match(
      list.stdout,
      /mattermost a{26} ↔ xmpp lobby@conference\.example\.org \(static, from BRIDGE_MAPPINGS entry "myteam\/town-square=lobby@conference\.example\.org", since 2026-01-02/,
    );
    assert.match(
      list.stdout,
      /xmpp dev@conference\.example\.org \(made with \/xmppbridge map by user adminuserid/,
    );
    const json = await runMain(["mappings", "list", "--json"], env);
    assert.equal(JSON.parse(json.stdout).length, 2);

    const unknown = await runMain(["mappings", "unmap", "nosuch@conference.example.org"], env);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no mapping has nosuch@conference\.example\.org/);
    assert.match(unknown.stderr, /lobby@conference\.example\.org/, "it lists what exists");
    assert.deepEqual(await mappingsIn(path), ["dev@conference.example.org", "lobby@conference.example.org"]);

    // By the Mattermost side as BRIDGE_MAPPINGS wrote it.
    const stat = await runMain(["mappings", "unmap", "myteam/town-square"], env);
    assert.equal(stat.code, 0, stat.stderr);
    assert.match(stat.stdout, /Removed the mapping mattermost a{26} ↔ xmpp lobby@conference\.example\.org/);
    assert.match(stat.stdout, /comes from BRIDGE_MAPPINGS .*remove it there too/);
    // By the room, in any case; through --kv instead of the variable.
    const cmd = await runMain(["mappings", "unmap", "Dev@Conference.example.org", "--kv", path], {});
    assert.equal(cmd.code, 0, cmd.stderr);
    assert.doesNotMatch(cmd.stdout, /BRIDGE_MAPPINGS/);
    assert.deepEqual(await mappingsIn(path), []);
    assert.match((await runMain(["mappings", "list"], env)).stdout, /holds no mappings/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("mmxmpp mappings says which path and variable when there is no state file, and creates none", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mmxmpp-cli-" });
  try {
    const path = `${dir}/missing.kv`;
    const run = await runMain(["mappings", "list"], { BRIDGE_KV_PATH: path });
    assert.equal(run.code, 1);
    assert.match(run.stderr, new RegExp(`no state file at ${path} \\(BRIDGE_KV_PATH\\)`));
    const fromState = await runMain(["mappings", "list"], { STATE_DIRECTORY: dir });
    assert.match(fromState.stderr, new RegExp(`no state file at ${dir}/mmxmpp\\.kv \\(STATE_DIRECTORY`));
    assert.deepEqual([...Deno.readDirSync(dir)], []);
    const usage = await runMain(["mappings", "frob"], {});
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /unknown subcommand "frob": use list or unmap/);
    assert.equal((await runMain(["mappings", "unmap"], {})).code, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("mmxmpp mappings unmap next to a running bridge stops the bridging at once", opts, async () => {
  const w = await startWorld({ mapped: false });
  try {
    w.mm.addMember(w.channel.id, w.mm.admin.id);
    const bridge = await w.startBridge();
    await bridge.manager.map("mattermost", w.channel.id, w.room, w.mm.admin.id);
    await w.mm.postAs(w.bob.id, w.channel.id, "still mapped");
    await w.alice.waitForMessages(w.room, (m) => m.body === "<bob> still mapped", 1, 10_000);

    const run = await runMain(["mappings", "unmap", w.room], { BRIDGE_KV_PATH: w.kvPath });
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(await bridge.manager.listMappings(), [], "the running bridge sees the removal");
    await w.mm.postAs(w.bob.id, w.channel.id, "after the offline unmap");
    await w.alice.expectSilence(w.room, (m) => m.body?.includes("after the offline unmap") ?? false, 1_000);
  } finally {
    await w.stop();
  }
});
