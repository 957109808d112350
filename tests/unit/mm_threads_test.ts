/**
 * Mattermost threads (src/mattermost/threads.ts): the `root_id` a reply gets from its parent's ref, the server's
 * refusals of a root, and what a reply post answers.
 */
import assert from "node:assert/strict";
import { BridgeError } from "../../src/core/errors.ts";
import type { MessageRef } from "../../src/core/message.ts";
import { isRootRefused, overriddenName, replyOfPost, rootIdFor } from "../../src/mattermost/threads.ts";
import type { Post } from "../../src/mattermost/post.ts";

const CHAN = "c".repeat(26);

Deno.test("root_id of a reply: the parent's thread, else the parent's post", () => {
  const cases: Array<[string, MessageRef, string | undefined]> = [
    ["a post the bridge made", {
      channel: CHAN,
      ids: ["p1"],
      parts: [{ postId: "p1", sender: { kind: "relay" } }],
    }, "p1"],
    [
      "a reply the bridge made",
      { channel: CHAN, ids: ["p2"], parts: [{ postId: "p2", sender: { kind: "relay" }, threadRoot: "p1" }] },
      "p1",
    ],
    [
      "a post written on Mattermost",
      { channel: CHAN, ids: ["p3"], parts: [{ sender: { kind: "author" } }] },
      "p3",
    ],
    [
      "a reply written on Mattermost",
      {
        channel: CHAN,
        ids: ["p4"],
        parts: [{ sender: { kind: "author" }, threadRoot: "p3", replyTo: "p3" }],
      },
      "p3",
    ],
    ["a ref without parts", { channel: CHAN, ids: ["p5"], parts: [] }, undefined],
    ["an old record of unknown sender", {
      channel: CHAN,
      ids: ["p6"],
      parts: [{ sender: { kind: "unknown" } }],
    }, undefined],
  ];
  for (const [what, ref, want] of cases) assert.equal(rootIdFor(ref), want, what);
});

Deno.test("the server's refusals of a root are recognised, other failures are not", () => {
  const refused = (id: string) =>
    new BridgeError("cannot post", { cause: { server_error_id: id, status_code: 400 } });
  assert.equal(isRootRefused(refused("api.post.create_post.root_id.app_error")), true);
  assert.equal(isRootRefused(refused("api.post.create_post.channel_root_id.app_error")), true);
  assert.equal(isRootRefused(refused("model.post.is_valid.message_length.app_error")), false);
  assert.equal(isRootRefused(new Error("fetch failed")), false);
});

Deno.test("a reply post answers its root, with the root's text and author when the root was read", () => {
  const root: Post = { id: "r", channel_id: CHAN, user_id: "u", message: "*waves*", type: "me", props: {} };
  assert.equal(replyOfPost({ root_id: "" }, root, () => "bob"), undefined);
  assert.deepEqual(replyOfPost({ root_id: "r" }, undefined, () => "bob"), { targetId: "r", thread: "r" });
  assert.deepEqual(replyOfPost({ root_id: "r" }, root, () => "bob"), {
    targetId: "r",
    thread: "r",
    quote: "waves",
    author: "bob",
  });
  assert.equal(overriddenName({ ...root, props: { override_username: "alice (xmpp)" } }), "alice (xmpp)");
  assert.equal(overriddenName(root), undefined);
});
