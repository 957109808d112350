import assert from "node:assert/strict";
import {
  apiFetch,
  clientFor,
  connectClient,
  draft,
  rejectsWith,
  until,
  withStandIn,
} from "./test_support.ts";

const NO_OPTS = {};

Deno.test("ping and the client config need no session; anonymous callers get the limited config", async () => {
  await withStandIn(NO_OPTS, async (server) => {
    const anonymous = clientFor(server, "");
    const ping = await anonymous.ping(false);
    assert.equal(ping.status, "OK");
    const limited = await anonymous.getClientConfig();
    assert.equal(limited.SiteURL, server.url);
    assert.match(limited.Version, /^\d+\.\d+\.\d+$/);
    assert.equal(limited.EnablePostUsernameOverride, undefined, "not in GenerateLimitedClientConfig");
    assert.equal(limited.EnablePostIconOverride, undefined);
    assert.deepEqual(await clientFor(server, "no-such-token").getClientConfig(), limited);
    const config = await clientFor(server, server.bot.token).getClientConfig();
    assert.equal(config.EnablePostUsernameOverride, "true");
    assert.equal(config.EnablePostIconOverride, "true");
    assert.equal(config.SiteURL, server.url);
    const newFormat = await apiFetch(server, "GET", "/config/client");
    assert.equal(newFormat.status, 501);
    await newFormat.body?.cancel();
  });
});

Deno.test("JSON responses carry Content-Type application/json exactly, X-Version-Id and X-Request-Id", async () => {
  await withStandIn(NO_OPTS, async (server) => {
    for (
      const [path, status] of [["/users/me", 200], ["/users/nope", 400], ["/no/such/route", 404]] as const
    ) {
      const resp = await apiFetch(server, "GET", path, { token: server.bot.token });
      assert.equal(resp.status, status, path);
      assert.equal(resp.headers.get("content-type"), "application/json");
      assert.match(resp.headers.get("x-version-id") ?? "", /^10\.11\.0\./);
      const body = await resp.json();
      if (status !== 200) {
        assert.equal(body.request_id, resp.headers.get("x-request-id"));
        assert.equal(body.status_code, status);
        assert.deepEqual(Object.keys(body).sort(), [
          "detailed_error",
          "id",
          "message",
          "request_id",
          "status_code",
        ]);
      }
    }
  });
});

Deno.test("an unknown or missing token gets 401 session_expired", async () => {
  await withStandIn(NO_OPTS, async (server) => {
    await rejectsWith(clientFor(server, "badtoken").getMe(), 401, "api.context.session_expired.app_error");
    await rejectsWith(clientFor(server, "").getMe(), 401, "api.context.session_expired.app_error");
  });
});

Deno.test("a token in the query string is refused for REST calls", async () => {
  await withStandIn(NO_OPTS, async (server) => {
    const resp = await fetch(`${server.url}/api/v4/users/me?access_token=${server.bot.token}`);
    assert.equal(resp.status, 401);
    assert.equal((await resp.json()).id, "api.context.token_provided.app_error");
  });
});

Deno.test("a created post gets server-set fields; a bot's post gets from_bot", async () => {
  await withStandIn(NO_OPTS, async (server) => {
    const channel = server.createChannel("bridged");
    server.addMember(channel.id, server.bot.id);
    const bot = clientFor(server, server.bot.token);
    const first = await bot.createPost(draft({ channel_id: channel.id, message: "one", user_id: "forged" }));
    const second = await bot.createPost(draft({ channel_id: channel.id, message: "two" }));
    assert.equal(first.user_id, server.bot.id);
    assert.match(first.id, /^[a-z0-9]{26}$/);
    assert.equal(first.type, "");
    assert.equal(first.edit_at, 0);
    assert.equal(first.delete_at, 0);
    assert.equal(first.update_at, first.create_at);
    assert.ok(second.create_at > first.create_at, "create_at strictly increases");
    assert.equal(first.props.from_bot, "true");

    const alice = server.createUser("alice");
    server.addMember(channel.id, alice.id);
    const human = await clientFor(server, alice.token).createPost(
      draft({ channel_id: channel.id, message: "hi" }),
    );
    assert.equal(human.props.from_bot, undefined);
    assert.deepEqual(server.posts(channel.id).map((p) => p.message), ["one", "two", "hi"]);
  });
});

Deno.test("a message over 16383 code points is refused with 400, never truncated", async () => {
  await withStandIn(NO_OPTS, async (server) => {
    const channel = server.createChannel("bridged");
    server.addMember(channel.id, server.bot.id);
    const bot = clientFor(server, server.bot.token);
    // 16383 astral characters are 32766 UTF-16 units but only 16383 runes: accepted.
    const astral = "😀".repeat(16383);
    const ok = await bot.createPost(draft({ channel_id: channel.id, message: astral }));
    assert.equal(ok.message, astral);
    await rejectsWith(
      bot.createPost(draft({ channel_id: channel.id, message: "x".repeat(16384) })),
      400,
      "model.post.is_valid.message_length.app_error",
    );
    await rejectsWith(
      bot.patchPost(draft({ id: ok.id, message: "😀".repeat(16384) })),
      400,
      "model.post.is_valid.message_length.app_error",
    );
    assert.equal(server.posts(channel.id).length, 1);
    assert.equal(server.post(ok.id)?.message, astral);
  });
});

Deno.test("a bot may create the post types the server accepts through REST: me, custom_*, slack_attachment", async () => {
  await withStandIn(NO_OPTS, async (server) => {
    const channel = server.createChannel("bridged");
    server.addMember(channel.id, server.bot.id);
    const bot = clientFor(server, server.bot.token);
    for (const type of ["", "me", "custom_poll", "slack_attachment", "reminder", "add_bot_teams_channels"]) {
      const post = await bot.createPost(draft({ channel_id: channel.id, message: `*${type}*`, type }));
      assert.equal(post.type, type);
      assert.equal(server.post(post.id)?.type, type);
    }
    assert.equal(server.posts(channel.id).length, 6);
  });
});

