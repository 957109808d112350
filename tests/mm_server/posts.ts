/**
 * Posts: creation, patching and deletion with the real server's checks, and the `posted`,
 * `post_edited` and `post_deleted` events they publish.
 *
 * @module
 */

import { AppError, invalidParam, notFound, permissionError } from "./app_error.ts";
import type { App } from "./app.ts";
import { newEvent } from "./events.ts";
import { attachFiles } from "./files.ts";
import { newId } from "./ids.ts";
import { explicitMentions } from "./mentions.ts";
import type { Channel, Post, PostList, User } from "./model.ts";
import { canReadChannel, hasChannelPermission, hasSystemPermission } from "./permissions.ts";
import { isSystemAdmin, type Store } from "./store.ts";
import { setStatus } from "./users.ts";

/** `model.PostMessageMaxRunesV2`: longer messages are refused, never truncated. */
export const MAX_POST_RUNES = 16383;
/** `file_ids` serialized as JSON may not exceed this many runes (about 10 files). */
const MAX_FILE_IDS_RUNES = 300;
/** How long `pending_post_id` de-duplicates a retried create (the server's `pendingPostIDsCacheTTL`). */
export const PENDING_POST_TTL_MS = 30_000;

/**
 * Types `Post.IsValid` accepts that are not `system_*` (refused earlier through REST), besides `custom_*`:
 * a `/me` action is `me`. The feature-flagged `card` and `burn_on_read` are left out (flags off).
 */
const REST_POST_TYPES = new Set(["", "me", "slack_attachment", "add_bot_teams_channels", "reminder"]);

/** The body of `POST /posts`. */
export interface NewPost {
  channel_id?: string;
  message?: string;
  root_id?: string;
  file_ids?: string[];
  props?: Record<string, unknown>;
  type?: string;
  pending_post_id?: string;
}

/** The body of `PUT /posts/{id}/patch`. */
export interface PostPatch {
  message?: string;
  file_ids?: string[];
  props?: Record<string, unknown>;
  is_pinned?: boolean;
}

function checkMessageLength(message: string): void {
  const runes = [...message].length;
  if (runes > MAX_POST_RUNES) {
    throw new AppError(
      "model.post.is_valid.message_length.app_error",
      `Post Message property is longer than the maximum permitted length (${runes} > ${MAX_POST_RUNES}).`,
      400,
    );
  }
}

/**
 * `Post.SanitizeProps` (model/post.go): only `add_channel_member` and `force_notification` are dropped.
 * `override_username`/`override_icon_url` are kept as sent; the display rules apply when they are shown
 * (`sender_name`, the webapp), not when they are stored.
 */
function sanitizeProps(props: Record<string, unknown>): Record<string, unknown> {
  const out = { ...props };
  delete out.add_channel_member;
  delete out.force_notification;
  return out;
}

/** The post as the API returns it: a copy with `metadata` (files, reactions) and thread counts. */
export function postView(store: Store, post: Post): Post {
  const view = structuredClone(post);
  const threadRoot = post.root_id || post.id;
  const replies = store.repliesOf(threadRoot);
  view.reply_count = replies.length;
  view.last_reply_at = replies.length ? replies[replies.length - 1].create_at : 0;
  const metadata: Post["metadata"] = {};
  const files = (post.file_ids ?? []).map((id) => store.files.get(id)?.info).filter((f) => f !== undefined);
  if (files.length) metadata.files = structuredClone(files);
  const reactions = store.liveReactions(post.id);
  if (reactions.length && post.delete_at === 0) metadata.reactions = structuredClone(reactions);
  view.metadata = metadata;
  return view;
}

/** Build a `PostList` from posts already in newest-first `order`, plus extra (parent) posts. */
export function postList(store: Store, ordered: Post[], extra: Post[] = []): PostList {
  const posts: Record<string, Post> = {};
  for (const p of [...ordered, ...extra]) posts[p.id] = postView(store, p);
  return {
    order: ordered.map((p) => p.id),
    posts,
    next_post_id: "",
    prev_post_id: "",
    has_next: false,
    first_inaccessible_post_time: 0,
  };
}

/**
 * Ids of channel members a post notifies, counted like the server (`mentions.ts`): `@username`, everyone for
 * `@channel`/`@all`, the online members for `@here`.
 */
function mentionedUserIds(app: App, post: Post, channel: Channel): string[] {
  const members = app.store.channelMemberIds(channel.id).filter((id) => id !== post.user_id);
  const keywords = new Map<string, string[]>();
  for (const id of members) {
    const user = app.store.users.get(id);
    if (user) keywords.set(`@${user.username.toLowerCase()}`, [id]);
  }
  const found = explicitMentions(post.message, keywords);
  return members.filter((id) =>
    found.ids.has(id) || found.channel || found.all || (found.here && app.isConnected(id))
  );
}

