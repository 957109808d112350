import assert from "node:assert/strict";
import { migrate, type Migration, MIGRATIONS, SCHEMA_VERSION_KEY } from "../../src/core/migrations.ts";
import { type ChannelMapping, type GhostRecord, Store } from "../../src/core/store.ts";

/** Opens a fresh KV file, runs `fn`, then closes it and removes the file. */
async function withKv(fn: (kv: Deno.Kv, path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "mmxmpp-migrations-" });
  const path = `${dir}/state.kv`;
  const kv = await Deno.openKv(path);
  try {
    await fn(kv, path);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Migrations 1..n whose `up` appends its version to `ran` and writes a marker key. */
function recording(n: number, ran: number[]): Migration[] {
  return Array.from({ length: n }, (_, i) => ({
    version: i + 1,
    name: `step ${i + 1}`,
    up: async (kv: Deno.Kv) => {
      ran.push(i + 1);
      await kv.set(["test_marker", i + 1], true);
    },
  }));
}

async function schemaVersion(kv: Deno.Kv): Promise<number | null> {
  return (await kv.get<number>(SCHEMA_VERSION_KEY)).value;
}

Deno.test("migrate on a fresh KV sets schema_version to the latest known migration", async () => {
  await withKv(async (kv) => {
    const latest = Math.max(...MIGRATIONS.map((m) => m.version));
    assert.equal(await schemaVersion(kv), null);
    assert.equal(await migrate(kv), latest);
    assert.equal(await schemaVersion(kv), latest);
  });
});

Deno.test("migrate runs every migration of a fresh KV once, in version order", async () => {
  await withKv(async (kv) => {
    const ran: number[] = [];
    // Given out of order: the runner must sort them.
    const list = recording(3, ran);
    assert.equal(await migrate(kv, [list[2], list[0], list[1]]), 3);
    assert.deepEqual(ran, [1, 2, 3]);
    assert.equal(await schemaVersion(kv), 3);
  });
});

Deno.test("migrate applies only the pending migrations, in order, to a KV at version 1", async () => {
  await withKv(async (kv) => {
    await kv.set(SCHEMA_VERSION_KEY, 1);
    const ran: number[] = [];
    assert.equal(await migrate(kv, recording(3, ran)), 3);
    assert.deepEqual(ran, [2, 3]);
    assert.equal(await schemaVersion(kv), 3);
    assert.equal((await kv.get(["test_marker", 1])).value, null);
    assert.equal((await kv.get(["test_marker", 3])).value, true);
  });
});

Deno.test("migrate is idempotent: a second run applies nothing", async () => {
  await withKv(async (kv) => {
    const ran: number[] = [];
    await migrate(kv, recording(3, ran));
    ran.length = 0;
    assert.equal(await migrate(kv, recording(3, ran)), 3);
    assert.deepEqual(ran, []);
    assert.equal(await schemaVersion(kv), 3);
  });
});

Deno.test("a migration added in a later release runs once on the next start", async () => {
  await withKv(async (kv) => {
    const ran: number[] = [];
    await migrate(kv, recording(2, ran));
    assert.deepEqual(ran, [1, 2]);
    ran.length = 0;
    await migrate(kv, recording(4, ran));
    assert.deepEqual(ran, [3, 4]);
    assert.equal(await schemaVersion(kv), 4);
  });
});

Deno.test("migrate refuses a KV written by a newer mmxmpp and says what to do", async () => {
  await withKv(async (kv) => {
    await kv.set(SCHEMA_VERSION_KEY, 7);
    const ran: number[] = [];
    await assert.rejects(migrate(kv, recording(3, ran)), (err: Error) => {
      assert.match(err.message, /schema version 7/);
      assert.match(err.message, /up to 3/);
      assert.match(err.message, /newer mmxmpp/);
      assert.match(err.message, /BRIDGE_KV_PATH/);
      return true;
    });
    assert.deepEqual(ran, []);
    // The stored version is left as it was.
    assert.equal(await schemaVersion(kv), 7);
  });
});

Deno.test("Store.open refuses a KV file from a newer mmxmpp and leaves the file usable", async () => {
  await withKv(async (kv, path) => {
    const latest = Math.max(...MIGRATIONS.map((m) => m.version));
    await kv.set(SCHEMA_VERSION_KEY, latest + 1);
    await assert.rejects(Store.open(path), /newer mmxmpp/);
    assert.equal(await schemaVersion(kv), latest + 1);
  });
});

Deno.test("migrate rejects a migration list with a gap before touching the KV", async () => {
  await withKv(async (kv) => {
    const ran: number[] = [];
    const [one, , three] = recording(3, ran);
    await assert.rejects(migrate(kv, [one, three]), /migration list is broken: expected version 2, found 3/);
    assert.deepEqual(ran, []);
    assert.equal(await schemaVersion(kv), null);
  });
});

Deno.test("migrate rejects a migration list that does not start at 1 or repeats a version", async () => {
  await withKv(async (kv) => {
    const ran: number[] = [];
    const [one, two, three] = recording(3, ran);
    await assert.rejects(migrate(kv, [two, three]), /expected version 1, found 2/);
    await assert.rejects(
      migrate(kv, [one, two, { ...two, name: "again" }, three]),
      /expected version 3, found 2/,
    );
    assert.deepEqual(ran, []);
    assert.equal(await schemaVersion(kv), null);
  });
});

Deno.test("a failing migration stops the run, keeps the last good version, and is retried next time", async () => {
  await withKv(async (kv) => {
    const ran: number[] = [];
    const list = recording(3, ran);
    let fail = true;
    const flaky: Migration = {
      ...list[1],
      up: async (k) => {
        if (fail) throw new Error("disk full");
        await list[1].up(k);
      },
    };
    await assert.rejects(migrate(kv, [list[0], flaky, list[2]]), /disk full/);
    assert.deepEqual(ran, [1]);
    assert.equal(await schemaVersion(kv), 1);
    fail = false;
    assert.equal(await migrate(kv, [list[0], flaky, list[2]]), 3);
    assert.deepEqual(ran, [1, 2, 3]);
  });
});

Deno.test("migration 2 gives a mapping of unknown origin the origin 'command' and keeps static ones", async () => {
  await withKv(async (kv, path) => {
    await kv.set(SCHEMA_VERSION_KEY, 1);
    // As a version-1 store may hold them: one mapping without an origin, one static without its entry.
    const unknown = { channels: { mattermost: "c1", xmpp: "a@muc.example.org" }, createdAt: 1 };
    const legacyStatic = {
      channels: { mattermost: "c2", xmpp: "b@muc.example.org" },
      origin: "static",
      createdAt: 2,
    };
    for (const [n, c] of Object.entries(unknown.channels)) await kv.set(["channel_map", n, c], unknown);
    for (const [n, c] of Object.entries(legacyStatic.channels)) {
      await kv.set(["channel_map", n, c], legacyStatic);
    }

    const store = await Store.open(path);
    try {
      assert.ok((await schemaVersion(kv))! >= 2);
      assert.deepEqual(await store.getMapping("xmpp", "a@muc.example.org"), {
        ...unknown,
        origin: "command",
      });
      assert.deepEqual(await store.getMapping("mattermost", "c1"), { ...unknown, origin: "command" });
      assert.deepEqual(await store.getMapping("mattermost", "c2"), legacyStatic);
    } finally {
      store.close();
    }
    // Idempotent: running the step again changes nothing.
    await MIGRATIONS[1].up(kv);
    assert.equal(
      (await kv.get<{ origin: string }>(["channel_map", "mattermost", "c1"])).value?.origin,
      "command",
    );
  });
});

/** What tests/fixtures/make_schema2_store.ts put in the schema-2 fixture. */
interface Schema2Fixture {
  mappings: ChannelMapping[];
  links: Array<{ id: string; source: string; refs: Record<string, { channel: string; ids: string[] }> }>;
  aliases: Array<{ network: string; channel: string; knownId: string; newId: string }>;
  ghosts: Array<{ userId: string; jid: string; password: unknown; createdAt: number }>;
  cursors: Record<string, Record<string, number>>;
}

const FIXTURE = new URL("../fixtures/", import.meta.url);

/** Every raw entry of `kv`, keys and values as JSON, in key order. */
async function dump(kv: Deno.Kv): Promise<string[]> {
  const out: string[] = [];
  for await (const e of kv.list({ prefix: [] })) out.push(JSON.stringify([e.key, e.value]));
  return out;
}

Deno.test("migration 3 carries a store written by the schema-2 code into typed parts and network-keyed ghosts", async () => {
  const fixture: Schema2Fixture = JSON.parse(await Deno.readTextFile(new URL("store_schema2.json", FIXTURE)));
  const dir = await Deno.makeTempDir({ prefix: "mmxmpp-migration3-" });
  const path = `${dir}/state.kv`;
  try {
    await Deno.copyFile(new URL("store_schema2.kv", FIXTURE), path);
    const raw = await Deno.openKv(path);
    assert.equal(await schemaVersion(raw), 2, "the fixture is a schema-2 store");
    raw.close();

    const store = await Store.open(path);
    try {
      // Every id of every link, and the alias added later, still finds its link, now with parts.
      const aliasesOf = (network: string, linkId: string) =>
        fixture.aliases.filter((a) =>
          a.network === network &&
          fixture.links.find((l) => l.id === linkId)?.refs[network].ids.includes(a.knownId)
        ).map((a) => a.newId);
      for (const old of fixture.links) {
        for (const [network, ref] of Object.entries(old.refs)) {
          const ids = [...ref.ids, ...aliasesOf(network, old.id)];
          for (const id of ids) {
            const link = await store.findLink(network, ref.channel, id);
            assert.equal(link?.id, old.id, `${network} ${id} finds ${old.id}`);
            assert.deepEqual(link.refs[network].ids, ids);
            assert.equal(link.refs[network].channel, ref.channel);
          }
        }
      }
      const parts = async (linkId: string) => {
        const old = fixture.links.find((l) => l.id === linkId)!;
        const ref = old.refs[old.source];
        const link = (await store.findLink(old.source, ref.channel, ref.ids[0]))!;
        return { mattermost: link.refs.mattermost.parts, xmpp: link.refs.xmpp.parts };
      };
      const unknown = { kind: "unknown" } as const;
      const author = { kind: "author" } as const;
      assert.deepEqual(await parts("link-mm-relay"), {
        mattermost: [{ postId: "p0000000000000000000000001", sender: author }],
        xmpp: [{
          messageId: "dLv-delivery-id-0000001",
          originId: "dLv-delivery-id-0000001",
          stanzaId: "stanza-0001",
          sender: unknown,
        }],
      });
      assert.deepEqual(await parts("link-mm-late"), {
        mattermost: [{ postId: "p0000000000000000000000002", sender: author }],
        xmpp: [{
          messageId: "dLv-delivery-id-0000002",
          originId: "dLv-delivery-id-0000002",
          stanzaId: "stanza-0002",
          sender: unknown,
        }],
      });
      assert.deepEqual(await parts("link-xmpp-split"), {
        xmpp: [{ stanzaId: "stanza-0003", sender: author }],
        mattermost: [
          { postId: "p0000000000000000000000003", sender: unknown },
          { postId: "p0000000000000000000000004", sender: unknown },
        ],
      });
      assert.deepEqual(await parts("link-xmpp-nosid"), {
        xmpp: [{ sender: author }],
        mattermost: [{ postId: "p0000000000000000000000005", sender: unknown }],
      });

      // Ghosts: found by network and user, their JIDs still taken, their sealed passwords untouched.
      for (const g of fixture.ghosts) {
        assert.deepEqual(await store.getGhost("mattermost", g.userId), { ...g, network: "mattermost" });
        assert.deepEqual(await store.ghostOwner(g.jid), { network: "mattermost", userId: g.userId });
        assert.equal(
          await store.createGhost({ ...g, network: "mattermost", userId: "someone-else" } as GhostRecord),
          false,
          `${g.jid} stays taken`,
        );
      }
      // Mappings and cursors are as they were.
      for (const m of fixture.mappings) {
        for (const [n, c] of Object.entries(m.channels)) assert.deepEqual(await store.getMapping(n, c), m);
      }
      for (const [network, byChannel] of Object.entries(fixture.cursors)) {
        for (const [channel, position] of Object.entries(byChannel)) {
          assert.equal(await store.getCursor(network, channel), position);
        }
      }
    } finally {
      store.close();
    }

    const after = await Deno.openKv(path);
    try {
      assert.equal(await schemaVersion(after), 3);
      const entries = await dump(after);
      // No record is left in the schema-2 shape.
      assert.ok(!entries.some((e) => e.startsWith('[["ghost","u')), "no ghost keyed by user id alone");
      assert.ok(
        !entries.some((e) => /^\[\["ghost_jid","[^"]*"\],"/.test(e)),
        "no ghost JID owned by a bare id",
      );
      // Idempotent: a rerun of the step (as after a crash before the version was written) changes nothing.
      await MIGRATIONS[2].up(after);
      assert.deepEqual(await dump(after), entries);
    } finally {
      after.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