Deno.test("system_* types are refused through REST (400 invalid_param post.type), unknown types by IsValid", async () => {
  await withStandIn(NO_OPTS, async (server) => {
    const channel = server.createChannel("bridged");
    server.addMember(channel.id, server.bot.id);
    const bot = clientFor(server, server.bot.token);
    for (const type of ["system_join_channel", "system_generic", "system_header_change", "system_anything"]) {
      await rejectsWith(
        bot.createPost(draft({ channel_id: channel.id, message: "forged", type })),
        400,
        "api.context.invalid_param.app_error",
      );
    }
    for (const type of ["action", "ME", "custom", "card"]) {
      await rejectsWith(
        bot.createPost(draft({ channel_id: channel.id, message: "odd", type })),
        400,
        "model.post.is_valid.type.app_error",
      );
    }
    // CreatePostAsUser checks the type before the channel's deletion, after the permission check.
    await rejectsWith(
      bot.createPost(draft({ channel_id: "a".repeat(26), message: "x", type: "system_generic" })),
      403,
      "api.context.permissions.app_error",
    );
    const stored = server.posts(channel.id, { includeSystem: true }).map((p) => p.message);
    assert.ok(!stored.includes("forged") && !stored.includes("odd"), JSON.stringify(stored));
  });
});

Deno.test("posted.mentions counts @channel like the server: not in code, still after a backslash", async () => {
  await withStandIn(NO_OPTS, async (server) => {
    const channel = server.createChannel("bridged");
    const alice = server.createUser("alice");
    const carol = server.createUser("carol");
    for (const u of [server.bot.id, alice.id, carol.id]) server.addMember(channel.id, u);
    const ws = connectClient(server, carol.token);
    try {
      await ws.waitFor((m) => m.event === "hello");
      const mentionsOf = async (message: string) => {
        const post = await server.postAs(alice.id, channel.id, message);
        const event = await ws.waitFor((m) => m.event === "posted" && JSON.parse(m.data.post).id === post.id);
        return event.data.mentions ? JSON.parse(event.data.mentions).sort() : [];
      };
      const everyone = await mentionsOf("@channel hi");
      assert.ok(everyone.includes(server.bot.id) && everyone.includes(carol.id), "every other member");
      assert.ok(!everyone.includes(alice.id), "not the author");
      assert.deepEqual(await mentionsOf("\\@all, hi"), everyone);
      assert.deepEqual(await mentionsOf("@here."), [carol.id], "only the connected member");
      assert.deepEqual(await mentionsOf("`@channel` and @channels"), []);
      assert.deepEqual(await mentionsOf("```\n@all\n```"), []);
      assert.deepEqual(await mentionsOf("cc @carol."), [carol.id]);
    } finally {
      ws.close();
    }
  });
});

Deno.test("a post without channel_id, or to an unknown channel, is refused with 403 like the real server", async () => {
  await withStandIn(NO_OPTS, async (server) => {
    const bot = clientFor(server, server.bot.token);
    await rejectsWith(bot.createPost(draft({ message: "where?" })), 403, "api.context.permissions.app_error");
    await rejectsWith(
      bot.createPost(draft({ channel_id: "a".repeat(26), message: "where?" })),
      403,
      "api.context.permissions.app_error",
    );
  });
});

Deno.test("posting needs channel membership; a system admin may post anywhere", async () => {
  await withStandIn(NO_OPTS, async (server) => {
    const channel = server.createChannel("elsewhere");
    await rejectsWith(
      clientFor(server, server.bot.token).createPost(draft({ channel_id: channel.id, message: "hi" })),
      403,
      "api.context.permissions.app_error",
    );
    const other = server.createChannel("adminonly");
    const adminPost = await clientFor(server, server.admin.token).createPost(
      draft({ channel_id: other.id, message: "x" }),
    );
    assert.equal(adminPost.channel_id, other.id);
  });
});

Deno.test("replies need a live root post in the same channel that is not itself a reply", async () => {
  await withStandIn(NO_OPTS, async (server) => {
    const channel = server.createChannel("bridged");
    const otherChannel = server.createChannel("other");
    server.addMember(channel.id, server.bot.id);
    server.addMember(otherChannel.id, server.bot.id);
    const bot = clientFor(server, server.bot.token);
    const root = await bot.createPost(draft({ channel_id: channel.id, message: "root" }));
    const reply = await bot.createPost(draft({ channel_id: channel.id, message: "re", root_id: root.id }));
    assert.equal(reply.root_id, root.id);
    const rootError = "api.post.create_post.root_id.app_error";
    await rejectsWith(
      bot.createPost(draft({ channel_id: channel.id, message: "x", root_id: "z".repeat(26) })),
      400,
      rootError,
    );
    await rejectsWith(
      bot.createPost(draft({ channel_id: channel.id, message: "x", root_id: reply.id })),
      400,
      rootError,
    );
    await rejectsWith(
      bot.createPost(draft({ channel_id: otherChannel.id, message: "x", root_id: root.id })),
      400,
      "api.post.create_post.channel_root_id.app_error",
    );
    // The channel is checked before whether the root is a reply (app/post.go `CreatePost`).
    await rejectsWith(
      bot.createPost(draft({ channel_id: otherChannel.id, message: "x", root_id: reply.id })),
      400,
      "api.post.create_post.channel_root_id.app_error",
    );
    assert.equal(server.post(root.id)?.reply_count, 1);
    const doomed = await bot.createPost(draft({ channel_id: channel.id, message: "doomed" }));
    await bot.deletePost(doomed.id);
    await rejectsWith(
      bot.createPost(draft({ channel_id: channel.id, message: "x", root_id: doomed.id })),
      400,
      rootError,
    );
  });
});

