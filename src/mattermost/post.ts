/**
 * Mattermost posts in and out: the websocket event → plain data at the edge, and the payload the bridge posts.
 *
 * @module
 */
import { renderTemplate, runeLength, splitRunes } from "../core/text.ts";
import { neutralizeChannelMentions } from "./mentions.ts";

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

/** Post type of a `/me` action; the server wraps the text in `*…*` (`app/slashcommands/command_me.go`). */
export const ACTION_POST_TYPE = "me";

/**
 * Whether a post should be bridged at all: normal posts and `/me` actions with text, by someone other than the
 * bridge, not created by the bridge, not deleted. (A post with only files, or a bare `/me`, has no text; files
 * are not bridged yet.) System messages (`system_*`) and integrations' own types are not chat.
 */
export function isBridgeable(post: Post, botUserId: string): boolean {
  const type = post.type ?? "";
  return (type === "" || type === ACTION_POST_TYPE) && post.user_id !== botUserId &&
    !post.props?.[BRIDGE_MARKER_PROP] && !post.delete_at && postText(post).text.trim() !== "";
}

/**
 * The text of a post for the message model: a `/me` post is an action, without the `*…*` the server put
 * around it.
 *
 * @example
 * ```ts
 * postText({ type: "me", message: "*waves*" }); // { text: "waves", action: true }
 * ```
 */
export function postText(post: Pick<Post, "type" | "message">): { text: string; action?: true } {
  if (post.type !== ACTION_POST_TYPE) return { text: post.message };
  const m = post.message;
  const wrapped = m.length >= 2 && m.startsWith("*") && m.endsWith("*");
  return { text: wrapped ? m.slice(1, -1) : m, action: true };
}

/** How the bridge shows remote messages on Mattermost. */
export interface DisplayOptions {
  mode: "override" | "prefix";
  /** Template for the remote author's name, e.g. `{nick} (xmpp)`. */
  nameFormat: string;
  /** Let `@channel`, `@all` and `@here` from the other network notify the channel (off: they are defused). */
  allowChannelMentions?: boolean;
}

/** One post to create. */
export interface PostDraft {
  message: string;
  /** `""`, or `me` for an action. */
  type: string;
  props: Record<string, unknown>;
}

/** What {@link renderPosts} needs of a message. */
export interface RenderableMessage {
  text: string;
  author: { name: string; displayName?: string };
  action?: boolean;
}

/**
 * Builds the posts that carry `message` from `sourceNetwork`: one, or several in order when the text is longer
 * than Mattermost allows.
 *
 * An action becomes what `/me` makes on Mattermost: a `me` post whose text is in `*…*`. In prefix mode the bold
 * name stays in front, outside the emphasis (`**alice** *waves*`), so that an action names its author the same
 * way a message does and reads as "alice waves".
 */
export function renderPosts(
  message: RenderableMessage,
  sourceNetwork: string,
  opts: DisplayOptions,
): PostDraft[] {
  const { author } = message;
  const defuse = opts.allowChannelMentions ? (s: string) => s : neutralizeChannelMentions;
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
    prefix = `**${defuse(escapeMarkdown(name))}** `;
  }
  const type = message.action ? ACTION_POST_TYPE : "";
  const wrap = message.action ? emphasize : (s: string) => s;
  const room = MAX_POST_RUNES - runeLength(prefix) - (message.action ? 2 : 0);
  return splitRunes(defuse(message.text), room).map((piece) => ({
    message: prefix + wrap(piece),
    type,
    props: { ...props },
  }));
}

/** `*text*`, with surrounding whitespace left outside: `* text*` would not be emphasis. */
function emphasize(piece: string): string {
  const m = /^(\s*)([\s\S]*?)(\s*)$/.exec(piece)!;
  return m[2] === "" ? piece : `${m[1]}*${m[2]}*${m[3]}`;
}

function escapeMarkdown(s: string): string {
  return s.replace(/[\\*_`~[\]<>|#]/g, (c) => `\\${c}`);
}
