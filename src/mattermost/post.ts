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

/**
 * Prop with the original time (ms since the epoch, the source's clock) of a message that a catch-up bridged late.
 * Only an admin may set a post's `create_at` (api4/post.go `createPost` zeroes it for anyone else), so the time
 * travels in props, which the server stores as sent but for a few keys of its own (model/post.go `SanitizeProps`).
 */
export const ORIGINAL_TIME_PROP = "mmxmpp_original_time";

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
  /** When the message was last edited; 0 or absent when never (a pin changes `update_at`, not this). */
  edit_at?: number;
  delete_at?: number;
  props?: Record<string, unknown>;
  /**
   * Set on the copy of an edited post's earlier text that the server keeps (deleted) as its edit history: the id of
   * the post it is a version of. `?since=` lists these copies among the deleted posts.
   */
  original_id?: string;
  /** Only in a `posted` event (and the create's answer): the creating client's `pending_post_id`. */
  pending_post_id?: string;
  /** Ids of the files attached to the post. */
  file_ids?: string[];
  /** What the server added for clients; the bridge reads the files' infos from it (unchecked here). */
  metadata?: { files?: unknown[] };
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
  if (typeof raw.pending_post_id === "string") post.pending_post_id = raw.pending_post_id;
  if (typeof raw.original_id === "string" && raw.original_id !== "") post.original_id = raw.original_id;
  for (const key of ["create_at", "update_at", "edit_at", "delete_at"] as const) {
    const time = raw[key];
    if (typeof time === "number" && Number.isFinite(time)) post[key] = time;
  }
  if (Array.isArray(raw.file_ids)) {
    const ids = raw.file_ids.filter((id): id is string => typeof id === "string" && id !== "");
    if (ids.length) post.file_ids = ids;
  }
  const metadata = raw.metadata as { files?: unknown } | undefined;
  if (Array.isArray(metadata?.files)) post.metadata = { files: metadata.files };
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

/** Post type of a `/me` action; the server wraps the text in `*…*` (`app/slashcommands/command_me.go`). */
export const ACTION_POST_TYPE = "me";

/**
 * Whether a post should be bridged at all: normal posts and `/me` actions with text or files, by someone other than
 * the bridge, not created by the bridge, not deleted. (A bare `/me` has neither.) System messages (`system_*`) and
 * integrations' own types are not chat.
 */
export function isBridgeable(post: Post, botUserId: string): boolean {
  const type = post.type ?? "";
  return (type === "" || type === ACTION_POST_TYPE) && post.user_id !== botUserId &&
    !post.props?.[BRIDGE_MARKER_PROP] && !post.delete_at &&
    (postText(post).text.trim() !== "" || (post.file_ids?.length ?? 0) > 0);
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
  /** `puppet`: the post is made by the author's own Mattermost user (a puppet), so it carries no name. */
  mode: "override" | "prefix" | "puppet";
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
  sender: { name: string; displayName?: string };
  action?: boolean;
  /** Bridged late by a catch-up: `timestamp` goes into {@link ORIGINAL_TIME_PROP}. */
  caughtUp?: boolean;
  timestamp?: number;
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
  const { sender } = message;
  const defuse = opts.allowChannelMentions ? (s: string) => s : neutralizeChannelMentions;
  const name = renderTemplate(opts.nameFormat, {
    nick: sender.name,
    username: sender.name,
    displayname: sender.displayName ?? sender.name,
  });
  const props: Record<string, unknown> = { [BRIDGE_MARKER_PROP]: sourceNetwork };
  if (message.caughtUp && message.timestamp !== undefined) props[ORIGINAL_TIME_PROP] = message.timestamp;
  let prefix = "";
  if (opts.mode === "override") {
    props.from_webhook = "true";
    props.override_username = name;
  } else if (opts.mode === "prefix") {
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
