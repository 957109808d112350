/**
 * What the Mattermost side writes for a caught-up message (its original time in props), and the sentence it gives
 * the author of a message Mattermost refused for good.
 */
import assert from "node:assert/strict";
import { BridgeError } from "../../src/core/errors.ts";
import { ORIGINAL_TIME_PROP, renderPosts } from "../../src/mattermost/post.ts";
import { refusalNotice, withRefusalNotice } from "../../src/mattermost/notices.ts";

const display = { mode: "override" as const, nameFormat: "{nick}" };

Deno.test("a caught-up message carries its original time in every post's props; a live one does not", () => {
  const long = "x".repeat(20_000);
  const caught = renderPosts(
    { text: long, sender: { name: "alice" }, caughtUp: true, timestamp: 1_767_322_245_678 },
    "xmpp",
    display,
  );
  assert.equal(caught.length, 2);
  for (const draft of caught) assert.equal(draft.props[ORIGINAL_TIME_PROP], 1_767_322_245_678);
  const live = renderPosts(
    { text: "hi", sender: { name: "alice" }, timestamp: 1_767_322_245_678 },
    "xmpp",
    display,
  );
  assert.equal(ORIGINAL_TIME_PROP in live[0].props, false);
});

Deno.test("a refusal becomes one sentence without ids or addresses; a transient failure is left alone", () => {
  assert.equal(
    refusalNotice(403, "api.context.permissions.app_error"),
    "Mattermost does not let the bridge post in that channel",
  );
  assert.equal(
    refusalNotice(400, "model.post.is_valid.message_length.app_error"),
    "it is too long for Mattermost",
  );
  assert.equal(
    refusalNotice(400, "api.post.create_post.can_not_post_to_deleted.error"),
    "the Mattermost channel is archived",
  );
  assert.equal(refusalNotice(400, "something.else"), "Mattermost refused it (HTTP 400)");

  const cause = { status_code: 403, server_error_id: "api.context.permissions.app_error", message: "x" };
  const permanent = new BridgeError("cannot post to channel abc123: Mattermost answered 403", { cause });
  const noticed = withRefusalNotice(permanent) as BridgeError;
  assert.equal(noticed.transient, false);
  assert.equal(noticed.message, permanent.message, "the log keeps the full reason");
  assert.equal(noticed.notice, "Mattermost does not let the bridge post in that channel");
  const transient = new BridgeError("down", { transient: true, cause: { status_code: 503 } });
  assert.equal(withRefusalNotice(transient), transient);
});
