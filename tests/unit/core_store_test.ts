import assert from "node:assert/strict";
import { type ChannelMapping, type MessageLink, Store } from "../../src/core/store.ts";

const MM = "mattermost";
const XMPP = "xmpp";

/** Opens a Store on a fresh KV file, runs `fn`, then closes it and removes the file. */
async function withStore(fn: (store: Store, path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "mmxmpp-store-" });
  const path = `${dir}/state.kv`;
  const store = await Store.open(path);
  try {
    await fn(store, path);
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function mapping(
  mmChannel: string,
  room: string,
  origin: ChannelMapping["origin"] = "command",
): ChannelMapping {
  return {
    channels: { [MM]: mmChannel, [XMPP]: room },
    origin,
    createdBy: "admin1",
    createdAt: 1_700_000_000_000,
  };
}

/** Reads every raw KV entry under `prefix` (a second handle on the same file: the store owns the first). */
async function rawEntries(path: string, prefix: Deno.KvKey): Promise<Deno.KvEntry<unknown>[]> {
  const kv = await Deno.openKv(path);
  try {
    const out: Deno.KvEntry<unknown>[] = [];
    for await (const e of kv.list({ prefix })) out.push(e);
    return out;
  } finally {
    kv.close();
  }
}

Deno.test("addMapping writes both directions, each readable from its own side", async () => {
  await withStore(async (store, path) => {
    const m = mapping("chan1", "room1@conference.example.org");
    assert.deepEqual(await store.addMapping(m), { ok: true });
    assert.deepEqual(await store.getMapping(MM, "chan1"), m);
    assert.deepEqual(await store.getMapping(XMPP, "room1@conference.example.org"), m);
    // Exactly the two documented keys exist.
    const keys = (await rawEntries(path, ["channel_map"])).map((e) => e.key);
    assert.deepEqual(
      keys.map((k) => JSON.stringify(k)).sort(),
      [
        JSON.stringify(["channel_map", MM, "chan1"]),
        JSON.stringify(["channel_map", XMPP, "room1@conference.example.org"]),
      ].sort(),
    );
  });
});

Deno.test("mapping add fails atomically when the XMPP side is already mapped", async () => {
  await withStore(async (store, path) => {
    const first = mapping("chan1", "room@conference.example.org");
    assert.ok((await store.addMapping(first)).ok);
    const res = await store.addMapping(mapping("chan2", "room@conference.example.org"));
    assert.equal(res.ok, false);
    if (res.ok) return;
    assert.equal(res.conflict.network, XMPP);
    assert.deepEqual(res.conflict.existing, first);
    // Nothing of the refused mapping was written: chan2 stays free and the room still points to chan1.
    assert.equal(await store.getMapping(MM, "chan2"), null);
    assert.deepEqual(await store.getMapping(XMPP, "room@conference.example.org"), first);
    assert.equal((await rawEntries(path, ["channel_map"])).length, 2);
  });
});

Deno.test("mapping add fails atomically when the Mattermost side is already mapped", async () => {
  await withStore(async (store, path) => {
    const first = mapping("chan1", "room1@conference.example.org");
    assert.ok((await store.addMapping(first)).ok);
    const res = await store.addMapping(mapping("chan1", "room2@conference.example.org"));
    assert.equal(res.ok, false);
    if (res.ok) return;
    assert.equal(res.conflict.network, MM);
    assert.deepEqual(res.conflict.existing, first);
    assert.equal(await store.getMapping(XMPP, "room2@conference.example.org"), null);
    assert.deepEqual(await store.getMapping(MM, "chan1"), first);
    assert.equal((await rawEntries(path, ["channel_map"])).length, 2);
  });
});

Deno.test("adding the very same mapping twice is refused as a conflict", async () => {
  await withStore(async (store) => {
    const m = mapping("chan1", "room@conference.example.org");
    assert.ok((await store.addMapping(m)).ok);
    const again = await store.addMapping({ ...m, createdAt: m.createdAt + 1 });
    assert.equal(again.ok, false);
    assert.deepEqual(await store.getMapping(MM, "chan1"), m);
  });
});

Deno.test("removeMapping from either side removes both directions and returns the mapping", async () => {
  await withStore(async (store, path) => {
    const a = mapping("chanA", "a@conference.example.org");
    const b = mapping("chanB", "b@conference.example.org");
    assert.ok((await store.addMapping(a)).ok);
    assert.ok((await store.addMapping(b)).ok);

    assert.deepEqual(await store.removeMapping(XMPP, "a@conference.example.org"), a);
    assert.equal(await store.getMapping(MM, "chanA"), null);
    assert.equal(await store.getMapping(XMPP, "a@conference.example.org"), null);
    // The other mapping is untouched.
    assert.deepEqual(await store.getMapping(MM, "chanB"), b);

    assert.deepEqual(await store.removeMapping(MM, "chanB"), b);
    assert.equal(await store.getMapping(XMPP, "b@conference.example.org"), null);
    assert.equal((await rawEntries(path, ["channel_map"])).length, 0);

    // Removing again finds nothing.
    assert.equal(await store.removeMapping(MM, "chanB"), null);
  });
});

Deno.test("a side freed by removeMapping can be mapped again", async () => {
  await withStore(async (store) => {
    assert.ok((await store.addMapping(mapping("chan1", "room@conference.example.org"))).ok);
    await store.removeMapping(MM, "chan1");
    const m2 = mapping("chan2", "room@conference.example.org");
    assert.deepEqual(await store.addMapping(m2), { ok: true });
    assert.deepEqual(await store.getMapping(XMPP, "room@conference.example.org"), m2);
  });
});

Deno.test("listMappings lists each mapping exactly once", async () => {
  await withStore(async (store) => {
    assert.deepEqual(await store.listMappings(), []);
    const all = [
      mapping("chan1", "r1@conference.example.org"),
      mapping("chan2", "r2@conference.example.org", "static"),
      mapping("chan3", "r3@conference.example.org"),
    ];
    for (const m of all) assert.ok((await store.addMapping(m)).ok);
    const listed = await store.listMappings();
    assert.equal(listed.length, 3);
    const byChannel = (ms: ChannelMapping[]) => ms.map((m) => m.channels[MM]).sort();
    assert.deepEqual(byChannel(listed), ["chan1", "chan2", "chan3"]);
    for (const m of all) assert.deepEqual(listed.find((l) => l.channels[MM] === m.channels[MM]), m);
  });
});

function link(id: string): MessageLink {
  return {
    id,
    source: MM,
    refs: {
      [MM]: { channel: "chan1", ids: ["post1"], parts: [{ postId: "post1", sender: { kind: "author" } }] },
      [XMPP]: {
        channel: "room@conference.example.org",
        ids: ["msgid1", "origin1"],
        parts: [{ messageId: "msgid1", originId: "origin1", sender: { kind: "relay" } }],
      },
    },
    createdAt: 1_700_000_000_000,
  };
}

Deno.test("findLink resolves a saved link from every id on both networks", async () => {
  await withStore(async (store) => {
    const l = link("link-1");
    await store.saveLink(l);
    assert.deepEqual(await store.findLink(MM, "chan1", "post1"), l);
    assert.deepEqual(await store.findLink(XMPP, "room@conference.example.org", "msgid1"), l);
    assert.deepEqual(await store.findLink(XMPP, "room@conference.example.org", "origin1"), l);
  });
});

Deno.test("findLink finds nothing for an unknown id, another channel or another network", async () => {
  await withStore(async (store) => {
    await store.saveLink(link("link-1"));
    assert.equal(await store.findLink(MM, "chan1", "post-unknown"), null);
    // Same id, but in another channel of the same network.
    assert.equal(await store.findLink(MM, "chan2", "post1"), null);
    // Same id, but looked up on the other network.
    assert.equal(await store.findLink(XMPP, "chan1", "post1"), null);
    assert.equal(await store.findLink(MM, "room@conference.example.org", "msgid1"), null);
  });
});

Deno.test("a message split into several posts resolves from each post id", async () => {
  await withStore(async (store) => {
    const l: MessageLink = {
      id: "link-split",
      source: XMPP,
      refs: {
        [XMPP]: {
          channel: "room@conference.example.org",
          ids: ["m1", "o1", "s1"],
          parts: [{ messageId: "m1", originId: "o1", stanzaId: "s1", sender: { kind: "author" } }],
        },
        [MM]: {
          channel: "chan1",
          ids: ["postA", "postB", "postC"],
          parts: ["postA", "postB", "postC"].map((postId) => ({
            postId,
            sender: { kind: "ghost" as const, id: "u-xmpp-bob" },
          })),
        },
      },
      createdAt: 1,
    };
    await store.saveLink(l);
    for (const id of ["postA", "postB", "postC"]) {
      assert.equal((await store.findLink(MM, "chan1", id))?.id, l.id);
    }
    for (const id of ["m1", "o1", "s1"]) {
      assert.equal((await store.findLink(XMPP, "room@conference.example.org", id))?.id, l.id);
    }
  });
});

Deno.test("addAlias adds a stanza-id that findLink then resolves, and records it in the link", async () => {
  await withStore(async (store) => {
    await store.saveLink(link("link-1"));
    const room = "room@conference.example.org";
    assert.equal(await store.findLink(XMPP, room, "stanza-abc"), null);
    assert.equal(await store.addAlias(XMPP, room, "origin1", "stanza-abc"), true);
    const found = await store.findLink(XMPP, room, "stanza-abc");
    assert.equal(found?.id, "link-1");
    assert.deepEqual(found?.refs[XMPP].ids, ["msgid1", "origin1", "stanza-abc"]);
    // The other network's side is untouched, and the old ids still resolve.
    assert.deepEqual(found?.refs[MM], link("link-1").refs[MM]);
    assert.equal((await store.findLink(XMPP, room, "msgid1"))?.refs[XMPP].ids.length, 3);
    // Adding the same alias twice does not duplicate it.
    assert.equal(await store.addAlias(XMPP, room, "msgid1", "stanza-abc"), true);
    assert.deepEqual((await store.findLink(MM, "chan1", "post1"))?.refs[XMPP].ids, [
      "msgid1",
      "origin1",
      "stanza-abc",
    ]);
  });
});

Deno.test("addAlias with a name sets that id on the part the known id names, once", async () => {
  await withStore(async (store) => {
    await store.saveLink(link("link-1"));
    const room = "room@conference.example.org";
    assert.equal(await store.addAlias(XMPP, room, "origin1", "stanza-abc", "stanzaId"), true);
    const found = await store.findLink(XMPP, room, "stanza-abc");
    assert.deepEqual(found?.refs[XMPP].parts, [
      { messageId: "msgid1", originId: "origin1", stanzaId: "stanza-abc", sender: { kind: "relay" } },
    ]);
    // A second stanza-id for the same part is indexed, but the part keeps the first.
    assert.equal(await store.addAlias(XMPP, room, "origin1", "stanza-other", "stanzaId"), true);
    const again = await store.findLink(XMPP, room, "stanza-other");
    assert.equal(again?.refs[XMPP].parts[0].stanzaId, "stanza-abc");
    assert.deepEqual(again?.refs[XMPP].ids, ["msgid1", "origin1", "stanza-abc", "stanza-other"]);
  });
});

Deno.test("addAlias returns false and stores nothing when the known id was never bridged", async () => {
  await withStore(async (store) => {
    const room = "room@conference.example.org";
    assert.equal(await store.addAlias(XMPP, room, "never-seen", "stanza-x"), false);
    assert.equal(await store.findLink(XMPP, room, "stanza-x"), null);
  });
});

Deno.test("mappings and message links survive closing and reopening the same KV file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mmxmpp-store-" });
  const path = `${dir}/state.kv`;
  try {
    const m = mapping("chan1", "room@conference.example.org");
    const first = await Store.open(path);
    try {
      assert.ok((await first.addMapping(m)).ok);
      await first.saveLink(link("link-1"));
      assert.ok(await first.addAlias(XMPP, "room@conference.example.org", "msgid1", "stanza-1"));
    } finally {
      first.close();
    }

    const second = await Store.open(path);
    try {
      assert.deepEqual(await second.getMapping(XMPP, "room@conference.example.org"), m);
      assert.deepEqual(await second.listMappings(), [m]);
      assert.equal((await second.findLink(MM, "chan1", "post1"))?.id, "link-1");
      assert.equal((await second.findLink(XMPP, "room@conference.example.org", "stanza-1"))?.id, "link-1");
      // A conflicting add is still refused after the restart.
      const res = await second.addMapping(mapping("chan9", "room@conference.example.org"));
      assert.equal(res.ok, false);
    } finally {
      second.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("of two concurrent adds contending for the same room, exactly one wins", async () => {
  await withStore(async (store) => {
    const room = "room@conference.example.org";
    const results = await Promise.all([
      store.addMapping(mapping("chanA", room)),
      store.addMapping(mapping("chanB", room)),
    ]);
    assert.equal(results.filter((r) => r.ok).length, 1);
    const winner = results[0].ok ? "chanA" : "chanB";
    const loser = winner === "chanA" ? "chanB" : "chanA";
    assert.equal((await store.getMapping(XMPP, room))?.channels[MM], winner);
    assert.equal(await store.getMapping(MM, loser), null);
    assert.equal((await store.listMappings()).length, 1);
  });
});

Deno.test("a puppet is recorded once per identity and per user id, found by both, and updated in place", async () => {
  await withStore(async (store) => {
    const record = {
      network: XMPP,
      identity: "alice@example.org",
      userId: "u".repeat(26),
      username: "xmpp-alice",
      displayName: "alice",
      channels: [],
      createdAt: 1,
    };
    assert.equal(await store.createPuppet(record), true);
    assert.equal(
      await store.createPuppet({ ...record, userId: "v".repeat(26) }),
      false,
      "a second for the identity",
    );
    assert.equal(
      await store.createPuppet({ ...record, identity: "bob@example.org" }),
      false,
      "a user id twice",
    );
    assert.deepEqual(await store.puppetOwner(record.userId), {
      network: XMPP,
      identity: "alice@example.org",
    });
    assert.equal(await store.puppetOwner("v".repeat(26)), null);
    await store.updatePuppet({ ...record, displayName: "ally", channels: ["c1"] });
    assert.deepEqual(await store.listPuppets(), [{ ...record, displayName: "ally", channels: ["c1"] }]);
    assert.equal((await store.getPuppet(XMPP, "alice@example.org"))?.displayName, "ally");
    assert.equal(await store.getPuppet(MM, "alice@example.org"), null, "keyed by network too");
  });
});

Deno.test("routeFacts reads a channel's mapping, the link any of an event's ids names, and whether it was seen", async () => {
  await withStore(async (store) => {
    const room = "room@conference.example.org";
    assert.deepEqual(await store.routeFacts(MM, "c1", ["p1"]), { mapping: null, link: null, seen: false });
    assert.ok((await store.addMapping(mapping("c1", room))).ok);
    const link: MessageLink = {
      id: "link1",
      source: XMPP,
      refs: {
        [XMPP]: { channel: room, ids: ["o1"], parts: [{ sender: { kind: "author", id: "bob" } }] },
        [MM]: { channel: "c1", ids: ["p-last"], parts: [{ sender: { kind: "relay" } }] },
      },
      createdAt: 1,
    };
    await store.saveLink(link);
    await store.writeBatch([{ kind: "seen", event: { network: MM, channel: "c1", eventId: "edit1" } }]);
    // More ids than one KV read takes (10 keys), the known one last.
    const ids = [...Array.from({ length: 12 }, (_, i) => `unknown-${i}`), "p-last"];
    const facts = await store.routeFacts(MM, "c1", ids, "edit1");
    assert.deepEqual(facts.mapping, mapping("c1", room));
    assert.deepEqual(facts.link, link);
    assert.equal(facts.seen, true);
    assert.equal((await store.routeFacts(MM, "c1", ids.slice(0, 12), "edit2")).link, null);
    assert.equal((await store.routeFacts(MM, "c1", ids.slice(0, 12), "edit2")).seen, false);
  });
});
