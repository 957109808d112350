/**
 * Mattermost puppets (`BRIDGE_MM_PUPPETS`) against real Prosody and the Mattermost stand-in: each XMPP user becomes a
 * Mattermost user of their own, made once and kept across nick changes, who posts, edits, deletes and reacts as
 * themselves; their own posts and reactions never come back to XMPP; with personal access tokens off the bot posts
 * for them as before; `/xmppbridge puppets` lists them and `puppet-cleanup` deactivates those gone.
 *
 * One Prosody serves every test of the file; each test has its own room.
 */
import assert from "node:assert/strict";
import { xml } from "@xmpp/client-core";
import mm from "@mattermost/client";
import type { LogRecord } from "@logtape/logtape";
import { NS_CORRECT, NS_FALLBACK, NS_REACTIONS, NS_RETRACT } from "../../src/xmpp/protocol/ns.ts";
import { captureLogs } from "../helpers/log_capture.ts";
import { runDoctor } from "../../doctor.ts";
import { EXIT, exitCodeOf } from "../../src/app.ts";
import { SecretBox } from "../../src/core/secretbox.ts";
import { PASSWORD, postsMatching, sharedWorlds, waitFor, type World } from "../helpers/harness.ts";
import { connectXmppUser, type XmppUser } from "../helpers/xmpp_user.ts";
import type { Post, StandInOptions } from "../mm_server/server.ts";
import { uploadAs } from "../helpers/xmpp_share.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** One Prosody for the file (occupant-ids, semi-anonymous rooms); each test has its own room, stand-in and store. */
const worlds = sharedWorlds("puppets");
/** A Prosody whose rooms show everyone's real JID and give no occupant-ids. */
const jidWorlds = sharedWorlds("puppetsjid", { mucRealJidsOnly: true });

/** Runs `body` in a world of its own on the file's Prosody. */
function inWorld(body: (w: World) => Promise<void>, mattermost: StandInOptions = {}): Promise<void> {
  return worlds.run(body, { mattermost });
}

/** The bridge's environment for puppets, the admin's token as MM_ADMIN_TOKEN. */
function puppetEnv(w: World, extra: Record<string, string> = {}): Record<string, string> {
  return {
    BRIDGE_MM_PUPPETS: "true",
    MM_ADMIN_TOKEN: w.mm.admin.token,
    BRIDGE_SECRET_KEY: "a-test-key-of-sixteen-or-more",
    ...extra,
  };
}

/** A Client4 of the stand-in's admin, to read users as Mattermost shows them. */
function adminClient(w: World): InstanceType<typeof mm.Client4> {
  const client = new mm.Client4();
  client.setUrl(w.mm.url);
  client.setToken(w.mm.admin.token);
  return client;
}

interface MmUser {
  id: string;
  username: string;
  email: string;
  nickname: string;
  first_name: string;
  delete_at: number;
  props?: Record<string, string>;
}

/** The Mattermost user `username`, or undefined when there is none. */
function userNamed(w: World, username: string): Promise<MmUser | undefined> {
  return adminClient(w).getUserByUsername(username).then(
    (u) => u as unknown as MmUser,
    () => undefined,
  );
}

/** Changes `user`'s nick in `room` and waits until the room confirms it (the new self-presence). */
async function changeNick(user: XmppUser, room: string, nick: string): Promise<void> {
  let confirmed = false;
  const off = user.onStanza((s) => {
    if (s.is("presence") && s.attrs.from === `${room}/${nick}` && s.attrs.type !== "unavailable") {
      confirmed = true;
    }
  });
  try {
    await user.send(xml("presence", { to: `${room}/${nick}` }));
    await waitFor(() => confirmed, `the nick ${nick}`);
  } finally {
    off();
  }
}

/** An XEP-0308 correction of the message `id`. */
function correction(id: string) {
  return { children: [xml("replace", { xmlns: NS_CORRECT, id })] };
}