Deno.test("a JSON body whose Content-Type is not exactly application/json gets 415; bad JSON gets 400", async () => {
  await withStandIn(NO_OPTS, async (server) => {
    const channel = server.createChannel("bridged");
    server.addMember(channel.id, server.bot.id);
    const body = JSON.stringify({ channel_id: channel.id, message: "hi" });
    for (const contentType of ["text/plain", "application/json; charset=utf-8", undefined]) {
      const resp = await apiFetch(server, "POST", "/posts", { token: server.bot.token, body, contentType });
      assert.equal(resp.status, 415, String(contentType));
      assert.equal(resp.headers.get("content-type"), "application/json");
      assert.equal((await resp.json()).status_code, 415);
    }
    const bad = await apiFetch(server, "POST", "/posts", {
      token: server.bot.token,
      body: "{",
      contentType: "application/json",
    });
    assert.equal(bad.status, 400);
    assert.equal((await bad.json()).id, "api.context.invalid_body_param.app_error");
    const good = await apiFetch(server, "POST", "/posts", {
      token: server.bot.token,
      body,
      contentType: "application/json",
    });
    assert.equal(good.status, 201);
    await good.body?.cancel();
    assert.equal(server.posts(channel.id).length, 1);
  });
});

Deno.test("override props are stored as sent; sender_name uses the override only where the server allows", async () => {
  const props = { override_username: "romeo", override_icon_url: "http://x/a.png" };
  for (const enabled of [true, false]) {
    await withStandIn({ enablePostUsernameOverride: enabled }, async (server) => {
      const channel = server.createChannel("bridged");
      server.addMember(channel.id, server.bot.id);
      const bot = clientFor(server, server.bot.token);
      const watcher = connectClient(server, server.admin.token);
      try {
        await watcher.waitFor((m) => m.event === "hello");
        const withWebhook = await bot.createPost(
          draft({ channel_id: channel.id, message: "a", props: { ...props, from_webhook: "true" } }),
        );
        const without = await bot.createPost(draft({ channel_id: channel.id, message: "b", props }));
        for (const post of [withWebhook, without, server.post(withWebhook.id)!, server.post(without.id)!]) {
          assert.equal(post.props.override_username, "romeo");
          assert.equal(post.props.override_icon_url, "http://x/a.png");
        }
        const senderOf = async (postId: string) =>
          (await watcher.waitFor((m) => m.event === "posted" && JSON.parse(m.data.post).id === postId))
            .data.sender_name;
        assert.equal(await senderOf(withWebhook.id), enabled ? "romeo" : "@xmppbridge");
        assert.equal(await senderOf(without.id), "@xmppbridge");
      } finally {
        watcher.close();
      }
    });
  }
});

Deno.test("an invalid set_online is ignored (the post is created, the author set online)", async () => {
  await withStandIn(NO_OPTS, async (server) => {
    const channel = server.createChannel("bridged");
    server.addMember(channel.id, server.bot.id);
    const resp = await apiFetch(server, "POST", "/posts?set_online=maybe", {
      token: server.bot.token,
      body: JSON.stringify({ channel_id: channel.id, message: "hi" }),
      contentType: "application/json",
    });
    assert.equal(resp.status, 201);
    assert.equal((await resp.json()).message, "hi");
    const status = await clientFor(server, server.admin.token).getStatus(server.bot.id);
    assert.equal(status.status, "online");
  });
});

Deno.test("patching edits the message and sets edit_at; only the author or an admin may patch or delete", async () => {
  await withStandIn(NO_OPTS, async (server) => {
    const channel = server.createChannel("bridged");
    server.addMember(channel.id, server.bot.id);
    const alice = server.createUser("alice");
    server.addMember(channel.id, alice.id);
    const post = await server.postAs(alice.id, channel.id, "original");
    const bot = clientFor(server, server.bot.token);
    await rejectsWith(bot.patchPost(draft({ id: post.id, message: "hijack" })), 403);
    await rejectsWith(bot.deletePost(post.id), 403);
    const edited = await clientFor(server, alice.token).patchPost(draft({ id: post.id, message: "edited" }));
    assert.equal(edited.message, "edited");
    assert.ok(edited.edit_at > 0);
    assert.ok(edited.update_at > post.update_at);
    const joinPost = server.posts(channel.id, { includeSystem: true }).find((p) =>
      p.type === "system_join_channel"
    )!;
    await rejectsWith(
      clientFor(server, server.admin.token).patchPost(draft({ id: joinPost.id, message: "x" })),
      400,
      "api.post.update_post.system_message.app_error",
    );
  });
});

Deno.test("patching a deleted or missing post is 403 edit_post, not 404 (api4/post.go postPatchChecks)", async () => {
  await withStandIn(NO_OPTS, async (server) => {
    const channel = server.createChannel("bridged");
    server.addMember(channel.id, server.bot.id);
    const bot = clientFor(server, server.bot.token);
    const gone = await bot.createPost(draft({ channel_id: channel.id, message: "gone" }));
    await bot.deletePost(gone.id);
    await rejectsWith(
      bot.patchPost(draft({ id: gone.id, message: "x" })),
      403,
      "api.context.permissions.app_error",
    );
    await rejectsWith(bot.patchPost(draft({ id: "a".repeat(26), message: "x" })), 403);
  });
});

Deno.test("deleting a post answers OK, hides it from GET and keeps it in ?since= with delete_at set", async () => {
  await withStandIn(NO_OPTS, async (server) => {
    const channel = server.createChannel("bridged");
    server.addMember(channel.id, server.bot.id);
    const bot = clientFor(server, server.bot.token);
    const root = await bot.createPost(draft({ channel_id: channel.id, message: "root" }));
    const reply = await bot.createPost(draft({ channel_id: channel.id, message: "reply", root_id: root.id }));
    const since = reply.create_at;
    assert.deepEqual(await bot.deletePost(root.id), { status: "OK" });
    await rejectsWith(bot.getPost(root.id), 404, "app.post.get.app_error");
    await rejectsWith(bot.deletePost(root.id), 404);
    const list = await bot.getPostsSince(channel.id, since);
    assert.ok(list.order.includes(root.id));
    assert.ok(list.posts[root.id].delete_at > 0);
    assert.ok(server.post(reply.id)!.delete_at > 0, "thread replies are deleted with their root");
    assert.deepEqual(server.posts(channel.id), []);
  });
});

