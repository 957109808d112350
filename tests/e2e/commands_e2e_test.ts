import assert from "node:assert/strict";
import type { LogRecord } from "@logtape/logtape";
import { literal, postsMatching, sharedWorlds, type World } from "../helpers/harness.ts";
import { captureLogs } from "../helpers/log_capture.ts";
import { type ClientCommand, clientFor } from "../mm_server/test_support.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
/** One Prosody for the file; each test has its own room, stand-in and store. */
const worlds = sharedWorlds("commands");
/** A world whose bot is team admin, so that the bridge may register /xmppbridge (manage_slash_commands). */
const REGISTERING = { mapped: false, mattermost: { botTeamRole: "admin" } } as const;

function command(w: World, userId: string, text: string, token?: string) {
  return w.mm.invokeCommand({ trigger: "xmppbridge", channelId: w.channel.id, userId, text, token });
}

/** A record's message with its properties filled in. */
function rendered(r: LogRecord): string {
  return r.message.map((part) => typeof part === "string" ? part : JSON.stringify(part)).join("");
}

/** Calls the bridge's callback directly, as Mattermost would, with `token`. */
async function callback(w: World, token: string, method = "POST"): Promise<number> {
  const fields = new URLSearchParams({
    token,
    user_id: w.mm.admin.id,
    channel_id: w.channel.id,
    text: "help",
  });
  const url = `http://127.0.0.1:${w.httpPort}/mattermost/command`;
  const res = method === "GET"
    ? await fetch(`${url}?${fields}`, { headers: { Authorization: `Token ${token}` } })
    : await fetch(url, { method, headers: { Authorization: `Token ${token}` }, body: fields });
  await res.body?.cancel();
  return res.status;
}

/** Creates `/xmppbridge` by hand as the admin, calling the bridge's callback with `method`. */
function commandByHand(w: World, method: "P" | "G" = "P") {
  return clientFor(w.mm, w.mm.admin.token).addCommand({
    team_id: w.mm.team.id,
    trigger: "xmppbridge",
    method,
    url: `http://127.0.0.1:${w.httpPort}/mattermost/command`,
  } as ClientCommand);
}

function replyText(body: unknown): string {
  const b = body as { response_type?: string; text?: string };
  assert.equal(b.response_type, "ephemeral", "every reply is ephemeral");
  return b.text ?? "";
}

Deno.test(
  "/xmppbridge is registered with autocomplete and its subcommands work for an admin",
  opts,
  async () => {
    const w = await worlds.start(REGISTERING);
    try {
      w.mm.addMember(w.channel.id, w.mm.admin.id);
      const bridge = await w.startBridge();
      const [cmd] = w.mm.commands().filter((c) => c.trigger === "xmppbridge");
      assert.ok(cmd, "the command was created");
      assert.equal(cmd.url, `http://127.0.0.1:${w.httpPort}/mattermost/command`);
      assert.equal(cmd.auto_complete, true);

      const help = await command(w, w.mm.admin.id, "help");
      assert.equal(help.status, 200);
      assert.match(replyText(help.body), /map <room@service>/);
      assert.match(
        replyText((await command(w, w.mm.admin.id, "frobnicate")).body),
        /Unknown command `frobnicate`/,
      );

      assert.match(replyText((await command(w, w.mm.admin.id, "status")).body), /This channel is not mapped/);

      const bad = await command(w, w.mm.admin.id, "map not-a-jid");
      assert.match(replyText(bad.body), /"not-a-jid" is not a room JID/);
      const unknown = await command(w, w.mm.admin.id, "map nosuchroom@conference.localhost");
      assert.match(replyText(unknown.body), /room nosuchroom@conference\.localhost does not exist/);
      assert.equal((await bridge.manager.listMappings()).length, 0, "failed maps store nothing");

      const mapped = await command(w, w.mm.admin.id, `map ${w.room}`);
      assert.match(replyText(mapped.body), new RegExp(`Mapped this channel to xmpp ${literal(w.room)}\\.`));
      assert.doesNotMatch(replyText(mapped.body), /Warning/);
      const again = await command(w, w.mm.admin.id, `map ${w.room}`);
      assert.match(replyText(again.body), /already mapped/);

      await w.mm.postAs(w.bob.id, w.channel.id, "now bridged");
      await w.alice.waitForMessages(w.room, (m) => m.body === "<bob> now bridged", 1, 10_000);
      await w.alice.sendGroupchat(w.room, "and back");
      await postsMatching(w.mm, w.channel.id, (p) => p.message === "and back", 1);

      const status = replyText((await command(w, w.mm.admin.id, "status")).body);
      assert.match(status, /mattermost: connected/);
      assert.match(status, /xmpp: connected/);
      assert.match(status, new RegExp(`mapped to xmpp ${literal(w.room)} \\(command`));
      assert.match(
        replyText((await command(w, w.mm.admin.id, "list")).body),
        new RegExp(`1 mapping\\(s\\):\n- .*${literal(w.room)}`),
      );

      const unmapped = await command(w, w.mm.admin.id, "unmap");
      assert.match(
        replyText(unmapped.body),
        new RegExp(`Unmapped this channel from xmpp ${literal(w.room)}`),
      );
      assert.equal((await bridge.manager.listMappings()).length, 0);
      assert.match(replyText((await command(w, w.mm.admin.id, "unmap")).body), /not mapped/);
      await w.mm.postAs(w.bob.id, w.channel.id, "after unmap");
      await w.alice.expectSilence(w.room, (m) => m.body?.includes("after unmap") ?? false, 800);
    } finally {
      await w.stop();
    }
  },
);