/**
 * `PostNotification.GetSenderName` (app/notification.go): the override name only where overrides are
 * allowed (`EnablePostUsernameOverride`), outside direct messages, on a post with `from_webhook: "true"`.
 */
function senderName(app: App, post: Post, channel: Channel): string {
  const override = post.props.override_username;
  if (
    app.config.enablePostUsernameOverride && channel.type !== "D" && post.props.from_webhook === "true" &&
    typeof override === "string"
  ) {
    return override;
  }
  return `@${app.store.users.get(post.user_id)?.username ?? ""}`;
}

/**
 * Publish `posted` with the data the real server attaches (`post` is a JSON string). The event's post
 * still carries the create's `pending_post_id`, which is never stored.
 */
function publishPosted(app: App, post: Post, channel: Channel, setOnline: boolean, pendingId: string): void {
  const data: Record<string, unknown> = {
    channel_display_name: channel.display_name,
    channel_name: channel.name,
    channel_type: channel.type,
  };
  const mentions = mentionedUserIds(app, post, channel);
  if (mentions.length) data.mentions = JSON.stringify(mentions);
  const files = (post.file_ids ?? []).map((id) => app.store.files.get(id)?.info).filter((f) =>
    f !== undefined
  );
  if (files.length) {
    data.otherFile = "true";
    if (files.some((f) => f.mime_type.startsWith("image/"))) data.image = "true";
  }
  data.post = JSON.stringify({ ...postView(app.store, post), pending_post_id: pendingId });
  data.sender_name = senderName(app, post, channel);
  data.set_online = setOnline;
  data.team_id = channel.team_id;
  app.publish(newEvent("posted", data, { channelId: channel.id }));
}

/** Store a post and publish `posted`; shared by user posts and system messages. */
function savePost(app: App, post: Post, channel: Channel, setOnline: boolean, pendingId = ""): Post {
  const { store } = app;
  store.posts.set(post.id, post);
  const ids = store.channelPosts.get(channel.id) ?? [];
  ids.push(post.id);
  store.channelPosts.set(channel.id, ids);
  if (post.root_id) {
    const replies = store.threadReplies.get(post.root_id) ?? [];
    replies.push(post.id);
    store.threadReplies.set(post.root_id, replies);
  }
  channel.last_post_at = post.create_at;
  channel.total_msg_count++;
  if (!post.root_id) {
    channel.last_root_post_at = post.create_at;
    channel.total_msg_count_root++;
  } else {
    // Saving a reply bumps the root's update_at so `?since=` catch-up sees the thread change.
    const root = store.posts.get(post.root_id);
    if (root) root.update_at = post.create_at;
  }
  publishPosted(app, post, channel, setOnline, pendingId);
  return post;
}

function blankPost(store: Store, userId: string, channelId: string): Post {
  const now = store.clock.now();
  return {
    id: newId(),
    create_at: now,
    update_at: now,
    edit_at: 0,
    delete_at: 0,
    is_pinned: false,
    user_id: userId,
    channel_id: channelId,
    root_id: "",
    original_id: "",
    message: "",
    type: "",
    props: {},
    hashtags: "",
    pending_post_id: "",
    reply_count: 0,
    last_reply_at: 0,
    participants: null,
  };
}

/** A create that passed the checks before de-duplication; see {@link beginCreatePost}. */
export interface PostCreation {
  /** The post an earlier create with the same `pending_post_id` made: the answer, nothing new is created. */
  found?: Post;
  /** Runs the rest of the create (validation, save, `posted`); the pending id is released if it fails. */
  finish(): Post;
}

/**
 * `deduplicateCreatePost` (app/post.go): the cache is keyed by the exact `pending_post_id`, whoever sends
 * it. The first create claims the id ("in flight") and, once saved, records its post for 30 s from the
 * save; a create arriving while the first is in flight gets 500 `…deduplicate_create_post.pending`; one
 * arriving later gets the first post back — unless the sender may not read it (then it is ignored and a
 * new post is created), or it is gone (500 `…failed_to_get`).
 */
