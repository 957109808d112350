/**
 * Mattermost post edits and deletions, both ways: the `post_edited` and `post_deleted` websocket events read as
 * the core's edit and removal, and the bot's own relayed posts patched (`PUT /posts/{id}/patch`) or deleted
 * (`DELETE /posts/{id}`) for an edit or removal from the other side.
 *
 * @module
 */
import type { BridgeEdit, BridgeRemove, Sender } from "../core/events.ts";
import { statusOf } from "./api.ts";
import { ACTION_POST_TYPE, type Post, type PostDraft, postText } from "./post.ts";

/**
 * Whether a changed post is one the bridge relays changes of: a chat post (`""` or `/me`) by someone other than
 * the bot (the bot's own patches and deletions come back as these events too).
 */
export function isRelayedChange(post: Post, botUserId: string): boolean {
  return (post.type === "" || post.type === ACTION_POST_TYPE) && post.user_id !== botUserId;
}

/**
 * The edit a `post_edited` event stands for, or undefined when its text was never edited (`edit_at` unset: a pin,
 * a reaction count, a preview changed the post, not its text). Its id is the post's and the edit's time, so the
 * same edit seen twice (a later pin republishes it) is one event.
 */
export function editOf(post: Post, sender: Sender): BridgeEdit | undefined {
  if (!post.edit_at) return undefined;
  return {
    kind: "edit",
    eventId: `${post.id}:edit:${post.edit_at}`,
    portal: { network: sender.network, channel: post.channel_id },
    sender,
    targetId: post.id,
    timestamp: post.edit_at,
    ...postText(post),
  };
}

/**
 * The removal a `post_deleted` event stands for. Whoever deleted it (the author or an admin, whom Mattermost's own
 * permissions allowed), it is the author's post that is gone: the sender is its author.
 */
export function removalOf(post: Post, sender: Sender): BridgeRemove {
  return {
    kind: "remove",
    eventId: `${post.id}:delete`,
    portal: { network: sender.network, channel: post.channel_id },
    sender,
    targetId: post.id,
    timestamp: post.delete_at || Date.now(),
  };
}

/** What a bridged message's new text does to the posts it was, piece by piece. */
export type PostChange =
  | { kind: "patch"; postId: string; draft: PostDraft }
  | { kind: "create"; piece: number; draft: PostDraft }
  | { kind: "delete"; postId: string };

/**
 * How to turn the posts `postIds` (a bridged message's posts on Mattermost, in order) into `drafts`, the new text's
 * pieces: each post is patched with the piece at its place; a longer text gets new posts for the pieces beyond,
 * a shorter one loses the posts it no longer needs.
 */
export function postChanges(postIds: readonly string[], drafts: readonly PostDraft[]): PostChange[] {
  const changes: PostChange[] = [];
  for (const [i, draft] of drafts.entries()) {
    changes.push(
      i < postIds.length ? { kind: "patch", postId: postIds[i], draft } : { kind: "create", piece: i, draft },
    );
  }
  for (const postId of postIds.slice(drafts.length)) changes.push({ kind: "delete", postId });
  return changes;
}

/** True when `err` says the post is already gone: a delete of a deleted post is a 404 (api4/post.go deletePost). */
export function isGone(err: unknown): boolean {
  return statusOf(err) === 404;
}
