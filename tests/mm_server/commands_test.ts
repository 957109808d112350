import assert from "node:assert/strict";
import type { MattermostStandIn } from "./server.ts";
import {
  type ClientCommand,
  clientFor,
  connectClient,
  draft,
  rejectsWith,
  withStandIn,
} from "./test_support.ts";

/** A slash command integration on loopback that records calls and answers with `reply`. */
async function withIntegration(
  reply: (form: URLSearchParams) => Response,
  body: (url: string, calls: { headers: Headers; form: URLSearchParams }[]) => Promise<void>,
): Promise<void> {
  const calls: { headers: Headers; form: URLSearchParams }[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const form = new URLSearchParams(await req.text());
    calls.push({ headers: req.headers, form });
    return reply(form);
  });
  try {
    await body(`http://127.0.0.1:${server.addr.port}/mattermost/command`, calls);
  } finally {
    await server.shutdown();
  }
}

function commandFor(server: MattermostStandIn, url: string, trigger = "xmppbridge"): ClientCommand {
  return draft<ClientCommand>({
    team_id: server.team.id,
    trigger,
    method: "P",
    url,
    auto_complete: true,
    auto_complete_desc: "Bridge commands",
    auto_complete_hint: "[help]",
  });
}

Deno.test("slash commands: the bot registers one and gets a token; bad or duplicate triggers are refused", async () => {
  await withStandIn({}, async (server) => {
    const bot = clientFor(server, server.bot.token);
    const created = await bot.addCommand(commandFor(server, "http://127.0.0.1:1/cmd"));
    assert.match(created.token, /^[a-z0-9]{26}$/);
    assert.equal(created.creator_id, server.bot.id);
    assert.equal(created.trigger, "xmppbridge");
    assert.deepEqual(server.commands().map((c) => c.id), [created.id]);
    await rejectsWith(
      bot.addCommand(commandFor(server, "http://x/cmd")),
      400,
      "api.command.duplicate_trigger.app_error",
    );
    await rejectsWith(
      bot.addCommand(commandFor(server, "http://x/cmd", "/slashed")),
      400,
      "model.command.is_valid.trigger.app_error",
    );
    await rejectsWith(
      bot.addCommand(commandFor(server, "http://x/cmd", "echo")),
      400,
      "api.command.duplicate_trigger.app_error",
    );
    await rejectsWith(
      bot.addCommand(commandFor(server, "not a url", "other")),
      400,
      "model.command.is_valid.url.app_error",
    );
    const alice = server.createUser("alice");
    await rejectsWith(
      clientFor(server, alice.token).addCommand(commandFor(server, "http://x/cmd", "mine")),
      403,
    );
    await rejectsWith(clientFor(server, alice.token).getCustomTeamCommands(server.team.id), 403);

    const listed = await bot.getCustomTeamCommands(server.team.id);
    assert.deepEqual(listed.map((c) => c.token), [created.token]);
    const edited = await bot.editCommand({ ...created, url: "http://127.0.0.1:2/cmd" });
    assert.equal(edited.url, "http://127.0.0.1:2/cmd");
    assert.equal(edited.token, created.token, "editing keeps the token");
    assert.deepEqual(await bot.deleteCommand(created.id), { status: "OK" });
    assert.deepEqual(server.commands(), []);
  });
});