function deduplicate(app: App, author: User, pendingId: string): Post | undefined {
  const { store } = app;
  const seen = store.pendingPostIds.get(pendingId);
  if (!seen || Date.now() - seen.at >= app.pendingPostIdTtlMs) {
    store.pendingPostIds.set(pendingId, { postId: "", at: Date.now() });
    return undefined;
  }
  if (seen.postId === "") {
    throw new AppError(
      "api.post.deduplicate_create_post.pending",
      "Rejected post since another client is making the same request.",
      500,
    );
  }
  const post = store.posts.get(seen.postId);
  if (!post || post.delete_at !== 0) {
    throw new AppError(
      "api.post.deduplicate_create_post.failed_to_get",
      "Failed to fetch original post after deduplicating a client repeating the same request.",
      500,
    );
  }
  if (!canReadChannel(store, author, store.channels.get(post.channel_id)!)) return undefined;
  return postView(store, post);
}

/**
 * The first half of `POST /posts`, up to de-duplication: permission (403 unless a channel member or admin
 * — also for a missing or unknown `channel_id`), the deleted-channel check and the `pending_post_id`
 * cache. `finish` does the rest: thread checks, the 16,383-rune limit, `from_bot` for bots, file
 * attachment, saving and the `posted` event. Split so that a test can hold a create in flight.
 */
export function beginCreatePost(app: App, author: User, input: NewPost, setOnline = true): PostCreation {
  const { store } = app;
  const channel = typeof input.channel_id === "string" ? store.channels.get(input.channel_id) : undefined;
  if (!channel || !hasChannelPermission(store, author, channel)) throw permissionError("create_post");
  const type = typeof input.type === "string" ? input.type : "";
  // CreatePostAsUser: system messages are the server's own, never created through REST.
  if (type.startsWith("system_")) throw invalidParam("post.type");
  if (channel.delete_at !== 0) {
    throw new AppError(
      "api.post.create_post.can_not_post_to_deleted.error",
      "Can not post to deleted channel.",
      400,
    );
  }
  const pendingId = typeof input.pending_post_id === "string" ? input.pending_post_id : "";
  const found = pendingId ? deduplicate(app, author, pendingId) : undefined;
  if (found) return { found, finish: () => found };
  return {
    finish() {
      try {
        const post = validatedPost(app, author, channel, input);
        if (setOnline) setStatus(app, author.id, "online");
        savePost(app, post, channel, setOnline, pendingId);
        if (pendingId) store.pendingPostIds.set(pendingId, { postId: post.id, at: Date.now() });
        return { ...postView(store, post), pending_post_id: pendingId };
      } catch (err) {
        // The server forgets the claim of a create that failed, so that a retry can create the post.
        if (pendingId) store.pendingPostIds.delete(pendingId);
        throw err;
      }
    },
  };
}

/** Create a post as `author`, exactly as `POST /posts` does (see {@link beginCreatePost}). */
export function createPost(app: App, author: User, input: NewPost, setOnline = true): Post {
  const creation = beginCreatePost(app, author, input, setOnline);
  return creation.found ?? creation.finish();
}

/** The checks `CreatePost` and `Post.IsValid` make after de-duplication, and the post they build. */
function validatedPost(app: App, author: User, channel: Channel, input: NewPost): Post {
  const { store } = app;
  const rootId = typeof input.root_id === "string" ? input.root_id : "";
  if (rootId) {
    // app/post.go `CreatePost`, in its order: the root must be readable (not deleted: the store's Get skips those),
    // its thread in this channel (500, lowered to 400 by `CreatePostAsUser`), and it must be a root itself.
    const root = store.posts.get(rootId);
    if (!root || root.delete_at !== 0) {
      throw new AppError("api.post.create_post.root_id.app_error", "Invalid RootId parameter.", 400);
    }
    if (root.channel_id !== channel.id) {
      throw new AppError(
        "api.post.create_post.channel_root_id.app_error",
        "Invalid ChannelId for RootId parameter.",
        400,
      );
    }
    if (root.root_id !== "") {
      throw new AppError("api.post.create_post.root_id.app_error", "Invalid RootId parameter.", 400);
    }
  }
  const message = typeof input.message === "string" ? input.message : "";
  checkMessageLength(message);
  const type = typeof input.type === "string" ? input.type : "";
  if (!REST_POST_TYPES.has(type) && !type.startsWith("custom_")) {
    throw new AppError("model.post.is_valid.type.app_error", "Invalid type.", 400, `id=${type}`);
  }
  const fileIds = Array.isArray(input.file_ids) ? input.file_ids.map(String) : [];
  if ([...JSON.stringify(fileIds)].length > MAX_FILE_IDS_RUNES) {
    throw new AppError("model.post.is_valid.file_ids.app_error", "Invalid file ids.", 400);
  }
  if (input.props !== undefined && (typeof input.props !== "object" || input.props === null)) {
    throw invalidParam("props");
  }

  const post = blankPost(store, author.id, channel.id);
  post.root_id = rootId;
  post.message = message;
  post.type = type;
  post.props = sanitizeProps(input.props ?? {});
  if (author.is_bot) post.props.from_bot = "true";
  const attached = attachFiles(store, fileIds, post);
  if (attached.length) post.file_ids = attached;
  return post;
}