/** An XEP-0424 retraction of the room's message `stanzaId`. */
function retraction(stanzaId: string) {
  return {
    children: [xml("retract", { xmlns: NS_RETRACT, id: stanzaId }), xml("fallback", { xmlns: NS_FALLBACK })],
  };
}

/** A log record's message with its properties filled in. */
function rendered(r: LogRecord): string {
  return r.message.map((part) => typeof part === "string" ? part : JSON.stringify(part)).join("");
}

/** The channel's posts with `text`, waited for. */
function postsWith(w: World, text: string, count = 1): Promise<Post[]> {
  return postsMatching(w.mm, w.channel.id, (p) => p.message === text, count);
}

Deno.test(
  "an XMPP user's messages are posted by a puppet of their own, made once and kept across a nick change; no token is ever logged",
  opts,
  () =>
    inWorld((w) =>
      captureLogs(async (records) => {
        let bridge = await w.startBridge(puppetEnv(w));
        await w.alice.sendGroupchat(w.room, "hello as myself");
        const [post] = await postsWith(w, "hello as myself");
        const puppet = await userNamed(w, "xmpp-alice");
        assert.ok(puppet, "the puppet xmpp-alice exists");
        assert.equal(post.user_id, puppet.id, "posted by the puppet, not the bot");
        assert.equal(post.props?.override_username, undefined, "no name override: the author is the user");
        assert.equal(post.props?.from_webhook, undefined);
        assert.equal(puppet.nickname, "alice");
        assert.match(puppet.email, /^xmpp-alice@[^@]+\.invalid$/, "a non-routable e-mail address");
        assert.equal(puppet.props?.mmxmpp_puppet, "xmpp", "marked as bridged");

        await changeNick(w.alice, w.room, "ally");
        await w.alice.sendGroupchat(w.room, "after the nick change");
        const [later] = await postsWith(w, "after the nick change");
        assert.equal(later.user_id, puppet.id, "the same puppet after the nick change");
        assert.equal((await userNamed(w, "xmpp-alice"))?.nickname, "ally", "shown with the new nick");
        assert.equal(await userNamed(w, "xmpp-ally"), undefined, "no second puppet for the new nick");

        // Its token is stored sealed with BRIDGE_SECRET_KEY, and is the puppet's.
        const [record] = await bridge.store.listPuppets();
        assert.equal(record.userId, puppet.id);
        assert.equal(record.token?.alg, "aes-256-gcm");
        const box = await SecretBox.create(puppetEnv(w).BRIDGE_SECRET_KEY);
        const token = await box.open(record.token!);
        const asPuppet = new mm.Client4();
        asPuppet.setUrl(w.mm.url);
        asPuppet.setToken(token);
        assert.equal((await asPuppet.getMe()).id, puppet.id);

        // A restart keeps the puppet and its token: nothing is made twice.
        await bridge.stop();
        bridge = await w.startBridge(puppetEnv(w));
        await w.alice.sendGroupchat(w.room, "after a restart");
        const [restarted] = await postsWith(w, "after a restart");
        assert.equal(restarted.user_id, puppet.id);
        const made = (path: string) =>
          w.mm.requestLog.filter((r) => r.method === "POST" && r.path === path && r.status < 300).length;
        assert.equal(made("/api/v4/users"), 1, "one user made");
        assert.equal(made(`/api/v4/users/${puppet.id}/tokens`), 1, "one token made");

        const logged = JSON.stringify(records.map((r) => [r.message, r.properties]));
        assert.ok(logged.includes("xmpp-alice"), "the log names the puppet");
        for (const secret of [token, w.mm.admin.token, puppetEnv(w).BRIDGE_SECRET_KEY]) {
          assert.ok(!logged.includes(secret), "a secret reached the log");
        }
      })
    ),
);