Deno.test("?since= returns posts updated strictly after the time, edits included, newest first", async () => {
  await withStandIn(NO_OPTS, async (server) => {
    const channel = server.createChannel("bridged");
    server.addMember(channel.id, server.bot.id);
    const bot = clientFor(server, server.bot.token);
    const a = await bot.createPost(draft({ channel_id: channel.id, message: "a" }));
    const b = await bot.createPost(draft({ channel_id: channel.id, message: "b" }));
    const c = await bot.createPost(draft({ channel_id: channel.id, message: "c" }));
    await bot.patchPost(draft({ id: a.id, message: "a2" }));
    const list = await bot.getPostsSince(channel.id, b.create_at);
    // And the deleted copy of a's text before the edit (post_store.go Update), listed like any deleted post.
    assert.deepEqual(list.order.filter((id) => list.posts[id].original_id === ""), [c.id, a.id]);
    assert.deepEqual(list.order.filter((id) => list.posts[id].original_id === a.id).length, 1);
    assert.equal(list.posts[a.id].message, "a2");
    assert.equal(list.next_post_id, "");
    assert.equal(list.prev_post_id, "");
    const page = await bot.getPosts(channel.id, 0, 2);
    assert.deepEqual(page.order, [c.id, b.id]);
    const page2 = await bot.getPosts(channel.id, 1, 2);
    assert.ok(page2.order.includes(a.id));
  });
});

Deno.test("reactions: add and remove for oneself, unknown emoji 404, removing an absent one is OK", async () => {
  await withStandIn(NO_OPTS, async (server) => {
    const channel = server.createChannel("bridged");
    server.addMember(channel.id, server.bot.id);
    const alice = server.createUser("alice");
    server.addMember(channel.id, alice.id);
    const bot = clientFor(server, server.bot.token);
    const post = await server.postAs(alice.id, channel.id, "react to me");
    const ws = connectClient(server, server.bot.token);
    try {
      await ws.waitFor((m) => m.event === "hello");
      const reaction = await bot.addReaction(server.bot.id, post.id, "+1");
      assert.equal(reaction.emoji_name, "+1");
      const added = await ws.waitFor((m) => m.event === "reaction_added");
      assert.equal(JSON.parse(added.data.reaction).emoji_name, "+1");
      assert.equal(server.post(post.id)?.metadata?.reactions?.length, 1);
      await rejectsWith(
        bot.addReaction(server.bot.id, post.id, "no_such_emoji"),
        404,
        "app.emoji.get_by_name.no_result",
      );
      await rejectsWith(bot.addReaction(alice.id, post.id, "smile"), 403);
      await rejectsWith(bot.removeReaction(alice.id, post.id, "smile"), 403);
      assert.deepEqual(await bot.removeReaction(server.bot.id, post.id, "+1"), { status: "OK" });
      assert.deepEqual(await bot.removeReaction(server.bot.id, post.id, "heart"), { status: "OK" });
      await ws.waitFor((m) => m.event === "reaction_removed");
      const since = await bot.getPostsSince(channel.id, post.create_at);
      assert.ok(since.order.includes(post.id), "a reaction change bumps update_at");
    } finally {
      ws.close();
    }
  });
});

Deno.test("reactions: checked in the Go server's order; custom emoji; the limit per post; the removal event names no channel", async () => {
  await withStandIn({ uniqueEmojiReactionLimitPerPost: 2 }, async (server) => {
    const channel = server.createChannel("bridged");
    server.addMember(channel.id, server.bot.id);
    const bot = clientFor(server, server.bot.token);
    const post = await server.postAs(server.bot.id, channel.id, "react to me");
    const invalid = "api.reaction.save_reaction.invalid.app_error";
    // api4/reaction.go: ids and the name's length come first (400), before whose reaction it is (403).
    await rejectsWith(bot.addReaction("nope", post.id, "+1"), 400, invalid);
    await rejectsWith(bot.addReaction(server.bot.id, post.id, "x".repeat(65)), 400, invalid);
    await rejectsWith(bot.addReaction(server.admin.id, "nope", "+1"), 400, invalid);
    // A name with a character the model refuses is looked up first: no such emoji (app/reaction.go).
    await rejectsWith(bot.addReaction(server.bot.id, post.id, "a b"), 404, "app.emoji.get_by_name.no_result");
    server.createCustomEmoji("party_parrot");
    assert.equal((await bot.addReaction(server.bot.id, post.id, "party_parrot")).emoji_name, "party_parrot");
    await bot.addReaction(server.bot.id, post.id, "+1");
    // Re-adding one already there is no new distinct emoji; a third one is over the limit.
    await bot.addReaction(server.bot.id, post.id, "+1");
    await rejectsWith(
      bot.addReaction(server.bot.id, post.id, "smile"),
      400,
      "app.reaction.save.save.too_many_reactions",
    );
    const ws = connectClient(server, server.bot.token);
    try {
      await ws.waitFor((m) => m.event === "hello");
      await bot.removeReaction(server.bot.id, post.id, "+1");
      const removed = await ws.waitFor((m) => m.event === "reaction_removed");
      const reaction = JSON.parse(removed.data.reaction);
      assert.equal(reaction.emoji_name, "+1");
      assert.equal(reaction.channel_id, "", "built from the URL: no channel");
      assert.equal(reaction.create_at, 0);
      assert.ok(reaction.update_at > 0);
      assert.equal(removed.broadcast.channel_id, channel.id, "the broadcast names the channel");
      // Added again, a reaction keeps its row and its first create_at (the upsert leaves CreateAt alone): its place
      // in the post's list, oldest first, does not change.
      await bot.addReaction(server.bot.id, post.id, "+1");
      await bot.removeReaction(server.bot.id, post.id, "party_parrot");
      const again = await bot.addReaction(server.bot.id, post.id, "party_parrot");
      const list = await bot.getReactionsForPost(post.id);
      assert.deepEqual(list.map((r) => r.emoji_name), ["party_parrot", "+1"]);
      assert.ok(again.create_at >= list[0].create_at, "the answer carries the create_at of the request");
    } finally {
      ws.close();
    }
  });
  await withStandIn({ enableCustomEmoji: false }, async (server) => {
    const channel = server.createChannel("bridged");
    server.addMember(channel.id, server.bot.id);
    const bot = clientFor(server, server.bot.token);
    const post = await server.postAs(server.bot.id, channel.id, "react to me");
    server.createCustomEmoji("party_parrot");
    await rejectsWith(
      bot.addReaction(server.bot.id, post.id, "party_parrot"),
      403,
      "api.emoji.disabled.app_error",
    );
    assert.equal(
      (await bot.addReaction(server.bot.id, post.id, "+1")).emoji_name,
      "+1",
      "system emoji still work",
    );
  });
});

