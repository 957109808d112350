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

/** The fields of a Mattermost post the bridge reads, each of the type the server sends (checked at the edge). */
export interface Post {
  id: string;
  channel_id: string;
  user_id: string;
  root_id?: string;
  message: string;
  type: string;
  /** Absent when the value received was not a finite number: it then neither dates the message nor moves a cursor. */
  create_at?: number;
  update_at?: number;
  delete_at?: number;
  props?: Record<string, unknown>;
}

/**
 * Reads a post as sent by Mattermost (a REST answer, or the parsed `post` of an event). Null unless `id`,
 * `channel_id`, `user_id` and `message` are strings; any other field of the wrong type is left out, never trusted.
 *
 * @example
 * ```ts
 * parsePost({ id: "p", channel_id: "c", user_id: "u", message: "hi", create_at: "abc" }); // no create_at
 * parsePost(null); // null
 * ```
 */
export function parsePost(value: unknown): Post | null {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
  const raw = value as Record<string, unknown>;
  const { id, channel_id, user_id, message } = raw;
  if (
    typeof id !== "string" || id === "" || typeof channel_id !== "string" || channel_id === "" ||
    typeof user_id !== "string" || typeof message !== "string"
  ) {
    return null;
  }
  const post: Post = { id, channel_id, user_id, message, type: typeof raw.type === "string" ? raw.type : "" };
  if (typeof raw.root_id === "string") post.root_id = raw.root_id;
  for (const key of ["create_at", "update_at", "delete_at"] as const) {
    const time = raw[key];
    if (typeof time === "number" && Number.isFinite(time)) post[key] = time;
  }
  if (typeof raw.props === "object" && raw.props !== null && !Array.isArray(raw.props)) {
    post.props = raw.props as Record<string, unknown>;
  }
  return post;
}

/** Parses the `post` field of a `posted` event, which Mattermost sends as a JSON string. Null when malformed. */
export function parsePostedEvent(data: unknown): Post | null {
  const raw = (typeof data === "object" && data !== null) ? (data as { post?: unknown }).post : undefined;
  if (typeof raw !== "string") return null;
  try {
    return parsePost(JSON.parse(raw));
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
