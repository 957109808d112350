import assert from "node:assert/strict";
import { postsMatching, startWorld, type World } from "./harness.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

function command(w: World, userId: string, text: string, token?: string) {
  return w.mm.invokeCommand({ trigger: "xmppbridge", channelId: w.channel.id, userId, text, token });
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
    const w = await startWorld({ mapped: false });
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
      assert.match(replyText(mapped.body), /Mapped this channel to xmpp hall@conference\.localhost\./);
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
      assert.match(status, /mapped to xmpp hall@conference\.localhost \(command/);
      assert.match(
        replyText((await command(w, w.mm.admin.id, "list")).body),
        /1 mapping\(s\):\n- .*hall@conference\.localhost/,
      );

      const unmapped = await command(w, w.mm.admin.id, "unmap");
      assert.match(replyText(unmapped.body), /Unmapped this channel from xmpp hall@conference\.localhost/);
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
  const w = await startWorld({ mapped: false });
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
  const w = await startWorld({ mapped: false });
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
  const w = await startWorld({ mapped: false });
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
    const w = await startWorld({ mapped: false });
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
      assert.match(text, /Mapped this channel to xmpp hall@conference\.localhost\./);
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