/** `user` reacts to the room's message `stanzaId` with exactly `emojis` (XEP-0444: the complete set). */
function react(user: XmppUser, room: string, stanzaId: string, emojis: string[]): Promise<void> {
  return user.send(
    xml(
      "message",
      { to: room, type: "groupchat", id: crypto.randomUUID() },
      xml("reactions", { xmlns: NS_REACTIONS, id: stanzaId }, ...emojis.map((e) => xml("reaction", {}, e))),
    ),
  );
}

/** The emoji names `userId` has on `postId`, sorted. */
function reactionsOn(w: World, postId: string, userId: string): string[] {
  const list = w.mm.post(postId)?.metadata?.reactions ?? [];
  return list.filter((r) => r.user_id === userId).map((r) => r.emoji_name).sort();
}

Deno.test(
  "edits, deletions and reactions are made as the puppet, and none of what the puppet does comes back to XMPP",
  opts,
  () =>
    inWorld(async (w) => {
      await w.startBridge(puppetEnv(w));
      const before = w.alice.messages.length;
      await w.mm.postAs(w.bob.id, w.channel.id, "react to me");
      const [relayed] = await w.alice.waitForMessages(
        w.room,
        (m) => m.body?.includes("react to me") ?? false,
      );
      const target = (await postsWith(w, "react to me"))[0];
      await react(w.alice, w.room, relayed.stanzaId!, ["👍"]);
      let puppet: MmUser | undefined;
      await waitFor(async () => (puppet ??= await userNamed(w, "xmpp-alice")) !== undefined, "the puppet");
      await waitFor(() => reactionsOn(w, target.id, puppet!.id).join() === "+1", "the puppet's +1", 15_000);
      assert.deepEqual(reactionsOn(w, target.id, w.mm.bot.id), [], "the bot does not react for a puppet");

      const id = await w.alice.sendGroupchat(w.room, "teh cat");
      const [typo] = await postsWith(w, "teh cat");
      assert.equal(typo.user_id, puppet!.id);
      await w.alice.sendGroupchat(w.room, "the cat", correction(id));
      await waitFor(
        () => w.mm.post(typo.id)?.message === "the cat",
        "the puppet's post to be edited",
        15_000,
      );
      assert.ok(w.mm.post(typo.id)!.edit_at > 0);

      await w.alice.sendGroupchat(w.room, "oops, wrong room");
      const [oops] = await postsWith(w, "oops, wrong room");
      const [said] = await w.alice.waitForMessages(w.room, (m) => m.body === "oops, wrong room");
      await w.alice.sendGroupchat(w.room, "This person attempted to retract…", retraction(said.stanzaId!));
      await waitFor(
        () => (w.mm.post(oops.id)?.delete_at ?? 0) > 0,
        "the puppet's post to be deleted",
        15_000,
      );

      // What the puppet did reached Mattermost as events like anyone's: none of it came back to the room. Bob's
      // post after them arrives after anything they could have caused.
      await w.mm.postAs(w.bob.id, w.channel.id, "sync");
      await w.alice.waitForMessages(w.room, (m) => m.body === "<bob> sync" || m.body === "sync", 1, 15_000);
      const fromBridge = w.alice.messages.slice(before).filter((m) => m.nick !== "alice");
      assert.deepEqual(
        fromBridge.map((m) => m.body?.replace(/^<bob> /, "")),
        ["react to me", "sync"],
        "only Bob's two posts came from the bridge",
      );
    }),
);

Deno.test(
  "with personal access tokens off, the start log says so and the bot posts for XMPP users, naming them",
  opts,
  () =>
    inWorld(async (w) => {
      await captureLogs(async (records) => {
        await w.startBridge(puppetEnv(w));
        const said = records.filter((r) => r.level === "warning").map(rendered).join("\n");
        assert.match(said, /personal access tokens are off/);
        assert.match(said, /EnableUserAccessTokens/);
      });
      await w.alice.sendGroupchat(w.room, "posted by the bot");
      const [post] = await postsWith(w, "posted by the bot");
      assert.equal(post.user_id, w.mm.bot.id);
      assert.equal(post.props?.override_username, "alice (xmpp)");
      assert.equal(await userNamed(w, "xmpp-alice"), undefined, "no puppet that could not speak");
    }, { enableUserAccessTokens: false }),
);