/** What a system message needs; the server writes these for joins, leaves and channel changes. */
export interface SystemMessage {
  channel: Channel;
  userId: string;
  type: string;
  message: string;
  props?: Record<string, unknown>;
}

/** Create a `system_*` post (no validation) and publish `posted`, as the server does on membership changes. */
export function createSystemPost(app: App, msg: SystemMessage): Post {
  const post = blankPost(app.store, msg.userId, msg.channel.id);
  post.type = msg.type;
  post.message = msg.message;
  post.props = msg.props ?? {};
  savePost(app, post, msg.channel, false);
  return post;
}

/** A live post by id, or 404 like `GetSinglePost(id, false)`. */
export function requireLivePost(store: Store, postId: string): Post {
  const post = store.posts.get(postId);
  if (!post || post.delete_at !== 0) throw notFound("app.post.get.app_error", "post");
  return post;
}

function requireOwnOrAdmin(app: App, actor: User, post: Post, own: string, others: string): Channel {
  const channel = app.store.channels.get(post.channel_id)!;
  if (post.user_id === actor.id) {
    if (!hasChannelPermission(app.store, actor, channel)) throw permissionError(own);
  } else if (!isSystemAdmin(actor)) {
    throw permissionError(others);
  }
  return channel;
}

/**
 * Patch a post (`PUT /posts/{id}/patch`): own posts need channel membership, others' posts need admin;
 * system messages cannot be edited; the message limit applies again. Publishes `post_edited`.
 * A missing or deleted post is a 403 `edit_post`, not a 404 (api4/post.go `postPatchChecks` answers a failed
 * `GetSinglePost` with a permission error).
 */
export function patchPost(app: App, actor: User, postId: string, patch: PostPatch): Post {
  const post = app.store.posts.get(postId);
  if (!post || post.delete_at !== 0) throw permissionError("edit_post");
  const channel = requireOwnOrAdmin(app, actor, post, "edit_post", "edit_others_posts");
  if (post.type.startsWith("system_")) {
    throw new AppError(
      "api.post.update_post.system_message.app_error",
      "Unable to update system message.",
      400,
    );
  }
  if (patch.message !== undefined) {
    if (typeof patch.message !== "string") throw invalidParam("message");
    checkMessageLength(patch.message);
  }
  const now = app.store.clock.now();
  if (typeof patch.message === "string" && patch.message !== post.message) {
    keepEditHistory(app.store, post, now);
    post.message = patch.message;
    post.edit_at = now;
  }
  if (patch.props && typeof patch.props === "object") {
    post.props = { ...patch.props };
  }
  if (Array.isArray(patch.file_ids)) {
    const attached = attachFiles(app.store, patch.file_ids.map(String), post);
    post.file_ids = attached.length ? attached : undefined;
  }
  if (typeof patch.is_pinned === "boolean") post.is_pinned = patch.is_pinned;
  post.update_at = now;
  app.publish(
    newEvent("post_edited", { post: JSON.stringify(postView(app.store, post)) }, { channelId: channel.id }),
  );
  return postView(app.store, post);
}

/**
 * Keeps the text `post` had before an edit at `now` as the real store does (store/sqlstore/post_store.go `Update`):
 * a copy under a new id, `original_id` the post's, deleted (`delete_at` = `update_at` = `now`), in the same
 * channel. `?since=` lists it like any deleted post; pages, look-ups and threads never show it.
 */
function keepEditHistory(store: Store, post: Post, now: number): void {
  const old: Post = {
    ...structuredClone(post),
    id: newId(),
    original_id: post.id,
    delete_at: now,
    update_at: now,
  };
  store.posts.set(old.id, old);
  store.channelPosts.get(post.channel_id)?.push(old.id);
}

/**
 * Delete a post (`DELETE /posts/{id}`): soft delete of the post, its thread replies and its files; a post
 * already deleted is a 404 (api4/post.go `deletePost`).
 * Publishes `post_deleted` twice like the real server: a copy for non-admins and one with `delete_by`
 * for admins. Both carry the post as it was read before the delete (`CleanUpAfterPostDeletion` marshals the
 * post `DeletePost` fetched first): `delete_at` 0, the old `update_at`.
 */
