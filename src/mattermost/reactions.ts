/**
 * Mattermost reactions: reading a `reaction_added` / `reaction_removed` event, folding it into the reacting user's
 * complete current set, and making the bot's own reactions on a post a given set.
 *
 * Both read the post's reactions over REST (`GET /posts/{id}/reactions`): Mattermost is the authority on what is
 * there, so a set read after the last event is right even when events were lost or came twice (a websocket gap, a
 * bridge restart), and applying a set is a difference against what the post really has, never against a copy that
 * may have drifted. One read per applied set; storms are coalesced before (the core; and here, a user's events
 * queued behind each other are read once).
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { errorMessage } from "../core/errors.ts";
import { call, type Client4, statusOf } from "./api.ts";
import { emojiOfName, loadEmoji, nameOfEmoji } from "./emoji.ts";
import { isRecord } from "./websocket.ts";

const log = getLogger(["mmxmpp", "mattermost"]);

/** One reaction added or removed, as the websocket told it. */
export interface ReactionChange {
  userId: string;
  postId: string;
  emojiName: string;
  /** The channel of the post (the event's broadcast; the removed reaction itself names none). */
  channelId: string;
  /** When the reaction changed (ms): the added reaction's `update_at`, the removal's. */
  at: number;
  added: boolean;
}

/**
 * The change a `reaction_added` / `reaction_removed` event carries (`data.reaction`, a JSON string; the channel in
 * `broadcast.channel_id`), or undefined when it is malformed.
 *
 * @example
 * ```ts
 * parseReactionEvent("reaction_added", { reaction: '{"user_id":"u","post_id":"p","emoji_name":"+1"}' },
 *   { channel_id: "c" });
 * ```
 */
export function parseReactionEvent(
  event: string,
  data: Record<string, unknown>,
  broadcast: Record<string, unknown> | undefined,
): ReactionChange | undefined {
  if (typeof data.reaction !== "string") return undefined;
  let reaction: unknown;
  try {
    reaction = JSON.parse(data.reaction);
  } catch {
    return undefined;
  }
  if (!isRecord(reaction)) return undefined;
  const { user_id, post_id, emoji_name, update_at, channel_id } = reaction;
  const channel = typeof broadcast?.channel_id === "string" && broadcast.channel_id !== ""
    ? broadcast.channel_id
    : channel_id;
  if (typeof user_id !== "string" || typeof post_id !== "string" || typeof emoji_name !== "string") {
    return undefined;
  }
  if (typeof channel !== "string" || channel === "" || user_id === "" || post_id === "") return undefined;
  return {
    userId: user_id,
    postId: post_id,
    emojiName: emoji_name,
    channelId: channel,
    at: typeof update_at === "number" ? update_at : 0,
    added: event === "reaction_added",
  };
}

interface Reaction {
  user_id: string;
  emoji_name: string;
  create_at?: number;
}

async function reactionsOn(client: Client4, postId: string): Promise<Reaction[]> {
  const list = await call(`read the reactions of post ${postId}`, () => client.getReactionsForPost(postId));
  // The server answers `null` for a post without reactions on some versions.
  return (Array.isArray(list) ? list : []) as Reaction[];
}

/**
 * The complete current reaction set of `userId` on `postId`, as emoji (custom ones as `:name:`), in the order they
 * were added.
 */
export async function reactionSetOf(client: Client4, postId: string, userId: string): Promise<string[]> {
  await loadEmoji();
  const mine = (await reactionsOn(client, postId)).filter((r) => r.user_id === userId)
    .sort((a, b) => (a.create_at ?? 0) - (b.create_at ?? 0));
  return [...new Set(mine.map((r) => emojiOfName(r.emoji_name)))];
}

/**
 * Makes the reactions of `userId` (the bot) on `postId` exactly `emojis`: adds what is missing and removes what is
 * too many, against what the post has now. An emoji Mattermost has no name for, or refuses (an unknown custom emoji,
 * custom emoji turned off, the post's limit of distinct emoji), is left out with a warning; the others still go.
 */
export async function applyReactionSet(
  client: Client4,
  postId: string,
  userId: string,
  emojis: readonly string[],
): Promise<void> {
  await loadEmoji();
  const wanted = new Map<string, string>();
  for (const emoji of emojis) {
    const name = nameOfEmoji(emoji);
    if (name === undefined) {
      log.debug("No Mattermost emoji for reaction {emoji}: left out", { emoji });
      continue;
    }
    wanted.set(emojiOfName(name), name);
  }
  const have = new Map<string, string>();
  for (const r of await reactionsOn(client, postId)) {
    if (r.user_id === userId) have.set(emojiOfName(r.emoji_name), r.emoji_name);
  }
  for (const [emoji, name] of have) {
    if (wanted.has(emoji)) continue;
    await call(
      `remove reaction ${name} from post ${postId}`,
      () => client.removeReaction(userId, postId, name),
    );
  }
  for (const [emoji, name] of wanted) {
    if (have.has(emoji)) continue;
    try {
      await call(`react with ${name} to post ${postId}`, () => client.addReaction(userId, postId, name));
    } catch (err) {
      if (!isRefusedEmoji(err)) throw err;
      log.warn("Mattermost refused reaction {name} on post {postId}: {error}", {
        name,
        postId,
        error: errorMessage(err),
      });
    }
  }
}

/**
 * Whether Mattermost refused one emoji, not the bot (app/reaction.go `SaveReactionForPost`): 404, no such emoji (a
 * custom one this server lacks); 403 `api.emoji.disabled.app_error`, custom emoji are off; 400, too many distinct
 * emoji on the post. None changes on a retry, and the rest of the set must still go.
 */
function isRefusedEmoji(err: unknown): boolean {
  const status = statusOf(err);
  const id = (err as { cause?: { server_error_id?: unknown } }).cause?.server_error_id;
  return status === 404 || status === 400 || (status === 403 && id === "api.emoji.disabled.app_error");
}