Deno.test("private channels: a non-member gets 403 by id and 404 by name; members read them", async () => {
  await withStandIn(NO_OPTS, async (server) => {
    const secret = server.createChannel("secret", { type: "P", displayName: "Secret" });
    const bot = clientFor(server, server.bot.token);
    await rejectsWith(bot.getChannel(secret.id), 403, "api.context.permissions.app_error");
    await rejectsWith(bot.getChannelByNameAndTeamName("testteam", "secret"), 404);
    await rejectsWith(bot.getPosts(secret.id), 403);
    await rejectsWith(bot.addToChannel(server.bot.id, secret.id), 403, "api.context.permissions.app_error");
    server.addMember(secret.id, server.bot.id);
    assert.equal((await bot.getChannel(secret.id)).display_name, "Secret");
    assert.equal((await bot.getChannelByNameAndTeamName("testteam", "secret")).id, secret.id);
  });
});

Deno.test("channel member lookup: 404 for a non-member when asked by a member, 403 when the caller is not a member", async () => {
  await withStandIn(NO_OPTS, async (server) => {
    const channel = server.createChannel("bridged");
    const alice = server.createUser("alice");
    const bot = clientFor(server, server.bot.token);
    await rejectsWith(
      bot.getChannelMember(channel.id, server.bot.id),
      403,
      "api.context.permissions.app_error",
    );
    server.addMember(channel.id, server.bot.id);
    const me = await bot.getChannelMember(channel.id, server.bot.id);
    assert.equal(me.user_id, server.bot.id);
    await rejectsWith(
      bot.getChannelMember(channel.id, alice.id),
      404,
      "app.channel.get_member.missing.app_error",
    );
    assert.equal((await bot.getChannel(channel.id)).name, "bridged");
    assert.equal((await bot.getChannelByNameAndTeamName("testteam", "bridged")).id, channel.id);
  });
});

Deno.test("the bot joins a public channel itself: 201 member, user_added and a join system post", async () => {
  await withStandIn(NO_OPTS, async (server) => {
    const channel = server.createChannel("bridged");
    const bot = clientFor(server, server.bot.token);
    const member = await bot.addToChannel(server.bot.id, channel.id);
    assert.equal(member.channel_id, channel.id);
    const again = await bot.addToChannel(server.bot.id, channel.id);
    assert.equal(again.user_id, server.bot.id);
    const all = server.posts(channel.id, { includeSystem: true });
    assert.deepEqual(all.map((p) => p.type), ["system_join_channel"]);
    assert.equal(all[0].message, "@xmppbridge joined the channel.");
    assert.deepEqual(server.posts(channel.id), [], "system posts are hidden by default");
    const channels = await bot.getMyChannels(server.team.id);
    assert.deepEqual(channels.map((c) => c.name), ["bridged"]);
    const teams = await bot.getMyTeams();
    assert.deepEqual(teams.map((t) => t.name), ["testteam"]);
    assert.equal((await bot.getTeamByName("testteam")).id, server.team.id);
  });
});

Deno.test("users: lookups by id, ids and username; profile image bytes", async () => {
  await withStandIn(NO_OPTS, async (server) => {
    const alice = server.createUser("alice");
    const bot = clientFor(server, server.bot.token);
    const me = await bot.getMe();
    assert.equal(me.username, "xmppbridge");
    assert.equal(me.is_bot, true);
    assert.equal((await bot.getUser(alice.id)).username, "alice");
    assert.equal((await bot.getUserByUsername("alice")).id, alice.id);
    await rejectsWith(bot.getUserByUsername("nobody"), 404);
    await rejectsWith(bot.getUser("z".repeat(26)), 404, "app.user.missing_account.const");
    const byIds = await bot.getProfilesByIds([alice.id, server.admin.id, "z".repeat(26)]);
    assert.deepEqual(byIds.map((u) => u.username).sort(), ["alice", "sysadmin"]);
    assert.equal((await bot.getUser(alice.id)).notify_props, undefined, "others' private fields are hidden");
    const image = await fetch(bot.getProfilePictureUrl(alice.id, 0), {
      headers: { Authorization: `Bearer ${server.bot.token}` },
    });
    assert.equal(image.headers.get("content-type"), "image/png");
    assert.deepEqual([...new Uint8Array(await image.arrayBuffer()).slice(1, 4)], [0x50, 0x4e, 0x47]);
  });
});

