/**
 * Reactions: `POST /reactions` and `DELETE /users/{uid}/posts/{pid}/reactions/{emoji}` with their
 * `reaction_added` / `reaction_removed` events.
 *
 * @module
 */

import { AppError, invalidUrlParam, permissionError } from "./app_error.ts";
import type { App } from "./app.ts";
import { isKnownEmoji, isValidEmojiName } from "./emoji.ts";
import { newEvent } from "./events.ts";
import { isValidId } from "./ids.ts";
import type { Post, Reaction, User } from "./model.ts";
import { hasChannelPermission } from "./permissions.ts";
import { requireLivePost } from "./posts.ts";
import { isSystemAdmin } from "./store.ts";

/** Throw 403 unless the user has a channel permission on the channel of the post (missing posts: 403 too). */
function requirePermissionByPost(app: App, user: User, postId: string, permission: string): void {
  const post = app.store.posts.get(postId);
  const channel = post ? app.store.channels.get(post.channel_id) : undefined;
  if (!channel || !hasChannelPermission(app.store, user, channel)) throw permissionError(permission);
}

function publishReaction(app: App, event: string, reaction: Reaction, post: Post): void {
  app.publish(newEvent(event, { reaction: JSON.stringify(reaction) }, { channelId: post.channel_id }));
}

function touchPost(app: App, post: Post): void {
  post.has_reactions = (app.store.reactions.get(post.id) ?? []).length > 0 || undefined;
  post.update_at = app.store.clock.now();
}

/**
 * Add a reaction as `actor`. Only for oneself (403), on a post in a channel one may react in (403), with
 * a known emoji (404 `app.emoji.get_by_name.no_result` otherwise). Re-adding is an upsert.
 */
export function addReaction(app: App, actor: User, input: Record<string, unknown>): Reaction {
  const userId = String(input.user_id ?? "");
  const postId = String(input.post_id ?? "");
  const emojiName = String(input.emoji_name ?? "");
  if (!isValidId(userId)) {
    throw new AppError("model.reaction.is_valid.user_id.app_error", "Invalid user id.", 400);
  }
  if (!isValidId(postId)) {
    throw new AppError("model.reaction.is_valid.post_id.app_error", "Invalid post id.", 400);
  }
  if (!isValidEmojiName(emojiName)) {
    throw new AppError("model.reaction.is_valid.emoji_name.app_error", "Invalid emoji name.", 400);
  }
  if (userId !== actor.id) {
    throw new AppError(
      "api.reaction.save_reaction.user_id.app_error",
      "You cannot save reaction for the other user.",
      403,
    );
  }
  requirePermissionByPost(app, actor, postId, "add_reaction");
  const post = requireLivePost(app.store, postId);
  if (!isKnownEmoji(emojiName)) {
    throw new AppError("app.emoji.get_by_name.no_result", "Unable to find the emoji.", 404);
  }
  const now = app.store.clock.now();
  const reaction: Reaction = {
    user_id: userId,
    post_id: postId,
    emoji_name: emojiName,
    create_at: now,
    update_at: now,
    delete_at: 0,
    remote_id: "",
    channel_id: post.channel_id,
  };
  const list = (app.store.reactions.get(postId) ?? []).filter(
    (r) => !(r.user_id === userId && r.emoji_name === emojiName),
  );
  list.push(reaction);
  app.store.reactions.set(postId, list);
  touchPost(app, post);
  publishReaction(app, "reaction_added", reaction, post);
  return { ...reaction };
}

/**
 * Remove a reaction. Removing another user's reaction needs admin (403); removing one that does not
 * exist still succeeds and still publishes `reaction_removed`, as the real server does.
 */
export function removeReaction(
  app: App,
  actor: User,
  userId: string,
  postId: string,
  emojiName: string,
): void {
  if (!isValidId(userId)) throw invalidUrlParam("user_id");
  if (!isValidId(postId)) throw invalidUrlParam("post_id");
  if (!isValidEmojiName(emojiName)) throw invalidUrlParam("emoji_name");
  requirePermissionByPost(app, actor, postId, "remove_reaction");
  if (userId !== actor.id && !isSystemAdmin(actor)) throw permissionError("remove_others_reactions");
  const post = requireLivePost(app.store, postId);
  const list = app.store.reactions.get(postId) ?? [];
  const existing = list.find((r) => r.user_id === userId && r.emoji_name === emojiName);
  app.store.reactions.set(postId, list.filter((r) => r !== existing));
  touchPost(app, post);
  const now = app.store.clock.now();
  const reaction: Reaction = existing ?? {
    user_id: userId,
    post_id: postId,
    emoji_name: emojiName,
    create_at: 0,
    update_at: now,
    delete_at: 0,
    remote_id: "",
    channel_id: post.channel_id,
  };
  publishReaction(app, "reaction_removed", { ...reaction, update_at: now }, post);
}
