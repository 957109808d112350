import assert from "node:assert/strict";
import { emojiOfName, loadEmoji, nameOfEmoji } from "../../src/mattermost/emoji.ts";
import { parseReactionEvent } from "../../src/mattermost/reactions.ts";

await loadEmoji();

Deno.test("Mattermost emoji names to Unicode", () => {
  const table: Array<[name: string, emoji: string]> = [
    ["+1", "👍"],
    ["thumbsup", "👍"],
    ["-1", "👎"],
    ["smile", "😄"],
    ["heart", "❤️"],
    ["tada", "🎉"],
    ["joy", "😂"],
    ["100", "💯"],
    ["white_check_mark", "✅"],
    ["eyes", "👀"],
    // Skin tones, as Mattermost names them.
    ["+1_dark_skin_tone", "👍🏿"],
    ["thumbsup_light_skin_tone", "👍🏻"],
    ["wave_medium_skin_tone", "👋🏽"],
    // Names the dataset does not know are custom emoji: they travel as :name:.
    ["party_parrot", ":party_parrot:"],
    ["my-emoji+2", ":my-emoji+2:"],
  ];
  for (const [name, emoji] of table) assert.equal(emojiOfName(name), emoji, name);
});

Deno.test("Unicode emoji to Mattermost names", () => {
  const table: Array<[emoji: string, name: string | undefined]> = [
    ["👍", "+1"],
    ["😄", "smile"],
    ["🎉", "tada"],
    // With or without the emoji presentation selector: clients send either.
    ["❤️", "heart"],
    ["❤", "heart"],
    ["☺", "relaxed"],
    ["👍🏿", "+1_dark_skin_tone"],
    // Two people of different tones have no Mattermost name: the same emoji without tones is the closest.
    ["🧑🏻‍🤝‍🧑🏿", "people_holding_hands"],
    // A custom emoji made by emojiOfName comes back as its name.
    [":party_parrot:", "party_parrot"],
    // Not an emoji Mattermost has a name for: no reaction there.
    ["hello", undefined],
    ["", undefined],
    [":not a name:", undefined],
    ["👍👍", undefined],
  ];
  for (const [emoji, name] of table) assert.equal(nameOfEmoji(emoji), name, JSON.stringify(emoji));
});

Deno.test("every name round-trips through its emoji to a name of the same emoji", () => {
  for (
    const name of ["+1", "thumbsup", "smile", "heart", "fire", "rocket", "+1_medium_skin_tone", "custom_x"]
  ) {
    const emoji = emojiOfName(name);
    assert.equal(emojiOfName(nameOfEmoji(emoji)!), emoji, name);
  }
});

Deno.test("reaction events parse to a change; the channel comes from the broadcast, malformed ones are refused", () => {
  const reaction = (r: Record<string, unknown>) => ({ reaction: JSON.stringify(r) });
  const added = { user_id: "u1", post_id: "p1", emoji_name: "+1", update_at: 5, channel_id: "c1" };
  assert.deepEqual(parseReactionEvent("reaction_added", reaction(added), { channel_id: "c1" }), {
    userId: "u1",
    postId: "p1",
    emojiName: "+1",
    channelId: "c1",
    at: 5,
    added: true,
  });
  // The server's removed reaction names no channel (api4/reaction.go builds it from the URL): the broadcast does.
  const removed = { user_id: "u1", post_id: "p1", emoji_name: "+1", update_at: 6, channel_id: "" };
  assert.equal(
    parseReactionEvent("reaction_removed", reaction(removed), { channel_id: "c1" })?.channelId,
    "c1",
  );
  assert.equal(
    parseReactionEvent("reaction_removed", reaction(removed), {}),
    undefined,
    "no channel anywhere",
  );
  assert.equal(parseReactionEvent("reaction_added", { reaction: "{" }, { channel_id: "c1" }), undefined);
  assert.equal(parseReactionEvent("reaction_added", {}, { channel_id: "c1" }), undefined);
  assert.equal(
    parseReactionEvent("reaction_added", reaction({ ...added, user_id: 7 }), { channel_id: "c1" }),
    undefined,
  );
});
