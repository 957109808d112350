import assert from "node:assert/strict";
import type { MattermostStandIn } from "./server.ts";
import {
  clientFor,
  connectClient,
  draft,
  openRaw,
  type RawSocket,
  until,
  withStandIn,
  type WsMessage,
} from "./test_support.ts";

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

/** A channel with the bot in it, and a user (alice) who posts there. */
function bridgedChannel(server: MattermostStandIn) {
  const channel = server.createChannel("bridged", { displayName: "Bridged" });
  const alice = server.createUser("alice");
  server.addMember(channel.id, server.bot.id);
  server.addMember(channel.id, alice.id);
  return { channel, alice };
}

/** Read messages until one matches, returning everything read. */
async function readUntil(socket: RawSocket, predicate: (m: WsMessage) => boolean): Promise<WsMessage[]> {
  const seen: WsMessage[] = [];
  for (;;) {
    const msg = await socket.next();
    seen.push(msg);
    if (predicate(msg)) return seen;
  }
}

Deno.test("hello is seq 0 with a connection id; events count up; replies carry seq_reply and no seq", async () => {
  await withStandIn({}, async (server) => {
    const { channel, alice } = bridgedChannel(server);
    const socket = await openRaw(server, "", bearer(server.bot.token));
    const hello = await socket.next();
    assert.equal(hello.event, "hello");
    assert.equal(hello.seq, 0);
    assert.match(hello.data.connection_id, /^[a-z0-9]{26}$/);
    assert.match(hello.data.server_version, /^10\.11\.0\./);
    assert.equal(typeof hello.data.server_hostname, "string");
    assert.equal(hello.broadcast.user_id, server.bot.id);
    const status = await socket.next();
    assert.deepEqual([status.event, status.seq, status.data.status], ["status_change", 1, "online"]);

    socket.send({ seq: 1, action: "ping" });
    const pong = await socket.next();
    assert.equal(pong.status, "OK");
    assert.equal(pong.seq_reply, 1);
    assert.equal(pong.data.text, "pong");
    assert.equal("seq" in pong, false);

    await server.postAs(alice.id, channel.id, "hello @xmppbridge");
    const posted = await socket.next();
    assert.equal(posted.event, "posted");
    assert.equal(posted.seq, 2);
    assert.equal(typeof posted.data.post, "string");
    const post = JSON.parse(posted.data.post);
    assert.equal(post.message, "hello @xmppbridge");
    assert.equal(posted.data.channel_type, "O");
    assert.equal(posted.data.channel_name, "bridged");
    assert.equal(posted.data.channel_display_name, "Bridged");
    assert.equal(posted.data.sender_name, "@alice");
    assert.equal(posted.data.team_id, server.team.id);
    assert.equal(posted.data.set_online, true);
    assert.deepEqual(JSON.parse(posted.data.mentions), [server.bot.id]);
    assert.deepEqual(posted.broadcast, {
      omit_users: null,
      user_id: "",
      channel_id: channel.id,
      team_id: "",
      connection_id: "",
      omit_connection_id: "",
    });
    await socket.close();
  });
});

Deno.test("channel events reach channel members only; typing is not echoed to the typer", async () => {
  await withStandIn({}, async (server) => {
    const { channel, alice } = bridgedChannel(server);
    const elsewhere = server.createChannel("elsewhere");
    server.addMember(elsewhere.id, alice.id);
    const bot = await openRaw(server, "", bearer(server.bot.token));
    const aliceSocket = await openRaw(server, "", bearer(alice.token));
    await readUntil(bot, (m) => m.event === "status_change");
    await readUntil(aliceSocket, (m) => m.event === "status_change");

    await server.postAs(alice.id, elsewhere.id, "not for the bot");
    aliceSocket.send({ seq: 1, action: "user_typing", data: { channel_id: channel.id, parent_id: "" } });
    const typingReply = (await readUntil(aliceSocket, (m) => m.seq_reply === 1)).at(-1)!;
    assert.equal(typingReply.status, "OK");
    await server.postAs(alice.id, channel.id, "for the bot");
    const botSeen = await readUntil(bot, (m) => m.event === "posted");
    assert.deepEqual(botSeen.map((m) => m.event), ["typing", "posted"]);
    assert.deepEqual(botSeen[0].data, { parent_id: "", user_id: alice.id });
    assert.equal(JSON.parse(botSeen[1].data.post).message, "for the bot");
    const aliceSeen = await readUntil(
      aliceSocket,
      (m) => m.event === "posted" && m.data.channel_name === "bridged",
    );
    assert.ok(!aliceSeen.some((m) => m.event === "typing"));
    await bot.close();
    await aliceSocket.close();
  });
});

