/**
 * The stand-in's in-memory database: plain maps of the API objects plus the lookups every handler needs.
 * It knows nothing of HTTP or WebSockets; operations that publish events live in their own modules.
 *
 * @module
 */

import { Clock } from "./ids.ts";
import type {
  Channel,
  ChannelMember,
  Command,
  FileInfo,
  Post,
  Reaction,
  Status,
  Team,
  TeamMember,
  User,
  UserAccessToken,
} from "./model.ts";

/** A stored upload: its metadata and bytes. */
export interface StoredFile {
  info: FileInfo;
  data: Uint8Array;
}

/**
 * All server state. Maps are keyed by id; memberships by container id, then user id.
 *
 * @example
 * ```ts
 * const store = new Store();
 * store.users.set(user.id, user);
 * store.userByUsername("alice");
 * ```
 */
export class Store {
  /** Source of every timestamp, strictly increasing. */
  readonly clock: Clock;

  constructor(clockOffsetMs = 0) {
    this.clock = new Clock(clockOffsetMs);
  }
  /** Users by id. */
  readonly users: Map<string, User> = new Map();
  /** Session or personal-access tokens → user id. */
  readonly tokens: Map<string, string> = new Map();
  /** Personal access tokens by token id. */
  readonly accessTokens: Map<string, UserAccessToken & { token: string }> = new Map();
  /** Teams by id. */
  readonly teams: Map<string, Team> = new Map();
  /** Team id → user id → membership. */
  readonly teamMembers: Map<string, Map<string, TeamMember>> = new Map();
  /** Channels by id. */
  readonly channels: Map<string, Channel> = new Map();
  /** Channel id → user id → membership. */
  readonly channelMembers: Map<string, Map<string, ChannelMember>> = new Map();
  /** Posts by id (deleted ones stay, with `delete_at` set, as in the real database). */
  readonly posts: Map<string, Post> = new Map();
  /** Channel id → post ids in creation order. */
  readonly channelPosts: Map<string, string[]> = new Map();
  /** Thread root id → its replies' ids, in creation order (an index for `repliesOf`; a reply never moves). */
  readonly threadReplies: Map<string, string[]> = new Map();
  /**
   * Post id → its reactions, removed ones included (with `delete_at` set, as rows of the real table stay), so that
   * one added again keeps its first `create_at`. Read them with {@link liveReactions}.
   */
  readonly reactions: Map<string, Reaction[]> = new Map();
  /** Names of the custom emoji the server has (`/emoji`), which reactions may use besides the system ones. */
  readonly customEmoji: Set<string> = new Set();
  /** Profile pictures set with `POST /users/{id}/image`, by user id. */
  readonly profileImages: Map<string, Uint8Array> = new Map();
  /** Uploaded files by id. */
  readonly files: Map<string, StoredFile> = new Map();
  /** Slash commands by id. */
  readonly commands: Map<string, Command> = new Map();
  /** `pending_post_id` → the post it created ("" while in flight) and when, to de-duplicate retried creates. */
  readonly pendingPostIds: Map<string, { postId: string; at: number }> = new Map();
  /** Presence by user id; users without an entry are offline. */
  readonly statuses: Map<string, Status> = new Map();
  /**
   * Permissions an admin added to a role beyond its defaults (System Console > Permissions, or
   * `mmctl permissions add`), by role name.
   */
  readonly addedRolePermissions: Map<string, string[]> = new Map();

  /** The active user a token belongs to; tokens of deactivated users no longer authenticate. */
  userByToken(token: string): User | undefined {
    const userId = this.tokens.get(token);
    const user = userId ? this.users.get(userId) : undefined;
    return user && user.delete_at === 0 ? user : undefined;
  }

  /** A user by exact (lowercase) username. */
  userByUsername(username: string): User | undefined {
    for (const user of this.users.values()) if (user.username === username) return user;
    return undefined;
  }

  /** A team by name. */
  teamByName(name: string): Team | undefined {
    for (const team of this.teams.values()) if (team.name === name) return team;
    return undefined;
  }

  /** A channel of a team by name. */
  channelByName(teamId: string, name: string): Channel | undefined {
    for (const ch of this.channels.values()) if (ch.team_id === teamId && ch.name === name) return ch;
    return undefined;
  }

  /** Whether `userId` is a (non-removed) member of the team. */
  isTeamMember(teamId: string, userId: string): boolean {
    const member = this.teamMembers.get(teamId)?.get(userId);
    return member !== undefined && member.delete_at === 0;
  }

  /** Whether `userId` is a member of the channel. */
  isChannelMember(channelId: string, userId: string): boolean {
    return this.channelMembers.get(channelId)?.has(userId) ?? false;
  }

  /** Ids of the channel's members. */
  channelMemberIds(channelId: string): string[] {
    return [...(this.channelMembers.get(channelId)?.keys() ?? [])];
  }

  /** Every post of a channel, deleted ones included, in creation order. */
  postsOf(channelId: string): Post[] {
    return (this.channelPosts.get(channelId) ?? []).map((id) => this.posts.get(id)!);
  }

  /** The reactions `postId` has, oldest first (sqlstore `GetForPost`: `DeleteAt = 0 ORDER BY CreateAt`). */
  liveReactions(postId: string): Reaction[] {
    return (this.reactions.get(postId) ?? []).filter((r) => r.delete_at === 0)
      .sort((a, b) => a.create_at - b.create_at);
  }

  /** Live (not deleted) replies of a thread, oldest first. */
  repliesOf(rootId: string): Post[] {
    const root = this.posts.get(rootId);
    if (!root) return [];
    return (this.threadReplies.get(rootId) ?? []).map((id) => this.posts.get(id)!).filter((p) =>
      p.delete_at === 0
    );
  }
}

/** Whether the user holds the system admin role. */
export function isSystemAdmin(user: User): boolean {
  return user.roles.split(" ").includes("system_admin");
}