/** Runs `/xmppbridge text` in the mapped channel as `userId`; the reply's text. */
async function command(w: World, userId: string, text: string): Promise<string> {
  const res = await w.mm.invokeCommand({ trigger: "xmppbridge", channelId: w.channel.id, userId, text });
  assert.equal(res.status, 200);
  return (res.body as { text: string }).text;
}

Deno.test(
  "/xmppbridge puppets lists the puppets; puppet-cleanup deactivates those in no mapped room, and a puppet seen again comes back",
  opts,
  () =>
    inWorld(async (w) => {
      await w.startBridge(puppetEnv(w));
      await w.alice.sendGroupchat(w.room, "I am here");
      const [first] = await postsWith(w, "I am here");
      assert.match(
        await command(w, w.mm.admin.id, "puppets"),
        /1 puppet\(s\):\n- @xmpp-alice \(alice\): in 1 mapped/,
      );
      assert.match(await command(w, w.bob.id, "puppets"), /Only system admins/);
      assert.match(await command(w, w.mm.admin.id, "help"), /puppet-cleanup/);
      assert.match(await command(w, w.mm.admin.id, "puppet-cleanup"), /No puppet to deactivate/);
      assert.equal((await userNamed(w, "xmpp-alice"))?.delete_at, 0);

      assert.match(await command(w, w.mm.admin.id, "unmap"), /Unmapped/);
      assert.match(
        await command(w, w.mm.admin.id, "puppet-cleanup"),
        /Deactivated 1 puppet\(s\): @xmpp-alice/,
      );
      assert.ok((await userNamed(w, "xmpp-alice"))!.delete_at > 0, "deactivated");
      assert.match(
        await command(w, w.mm.admin.id, "puppets"),
        /@xmpp-alice \(alice\): deactivated by puppet-cleanup/,
      );

      assert.match(await command(w, w.mm.admin.id, `map ${w.room}`), /Mapped/);
      await w.alice.sendGroupchat(w.room, "back again");
      const [again] = await postsWith(w, "back again");
      assert.equal(again.user_id, first.user_id, "the same puppet, reactivated");
      assert.equal((await userNamed(w, "xmpp-alice"))?.delete_at, 0);
    }, { botTeamRole: "admin" }),
);

/** Whether `userId` is a member of the world's channel, asked as the admin. */
function inChannel(w: World, userId: string): Promise<boolean> {
  return adminClient(w).getChannelMember(w.channel.id, userId).then(() => true, () => false);
}

Deno.test(
  "an XMPP user's puppet joins the channel when they enter the room, leaves when they leave, and is cleaned up then",
  opts,
  () =>
    worlds.run(async (w) => {
      await w.startBridge(puppetEnv(w));
      // Alice was in the room before the bridge: her puppet is made when she speaks.
      await w.alice.sendGroupchat(w.room, "alice stays");
      await postsWith(w, "alice stays");
      await worlds.prosody.register("carol", PASSWORD);
      const carol = await connectXmppUser(await worlds.prosody.get(), "carol", PASSWORD, "laptop");
      try {
        await carol.joinRoom(w.room, "carol");
        let puppet: MmUser | undefined;
        await waitFor(
          async () => (puppet ??= await userNamed(w, "xmpp-carol")) !== undefined,
          "carol's puppet",
        );
        await waitFor(() => inChannel(w, puppet!.id), "carol's puppet in the channel", 10_000);
        assert.equal(
          w.mm.posts(w.channel.id).filter((p) => p.user_id === puppet!.id).length,
          0,
          "said nothing",
        );

        await carol.leaveRoom(w.room);
        await waitFor(
          async () => !await inChannel(w, puppet!.id),
          "carol's puppet to leave the channel",
          10_000,
        );
        assert.match(
          await command(w, w.mm.admin.id, "puppet-cleanup"),
          /Deactivated 1 puppet\(s\): @xmpp-carol\./,
        );
        assert.ok((await userNamed(w, "xmpp-carol"))!.delete_at > 0);
        assert.equal((await userNamed(w, "xmpp-alice"))?.delete_at, 0, "alice is still in the room");

        await carol.joinRoom(w.room, "carol");
        await waitFor(
          async () => (await userNamed(w, "xmpp-carol"))?.delete_at === 0,
          "carol's puppet back",
          10_000,
        );
        await waitFor(() => inChannel(w, puppet!.id), "carol's puppet back in the channel", 10_000);
      } finally {
        await carol.stop();
      }
    }, { mattermost: { botTeamRole: "admin" } }),
);

