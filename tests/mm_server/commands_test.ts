import assert from "node:assert/strict";
import type { MattermostStandIn } from "./server.ts";
import {
  apiFetch,
  type ClientCommand,
  clientFor,
  connectClient,
  draft,
  rejectsWith,
  withStandIn,
} from "./test_support.ts";

/** One call Mattermost made to an integration: a POST's form body, or a GET's query string, as `form`. */
interface IntegrationCall {
  method: string;
  headers: Headers;
  form: URLSearchParams;
  body: string;
  /** The request URL's query string. */
  query: URLSearchParams;
}

/** A slash command integration on loopback that records calls and answers with `reply`. */
async function withIntegration(
  reply: (form: URLSearchParams) => Response,
  body: (url: string, calls: IntegrationCall[]) => Promise<void>,
): Promise<void> {
  const calls: IntegrationCall[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const text = await req.text();
    const query = new URL(req.url).searchParams;
    const form = req.method === "GET" ? query : new URLSearchParams(text);
    calls.push({ method: req.method, headers: req.headers, form, body: text, query });
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

const TEAM_ADMIN_BOT = { botTeamRole: "admin" } as const;

Deno.test("a bot with the default roles may not manage commands: 403 to list or create, 404 to change", async () => {
  await withStandIn({}, async (server) => {
    const admin = clientFor(server, server.admin.token);
    const byHand = await admin.addCommand(commandFor(server, "http://127.0.0.1:1/cmd"));
    const bot = clientFor(server, server.bot.token);
    const me = await bot.getMe();
    assert.equal(me.roles, "system_user", "a bot is created with system_user only");
    await rejectsWith(bot.addCommand(commandFor(server, "http://127.0.0.1:1/cmd", "mine")), 403);
    await rejectsWith(bot.getCustomTeamCommands(server.team.id), 403, "api.context.permissions.app_error");
    const listed = await bot.getCommandsList(server.team.id);
    assert.deepEqual(listed.map((c) => [c.trigger, c.token, c.url]), [["xmppbridge", "", ""]], "sanitized");
    // update, delete, regenerate and get answer "not found" so that the command's existence does not leak
    const notFound = "store.sql_command.save.get.app_error";
    await rejectsWith(bot.editCommand({ ...byHand, url: "http://127.0.0.1:2/cmd" }), 404, notFound);
    await rejectsWith(bot.deleteCommand(byHand.id), 404, notFound);
    await rejectsWith(bot.regenCommandToken(byHand.id), 404, notFound);
    const get = await apiFetch(server, "GET", `/commands/${byHand.id}`, { token: server.bot.token });
    assert.equal(get.status, 404);
    await get.body?.cancel();
    // the team mismatch is checked before the permission
    await rejectsWith(
      bot.editCommand({ ...byHand, team_id: "x".repeat(26) }),
      400,
      "api.command.team_mismatch.app_error",
    );
    assert.equal(server.commands()[0].url, "http://127.0.0.1:1/cmd", "nothing changed");
  });
  await withStandIn({ botTeamRole: "none" }, async (server) => {
    const bot = clientFor(server, server.bot.token);
    await rejectsWith(bot.getCustomTeamCommands(server.team.id), 403);
    await rejectsWith(bot.getTeamByName(server.team.name), 403, "api.context.permissions.app_error");
  });
});

Deno.test("slash commands: a team-admin bot registers one and gets a token; Command.IsValid is enforced", async () => {
  await withStandIn(TEAM_ADMIN_BOT, async (server) => {
    const bot = clientFor(server, server.bot.token);
    const created = await bot.addCommand(commandFor(server, "http://127.0.0.1:1/cmd"));
    assert.match(created.token, /^[a-z0-9]{26}$/);
    assert.equal(created.creator_id, server.bot.id);
    assert.equal(created.trigger, "xmppbridge");
    assert.deepEqual(server.commands().map((c) => c.id), [created.id]);
    const refused: [Record<string, unknown>, number, string][] = [
      [{ url: "http://x/cmd" }, 400, "api.command.duplicate_trigger.app_error"],
      [{ trigger: "echo", url: "not a url" }, 400, "api.command.duplicate_trigger.app_error"],
      [{ trigger: "/slashed" }, 400, "model.command.is_valid.trigger.app_error"],
      [{ trigger: "two words" }, 400, "model.command.is_valid.trigger.app_error"],
      [{ trigger: "t".repeat(129) }, 400, "model.command.is_valid.trigger.app_error"],
      [{ trigger: "other", url: "" }, 400, "model.command.is_valid.url.app_error"],
      [{ trigger: "other", url: "not a url" }, 400, "model.command.is_valid.url_http.app_error"],
      [{ trigger: "other", url: "ftp://x/cmd" }, 400, "model.command.is_valid.url_http.app_error"],
      [{ trigger: "other", method: "X" }, 400, "model.command.is_valid.method.app_error"],
      [
        { trigger: "other", display_name: "d".repeat(65) },
        400,
        "model.command.is_valid.display_name.app_error",
      ],
      // 64 characters but 128 bytes: Go's len() counts bytes
      [
        { trigger: "other", description: "é".repeat(65) },
        400,
        "model.command.is_valid.description.app_error",
      ],
      [{ trigger: "other", username: "u".repeat(65) }, 500, "app.command.createcommand.internal_error"],
      [
        { trigger: "other", icon_url: "http://x/" + "i".repeat(1020) },
        500,
        "app.command.createcommand.internal_error",
      ],
      [
        { trigger: "other", auto_complete_desc: "a".repeat(1025) },
        500,
        "app.command.createcommand.internal_error",
      ],
      [
        { trigger: "other", auto_complete_hint: "h".repeat(1025) },
        500,
        "app.command.createcommand.internal_error",
      ],
      [{ trigger: "other", team_id: "" }, 403, "api.context.permissions.app_error"],
    ];
    for (const [patch, status, id] of refused) {
      await rejectsWith(
        bot.addCommand({ ...commandFor(server, "http://127.0.0.1:1/cmd"), ...patch } as ClientCommand),
        status,
        id,
      );
    }
    const atLimits = await bot.addCommand({
      ...commandFor(server, "http://127.0.0.1:1/cmd", "Limits"),
      display_name: "d".repeat(64),
      description: "é".repeat(64),
      username: "u".repeat(64),
    } as ClientCommand);
    assert.equal(atLimits.trigger, "limits", "the trigger is lowercased");
    await bot.deleteCommand(atLimits.id);

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
    await rejectsWith(
      bot.editCommand({ ...created, username: "u".repeat(65) }),
      500,
      "app.command.updatecommand.internal_error",
    );
    const { token } = await bot.regenCommandToken(created.id);
    assert.notEqual(token, created.token);
    const read = await apiFetch(server, "GET", `/commands/${created.id}`, { token: server.bot.token });
    assert.equal((await read.json()).token, token, "GET /commands/{id} has the new token");
    assert.deepEqual(await bot.deleteCommand(created.id), { status: "OK" });
    assert.deepEqual(server.commands(), []);

    // team admins manage others' commands too (manage_others_slash_commands)
    const byHand = await clientFor(server, server.admin.token).addCommand(commandFor(server, "http://x/c"));
    assert.equal((await bot.getCustomTeamCommands(server.team.id))[0].token, byHand.token);
    await bot.regenCommandToken(byHand.id);
  });
});

Deno.test("invoking a command posts the form Mattermost sends, with Accept and Authorization: Token", async () => {
  await withStandIn(TEAM_ADMIN_BOT, async (server) => {
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

Deno.test("a method-G command is called with a GET, the fields in the query string and no body", async () => {
  await withStandIn(TEAM_ADMIN_BOT, async (server) => {
    const channel = server.createChannel("bridged");
    const alice = server.createUser("alice");
    server.addMember(channel.id, alice.id);
    await withIntegration(
      () => Response.json({ text: "got it" }),
      async (url, calls) => {
        const cmd = await clientFor(server, server.bot.token).addCommand(
          { ...commandFor(server, `${url}?fixed=1`), method: "G" } as ClientCommand,
        );
        const result = await server.invokeCommand({
          trigger: "xmppbridge",
          channelId: channel.id,
          userId: alice.id,
          text: "status & more",
        });
        assert.equal(result.status, 200);
        const [call] = calls;
        assert.equal(call.method, "GET");
        assert.equal(call.body, "");
        assert.equal(call.headers.get("content-type"), null);
        assert.equal(call.headers.get("authorization"), `Token ${cmd.token}`);
        assert.equal(call.headers.get("accept"), "application/json");
        assert.equal(call.query.get("fixed"), "1", "the URL's own query is kept, the fields appended");
        assert.equal(call.query.get("token"), cmd.token);
        assert.equal(call.query.get("text"), "status & more");
        assert.equal(call.query.get("user_id"), alice.id);
        assert.equal(call.query.get("channel_id"), channel.id);
      },
    );
  });
});

Deno.test("an in_channel reply becomes a post by the invoking user; an ephemeral one reaches only that user", async () => {
  await withStandIn(TEAM_ADMIN_BOT, async (server) => {
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
  await withStandIn(TEAM_ADMIN_BOT, async (server) => {
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
  await withStandIn({ ...TEAM_ADMIN_BOT, allowedUntrustedInternalConnections: [] }, async (server) => {
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
