/** Mattermost edits and deletions: events read for the core, and the post changes an edit makes. */
import assert from "node:assert/strict";
import type { Sender } from "../../src/core/events.ts";
import { editOf, isRelayedChange, postChanges, removalOf } from "../../src/mattermost/edits.ts";
import type { Post, PostDraft } from "../../src/mattermost/post.ts";

const BOB: Sender = { network: "mattermost", id: "u-bob", name: "bob" };

function post(extra: Partial<Post> = {}): Post {
  return { id: "p1", channel_id: "c1", user_id: "u-bob", message: "hello", type: "", create_at: 1, ...extra };
}

function draft(message: string): PostDraft {
  return { message, type: "", props: {} };
}

Deno.test("post_edited is an edit only when the text was edited; its id is the post's and the edit's time", () => {
  assert.equal(
    editOf(post({ edit_at: 0, update_at: 5 }), BOB),
    undefined,
    "a pin moves update_at, not edit_at",
  );
  assert.deepEqual(editOf(post({ edit_at: 9, message: "*waves*", type: "me" }), BOB), {
    kind: "edit",
    eventId: "p1:edit:9",
    portal: { network: "mattermost", channel: "c1" },
    sender: BOB,
    targetId: "p1",
    timestamp: 9,
    text: "waves",
    action: true,
  });
});

Deno.test("post_deleted is a removal by the post's author, whose delete_at the event may not carry", () => {
  const removal = removalOf(post({ delete_at: 0 }), BOB);
  assert.equal(removal.eventId, "p1:delete");
  assert.equal(removal.targetId, "p1");
  assert.equal(removal.sender, BOB);
  assert.ok(removal.timestamp > 0);
});

Deno.test("the bot's own changes and system posts are not relayed", () => {
  assert.equal(isRelayedChange(post(), "bot"), true);
  assert.equal(isRelayedChange(post({ user_id: "bot" }), "bot"), false);
  assert.equal(isRelayedChange(post({ type: "system_join_channel" }), "bot"), false);
});

Deno.test("an edit patches each post in place, adds posts for a longer text and deletes what a shorter one drops", () => {
  const parts = ["a", "b"];
  assert.deepEqual(postChanges(parts, [draft("one")]), [
    { kind: "patch", postId: "a", draft: draft("one") },
    { kind: "delete", postId: "b" },
  ]);
  assert.deepEqual(postChanges(parts, [draft("1"), draft("2"), draft("3")]), [
    { kind: "patch", postId: "a", draft: draft("1") },
    { kind: "patch", postId: "b", draft: draft("2") },
    { kind: "create", piece: 2, draft: draft("3") },
  ]);
});
