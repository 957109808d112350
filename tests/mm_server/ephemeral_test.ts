/**
 * `POST /posts/ephemeral` as the Go server has it (api4/post.go `createEphemeralPost`, app/post.go
 * `SendEphemeralPost`, model/role.go `MakeDefaultRoles`).
 */
import assert from "node:assert/strict";
import { apiFetch, clientFor, connectClient, draft, rejectsWith, withStandIn } from "./test_support.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "a default bot may not post ephemeral messages: 403 create_post_ephemeral, nothing sent",
  opts,
  async () => {
    await withStandIn({}, async (server) => {
      const bob = server.createUser("bob");
      const channel = server.createChannel("hall");
      server.addMember(channel.id, bob.id);
      server.addMember(channel.id, server.bot.id);
      const ws = connectClient(server, bob.token);
      try {
        await ws.waitFor((m) => m.event === "hello");
        await rejectsWith(
          clientFor(server, server.bot.token).createPostEphemeral(
            bob.id,
            draft({ channel_id: channel.id, message: "x" }),
          ),
          403,
          "api.context.permissions.app_error",
        );
        // A post made afterwards arrives; the refused ephemeral one never does.
        await server.postAs(bob.id, channel.id, "after");
        await ws.waitFor((m) => m.event === "posted");
        assert.ok(!ws.events.some((m) => m.event === "ephemeral_message"));
      } finally {
        ws.close();
      }
    });
  },
);

Deno.test(
  "the body is checked before the permission: no user_id, or no post, is 400 even for a bot",
  opts,
  async () => {
    await withStandIn({}, async (server) => {
      for (const body of [{ post: { channel_id: "c", message: "m" } }, { user_id: "u" }]) {
        const res = await apiFetch(server, "POST", "/posts/ephemeral", {
          token: server.bot.token,
          contentType: "application/json",
          body: JSON.stringify(body),
        });
        assert.equal(res.status, 400, JSON.stringify(body));
        assert.equal((await res.json()).id, "api.context.invalid_param.app_error");
      }
    });
  },
);

Deno.test(
  "with create_post_ephemeral added to its role, a bot's ephemeral post reaches the recipient alone, unstored",
  opts,
  async () => {
    await withStandIn(
      { addedRolePermissions: { system_user: ["create_post_ephemeral"] } },
      async (server) => {
        const bob = server.createUser("bob");
        const carol = server.createUser("carol");
        const channel = server.createChannel("hall");
        for (const user of [bob, carol, server.bot]) server.addMember(channel.id, user.id);
        const bobWs = connectClient(server, bob.token);
        const carolWs = connectClient(server, carol.token);
        try {
          await bobWs.waitFor((m) => m.event === "hello");
          await carolWs.waitFor((m) => m.event === "hello");
          const answer = await clientFor(server, server.bot.token).createPostEphemeral(
            bob.id,
            draft({ channel_id: channel.id, message: "only for bob" }),
          );
          assert.equal(answer.type, "system_ephemeral");
          assert.equal(answer.user_id, server.bot.id);
          const event = await bobWs.waitFor((m) => m.event === "ephemeral_message");
          assert.equal(JSON.parse(event.data.post).message, "only for bob");
          assert.equal(event.broadcast.user_id, bob.id);
          assert.equal(event.broadcast.channel_id, channel.id);
          await server.postAs(bob.id, channel.id, "after");
          await carolWs.waitFor((m) => m.event === "posted");
          assert.ok(!carolWs.events.some((m) => m.event === "ephemeral_message"));
          assert.deepEqual(server.posts(channel.id).map((p) => p.message), ["after"]);
        } finally {
          bobWs.close();
          carolWs.close();
        }
      },
    );
  },
);