Deno.test("creating users: admin only, usernames lowercased and checked, reserved names refused, props kept", async () => {
  await withStandIn(NO_OPTS, async (server) => {
    const admin = clientFor(server, server.admin.token);
    const user = await admin.createUser(
      { username: "Romeo.X", email: "romeo@example.com", password: "password123" } as never,
      "",
      "",
    );
    assert.equal(user.username, "romeo.x");
    assert.match(user.id, /^[a-z0-9]{26}$/);
    // model/user.go IsValidUsername: no letter needed first, and `here` is not reserved.
    for (const username of ["here", "1st.user"]) {
      const made = await admin.createUser(
        { username, email: `${username}@example.com`, password: "password123" } as never,
        "",
        "",
      );
      assert.equal(made.username, username);
    }
    const puppet = await admin.createUser(
      {
        username: "xmpp-alice",
        email: "xmpp-alice@puppets.invalid",
        password: "password123",
        nickname: "Alice",
        props: { mmxmpp_puppet: "xmpp" },
      } as never,
      "",
      "",
    );
    assert.deepEqual(puppet.props, { mmxmpp_puppet: "xmpp" });
    assert.equal(puppet.roles, "system_user");
    await rejectsWith(
      admin.createUser(
        {
          username: "longnick",
          email: "ln@example.com",
          password: "password123",
          nickname: "n".repeat(65),
        } as never,
        "",
        "",
      ),
      400,
      "model.user.is_valid.nickname.app_error",
    );
    for (const username of ["all", "channel", "matterbot", "system", "bad name", "é", "a".repeat(65)]) {
      await rejectsWith(
        admin.createUser(
          { username, email: `${username.length}x@example.com`, password: "password123" } as never,
          "",
          "",
        ),
        400,
        "model.user.is_valid.username.app_error",
      );
    }
    await rejectsWith(
      admin.createUser(
        { username: "romeo.x", email: "other@example.com", password: "password123" } as never,
        "",
        "",
      ),
      400,
      "app.user.save.username_exists.app_error",
    );
    await rejectsWith(
      clientFor(server, server.bot.token).createUser(
        { username: "juliet", email: "j@example.com", password: "password123" } as never,
        "",
        "",
      ),
      403,
    );
  });
});

Deno.test("deactivating a user publishes user_updated to everyone and their token stops working", async () => {
  await withStandIn(NO_OPTS, async (server) => {
    const alice = server.createUser("alice");
    const ws = connectClient(server, server.bot.token);
    try {
      await ws.waitFor((m) => m.event === "hello");
      await rejectsWith(clientFor(server, server.bot.token).updateUserActive(alice.id, false), 403);
      assert.deepEqual(await clientFor(server, server.admin.token).updateUserActive(alice.id, false), {
        status: "OK",
      });
      const updated = await ws.waitFor((m) => m.event === "user_updated");
      assert.equal(updated.data.user.id, alice.id);
      assert.ok(updated.data.user.delete_at > 0);
      await rejectsWith(clientFor(server, alice.token).getMe(), 401);
    } finally {
      ws.close();
    }
  });
});

Deno.test("personal access tokens: 501 for a user (not a bot) when disabled, admin-only, and the token authenticates until they are turned off", async () => {
  await withStandIn({ enableUserAccessTokens: false }, async (server) => {
    const alice = server.createUser("alice");
    const admin = clientFor(server, server.admin.token);
    await rejectsWith(admin.createUserAccessToken(alice.id, ""), 400, "api.context.invalid_param.app_error");
    await rejectsWith(admin.createUserAccessToken(alice.id, "bridge"), 501, "app.user_access_token.disabled");
    // Bots are exempt (app/user_access_token.go CreateUserAccessToken).
    const botToken = await admin.createUserAccessToken(server.bot.id, "bridge");
    assert.equal((await clientFor(server, botToken.token!).getMe()).id, server.bot.id);
  });
  await withStandIn(NO_OPTS, async (server) => {
    const alice = server.createUser("alice");
    const made = await clientFor(server, server.admin.token).createUserAccessToken(alice.id, "puppet");
    assert.equal((await clientFor(server, made.token!).getMe()).id, alice.id);
    // createSessionForUserAccessToken: a user's (not a bot's) token stops working when tokens are turned off.
    server.setConfig({ enableUserAccessTokens: false });
    await rejectsWith(clientFor(server, made.token!).getMe(), 401);
    server.setConfig({ enableUserAccessTokens: true });
    assert.equal((await clientFor(server, made.token!).getMe()).id, alice.id);
  });
  await withStandIn(NO_OPTS, async (server) => {
    await rejectsWith(
      clientFor(server, server.bot.token).createUserAccessToken(server.bot.id, "bridge"),
      403,
    );
    const created = await clientFor(server, server.admin.token).createUserAccessToken(
      server.bot.id,
      "bridge",
    );
    assert.equal(created.user_id, server.bot.id);
    assert.equal((await clientFor(server, created.token!).getMe()).id, server.bot.id);
  });
});

Deno.test("GET /config is admin-only and reports the override settings as booleans", async () => {
  await withStandIn({ enablePostIconOverride: false }, async (server) => {
    await rejectsWith(
      clientFor(server, server.bot.token).getConfig(),
      403,
      "api.context.permissions.app_error",
    );
    const config = await clientFor(server, server.admin.token).getConfig();
    assert.equal(config.ServiceSettings.EnablePostUsernameOverride, true);
    assert.equal(config.ServiceSettings.EnablePostIconOverride, false);
  });
});