Deno.test("challenge authentication: good token gets hello then the OK reply; bad token is closed without reply", async () => {
  await withStandIn({}, async (server) => {
    const good = await openRaw(server);
    good.send({ seq: 1, action: "authentication_challenge", data: { token: server.bot.token } });
    const hello = await good.next();
    assert.deepEqual([hello.event, hello.seq], ["hello", 0]);
    assert.deepEqual(await good.next(), { status: "OK", seq_reply: 1 });
    good.send({ seq: 2, action: "authentication_challenge", data: { token: server.bot.token } });
    good.send({ seq: 3, action: "ping" });
    const next = await readUntil(good, (m) => m.seq_reply !== undefined);
    assert.equal(next.at(-1)!.seq_reply, 3, "a second challenge is ignored");
    await good.close();

    const bad = await openRaw(server);
    bad.send({ seq: 1, action: "authentication_challenge", data: { token: "nope" } });
    await bad.closed;
    assert.deepEqual(bad.messages, []);
  });
});

Deno.test("an unauthenticated socket gets 401 replies and is closed after the auth timeout", async () => {
  await withStandIn({ websocketAuthTimeoutMs: 150 }, async (server) => {
    const socket = await openRaw(server);
    socket.send({ seq: 1, action: "ping" });
    const reply = await socket.next();
    assert.equal(reply.status, "FAIL");
    assert.equal(reply.seq_reply, 1);
    assert.equal(reply.error.id, "api.web_socket_router.not_authenticated.app_error");
    assert.equal(reply.error.status_code, 401);
    const started = Date.now();
    await socket.closed;
    assert.ok(Date.now() - started < 2000);
  });
});

Deno.test("reconnecting with connection_id and sequence_number replays missed events without a new hello", async () => {
  await withStandIn({}, async (server) => {
    const { channel, alice } = bridgedChannel(server);
    const first = await openRaw(server, "", bearer(server.bot.token));
    const hello = await first.next();
    await first.next(); // status_change online, seq 1
    server.dropWebsockets();
    await first.closed;
    const missed = await server.postAs(alice.id, channel.id, "while you were away");

    const query = `?connection_id=${hello.data.connection_id}&sequence_number=2`;
    const second = await openRaw(server, query, bearer(server.bot.token));
    const seen = await readUntil(second, (m) => m.event === "status_change" && m.data.status === "online");
    assert.ok(!seen.some((m) => m.event === "hello"));
    assert.deepEqual(seen.map((m) => m.seq), [2, 3, 4]);
    assert.deepEqual(seen.map((m) => m.event), ["status_change", "posted", "status_change"]);
    assert.equal(JSON.parse(seen[1].data.post).id, missed.id);
    await second.close();

    // Asking again from seq 1 replays from the dead queue (events 1..4 keep their numbers).
    const third = await openRaw(
      server,
      `?connection_id=${hello.data.connection_id}&sequence_number=1`,
      bearer(server.bot.token),
    );
    const replay = await readUntil(third, (m) => m.seq === 4);
    assert.deepEqual(replay.slice(0, 4).map((m) => m.seq), [1, 2, 3, 4]);
    assert.ok(!replay.some((m) => m.event === "hello"));
    await third.close();
  });
});

Deno.test("a sequence number the server cannot serve gets a new connection id and hello", async () => {
  await withStandIn({}, async (server) => {
    const first = await openRaw(server, "", bearer(server.bot.token));
    const hello = await first.next();
    server.dropWebsockets();
    await first.closed;
    const ahead = await openRaw(
      server,
      `?connection_id=${hello.data.connection_id}&sequence_number=50`,
      bearer(server.bot.token),
    );
    const fresh = await ahead.next();
    assert.equal(fresh.event, "hello");
    assert.equal(fresh.seq, 0);
    assert.notEqual(fresh.data.connection_id, hello.data.connection_id);
    await ahead.close();
  });
});

Deno.test("the inactivity reaper forgets a dropped connection idle for over 5 minutes at its tick, not before", async () => {
  await withStandIn({}, async (server) => {
    const first = await openRaw(server, "", bearer(server.bot.token));
    const hello = await first.next();
    await first.next(); // status_change, seq 1
    server.dropWebsockets();
    await first.closed;
    const attachedAt = Date.now();
    server.runWebsocketReaper(attachedAt + 4 * 60_000);
    const resume = `?connection_id=${hello.data.connection_id}&sequence_number=2`;
    const second = await openRaw(server, resume, bearer(server.bot.token));
    const replayed = await second.next();
    assert.notEqual(replayed.event, "hello", "4 minutes idle: still resumable");
    assert.equal(replayed.seq, 2);
    const lastSeq = (await readUntil(second, (m) => m.event === "status_change")).at(-1)!.seq;
    server.dropWebsockets();
    await second.closed;

    server.runWebsocketReaper(Date.now() + 5 * 60_000 + 1_000);
    const third = await openRaw(
      server,
      `?connection_id=${hello.data.connection_id}&sequence_number=${lastSeq + 1}`,
      bearer(server.bot.token),
    );
    const again = await third.next();
    assert.equal(again.event, "hello");
    assert.equal(again.seq, 0);
    assert.notEqual(again.data.connection_id, hello.data.connection_id);
    await third.close();
  });
});