Deno.test(
  "where the room reveals real JIDs, the puppet is named after the JID, not the nick, and keeps it across nicks",
  opts,
  () =>
    jidWorlds.run(async (w) => {
      await w.startBridge(puppetEnv(w));
      await jidWorlds.prosody.register("dave", PASSWORD);
      const dave = await connectXmppUser(await jidWorlds.prosody.get(), "dave", PASSWORD, "laptop");
      try {
        await dave.joinRoom(w.room, "Captain D");
        await dave.sendGroupchat(w.room, "aye");
        const [post] = await postsWith(w, "aye");
        const puppet = await userNamed(w, "xmpp-dave");
        assert.equal(post.user_id, puppet?.id, "xmpp-dave, from dave@localhost");
        assert.equal(puppet?.nickname, "Captain D");
        await changeNick(dave, w.room, "Dave");
        await dave.sendGroupchat(w.room, "still me");
        const [later] = await postsWith(w, "still me");
        assert.equal(later.user_id, puppet?.id);
      } finally {
        await dave.stop();
      }
    }),
);

Deno.test(
  "a puppet that cannot be made (the admin token stopped working) loses nothing: the bot posts for that user",
  opts,
  () =>
    worlds.run(async (w) => {
      const admin2 = w.mm.createUser("admin2", { admin: true });
      await w.startBridge(puppetEnv(w, { MM_ADMIN_TOKEN: admin2.token }));
      await w.alice.sendGroupchat(w.room, "before");
      const [before] = await postsWith(w, "before");
      assert.equal(before.user_id, (await userNamed(w, "xmpp-alice"))?.id);
      // The token's owner is deactivated: its token no longer authenticates.
      await adminClient(w).updateUserActive(admin2.id, false);
      await worlds.prosody.register("erin", PASSWORD);
      const erin = await connectXmppUser(await worlds.prosody.get(), "erin", PASSWORD, "laptop");
      try {
        await erin.joinRoom(w.room, "erin");
        await erin.sendGroupchat(w.room, "can anyone hear me");
        const [post] = await postsWith(w, "can anyone hear me");
        assert.equal(post.user_id, w.mm.bot.id, "posted by the bot");
        assert.equal(post.props?.override_username, "erin (xmpp)");
        // Alice's puppet has its own token: it still speaks.
        await w.alice.sendGroupchat(w.room, "after");
        const [after] = await postsWith(w, "after");
        assert.equal(after.user_id, before.user_id);
      } finally {
        await erin.stop();
      }
    }),
);