export function deletePost(app: App, actor: User, postId: string): void {
  const post = requireLivePost(app.store, postId);
  const channel = requireOwnOrAdmin(app, actor, post, "delete_post", "delete_others_posts");
  const postJson = JSON.stringify(postView(app.store, post));
  const now = app.store.clock.now();
  const doomed = [post, ...(post.root_id ? [] : app.store.repliesOf(post.id))];
  for (const p of doomed) {
    p.delete_at = now;
    p.update_at = now;
    p.props = { ...p.props, deleteBy: actor.id };
    for (const fileId of p.file_ids ?? []) {
      const file = app.store.files.get(fileId);
      if (file) file.info.delete_at = now;
    }
  }
  app.publish(
    newEvent("post_deleted", { post: postJson }, { channelId: channel.id, audience: "non_admins" }),
  );
  app.publish(
    newEvent("post_deleted", { delete_by: actor.id, post: postJson }, {
      channelId: channel.id,
      audience: "admins",
    }),
  );
}

/** `LIMIT 1000` of the server's `GetPostsSince`. */
export const POSTS_SINCE_LIMIT = 1000;

/**
 * Posts of a channel changed after `since` (`update_at > since`, strictly, deleted ones included), newest
 * first; roots of returned replies are added to `posts` but not to `order`. Like the Go store
 * (store/sqlstore/post_store.go: a CTE `LIMIT 1000` with no ORDER BY), when more changed it answers an
 * arbitrary 1000 of them: here a random pick, so a client cannot rely on which.
 */
export function postsSince(store: Store, channelId: string, since: number): PostList {
  let changed = store.postsOf(channelId).filter((p) => p.update_at > since);
  if (changed.length > POSTS_SINCE_LIMIT) {
    const picked = new Set(shuffled(changed).slice(0, POSTS_SINCE_LIMIT));
    changed = changed.filter((p) => picked.has(p));
  }
  changed = changed.sort((a, b) => b.create_at - a.create_at);
  const roots = changed
    .filter((p) => p.root_id && !changed.some((c) => c.id === p.root_id))
    .map((p) => store.posts.get(p.root_id)!)
    .filter((p) => p !== undefined);
  return postList(store, changed, roots);
}

/** One page of a channel's live posts, newest first, with the roots of any replies on the page. */
export function postsPage(store: Store, channelId: string, page: number, perPage: number): PostList {
  const live = store.postsOf(channelId).filter((p) => p.delete_at === 0).reverse();
  const slice = live.slice(page * perPage, page * perPage + perPage);
  const roots = slice
    .filter((p) => p.root_id && !slice.some((c) => c.id === p.root_id))
    .map((p) => store.posts.get(p.root_id)!)
    .filter((p) => p !== undefined && p.delete_at === 0);
  return postList(store, slice, roots);
}

/** A copy of `items` in random order (Fisher–Yates). */
function shuffled<T>(items: T[]): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [copy[i], copy[j]] = [copy[j], copy[i]];
  }
  return copy;
}

/**
 * `POST /posts/ephemeral` (api4/post.go `createEphemeralPost`, app/post.go `SendEphemeralPost`): after the body's
 * checks (`user_id`, then `post`, 400 `invalid_param`), the system-scoped `create_post_ephemeral` permission (403
 * for a default bot). Nothing is stored and neither the channel nor the recipient's membership is checked: the post
 * (type `system_ephemeral`, by the caller, stamped now) goes to the recipient's sockets as `ephemeral_message`
 * and is the answer (201).
 */
export function createEphemeralPost(app: App, actor: User, body: Record<string, unknown>): Post {
  const userId = typeof body.user_id === "string" ? body.user_id : "";
  if (userId === "") throw invalidParam("user_id");
  const input = body.post;
  if (input === null || typeof input !== "object" || Array.isArray(input)) throw invalidParam("post");
  if (!hasSystemPermission(app.store, actor, "create_post_ephemeral")) {
    throw permissionError("create_post_ephemeral");
  }
  const fields = input as NewPost;
  const channelId = typeof fields.channel_id === "string" ? fields.channel_id : "";
  const post = blankPost(app.store, actor.id, channelId);
  post.message = typeof fields.message === "string" ? fields.message : "";
  post.root_id = typeof fields.root_id === "string" ? fields.root_id : "";
  post.type = "system_ephemeral";
  if (fields.props && typeof fields.props === "object") post.props = { ...fields.props };
  const view = postView(app.store, post);
  app.publish(newEvent("ephemeral_message", { post: JSON.stringify(view) }, { channelId, userId }));
  return view;
}
