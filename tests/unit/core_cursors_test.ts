import assert from "node:assert/strict";
import { Cursors } from "../../src/core/cursors.ts";
import { Store } from "../../src/core/store.ts";

async function withStore(fn: (store: Store) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "mmxmpp-cursors-" });
  const store = await Store.open(`${dir}/state.kv`);
  try {
    await fn(store);
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("cursors only move forward, to finite numbers, and survive reopening the store", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mmxmpp-cursors-" });
  const path = `${dir}/state.kv`;
  try {
    const store = await Store.open(path);
    try {
      const cursors = new Cursors(store, 60_000);
      cursors.advance("mattermost", "chan", 100);
      cursors.advance("mattermost", "chan", 50); // behind: ignored
      cursors.advance("mattermost", "chan", Number("abc")); // not a number: ignored
      cursors.advance("mattermost", "chan", Infinity);
      cursors.advance("xmpp", "room@conference.localhost", 7);
      assert.equal(
        await store.getCursor("mattermost", "chan"),
        undefined,
        "written before the batch was due",
      );
      await cursors.stop();
      assert.equal(await store.getCursor("mattermost", "chan"), 100);
      assert.equal(await store.getCursor("xmpp", "room@conference.localhost"), 7);
    } finally {
      store.close();
    }
    const reopened = await Store.open(path);
    try {
      const again = new Cursors(reopened);
      assert.equal(await again.load("mattermost", "chan"), 100);
      again.advance("mattermost", "chan", 90); // behind what was loaded: ignored
      await again.stop();
      assert.equal(await reopened.getCursor("mattermost", "chan"), 100);
      assert.equal(await again.load("mattermost", "other"), undefined);
    } finally {
      reopened.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cursor writes are batched: one flush writes every channel that moved", async () => {
  await withStore(async (store) => {
    const cursors = new Cursors(store, 50);
    for (let i = 1; i <= 100; i++) cursors.advance("mattermost", `chan${i % 3}`, i);
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(await store.getCursor("mattermost", "chan0"), 99);
    assert.equal(await store.getCursor("mattermost", "chan1"), 100);
    assert.equal(await store.getCursor("mattermost", "chan2"), 98);
    await cursors.stop();
  });
});
