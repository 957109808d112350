/**
 * Catching up over REST on posts the websocket did not deliver: where each channel's catch-up starts, fetching
 * everything after that point although the server caps `?since=` at an arbitrary 1,000 posts, and telling which
 * older posts of the answer were edited or deleted meanwhile.
 *
 * @module
 */
import { call, type Client4 } from "./api.ts";
import { parsePost, type Post } from "./post.ts";

/** Most posts one `?since=` answer holds (`LIMIT 1000` in the server's `GetPostsSince`). */
export const SINCE_LIMIT = 1000;
/** Page size when the `?since=` answer was capped. */
const PAGE_SIZE = 200;
/** Bound on pages walked, so a misbehaving server cannot keep a catch-up going forever. */
const MAX_PAGES = 500;

/**
 * Per channel, in the server's milliseconds: `floor`, the newest post when the bridge joined (nothing at or before
 * it is ever caught up), and `seen`, the newest `create_at` received since. Both only ever move forward, and only to
 * finite numbers, whatever a malformed event carried.
 *
 * @example
 * ```ts
 * const cursors = new PostCursors();
 * cursors.seed("chan", 1_700_000_000_000);
 * cursors.advance("chan", Number("abc")); // ignored
 * cursors.get("chan"); // { floor: 1700000000000, seen: 1700000000000 }
 * ```
 */
export class PostCursors {
  private readonly byChannel = new Map<string, { floor: number; seen: number }>();

  /** Tracks `channel` from `time` on (0 for an empty channel); a later seed only moves it forward. */
  seed(channel: string, time: number): void {
    if (!Number.isFinite(time)) return;
    const c = this.byChannel.get(channel);
    this.byChannel.set(channel, { floor: Math.max(c?.floor ?? 0, time), seen: Math.max(c?.seen ?? 0, time) });
  }

  /** Records a post created at `time` in a tracked channel. */
  advance(channel: string, time: number | undefined): void {
    const c = this.byChannel.get(channel);
    if (c && typeof time === "number" && Number.isFinite(time) && time > c.seen) c.seen = time;
  }

  /** The channel's cursor, or undefined when it was never seeded. */
  get(channel: string): { floor: number; seen: number } | undefined {
    const c = this.byChannel.get(channel);
    return c && { ...c };
  }
}

/** The posts of a PostList's `order` (the ones it answers for; `posts` may add thread roots), checked. */
export function postsInOrder(list: unknown): Post[] {
  const { order, posts } = (list ?? {}) as { order?: unknown; posts?: unknown };
  if (!Array.isArray(order) || typeof posts !== "object" || posts === null) return [];
  const found: Post[] = [];
  for (const id of order) {
    const post = typeof id === "string" ? parsePost((posts as Record<string, unknown>)[id]) : null;
    if (post) found.push(post);
  }
  return found;
}

/**
 * Every post of `channel` changed after `since` (ms), oldest first. `?since=` answers with at most 1,000, an
 * arbitrary subset when more changed (no ORDER BY before the LIMIT), so a full answer is completed by walking the
 * channel's pages, which are ordered newest first, back past `since`.
 */
export async function postsSince(client: Client4, channel: string, since: number): Promise<Post[]> {
  const what = `catch up on channel ${channel}`;
  const sinceList = await call(what, () => client.getPostsSince(channel, since));
  const byId = new Map<string, Post>();
  for (const post of postsInOrder(sinceList)) byId.set(post.id, post);
  const capped = ((sinceList as { order?: unknown[] }).order?.length ?? 0) >= SINCE_LIMIT;
  for (let page = 0; capped && page < MAX_PAGES; page++) {
    const list = await call(what, () => client.getPosts(channel, page, PAGE_SIZE));
    const posts = postsInOrder(list);
    for (const post of posts) if ((post.create_at ?? 0) > since) byId.set(post.id, post);
    if (posts.length < PAGE_SIZE || posts.some((p) => (p.create_at ?? 0) <= since)) break;
  }
  return [...byId.values()].sort((a, b) => (a.create_at ?? 0) - (b.create_at ?? 0) || (a.id < b.id ? -1 : 1));
}

/** The websocket event a catch-up stands in for: the post was edited, or deleted. */
export type PostChangeEvent = "post_edited" | "post_deleted";

/**
 * What happened after `since` to `post`, a post of a `?since=` answer (which lists every post with
 * `update_at > since`, deleted ones included) made at or before `handed`, the newest post already handed on: it
 * was deleted, or its text edited; undefined when neither (a pin, a reaction, a reply only touched it) or when it
 * is newer than `handed` (handed on as a new post, with its text as it is now, or not at all when deleted), or
 * is an edit's history copy (`original_id` set).
 */
export function changeOf(post: Post, since: number, handed: number): PostChangeEvent | undefined {
  // An edit's record of the earlier text (deleted when made), not a post of the channel.
  if (post.original_id) return undefined;
  if ((post.create_at ?? 0) > handed) return undefined;
  if ((post.delete_at ?? 0) > since) return "post_deleted";
  if ((post.edit_at ?? 0) > since) return "post_edited";
  return undefined;
}

/** When `change` happened to `post`, in the server's milliseconds. */
export function changedAt(post: Post, change: PostChangeEvent): number {
  return (change === "post_deleted" ? post.delete_at : post.edit_at) ?? 0;
}
