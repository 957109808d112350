import assert from "node:assert/strict";
import { apiFetch, clientFor, connectClient, draft, rejectsWith, withStandIn } from "./test_support.ts";

const NO_OPTS = {};

Deno.test("POST /channels/direct creates one D channel named by the sorted ids, and answers 201 again after", async () => {
  await withStandIn(NO_OPTS, async (server) => {
    const alice = server.createUser("alice");
    const bob = server.createUser("bob");
    const client = clientFor(server, alice.token);
    const bobSocket = connectClient(server, bob.token);
    try {
      await bobSocket.waitFor((m) => m.event === "hello");
      const first = await client.createDirectChannel([alice.id, bob.id]);
      assert.equal(first.type, "D");
      assert.equal(first.team_id, "");
      assert.equal(first.display_name, "");
      assert.equal(first.name, [alice.id, bob.id].sort().join("__"));
      const added = await bobSocket.waitFor((m) => m.event === "direct_added");
      assert.deepEqual(added.data, { creator_id: alice.id, teammate_id: bob.id });
      assert.equal(added.broadcast.channel_id, first.id);
      // Either member asking, in either order, gets the same channel, with 201 (api4 always writes StatusCreated).
      const again = await apiFetch(server, "POST", "/channels/direct", {
        token: bob.token,
        body: JSON.stringify([bob.id, alice.id]),
        contentType: "application/json",
      });
      assert.equal(again.status, 201);
      assert.equal((await again.json()).id, first.id);
      assert.equal(
        bobSocket.events.filter((m) => m.event === "direct_added").length,
        1,
        "only a new channel",
      );
      // Both members post and read there; nobody else can.
      await client.createPost(draft({ channel_id: first.id, message: "hi bob" }));
      await clientFor(server, bob.token).createPost(draft({ channel_id: first.id, message: "hi alice" }));
      assert.deepEqual(server.posts(first.id).map((p) => p.message), ["hi bob", "hi alice"]);
      const carol = server.createUser("carol");
      // Its members are fixed (api4/channel.go addChannelMember), even for an admin.
      await rejectsWith(
        clientFor(server, server.admin.token).addToChannel(carol.id, first.id),
        400,
        "api.channel.add_user_to_channel.type.app_error",
      );
      await rejectsWith(clientFor(server, carol.token).getPosts(first.id), 403);
      await rejectsWith(
        clientFor(server, carol.token).createPost(draft({ channel_id: first.id, message: "me too" })),
        403,
      );
    } finally {
      bobSocket.close();
    }
  });
});

Deno.test("POST /channels/direct refuses a pair without the caller unless admin, bad ids, and unknown users", async () => {
  await withStandIn(NO_OPTS, async (server) => {
    const alice = server.createUser("alice");
    const bob = server.createUser("bob");
    const carol = server.createUser("carol");
    const post = (token: string, body: unknown) =>
      apiFetch(server, "POST", "/channels/direct", {
        token,
        body: JSON.stringify(body),
        contentType: "application/json",
      });
    const refused = async (resp: Response, status: number, id: string) => {
      assert.equal(resp.status, status);
      assert.equal((await resp.json()).id, id);
    };
    await refused(await post(carol.token, [alice.id, bob.id]), 403, "api.context.permissions.app_error");
    await refused(await post(alice.token, [bob.id]), 400, "api.context.invalid_param.app_error");
    await refused(await post(alice.token, [alice.id, "nope"]), 400, "api.context.invalid_param.app_error");
    await refused(await post(alice.token, { user_id: bob.id }), 400, "api.payload.parse.error");
    await refused(
      await post(alice.token, [alice.id, "abcdefghijklmnopqrstuvwxyz"]),
      400,
      "api.channel.create_direct_channel.invalid_user.app_error",
    );
    // An admin (the bridge's puppet manager) may open a DM between two others.
    const made = await post(server.admin.token, [alice.id, bob.id]);
    assert.equal(made.status, 201);
    const channel = await made.json();
    assert.equal(channel.name, [alice.id, bob.id].sort().join("__"));
    // A DM with oneself is one id.
    const self = await post(alice.token, [alice.id]);
    assert.equal(self.status, 201);
    assert.equal((await self.json()).name, `${alice.id}__${alice.id}`);
  });
});