Deno.test(
  "a taken username gets a suffix from the identity, and a puppet whose record was lost is found again, not remade",
  opts,
  () =>
    worlds.run(async (w) => {
      const human = w.mm.createUser("xmpp-alice");
      let bridge = await w.startBridge(puppetEnv(w));
      await w.alice.sendGroupchat(w.room, "who am I");
      const [post] = await postsWith(w, "who am I");
      assert.notEqual(post.user_id, human.id, "not the person who had the name");
      const [record] = await bridge.store.listPuppets();
      assert.match(record.username, /^xmpp-alice-[0-9a-f]{4}$/);
      assert.equal(post.user_id, record.userId);

      // The state file is lost: the puppet is recognised by its props and used again.
      await bridge.stop();
      for (const suffix of ["", "-wal", "-shm"]) await Deno.remove(w.kvPath + suffix).catch(() => {});
      bridge = await w.startBridge(puppetEnv(w));
      await w.alice.sendGroupchat(w.room, "still me");
      const [again] = await postsWith(w, "still me");
      assert.equal(again.user_id, record.userId, "the same puppet");
      const made = w.mm.requestLog.filter((r) =>
        r.method === "POST" && r.path === "/api/v4/users" && r.status < 300
      );
      assert.equal(made.length, 1, "one puppet user made");
    }),
);

Deno.test(
  "a puppet an admin deactivates stays so, the bot posting for its XMPP user, until it is reactivated; also when it happened while the bridge was down",
  opts,
  () =>
    worlds.run(async (w) => {
      let bridge = await w.startBridge(puppetEnv(w));
      const oneId = await w.alice.sendGroupchat(w.room, "one");
      const [one] = await postsWith(w, "one");
      const puppetId = one.user_id;
      const admin = adminClient(w);
      const byBot = async (text: string) => {
        await w.alice.sendGroupchat(w.room, text);
        const [post] = await postsWith(w, text);
        assert.equal(post.user_id, w.mm.bot.id, `"${text}" posted by the bot`);
        assert.equal(post.props?.override_username, "alice (xmpp)");
      };

      await admin.updateUserActive(puppetId, false);
      await waitFor(
        async () => /deactivated in Mattermost/.test(await command(w, w.mm.admin.id, "puppets")),
        "the puppet to be suspended",
      );
      await byBot("two");
      assert.ok((await userNamed(w, "xmpp-alice"))!.delete_at > 0, "left deactivated");
      // The puppet's earlier post is still Alice's to correct: the admin edits it for her.
      await w.alice.sendGroupchat(w.room, "one, corrected", correction(oneId));
      await waitFor(
        () => w.mm.post(one.id)?.message === "one, corrected",
        "the suspended puppet's post edited",
        15_000,
      );

      await admin.updateUserActive(puppetId, true);
      await waitFor(
        async () => /in 1 mapped channel/.test(await command(w, w.mm.admin.id, "puppets")),
        "the puppet to speak again",
      );
      await w.alice.sendGroupchat(w.room, "three");
      assert.equal((await postsWith(w, "three"))[0].user_id, puppetId);

      // Deactivated while the bridge was down: its token is refused, the bot posts, and no new token is made.
      await bridge.stop();
      await admin.updateUserActive(puppetId, false);
      bridge = await w.startBridge(puppetEnv(w));
      await byBot("four");
      await byBot("five");
      const tokens = w.mm.requestLog.filter((r) =>
        r.method === "POST" && r.path === `/api/v4/users/${puppetId}/tokens` && r.status < 300
      );
      assert.equal(tokens.length, 1, "no token made for a deactivated puppet");
      assert.ok((await userNamed(w, "xmpp-alice"))!.delete_at > 0, "left deactivated");
    }, { mattermost: { botTeamRole: "admin" } }),
);

Deno.test(
  "a file from XMPP is uploaded and posted by the puppet, so that the post keeps it",
  opts,
  () =>
    worlds.run(async (w) => {
      await w.startBridge(puppetEnv(w));
      const data = new TextEncoder().encode("notes from the meeting");
      const url = await uploadAs(w.alice, w.prosody.uploadDomain, "notes.txt", data);
      await w.alice.sendGroupchat(w.room, `minutes ${url}`, {
        children: [xml("x", { xmlns: "jabber:x:oob" }, xml("url", {}, url))],
      });
      const [post] = await postsWith(w, "minutes");
      assert.equal(post.user_id, (await userNamed(w, "xmpp-alice"))?.id);
      assert.equal(post.file_ids?.length, 1, "the file is attached (a post keeps only its author's uploads)");
      const res = await fetch(`${w.mm.url}/api/v4/files/${post.file_ids![0]}`, {
        headers: { Authorization: `Bearer ${w.mm.admin.token}` },
      });
      assert.deepEqual(new Uint8Array(await res.arrayBuffer()), data);
    }),
);

