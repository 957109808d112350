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
import { postsMatching, startWorld, waitFor, type World } from "../helpers/harness.ts";
import { type Prosody, startProsody } from "../helpers/prosody.ts";
import type { XmppUser } from "../helpers/xmpp_user.ts";
import type { Post, StandInOptions } from "../mm_server/server.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

let shared: Prosody | undefined;
let worlds = 0;

/** Runs `body` in a world of its own (room, stand-in, state) on the file's Prosody. */
async function inWorld(body: (w: World) => Promise<void>, mattermost: StandInOptions = {}): Promise<void> {
  shared ??= await startProsody();
  const w = await startWorld({ sharedProsody: shared, room: `puppets${++worlds}`, mattermost });
  try {
    await body(w);
  } finally {
    await w.stop();
  }
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

/** The channel's posts with `text`, waited for. */
function postsWith(w: World, text: string, count = 1): Promise<Post[]> {
  return postsMatching(w.mm, w.channel.id, (p) => p.message === text, count);
}

Deno.test(
  "an XMPP user's messages are posted by a puppet of their own, made once and kept across a nick change",
  opts,
  () =>
    inWorld(async (w) => {
      await w.startBridge(puppetEnv(w));
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
    }),
);
