import assert from "node:assert/strict";
import { changedAt, changeOf } from "../../src/mattermost/catch_up.ts";
import { editOf, removalOf } from "../../src/mattermost/edits.ts";
import type { Post } from "../../src/mattermost/post.ts";
import type { Sender } from "../../src/core/events.ts";

const BOB: Sender = { network: "mattermost", id: "bob", name: "bob" };
const SINCE = 1_000_000;
const HANDED = 1_060_000;

function post(fields: Partial<Post>): Post {
  return { id: "p1", channel_id: "c1", user_id: "bob", message: "hello world", type: "", ...fields };
}

Deno.test("a post handed on before, then edited or deleted after since, is that change; anything else is not", () => {
  // Made long before the window, changed within it.
  assert.equal(
    changeOf(post({ create_at: 1, edit_at: SINCE + 1, update_at: SINCE + 1 }), SINCE, HANDED),
    "post_edited",
  );
  assert.equal(changeOf(post({ create_at: 1, delete_at: SINCE + 1 }), SINCE, HANDED), "post_deleted");
  // Edited, then deleted: only the deletion matters.
  assert.equal(
    changeOf(post({ create_at: 1, edit_at: SINCE + 1, delete_at: SINCE + 2 }), SINCE, HANDED),
    "post_deleted",
  );
  // Within the margin (after since, handed on already) counts too.
  assert.equal(changeOf(post({ create_at: SINCE + 5, edit_at: SINCE + 9 }), SINCE, HANDED), "post_edited");
  // Edited before since (already relayed live), or only touched (a pin, a reaction, a reply): nothing.
  assert.equal(
    changeOf(post({ create_at: 1, edit_at: SINCE, update_at: SINCE + 1 }), SINCE, HANDED),
    undefined,
  );
  assert.equal(changeOf(post({ create_at: 1, update_at: SINCE + 1 }), SINCE, HANDED), undefined);
  // Newer than what was handed on: it goes on as a new post, with the text it has now (or not at all).
  assert.equal(changeOf(post({ create_at: HANDED + 1, edit_at: HANDED + 2 }), SINCE, HANDED), undefined);
  assert.equal(changeOf(post({ create_at: HANDED + 1, delete_at: HANDED + 2 }), SINCE, HANDED), undefined);
  // The deleted copy of the text before an edit that the server keeps as history (post_store.go Update).
  const history = post({
    id: "h1",
    original_id: "p1",
    create_at: 1,
    update_at: SINCE + 1,
    delete_at: SINCE + 1,
  });
  assert.equal(changeOf(history, SINCE, HANDED), undefined);
  assert.equal(changedAt(post({ edit_at: 7, delete_at: 9 }), "post_edited"), 7);
  assert.equal(changedAt(post({ edit_at: 7, delete_at: 9 }), "post_deleted"), 9);
});

Deno.test("a change found by a catch-up has the event id of the live event for the same change", () => {
  const edited = post({ create_at: 1, edit_at: SINCE + 1, update_at: SINCE + 1 });
  // The live post_edited carries the post as edited: the same edit_at.
  assert.equal(editOf(edited, BOB)?.eventId, editOf({ ...edited, update_at: SINCE + 50 }, BOB)?.eventId);
  // The live post_deleted carries the post as read before the delete (delete_at 0); ?since= has delete_at set.
  const live = removalOf(post({ create_at: 1, delete_at: 0 }), BOB);
  const caught = removalOf(post({ create_at: 1, delete_at: SINCE + 1 }), BOB);
  assert.equal(caught.eventId, live.eventId);
  assert.equal(caught.timestamp, SINCE + 1);
});