Deno.test("invoking a command posts the form Mattermost sends, with Accept and Authorization: Token", async () => {
  await withStandIn({}, async (server) => {
    const channel = server.createChannel("bridged");
    const alice = server.createUser("alice");
    server.addMember(channel.id, alice.id);
    await withIntegration(
      () => Response.json({ response_type: "ephemeral", text: "ok" }),
      async (url, calls) => {
        const cmd = await clientFor(server, server.bot.token).addCommand(commandFor(server, url));
        const result = await server.invokeCommand({
          trigger: "xmppbridge",
          channelId: channel.id,
          userId: alice.id,
          text: "status now",
        });
        assert.equal(result.status, 200);
        assert.deepEqual(result.body, { response_type: "ephemeral", text: "ok" });
        const [call] = calls;
        assert.equal(call.headers.get("authorization"), `Token ${cmd.token}`);
        assert.equal(call.headers.get("accept"), "application/json");
        assert.equal(call.headers.get("content-type"), "application/x-www-form-urlencoded");
        const form = Object.fromEntries(call.form);
        assert.deepEqual(Object.keys(form).sort(), [
          "channel_id",
          "channel_name",
          "command",
          "response_url",
          "team_domain",
          "team_id",
          "text",
          "token",
          "trigger_id",
          "user_id",
          "user_name",
        ]);
        assert.equal(form.token, cmd.token);
        assert.equal(form.command, "/xmppbridge");
        assert.equal(form.text, "status now");
        assert.equal(form.user_name, "alice");
        assert.equal(form.channel_name, "bridged");
        assert.equal(form.team_domain, "testteam");

        await server.invokeCommand({
          trigger: "xmppbridge",
          channelId: channel.id,
          userId: alice.id,
          text: "",
          token: "forged",
        });
        assert.equal(calls[1].form.get("token"), "forged");
        assert.equal(calls[1].headers.get("authorization"), "Token forged");
        assert.deepEqual(server.posts(channel.id), [], "ephemeral replies create no post");
      },
    );
  });
});

Deno.test("an in_channel reply becomes a post by the invoking user; an ephemeral one reaches only that user", async () => {
  await withStandIn({}, async (server) => {
    const channel = server.createChannel("bridged");
    const alice = server.createUser("alice");
    server.addMember(channel.id, alice.id);
    let responseType = "in_channel";
    await withIntegration(() => Response.json({ response_type: responseType, text: "pong" }), async (url) => {
      await clientFor(server, server.bot.token).addCommand(commandFor(server, url));
      const ws = connectClient(server, alice.token);
      try {
        await ws.waitFor((m) => m.event === "hello");
        await server.invokeCommand({
          trigger: "xmppbridge",
          channelId: channel.id,
          userId: alice.id,
          text: "ping",
        });
        const [post] = server.posts(channel.id);
        assert.equal(post.message, "pong");
        assert.equal(post.user_id, alice.id);
        assert.equal(post.props.from_webhook, "true");
        responseType = "ephemeral";
        await server.invokeCommand({
          trigger: "xmppbridge",
          channelId: channel.id,
          userId: alice.id,
          text: "ping",
        });
        const ephemeral = await ws.waitFor((m) => m.event === "ephemeral_message");
        assert.equal(JSON.parse(ephemeral.data.post).message, "pong");
        assert.equal(server.posts(channel.id).length, 1);
      } finally {
        ws.close();
      }
    });
  });
});

Deno.test("a user runs a command through /commands/execute; a failing integration is a 500", async () => {
  await withStandIn({}, async (server) => {
    const channel = server.createChannel("bridged");
    const alice = server.createUser("alice");
    server.addMember(channel.id, alice.id);
    let status = 200;
    await withIntegration(() => Response.json({ text: "done" }, { status }), async (url) => {
      await clientFor(server, server.bot.token).addCommand(commandFor(server, url));
      const aliceClient = clientFor(server, alice.token);
      const response = await aliceClient.executeCommand(
        "/xmppbridge help",
        draft({ channel_id: channel.id, team_id: server.team.id }),
      );
      assert.equal(response.text, "done");
      status = 403;
      await rejectsWith(
        aliceClient.executeCommand(
          "/xmppbridge help",
          draft({ channel_id: channel.id, team_id: server.team.id }),
        ),
        500,
        "api.command.execute_command.failed_resp.app_error",
      );
      const outsider = server.createUser("bob");
      await rejectsWith(
        clientFor(server, outsider.token).executeCommand("/xmppbridge", draft({ channel_id: channel.id })),
        403,
      );
    });
  });
});

Deno.test("loopback integrations are refused unless listed in allowedUntrustedInternalConnections", async () => {
  await withStandIn({ allowedUntrustedInternalConnections: [] }, async (server) => {
    const channel = server.createChannel("bridged");
    server.addMember(channel.id, server.admin.id);
    await clientFor(server, server.bot.token).addCommand(commandFor(server, "http://127.0.0.1:9/cmd"));
    await assert.rejects(
      server.invokeCommand({
        trigger: "xmppbridge",
        channelId: channel.id,
        userId: server.admin.id,
        text: "",
      }),
      /failed/,
    );
  });
});
