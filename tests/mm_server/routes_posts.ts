/**
 * Post and reaction routes.
 *
 * @module
 */

import { invalidParam, notFound } from "./app_error.ts";
import { intParam, json, readJsonObject, requireUser, statusOk } from "./http.ts";
import { channelParam, idParam } from "./lookup.ts";
import type { Post } from "./model.ts";
import { requireReadChannel } from "./permissions.ts";
import {
  beginCreatePost,
  createEphemeralPost,
  deletePost,
  type NewPost,
  patchPost,
  postList,
  type PostPatch,
  postsPage,
  postsSince,
  postView,
} from "./posts.ts";
import { addReaction, removeReaction } from "./reactions.ts";
import type { Router } from "./router.ts";
import type { RequestContext } from "./http.ts";
import { isSystemAdmin } from "./store.ts";

/** `?set_online=` as api4/post.go reads it: Go's `strconv.ParseBool`, and true when absent or invalid. */
function setOnlineParam(raw: string | null): boolean {
  return !["0", "f", "F", "FALSE", "false", "False"].includes(raw ?? "");
}

/** The post named by `:post_id`, readable by the caller (404 before 403, like `GetPostIfAuthorized`). */
function readablePost(ctx: RequestContext): Post {
  const actor = requireUser(ctx);
  const post = ctx.app.store.posts.get(idParam(ctx, "post_id"));
  const includeDeleted = ctx.url.searchParams.get("include_deleted") === "true" && isSystemAdmin(actor);
  if (!post || (post.delete_at !== 0 && !includeDeleted)) throw notFound("app.post.get.app_error", "post");
  requireReadChannel(ctx.app.store, actor, ctx.app.store.channels.get(post.channel_id)!);
  return post;
}

/** Register the post and reaction routes. */
export function registerPostRoutes(router: Router): void {
  router.add("POST", "/posts", async (ctx) => {
    const actor = requireUser(ctx);
    const body = await readJsonObject(ctx, "post");
    const setOnline = setOnlineParam(ctx.url.searchParams.get("set_online"));
    const creation = beginCreatePost(ctx.app, actor, body as NewPost, setOnline);
    if (creation.found) return json(201, creation.found);
    await ctx.app.holdCreate?.();
    return json(201, creation.finish());
  });

  router.add("POST", "/posts/ephemeral", async (ctx) => {
    const actor = requireUser(ctx);
    const body = await readJsonObject(ctx, "body");
    return json(201, createEphemeralPost(ctx.app, actor, body));
  });

  router.add("GET", "/posts/:post_id", (ctx) => json(200, postView(ctx.app.store, readablePost(ctx))));

  router.add("GET", "/posts/:post_id/thread", (ctx) => {
    const post = readablePost(ctx);
    const root = post.root_id ? ctx.app.store.posts.get(post.root_id)! : post;
    const thread = [root, ...ctx.app.store.repliesOf(root.id)].reverse();
    return json(200, postList(ctx.app.store, thread));
  });

  router.add("GET", "/posts/:post_id/reactions", (ctx) => {
    const post = readablePost(ctx);
    return json(200, ctx.app.store.liveReactions(post.id));
  });

  router.add("PUT", "/posts/:post_id/patch", async (ctx) => {
    const actor = requireUser(ctx);
    const postId = idParam(ctx, "post_id");
    const body = await readJsonObject(ctx, "post");
    return json(200, patchPost(ctx.app, actor, postId, body as PostPatch));
  });

  router.add("DELETE", "/posts/:post_id", (ctx) => {
    const actor = requireUser(ctx);
    deletePost(ctx.app, actor, idParam(ctx, "post_id"));
    return statusOk();
  });

  router.add("GET", "/channels/:channel_id/posts", (ctx) => {
    const actor = requireUser(ctx);
    const channel = channelParam(ctx);
    requireReadChannel(ctx.app.store, actor, channel);
    // strconv.ParseInt: an optional sign and digits; only since > 0 asks for changes, anything else lists
    // pages (api4/post.go getPostsForChannel).
    const since = ctx.url.searchParams.get("since") ?? "";
    if (since !== "" && !/^[+-]?\d{1,19}$/.test(since)) throw invalidParam("since");
    if (since !== "" && Number(since) > 0) {
      return json(200, postsSince(ctx.app.store, channel.id, Number(since)));
    }
    const page = intParam(ctx.url, "page", 0);
    const perPage = intParam(ctx.url, "per_page", 60, 200);
    return json(200, postsPage(ctx.app.store, channel.id, page, perPage));
  });

  router.add("POST", "/reactions", async (ctx) => {
    const actor = requireUser(ctx);
    const body = await readJsonObject(ctx, "reaction");
    return json(200, addReaction(ctx.app, actor, body));
  });

  router.add("DELETE", "/users/:user_id/posts/:post_id/reactions/:emoji_name", (ctx) => {
    const actor = requireUser(ctx);
    const userId = ctx.params.user_id === "me" ? actor.id : ctx.params.user_id;
    removeReaction(ctx.app, actor, userId, ctx.params.post_id, ctx.params.emoji_name);
    return statusOk();
  });
}
