/**
 * Statuses and typing as the Go server has them (api4/status.go `getUserStatusesByIds`, `updateUserStatus`;
 * app/platform/status.go; api4/user.go `publishUserTyping`; wsapi/user.go `userTyping`).
 */
import assert from "node:assert/strict";
import { apiFetch, clientFor, connectClient, rejectsWith, withStandIn } from "./test_support.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test("POST /users/status/ids lists every id asked, offline for users never seen", opts, async () => {
  await withStandIn({}, async (server) => {
    const bob = server.createUser("bob");
    const bot = clientFor(server, server.bot.token);
    await clientFor(server, bob.token).updateStatus({ user_id: bob.id, status: "dnd" } as never);
    const unknown = "x".repeat(26);
    const statuses = await bot.getStatusesByIds([bob.id, unknown]);
    assert.deepEqual(
      statuses.map((s) => [s.user_id, s.status]),
      [[bob.id, "dnd"], [unknown, "offline"]],
    );
    assert.equal(
      (await bot.getStatus(unknown)).status,
      "offline",
      "GET for an unknown user: offline, not 404",
    );
    await rejectsWith(bot.getStatusesByIds([]), 400, "api.context.invalid_param.app_error");
    await rejectsWith(bot.getStatusesByIds(["short"]), 400, "api.context.invalid_param.app_error");
    const garbage = await apiFetch(server, "POST", "/users/status/ids", {
      token: server.bot.token,
      body: "{",
      contentType: "application/json",
    });
    assert.equal(garbage.status, 400);
    assert.equal((await garbage.json()).id, "api.context.invalid_param.app_error");
  });
});

Deno.test(
  "PUT /users/{id}/status: self or edit_other_users, one of four statuses, manual but online",
  opts,
  async () => {
    await withStandIn({}, async (server) => {
      const bob = server.createUser("bob");
      const carol = server.createUser("carol");
      const asBob = clientFor(server, bob.token);
      const ws = connectClient(server, bob.token);
      try {
        await ws.waitFor((m) => m.event === "hello");
        const away = await asBob.updateStatus({ user_id: bob.id, status: "away" } as never);
        assert.equal(away.status, "away");
        assert.equal(away.manual, true);
        // Only the user's own connections hear of it.
        await ws.waitFor((m) => m.event === "status_change" && m.data.status === "away");
        // Another user may not set it; an admin may (SessionHasPermissionToUser).
        await rejectsWith(
          clientFor(server, carol.token).updateStatus({ user_id: bob.id, status: "online" } as never),
          403,
          "api.context.permissions.app_error",
        );
        const online = await clientFor(server, server.admin.token).updateStatus(
          { user_id: bob.id, status: "online" } as never,
        );
        assert.equal(online.status, "online");
        assert.equal(online.manual, false);
        await rejectsWith(
          asBob.updateStatus({ user_id: bob.id, status: "out_of_office" } as never),
          400,
          "api.context.invalid_param.app_error",
        );
        // The body must name the user of the URL.
        const mismatch = await apiFetch(server, "PUT", `/users/${bob.id}/status`, {
          token: bob.token,
          body: JSON.stringify({ user_id: carol.id, status: "away" }),
          contentType: "application/json",
        });
        assert.equal(mismatch.status, 400);
        assert.equal((await asBob.getStatus(bob.id)).status, "online");
      } finally {
        ws.close();
      }
    });
  },
);

Deno.test(
  "POST /users/{id}/typing: self or manage_system, and the typer must be able to post there",
  opts,
  async () => {
    await withStandIn({}, async (server) => {
      const bob = server.createUser("bob");
      const carol = server.createUser("carol");
      const outsider = server.createUser("dave");
      const channel = server.createChannel("hall");
      server.addMember(channel.id, bob.id);
      server.addMember(channel.id, carol.id);
      const ws = connectClient(server, carol.token);
      const typing = (as: string, userId: string) =>
        apiFetch(server, "POST", `/users/${userId}/typing`, {
          token: as,
          body: JSON.stringify({ channel_id: channel.id }),
          contentType: "application/json",
        });
      try {
        await ws.waitFor((m) => m.event === "hello");
        const ok = await typing(bob.token, bob.id);
        assert.equal(ok.status, 200);
        const event = await ws.waitFor((m) => m.event === "typing");
        assert.deepEqual(event.data, { parent_id: "", user_id: bob.id });
        assert.equal(event.broadcast.channel_id, channel.id);
        // For another user: only with manage_system (an admin), and only where that user may post.
        assert.equal((await typing(carol.token, bob.id)).status, 403);
        assert.equal((await typing(server.admin.token, bob.id)).status, 200);
        assert.equal((await typing(server.admin.token, outsider.id)).status, 403);
      } finally {
        ws.close();
      }
    });
  },
);

Deno.test(
  "the user_typing websocket action answers a channel the user cannot post in as an invalid channel_id",
  opts,
  async () => {
    await withStandIn({}, async (server) => {
      const bob = server.createUser("bob");
      const channel = server.createChannel("hall");
      const ws = connectClient(server, bob.token);
      try {
        await ws.waitFor((m) => m.event === "hello");
        const reply = new Promise<Record<string, unknown>>((resolve) =>
          // Client4's types say the callback gets nothing; the socket hands it the reply.
          ws.client.userTyping(channel.id, "", ((msg: Record<string, unknown>) => resolve(msg)) as () => void)
        );
        const answer = await reply;
        assert.equal(answer.status, "FAIL");
        assert.equal((answer.error as { id: string }).id, "api.websocket_handler.invalid_param.app_error");
      } finally {
        ws.close();
      }
    });
  },
);