Deno.test("a REST call by the session keeps its connected socket from the reaper, measured from the call", async () => {
  await withStandIn({}, async (server) => {
    const first = await openRaw(server, "", bearer(server.bot.token));
    const hello = await first.next();
    await first.next(); // status_change, seq 1
    await new Promise((r) => setTimeout(r, 50)); // the call comes measurably later than the socket attached
    const beforeCall = Date.now();
    await clientFor(server, server.bot.token).getMe();
    server.dropWebsockets();
    await first.closed;
    // Less than 5 minutes after the call, though more than 5 minutes after the socket attached.
    server.runWebsocketReaper(beforeCall + 5 * 60_000 - 1);
    const second = await openRaw(
      server,
      `?connection_id=${hello.data.connection_id}&sequence_number=2`,
      bearer(server.bot.token),
    );
    const next = await second.next();
    assert.notEqual(next.event, "hello", "the REST activity kept the connection");
    await second.close();
  });
});

Deno.test("events published while a reconnect takes its connection back are lost, and the resume sends no hello", async () => {
  await withStandIn({}, async (server) => {
    const { channel, alice } = bridgedChannel(server);
    const first = await openRaw(server, "", bearer(server.bot.token));
    const hello = await first.next();
    await first.next(); // status_change, seq 1
    server.dropWebsockets();
    await first.closed;
    const queued = await server.postAs(alice.id, channel.id, "queued while away");
    server.beforeNextWebsocketResume(() => {
      server.postAs(alice.id, channel.id, "in the hand-over window");
    });
    const second = await openRaw(
      server,
      `?connection_id=${hello.data.connection_id}&sequence_number=2`,
      bearer(server.bot.token),
    );
    await server.postAs(alice.id, channel.id, "after the resume");
    const seen = await readUntil(
      second,
      (m) => m.event === "posted" && m.data.post.includes("after the resume"),
    );
    assert.ok(!seen.some((m) => m.event === "hello"));
    const posts = seen.filter((m) => m.event === "posted").map((m) => JSON.parse(m.data.post));
    assert.deepEqual(posts.map((p) => p.message), ["queued while away", "after the resume"]);
    assert.equal(posts[0].id, queued.id);
    assert.equal(server.posts(channel.id).length, 3, "the lost post exists: only REST can find it");
    await second.close();
  });
});

Deno.test("a challenge-authenticated socket never gets a replay", async () => {
  await withStandIn({}, async (server) => {
    const { channel, alice } = bridgedChannel(server);
    const first = await openRaw(server);
    first.send({ seq: 1, action: "authentication_challenge", data: { token: server.bot.token } });
    const hello = await first.next();
    await readUntil(first, (m) => m.event === "status_change");
    server.dropWebsockets();
    await first.closed;
    await server.postAs(alice.id, channel.id, "lost for a challenge socket");

    const second = await openRaw(server, `?connection_id=${hello.data.connection_id}&sequence_number=2`);
    second.send({ seq: 1, action: "authentication_challenge", data: { token: server.bot.token } });
    const fresh = await second.next();
    assert.equal(fresh.event, "hello");
    assert.equal(fresh.seq, 0);
    assert.notEqual(fresh.data.connection_id, hello.data.connection_id);
    await readUntil(second, (m) => m.event === "status_change");
    assert.ok(!second.messages.some((m) => m.event === "posted"));
    await second.close();
  });
});

Deno.test("WebSocketClient: a post made while the socket was down arrives after reconnect, without a new hello", async () => {
  await withStandIn({}, async (server) => {
    const { channel, alice } = bridgedChannel(server);
    const ws = connectClient(server, server.bot.token);
    try {
      const hello = await ws.waitFor((m) => m.event === "hello");
      await ws.waitFor((m) => m.event === "status_change");
      server.dropWebsockets();
      await until(() => server.websocketCount(server.bot.id) === 0, 3000, "socket drop");
      const missed = await server.postAs(alice.id, channel.id, "sent during the blip");
      const posted = await ws.waitFor((m) => m.event === "posted");
      assert.equal(JSON.parse(posted.data.post).id, missed.id);
      assert.equal(ws.events.filter((m) => m.event === "hello").length, 1);
      assert.equal(ws.missed.count, 0);
      assert.equal((ws.client as unknown as { connectionId: string }).connectionId, hello.data.connection_id);
      const seqs = ws.events.map((m) => m.seq);
      assert.deepEqual(seqs, seqs.map((_, i) => i), "the client saw every sequence number once");
    } finally {
      ws.close();
    }
  });
});

