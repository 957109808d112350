/**
 * Mattermost posts in and out: the websocket event → plain data at the edge, and the payload the bridge posts.
 *
 * @module
 */
import { renderTemplate, runeLength, splitRunes } from "../core/text.ts";

/** Longest message Mattermost accepts, in runes (code points). */
export const MAX_POST_RUNES = 16_383;

/** Prop that marks posts the bridge created; its value names the source network. */
export const BRIDGE_MARKER_PROP = "mmxmpp_bridged";

/** The fields of a Mattermost post the bridge reads. */
export interface Post {
  id: string;
  channel_id: string;
  user_id: string;
  root_id?: string;
  message: string;
  type: string;
  create_at: number;
  update_at?: number;
  delete_at?: number;
  props?: Record<string, unknown>;
  /** Only in a `posted` event (and the create's answer): the creating client's `pending_post_id`. */
  pending_post_id?: string;
}

/** Parses the `post` field of a `posted` event, which Mattermost sends as a JSON string. Null when malformed. */
export function parsePostedEvent(data: unknown): Post | null {
  const raw = (data as { post?: unknown })?.post;
  if (typeof raw !== "string") return null;
  try {
    const post = JSON.parse(raw) as Post;
    if (
      typeof post?.id !== "string" || typeof post.channel_id !== "string" || typeof post.message !== "string"
    ) {
      return null;
    }
    return post;
  } catch {
    return null;
  }
}

/**
 * Whether a post should be bridged at all: normal posts with text, by someone other than the bridge, not created
 * by the bridge, not deleted. (A post with only files has no text; files are not bridged yet.)
 */
export function isBridgeable(post: Post, botUserId: string): boolean {
  return (post.type ?? "") === "" && post.user_id !== botUserId && !post.props?.[BRIDGE_MARKER_PROP] &&
    !post.delete_at && post.message.trim() !== "";
}

/** How the bridge shows a remote author on Mattermost. */
export interface DisplayOptions {
  mode: "override" | "prefix";
  /** Template for the remote author's name, e.g. `{nick} (xmpp)`. */
  nameFormat: string;
}

/** One post to create. */
export interface PostDraft {
  message: string;
  props: Record<string, unknown>;
}

/**
 * Builds the posts that carry `text` by `author` from `sourceNetwork`: one, or several in order when the text is
 * longer than Mattermost allows.
 */
export function renderPosts(
  text: string,
  author: { name: string; displayName?: string },
  sourceNetwork: string,
  opts: DisplayOptions,
): PostDraft[] {
  const name = renderTemplate(opts.nameFormat, {
    nick: author.name,
    username: author.name,
    displayname: author.displayName ?? author.name,
  });
  const props: Record<string, unknown> = { [BRIDGE_MARKER_PROP]: sourceNetwork };
  let prefix = "";
  if (opts.mode === "override") {
    props.from_webhook = "true";
    props.override_username = name;
  } else {
    prefix = `**${escapeMarkdown(name)}** `;
  }
  const room = MAX_POST_RUNES - runeLength(prefix);
  return splitRunes(text, room).map((piece) => ({ message: prefix + piece, props: { ...props } }));
}

function escapeMarkdown(s: string): string {
  return s.replace(/[\\*_`~[\]<>|#]/g, (c) => `\\${c}`);
}
