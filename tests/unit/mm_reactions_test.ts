/**
 * The bot's reaction sets on Mattermost against the stand-in: what `applyReactionSet` adds and removes, and what
 * `reactionSetOf` reads, through the real Client4.
 */
import assert from "node:assert/strict";
import { createClient } from "../../src/mattermost/api.ts";
import { applyReactionSet, reactionSetOf } from "../../src/mattermost/reactions.ts";
import { type MattermostStandIn, startMattermostStandIn } from "../mm_server/server.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

async function withPost(
  body: (s: MattermostStandIn, postId: string, client: ReturnType<typeof createClient>) => Promise<void>,
) {
  const server = await startMattermostStandIn();
  try {
    const channel = server.createChannel("bridged");
    server.addMember(channel.id, server.bot.id);
    const post = await server.postAs(server.bot.id, channel.id, "react to me");
    await body(server, post.id, createClient(server.url, server.bot.token));
  } finally {
    await server.close();
  }
}

function namesOf(s: MattermostStandIn, postId: string, userId: string): string[] {
  return (s.post(postId)?.metadata?.reactions ?? []).filter((r) => r.user_id === userId).map((r) =>
    r.emoji_name
  )
    .sort();
}

function writes(s: MattermostStandIn): string[] {
  return s.requestLog.filter((r) => r.method !== "GET" && r.path.includes("reactions"))
    .map((r) => `${r.method} ${r.path.split("/").at(-1)}`);
}

Deno.test(
  "applyReactionSet adds what is missing and removes what is too many, and touches no one else's",
  opts,
  () =>
    withPost(async (s, postId, client) => {
      const bob = s.createUser("bob");
      s.addMember(s.post(postId)!.channel_id, bob.id);
      await s.reactAs(bob.id, postId, "heart");
      await applyReactionSet(client, postId, s.bot.id, ["👍", "🎉"]);
      assert.deepEqual(namesOf(s, postId, s.bot.id), ["+1", "tada"]);
      await applyReactionSet(client, postId, s.bot.id, ["🎉", "😄"]);
      assert.deepEqual(namesOf(s, postId, s.bot.id), ["smile", "tada"]);
      await applyReactionSet(client, postId, s.bot.id, []);
      assert.deepEqual(namesOf(s, postId, s.bot.id), []);
      assert.deepEqual(namesOf(s, postId, bob.id), ["heart"], "Bob's reaction is his own");
    }),
);

Deno.test(
  "applyReactionSet: the same emoji under another name is no change; the same set twice writes nothing",
  opts,
  () =>
    withPost(async (s, postId, client) => {
      await s.reactAs(s.bot.id, postId, "thumbsup");
      const before = writes(s).length;
      await applyReactionSet(client, postId, s.bot.id, ["👍"]);
      await applyReactionSet(client, postId, s.bot.id, ["👍"]);
      assert.deepEqual(writes(s).slice(before), [], "thumbsup is 👍 already");
      assert.deepEqual(namesOf(s, postId, s.bot.id), ["thumbsup"]);
    }),
);

Deno.test(
  "applyReactionSet leaves out what Mattermost has no emoji for or refuses; the rest still goes",
  opts,
  () =>
    withPost(async (s, postId, client) => {
      await applyReactionSet(client, postId, s.bot.id, ["hello", ":no_such_custom:", "🎉"]);
      assert.deepEqual(namesOf(s, postId, s.bot.id), ["tada"]);
      assert.deepEqual(writes(s), ["POST reactions", "POST reactions"], "hello never reached the server");
    }),
);

Deno.test(
  "reactionSetOf reads one user's set in the order it was made, custom emoji as :name:",
  opts,
  () =>
    withPost(async (s, postId, client) => {
      s.createCustomEmoji("party_parrot");
      const bob = s.createUser("bob");
      s.addMember(s.post(postId)!.channel_id, bob.id);
      await s.reactAs(bob.id, postId, "tada");
      await s.reactAs(s.bot.id, postId, "heart");
      await s.reactAs(bob.id, postId, "party_parrot");
      await s.reactAs(bob.id, postId, "+1");
      assert.deepEqual(await reactionSetOf(client, postId, bob.id), ["🎉", ":party_parrot:", "👍"]);
      assert.deepEqual(await reactionSetOf(client, postId, s.createUser("carol").id), []);
    }),
);