Deno.test("files: multipart upload (streamed or legacy), attach to a post, download; too large 413; empty 400", async () => {
  await withStandIn({ maxFileSize: 1024 }, async (server) => {
    const channel = server.createChannel("bridged");
    server.addMember(channel.id, server.bot.id);
    const bot = clientFor(server, server.bot.token);
    const form = new FormData();
    form.append("channel_id", channel.id);
    // Before the file, as the webapp sends it: after the first file the server expects no more client ids.
    form.append("client_ids", "c1");
    form.append("files", new File([new TextEncoder().encode("hello file")], "hello.txt"));
    const uploaded = await bot.uploadFile(form);
    const late = new FormData();
    late.append("channel_id", channel.id);
    late.append("files", new File([new Uint8Array(1)], "late.bin"));
    late.append("client_ids", "c2");
    await rejectsWith(bot.uploadFile(late), 400, "api.context.invalid_param.app_error");
    assert.deepEqual(uploaded.client_ids, ["c1"]);
    const info = uploaded.file_infos[0];
    assert.equal(info.name, "hello.txt");
    assert.equal(info.size, 10);
    assert.equal(info.mime_type, "text/plain");
    const post = await bot.createPost(
      draft({ channel_id: channel.id, message: "file", file_ids: [info.id, "z".repeat(26)] }),
    );
    assert.deepEqual(post.file_ids, [info.id], "unknown file ids are dropped");
    assert.equal(post.metadata.files?.[0].id, info.id);
    const download = await fetch(bot.getFileUrl(info.id, 0), {
      headers: { Authorization: `Bearer ${server.bot.token}` },
    });
    assert.equal(await download.text(), "hello file");

    const big = new FormData();
    big.append("channel_id", channel.id);
    big.append("files", new File([new Uint8Array(2048)], "big.bin"));
    await rejectsWith(bot.uploadFile(big), 413, "api.file.upload_file.too_large_detailed.app_error");

    // A file before channel_id: the legacy buffered mode, which takes channel_id from anywhere in the form.
    const misordered = new FormData();
    misordered.append("files", new File([new Uint8Array(4)], "a.bin"));
    misordered.append("channel_id", channel.id);
    assert.equal((await bot.uploadFile(misordered)).file_infos[0].name, "a.bin");
    const noChannel = new FormData();
    noChannel.append("files", new File([new Uint8Array(4)], "a.bin"));
    await rejectsWith(bot.uploadFile(noChannel), 400, "api.context.invalid_param.app_error");

    // Streamed (channel_id first): any part with a filename is a file; an unknown field is refused.
    const anyName = new FormData();
    anyName.append("channel_id", channel.id);
    anyName.append("attachment", new File([new Uint8Array(3)], "b.bin"));
    assert.equal((await bot.uploadFile(anyName)).file_infos[0].name, "b.bin");
    const unknown = new FormData();
    unknown.append("channel_id", channel.id);
    unknown.append("comment", "hi");
    unknown.append("files", new File([new Uint8Array(3)], "c.bin"));
    await rejectsWith(bot.uploadFile(unknown), 400, "api.context.invalid_param.app_error");
    const twoChannels = new FormData();
    twoChannels.append("channel_id", channel.id);
    twoChannels.append("channel_id", "x".repeat(26));
    await rejectsWith(
      bot.uploadFile(twoChannels),
      400,
      "api.file.upload_file.multiple_channel_ids.app_error",
    );

    const empty = await fetch(`${server.url}/api/v4/files?channel_id=${channel.id}&filename=a.txt`, {
      method: "POST",
      headers: { Authorization: `Bearer ${server.bot.token}` },
    });
    assert.equal(empty.status, 400, "Content-Length 0");
    assert.equal((await empty.json()).id, "api.file.upload_file.read_request.app_error");

    const stranger = server.createChannel("stranger");
    const elsewhere = new FormData();
    elsewhere.append("channel_id", stranger.id);
    elsewhere.append("files", new File([new Uint8Array(4)], "a.bin"));
    await rejectsWith(bot.uploadFile(elsewhere), 403);
  });
});

Deno.test("rate limiting answers 429 with a text/plain body and the X-RateLimit headers", async () => {
  await withStandIn({ rateLimit: { perSecond: 1, burst: 2 } }, async (server) => {
    const statuses: number[] = [];
    let limited: Response | undefined;
    for (let i = 0; i < 5; i++) {
      const resp = await apiFetch(server, "GET", "/users/me", { token: server.bot.token });
      statuses.push(resp.status);
      assert.equal(resp.headers.get("x-ratelimit-limit"), "3");
      if (resp.status === 429) limited ??= resp;
      else await resp.body?.cancel();
    }
    assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
    assert.ok(limited);
    assert.match(limited.headers.get("content-type") ?? "", /^text\/plain/);
    assert.equal(limited.headers.get("x-ratelimit-remaining"), "0");
    assert.ok(Number(limited.headers.get("retry-after")) >= 1);
    assert.ok(Number(limited.headers.get("x-ratelimit-reset")) >= 1);
    assert.equal(await limited.text(), "limit exceeded\n");
    // Keyed by remote address (VaryByRemoteAddr, the default): another token from the same address is limited too.
    const other = await apiFetch(server, "GET", "/users/me", { token: server.admin.token });
    assert.equal(other.status, 429);
    await other.body?.cancel();
    server.setRateLimit(null);
    const free = await apiFetch(server, "GET", "/users/me", { token: server.bot.token });
    assert.equal(free.status, 200);
    assert.equal(free.headers.get("x-ratelimit-limit"), null);
    await free.body?.cancel();
  });
});

Deno.test("with VaryByUser each token has its own rate-limit bucket", async () => {
  await withStandIn({ rateLimit: { perSecond: 1, burst: 0, varyByUser: true } }, async (server) => {
    const statuses: number[] = [];
    for (const token of [server.bot.token, server.bot.token, server.admin.token]) {
      const resp = await apiFetch(server, "GET", "/users/me", { token });
      statuses.push(resp.status);
      await resp.body?.cancel();
    }
    assert.deepEqual(statuses, [200, 429, 200]);
  });
});