Deno.test("a non-admin is refused and a forged token gets 401; neither changes anything", opts, async () => {
  const w = await worlds.start(REGISTERING);
  try {
    const bridge = await w.startBridge();
    const refused = await command(w, w.bob.id, `map ${w.room}`);
    assert.equal(refused.status, 200);
    assert.match(replyText(refused.body), /Only system admins/);
    w.mm.addMember(w.channel.id, w.mm.admin.id);
    const forged = await command(w, w.mm.admin.id, `map ${w.room}`, "forgedtoken1234567890abcdef");
    assert.equal(forged.status, 401);
    assert.equal((await bridge.manager.listMappings()).length, 0);
  } finally {
    await w.stop();
  }
});

Deno.test("a mapping made by command survives a restart on the same KV file", opts, async () => {
  const w = await worlds.start(REGISTERING);
  try {
    w.mm.addMember(w.channel.id, w.mm.admin.id);
    const first = await w.startBridge();
    assert.match(replyText((await command(w, w.mm.admin.id, `map ${w.room}`)).body), /Mapped/);
    await first.stop();

    const second = await w.startBridge();
    assert.equal((await second.manager.listMappings()).length, 1);
    await w.mm.postAs(w.bob.id, w.channel.id, "after restart");
    await w.alice.waitForMessages(w.room, (m) => m.body === "<bob> after restart", 1, 10_000);
    await w.alice.sendGroupchat(w.room, "xmpp after restart");
    await postsMatching(w.mm, w.channel.id, (p) => p.message === "xmpp after restart", 1);
  } finally {
    await w.stop();
  }
});

Deno.test("a static mapping from BRIDGE_MAPPINGS bridges without any command", opts, async () => {
  const w = await worlds.start({ mapped: false });
  try {
    const bridge = await w.startBridge({ BRIDGE_MAPPINGS: `${w.channel.id}=${w.room.toUpperCase()}` });
    const [mapping] = await bridge.manager.listMappings();
    assert.deepEqual(mapping.channels, { mattermost: w.channel.id, xmpp: w.room });
    assert.equal(mapping.origin, "static");
    await w.mm.postAs(w.bob.id, w.channel.id, "static works");
    await w.alice.waitForMessages(w.room, (m) => m.body === "<bob> static works", 1, 10_000);
  } finally {
    await w.stop();
  }
});

Deno.test(
  "map in a private channel the bot is not in keeps the mapping and says to /invite the bot",
  opts,
  async () => {
    const w = await worlds.start(REGISTERING);
    try {
      const secret = w.mm.createChannel("secret-plans", { type: "P" });
      w.mm.addMember(secret.id, w.mm.admin.id);
      const bridge = await w.startBridge();
      const res = await w.mm.invokeCommand({
        trigger: "xmppbridge",
        channelId: secret.id,
        userId: w.mm.admin.id,
        text: `map ${w.room}`,
      });
      const text = replyText(res.body);
      assert.match(text, new RegExp(`Mapped this channel to xmpp ${literal(w.room)}\\.`));
      assert.match(
        text,
        /the bot cannot join channel \w+ by itself \(a private channel\?\): add it in Mattermost with \/invite/,
      );
      assert.equal((await bridge.manager.listMappings()).length, 1);
    } finally {
      await w.stop();
    }
  },
);

