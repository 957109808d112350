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
  post.has_reactions = app.store.liveReactions(post.id).length > 0 || undefined;
  post.update_at = app.store.clock.now();
}

/**
 * Add a reaction as `actor` (api4/reaction.go `saveReaction`, app/reaction.go `SaveReactionForPost`), checked in the
 * server's order: ids and name length (400), only for oneself (403), a post in a channel one may react in (403), a
 * live post (404), a system or custom emoji (404; 403 with custom emoji off), the post's limit of distinct emoji
 * (400), the name's syntax (400, `Reaction.IsValid` in the store). Re-adding is an upsert. (The server's 403 in
 * an archived channel is not modelled: the stand-in archives no channel.)
 */
export function addReaction(app: App, actor: User, input: Record<string, unknown>): Reaction {
  const userId = typeof input.user_id === "string" ? input.user_id : "";
  const postId = typeof input.post_id === "string" ? input.post_id : "";
  const emojiName = typeof input.emoji_name === "string" ? input.emoji_name : "";
  if (!isValidId(userId) || !isValidId(postId) || emojiName === "" || emojiName.length > 64) {
    throw new AppError("api.reaction.save_reaction.invalid.app_error", "Unable to save reaction.", 400);
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
    if (!app.config.enableCustomEmoji) {
      throw new AppError(
        "api.emoji.disabled.app_error",
        "Custom emoji have been disabled by the system admin.",
        403,
      );
    }
    if (!app.store.customEmoji.has(emojiName)) {
      throw new AppError("app.emoji.get_by_name.no_result", "Unable to find the emoji.", 404);
    }
  }
  const names = new Set(app.store.liveReactions(postId).map((r) => r.emoji_name));
  if (!names.has(emojiName) && names.size >= app.config.uniqueEmojiReactionLimitPerPost) {
    throw new AppError(
      "app.reaction.save.save.too_many_reactions",
      "Reaction limit has been reached for this post.",
      400,
    );
  }
  if (!isValidEmojiName(emojiName)) {
    throw new AppError("model.reaction.is_valid.emoji_name.app_error", "Invalid emoji name.", 400);
  }
  const now = app.store.clock.now();
  // An upsert on (post, user, emoji) that leaves CreateAt alone (sqlstore `saveReactionAndUpdatePost`); the answer
  // and the event carry the CreateAt `PreSave` gave the request's reaction: now.
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
  const list = app.store.reactions.get(postId) ?? [];
  const row = list.find((r) => r.user_id === userId && r.emoji_name === emojiName);
  if (row) Object.assign(row, { update_at: now, delete_at: 0, remote_id: "", channel_id: post.channel_id });
  else app.store.reactions.set(postId, [...list, { ...reaction }]);
  touchPost(app, post);
  publishReaction(app, "reaction_added", reaction, post);
  return { ...reaction };
}

/**
 * Remove a reaction (api4/reaction.go `deleteReaction`, app/reaction.go `DeleteReactionForPost`). Removing another
 * user's reaction needs admin (403); removing one that does not exist still succeeds
 * and still publishes `reaction_removed`, as the real server does. The event carries the reaction built from the
 * URL, stamped by the store's `PreUpdate`: no `create_at`, no `channel_id` (the broadcast names the channel).
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
  const now = app.store.clock.now();
  // A soft delete (sqlstore `deleteReactionAndUpdatePost`): the row stays, with DeleteAt.
  const row = (app.store.reactions.get(postId) ?? []).find((r) =>
    r.user_id === userId && r.emoji_name === emojiName
  );
  if (row) Object.assign(row, { update_at: now, delete_at: now });
  touchPost(app, post);
  const reaction: Reaction = {
    user_id: userId,
    post_id: postId,
    emoji_name: emojiName,
    create_at: 0,
    update_at: now,
    delete_at: 0,
    remote_id: "",
    channel_id: "",
  };
  publishReaction(app, "reaction_removed", reaction, post);
}