Deno.test("a retried create with the same pending_post_id returns the first post", async () => {
  await withStandIn(NO_OPTS, async (server) => {
    const channel = server.createChannel("bridged");
    server.addMember(channel.id, server.bot.id);
    const bot = clientFor(server, server.bot.token);
    const watcher = connectClient(server, server.admin.token);
    try {
      await watcher.waitFor((m) => m.event === "hello");
      const pendingId = `${server.bot.id}:1700000000000`;
      const first = await bot.createPost(
        draft({ channel_id: channel.id, message: "once", pending_post_id: pendingId }),
      );
      assert.equal(first.pending_post_id, pendingId);
      const posted = await watcher.waitFor((m) => m.event === "posted");
      assert.equal(JSON.parse(posted.data.post).pending_post_id, pendingId);
      const retry = await bot.createPost(
        draft({ channel_id: channel.id, message: "once", pending_post_id: pendingId }),
      );
      assert.equal(retry.id, first.id);
      assert.equal(server.posts(channel.id).length, 1);
      // Not stored: reading the post back has no pending_post_id.
      assert.equal((await bot.getPost(first.id)).pending_post_id, "");
      // Exact match only.
      await bot.createPost(
        draft({ channel_id: channel.id, message: "twice", pending_post_id: `${pendingId}0` }),
      );
      assert.equal(server.posts(channel.id).length, 2);
    } finally {
      watcher.close();
    }
  });
});

Deno.test("a create whose pending_post_id is still in flight gets 500 deduplicate_create_post.pending", async () => {
  await withStandIn(NO_OPTS, async (server) => {
    const channel = server.createChannel("bridged");
    server.addMember(channel.id, server.bot.id);
    const bot = clientFor(server, server.bot.token);
    const body = draft({ channel_id: channel.id, message: "slow", pending_post_id: "p-slow" });
    const hold = server.holdPostCreates();
    const first = bot.createPost(body);
    await until(() => hold.held() === 1, 3000, "the first create to be in flight");
    await rejectsWith(bot.createPost(body), 500, "api.post.deduplicate_create_post.pending");
    hold.release();
    const created = await first;
    assert.equal((await bot.createPost(body)).id, created.id);
    assert.equal(server.posts(channel.id).length, 1);
  });
});

Deno.test("a failed create releases its pending_post_id; the id is keyed globally but needs read access", async () => {
  await withStandIn({ pendingPostIdTtlMs: 300 }, async (server) => {
    const channel = server.createChannel("bridged");
    server.addMember(channel.id, server.bot.id);
    const bot = clientFor(server, server.bot.token);
    await rejectsWith(
      bot.createPost(draft({ channel_id: channel.id, message: "x".repeat(16384), pending_post_id: "p1" })),
      400,
    );
    const ok = await bot.createPost(
      draft({ channel_id: channel.id, message: "fits", pending_post_id: "p1" }),
    );
    assert.equal(ok.message, "fits");
    // Another user sending the same id where they cannot read the first post gets a post of their own.
    const secret = server.createChannel("secret", { type: "P" });
    server.addMember(secret.id, server.bot.id);
    const inSecret = await bot.createPost(
      draft({ channel_id: secret.id, message: "s", pending_post_id: "p2" }),
    );
    const carol = server.createUser("carol");
    server.addMember(channel.id, carol.id);
    const carols = await clientFor(server, carol.token).createPost(
      draft({ channel_id: channel.id, message: "c", pending_post_id: "p2" }),
    );
    assert.notEqual(carols.id, inSecret.id);
    // One who can read it gets the first post back, whoever made it.
    const again = await clientFor(server, server.admin.token).createPost(
      draft({ channel_id: channel.id, message: "other", pending_post_id: "p1" }),
    );
    assert.equal(again.id, ok.id);
    // After the TTL the id creates a new post.
    await new Promise((r) => setTimeout(r, 400));
    const late = await bot.createPost(
      draft({ channel_id: channel.id, message: "fits", pending_post_id: "p1" }),
    );
    assert.notEqual(late.id, ok.id);
  });
});

Deno.test("test hooks: a lost answer still creates the post; a proxy error creates nothing", async () => {
  await withStandIn(NO_OPTS, async (server) => {
    const channel = server.createChannel("bridged");
    server.addMember(channel.id, server.bot.id);
    const bot = clientFor(server, server.bot.token);
    server.failPostCreates({ kind: "lose-answer" });
    await assert.rejects(bot.createPost(draft({ channel_id: channel.id, message: "lost" })));
    assert.deepEqual(server.posts(channel.id).map((p) => p.message), ["lost"]);
    server.failPostCreates({ kind: "proxy-error", status: 502 }, { skip: 1 });
    await bot.createPost(draft({ channel_id: channel.id, message: "passes" }));
    const resp = await apiFetch(server, "POST", "/posts", {
      token: server.bot.token,
      body: JSON.stringify({ channel_id: channel.id, message: "refused" }),
      contentType: "application/json",
    });
    assert.equal(resp.status, 502);
    assert.equal(resp.headers.get("content-type"), "text/html");
    await resp.body?.cancel();
    assert.deepEqual(server.posts(channel.id).map((p) => p.message), ["lost", "passes"]);
  });
});

Deno.test("the request log records method, path and status", async () => {
  await withStandIn(NO_OPTS, async (server) => {
    await clientFor(server, server.bot.token).getMe();
    await rejectsWith(clientFor(server, "bad").getMe(), 401);
    assert.deepEqual(
      server.requestLog.map(({ method, path, status }) => ({ method, path, status })),
      [
        { method: "GET", path: "/api/v4/users/me", status: 200 },
        { method: "GET", path: "/api/v4/users/me", status: 401 },
      ],
    );
  });
});

Deno.test("waitForPosts resolves when posts arrive and rejects with the posts seen on timeout", async () => {
  await withStandIn(NO_OPTS, async (server) => {
    const channel = server.createChannel("bridged");
    const alice = server.createUser("alice");
    server.addMember(channel.id, alice.id);
    const waiting = server.waitForPosts(channel.id, 2);
    await server.postAs(alice.id, channel.id, "one");
    await server.postAs(alice.id, channel.id, "two");
    assert.deepEqual((await waiting).map((p) => p.message), ["one", "two"]);
    await assert.rejects(server.waitForPosts(channel.id, 3, 50), /have 2: \["one", "two"\]/);
  });
});