Deno.test("WebSocketClient: after a server restart the reconnect gets a new hello and the missed-message listener runs", async () => {
  await withStandIn({}, async (server) => {
    const { channel, alice } = bridgedChannel(server);
    const ws = connectClient(server, server.bot.token);
    try {
      const hello = await ws.waitFor((m) => m.event === "hello");
      server.restartWebsocketSessions();
      await until(() => ws.missed.count === 1, 3000, "missed-message listener");
      const hellos = ws.events.filter((m) => m.event === "hello");
      assert.equal(hellos.length, 2);
      assert.notEqual(hellos[1].data.connection_id, hello.data.connection_id);
      await server.postAs(alice.id, channel.id, "after restart");
      await ws.waitFor((m) => m.event === "posted");
      await clientFor(server, server.bot.token).createPost(
        draft({ channel_id: channel.id, message: "bot too" }),
      );
      await until(() => ws.events.filter((m) => m.event === "posted").length === 2, 3000, "second post");
    } finally {
      ws.close();
    }
  });
});

Deno.test("post_deleted: non-admins get the post, admins also get delete_by", async () => {
  await withStandIn({}, async (server) => {
    const { channel, alice } = bridgedChannel(server);
    server.addMember(channel.id, server.admin.id);
    const post = await server.postAs(alice.id, channel.id, "doomed");
    const bot = await openRaw(server, "", bearer(server.bot.token));
    const admin = await openRaw(server, "", bearer(server.admin.token));
    await readUntil(bot, (m) => m.event === "status_change");
    await readUntil(admin, (m) => m.event === "status_change");
    await server.deleteAs(alice.id, post.id);
    const botDeleted = (await readUntil(bot, (m) => m.event === "post_deleted")).at(-1)!;
    const adminDeleted = (await readUntil(admin, (m) => m.event === "post_deleted")).at(-1)!;
    assert.equal(JSON.parse(botDeleted.data.post).id, post.id);
    // The post as read before the delete (app/post.go DeletePost → CleanUpAfterPostDeletion).
    assert.equal(JSON.parse(botDeleted.data.post).delete_at, 0);
    assert.equal(JSON.parse(adminDeleted.data.post).delete_at, 0);
    assert.equal(botDeleted.data.delete_by, undefined);
    assert.equal(adminDeleted.data.delete_by, alice.id);
    await bot.close();
    await admin.close();
  });
});

Deno.test("membership and channel changes: user_added, user_removed (also to the removed user), channel_updated", async () => {
  await withStandIn({}, async (server) => {
    const { channel, alice } = bridgedChannel(server);
    const bot = await openRaw(server, "", bearer(server.bot.token));
    const aliceSocket = await openRaw(server, "", bearer(alice.token));
    await readUntil(bot, (m) => m.event === "status_change");
    await readUntil(aliceSocket, (m) => m.event === "status_change");

    const bob = server.createUser("bob");
    server.addMember(channel.id, bob.id);
    const added = await readUntil(bot, (m) => m.event === "posted");
    assert.deepEqual(added.map((m) => m.event), ["user_added", "posted"]);
    assert.deepEqual(added[0].data, { team_id: server.team.id, user_id: bob.id });
    assert.equal(JSON.parse(added[1].data.post).type, "system_join_channel");

    await clientFor(server, alice.token).patchChannel(channel.id, { header: "New header" });
    const updated = await readUntil(bot, (m) => m.event === "posted");
    assert.equal(updated[0].event, "channel_updated");
    assert.equal(JSON.parse(updated[0].data.channel).header, "New header");
    assert.equal(JSON.parse(updated[1].data.post).type, "system_header_change");

    await clientFor(server, server.bot.token).removeFromChannel(alice.id, channel.id);
    const removed = await readUntil(bot, (m) => m.event === "posted");
    assert.equal(removed[0].event, "user_removed");
    assert.deepEqual(removed[0].data, { remover_id: server.bot.id, user_id: alice.id });
    const toAlice = await readUntil(
      aliceSocket,
      (m) => m.event === "user_removed" && m.broadcast.user_id === alice.id,
    );
    assert.deepEqual(toAlice.at(-1)!.data, { channel_id: channel.id, remover_id: server.bot.id });
    await server.postAs(server.bot.id, channel.id, "alice is gone");
    // A later event alice does get proves, by ordering, that she never got the post after removal.
    const offTopic =
      (await clientFor(server, alice.token).getChannelByNameAndTeamName("testteam", "off-topic")).id;
    await server.postAs(server.admin.id, offTopic, "sentinel");
    const aliceAfter = await readUntil(aliceSocket, (m) => m.event === "posted");
    assert.deepEqual(aliceAfter.map((m) => JSON.parse(m.data.post).message), ["sentinel"]);
    await bot.close();
    await aliceSocket.close();
  });
});