Deno.test(
  "a bot with default roles and BRIDGE_PUBLIC_URL: the bridge starts, bridges both ways and warns once",
  opts,
  async () => {
    const w = await worlds.start();
    try {
      await captureLogs(async (records) => {
        await w.startBridge();
        await w.mm.postAs(w.bob.id, w.channel.id, "from mattermost");
        await w.alice.waitForMessages(w.room, (m) => m.body === "<bob> from mattermost", 1, 10_000);
        await w.alice.sendGroupchat(w.room, "from xmpp");
        await postsMatching(w.mm, w.channel.id, (p) => p.message === "from xmpp", 1);
        assert.deepEqual(w.mm.commands(), [], "nothing was registered");

        // An unknown token makes the bridge try to re-read the command, which fails for the same reason.
        assert.equal(await callback(w, "unknowntoken1234567890abcd"), 401);
        const about = records.filter((r) => rendered(r).includes("manage_slash_commands"));
        assert.deepEqual(about.map((r) => r.level), ["warning", "debug"], "one warning, then debug");
        const warning = rendered(about[0]);
        assert.match(
          warning,
          /Cannot register \/xmppbridge: the bot lacks the permission manage_slash_commands/,
        );
        assert.match(warning, /team testteam/);
        assert.match(warning, /Make Team Admin/);
        assert.match(warning, /set MM_COMMAND_TOKEN to its token/);
        assert.match(warning, /request URL http:\/\/127\.0\.0\.1:\d+\/mattermost\/command/);
      });
    } finally {
      await w.stop();
    }
  },
);

Deno.test("a bot outside the team: the bridge starts and says to add it to the team", opts, async () => {
  const w = await worlds.start({ mattermost: { botTeamRole: "none" } });
  try {
    await captureLogs(async (records) => {
      await w.startBridge();
      const text = records.filter((r) => r.level === "warning" || r.level === "error").map(rendered);
      assert.ok(
        text.some((t) =>
          /Cannot register \/xmppbridge: team testteam \(MM_TEAM\) does not exist or the bot is not a member/
            .test(t) && /Add Members/.test(t)
        ),
        text.join("\n"),
      );
      assert.ok(
        text.some((t) => /static mapping .*the bot is not in team testteam/i.test(t)),
        text.join("\n"),
      );
    });
  } finally {
    await w.stop();
  }
});

Deno.test(
  "register mode: a regenerated token works at once and the old one stops working",
  opts,
  async () => {
    const w = await worlds.start(REGISTERING);
    try {
      w.mm.addMember(w.channel.id, w.mm.admin.id);
      await w.startBridge();
      const [cmd] = w.mm.commands();
      assert.match(replyText((await command(w, w.mm.admin.id, "help")).body), /map <room@service>/);
      const { token } = await clientFor(w.mm, w.mm.admin.token).regenCommandToken(cmd.id);
      assert.notEqual(token, cmd.token);
      const after = await command(w, w.mm.admin.id, "help");
      assert.equal(after.status, 200, "the new token is learned on first use");
      assert.match(replyText(after.body), /map <room@service>/);
      assert.equal(
        (await command(w, w.mm.admin.id, "help", cmd.token)).status,
        401,
        "the old token is refused",
      );
    } finally {
      await w.stop();
    }
  },
);

Deno.test(
  "discover mode: a regenerated token replaces the old one; MM_COMMAND_TOKEN stays accepted; re-reads are rate-limited",
  opts,
  async () => {
    const w = await worlds.start(REGISTERING);
    try {
      w.mm.addMember(w.channel.id, w.mm.admin.id);
      const cmd = await commandByHand(w);
      const staticToken = "statictoken0123456789abcde";
      await w.startBridge({ BRIDGE_PUBLIC_URL: "", MM_COMMAND_TOKEN: staticToken });
      assert.equal((await command(w, w.mm.admin.id, "help")).status, 200, "learned at start");
      const { token } = await clientFor(w.mm, w.mm.admin.token).regenCommandToken(cmd.id);
      assert.equal((await command(w, w.mm.admin.id, "help")).status, 200, "the new token is learned");
      assert.equal(await callback(w, token), 200);
      assert.equal(await callback(w, cmd.token), 401, "the old token is refused");
      assert.equal(await callback(w, staticToken), 200, "the static token stays accepted");

      // Forged tokens cannot make the bridge hammer the server: within the interval nothing is re-read.
      const lists = () =>
        w.mm.requestLog.filter((r) => r.method === "GET" && r.path === "/api/v4/commands").length;
      const before = lists();
      for (let i = 0; i < 5; i++) assert.equal(await callback(w, `forged${i}`.padEnd(26, "x")), 401);
      assert.equal(lists(), before);
    } finally {
      await w.stop();
    }
  },
);

Deno.test("a command made by hand with method GET reaches the bridge and is answered", opts, async () => {
  const w = await worlds.start(REGISTERING);
  try {
    w.mm.addMember(w.channel.id, w.mm.admin.id);
    const cmd = await commandByHand(w, "G");
    await w.startBridge({ BRIDGE_PUBLIC_URL: "" });
    const res = await command(w, w.mm.admin.id, "help");
    assert.equal(res.status, 200);
    assert.match(replyText(res.body), /map <room@service>/);
    assert.equal(await callback(w, "forgedtoken1234567890abcde", "GET"), 401, "the same token check");
    assert.equal(await callback(w, cmd.token, "GET"), 200);
  } finally {
    await w.stop();
  }
});

worlds.stopAfterAll();
