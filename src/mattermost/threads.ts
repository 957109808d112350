/**
 * Mattermost threads: a post's `root_id` in and out.
 *
 * Mattermost threads are one level deep: `root_id` must name a root (a post that is no reply itself), live, in the
 * same channel (app/post.go `CreatePost`). So a reply to any message of a thread goes to that thread's root, and a
 * root the server refuses (deleted meanwhile) turns the reply into a post of its own that quotes its parent.
 *
 * @module
 */
import type { ReplyTo } from "../core/events.ts";
import type { MessageRef } from "../core/message.ts";
import { BridgeError } from "../core/errors.ts";
import { type Post, postText } from "./post.ts";

/**
 * The `root_id` a reply to `parent` (as the id map knows it in the channel) is posted with: the thread the parent
 * is in, else the parent itself; undefined when the ref names no post.
 */
export function rootIdFor(parent: MessageRef): string | undefined {
  const part = parent.parts[0];
  if (!part) return undefined;
  // A post written on Mattermost is recorded with its post id as its only id.
  return part.threadRoot ?? part.postId ?? (part.sender.kind === "author" ? parent.ids[0] : undefined);
}

/** The server's ids for a `root_id` it will not take: unknown, deleted or a reply (400), or in another channel. */
const ROOT_REFUSALS = new Set([
  "api.post.create_post.root_id.app_error",
  "api.post.create_post.channel_root_id.app_error",
]);

/** True when `err` (from a create) is the server refusing the post's `root_id`. */
export function isRootRefused(err: unknown): boolean {
  const cause = err instanceof BridgeError ? err.cause : err;
  const id = (cause as { server_error_id?: unknown } | undefined)?.server_error_id;
  return typeof id === "string" && ROOT_REFUSALS.has(id);
}

/**
 * What a post with a `root_id` answers: its thread's root, with the root's text and author when `root` (the root
 * post, fetched) is known, for a network where the root never arrived. `authorOf` names a post's author.
 */
export function replyOfPost(
  post: Pick<Post, "root_id">,
  root: Post | undefined,
  authorOf: (root: Post) => string | undefined,
): ReplyTo | undefined {
  if (!post.root_id) return undefined;
  const reply: ReplyTo = { targetId: post.root_id, thread: post.root_id };
  if (!root) return reply;
  const { text } = postText(root);
  if (text.trim() !== "") reply.quote = text;
  const author = authorOf(root);
  if (author) reply.author = author;
  return reply;
}

/** The name a bridged post shows instead of its poster's (`override_username`), if it has one. */
export function overriddenName(post: Post): string | undefined {
  const name = post.props?.override_username;
  return typeof name === "string" && name !== "" ? name : undefined;
}
