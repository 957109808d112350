import assert from "node:assert/strict";
import { apiFetch, clientFor, withStandIn } from "./test_support.ts";

Deno.test("?since= answers at most 1000 posts, an arbitrary pick of those changed, newest first", async () => {
  await withStandIn({}, async (server) => {
    const channel = server.createChannel("busy");
    const alice = server.createUser("alice");
    server.addMember(channel.id, alice.id);
    const before = (await server.postAs(alice.id, channel.id, "before")).create_at;
    for (let i = 0; i < 1100; i++) await server.postAs(alice.id, channel.id, `post ${i}`);
    const bot = clientFor(server, server.admin.token);
    const first = await bot.getPostsSince(channel.id, before);
    const second = await bot.getPostsSince(channel.id, before);
    assert.equal(first.order.length, 1000);
    const times = first.order.map((id) => first.posts[id].create_at);
    assert.deepEqual(times, [...times].sort((a, b) => b - a), "ordered by create_at, newest first");
    // Not simply the newest or the oldest 1000: which ones is not defined, so two answers differ.
    const newest = server.posts(channel.id).slice(-1000).map((p) => p.id);
    assert.notDeepEqual(new Set(first.order), new Set(newest));
    assert.notDeepEqual(new Set(first.order), new Set(second.order));
  });
});

Deno.test("?since= parses like Go's ParseInt: 0 or a negative number lists pages, garbage is a 400 invalid_param", async () => {
  await withStandIn({}, async (server) => {
    const channel = server.createChannel("plain");
    const alice = server.createUser("alice");
    server.addMember(channel.id, alice.id);
    for (let i = 0; i < 70; i++) await server.postAs(alice.id, channel.id, `post ${i}`);
    for (const since of ["0", "-5"]) {
      const res = await apiFetch(server, "GET", `/channels/${channel.id}/posts?since=${since}`, {
        token: alice.token,
      });
      assert.equal(res.status, 200);
      const list = await res.json();
      assert.equal(list.order.length, 60, `since=${since} is the first page of 60`);
    }
    for (const since of ["abc", "NaN", "1.5", "1e3"]) {
      const res = await apiFetch(server, "GET", `/channels/${channel.id}/posts?since=${since}`, {
        token: alice.token,
      });
      assert.equal(res.status, 400, `since=${since}`);
      assert.equal((await res.json()).id, "api.context.invalid_param.app_error");
    }
  });
});

Deno.test("?since= lists edited and deleted posts, and the deleted copy of an edited post's earlier text", async () => {
  await withStandIn({}, async (server) => {
    const channel = server.createChannel("changes");
    const alice = server.createUser("alice");
    server.addMember(channel.id, alice.id);
    const edited = await server.postAs(alice.id, channel.id, "helo");
    const deleted = await server.postAs(alice.id, channel.id, "oops");
    const since = deleted.create_at;
    await server.editAs(alice.id, edited.id, "hello");
    await server.deleteAs(alice.id, deleted.id);
    const list = await clientFor(server, alice.token).getPostsSince(channel.id, since);
    const posts = list.order.map((id) => list.posts[id]);
    const now = posts.find((p) => p.id === edited.id)!;
    assert.equal(now.message, "hello");
    assert.ok(now.edit_at > since && now.delete_at === 0);
    assert.ok(
      posts.find((p) => p.id === deleted.id)!.delete_at > since,
      "the deleted post, with its delete_at",
    );
    // post_store.go Update: the text before the edit, under a new id, deleted at the edit.
    const history = posts.filter((p) => p.original_id === edited.id);
    assert.equal(history.length, 1);
    assert.equal(history[0].message, "helo");
    assert.equal(history[0].delete_at, now.edit_at);
    // Pages and look-ups never show it.
    assert.ok(!server.posts(channel.id).some((p) => p.original_id !== ""));
  });
});