Deno.test(
  "a start with an MM_ADMIN_TOKEN that is not an admin's, or not valid, fails naming it, with the configuration or credentials exit code",
  opts,
  () =>
    worlds.run(async (w) => {
      const notAdmin = await w.startBridge(puppetEnv(w, { MM_ADMIN_TOKEN: w.bob.token })).then(
        () => assert.fail("started"),
        (err) => err,
      );
      assert.match(String(notAdmin), /MM_ADMIN_TOKEN belongs to bob, who is not a system admin/);
      assert.equal(exitCodeOf(notAdmin), EXIT.configuration);
      const invalid = await w.startBridge(puppetEnv(w, { MM_ADMIN_TOKEN: "nosuchtoken" })).then(
        () => assert.fail("started"),
        (err) => err,
      );
      assert.match(String(invalid), /MM_ADMIN_TOKEN is not a valid token/);
      assert.ok(!String(invalid).includes("nosuchtoken"), "the token is not quoted");
      assert.equal(exitCodeOf(invalid), EXIT.credentials);
    }),
);

/** The doctor's `Mattermost puppets` step for `env` (run in-process), and everything it printed. */
async function doctorPuppetStep(env: Record<string, string>): Promise<{ step: JsonStep; printed: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const io = { out: (l: string) => out.push(l), err: (l: string) => err.push(l) };
  await runDoctor(["--json", "--insecure-skip-verify"], env, io);
  const printed = [...out, ...err].join("\n");
  const report = JSON.parse(out.join("\n") || "{}") as { steps?: JsonStep[] };
  const step = report.steps?.find((s) => s.id === "mattermost.puppets");
  assert.ok(step, printed);
  return { step, printed };
}

interface JsonStep {
  id: string;
  status: "pass" | "fail" | "skip";
  detail: string;
  fix?: string;
}

Deno.test(
  "the doctor checks MM_ADMIN_TOKEN and says when personal access tokens are off",
  opts,
  () =>
    worlds.run(async (w) => {
      const env = { ...w.env(), XMPP_CA_FILE: "" };
      const off = await doctorPuppetStep(env);
      assert.equal(off.step.status, "skip");
      assert.match(off.step.detail, /BRIDGE_MM_PUPPETS is off/);

      const ready = await doctorPuppetStep({ ...env, ...puppetEnv(w) });
      assert.equal(ready.step.status, "pass", ready.step.detail);
      assert.match(ready.step.detail, /sysadmin's \(system admin\); personal access tokens are on/);

      const notAdmin = await doctorPuppetStep({ ...env, ...puppetEnv(w, { MM_ADMIN_TOKEN: w.bob.token }) });
      assert.equal(notAdmin.step.status, "fail");
      assert.match(notAdmin.step.detail, /belongs to bob .*not a system admin/);

      w.mm.setConfig({ enableUserAccessTokens: false });
      const tokensOff = await doctorPuppetStep({ ...env, ...puppetEnv(w) });
      assert.equal(tokensOff.step.status, "fail");
      assert.match(tokensOff.step.detail, /personal access tokens are off/);
      assert.match(tokensOff.step.fix!, /Enable Personal Access Tokens/);
      for (const run of [ready, notAdmin, tokensOff]) {
        for (const secret of [w.mm.admin.token, w.bob.token]) {
          assert.ok(!run.printed.includes(secret), "a secret leaked");
        }
      }
    }),
);

worlds.stopAfterAll();
jidWorlds.stopAfterAll();
