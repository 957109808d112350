/**
 * A stand-in for the Mattermost server (API v4 + WebSocket) for end-to-end tests, faithful on every point
 * a bridge touches. Start one per test and close it at the end.
 *
 * @example
 * ```ts
 * import mm from "@mattermost/client";
 * const mmServer = await startMattermostStandIn();
 * const client = new mm.Client4();
 * client.setUrl(mmServer.url);
 * client.setToken(mmServer.bot.token);
 * const channel = mmServer.createChannel("bridged");
 * mmServer.addMember(channel.id, mmServer.bot.id);
 * await client.createPost({ channel_id: channel.id, message: "hi" } as never);
 * await mmServer.close();
 * ```
 *
 * @module
 */

import type { App, RateLimitConfig, ServerConfig } from "./app.ts";
import {
  addChannelMember,
  DEFAULT_CHANNEL,
  directChannelName,
  insertChannel,
  insertChannelMember,
  insertTeam,
  insertTeamMember,
  removeChannelMember,
} from "./channels.ts";
import { type CommandCallResult, resolveCommand, runCommand } from "./commands.ts";
import { createHandler, type RequestLogEntry } from "./handler.ts";
import { newEvent } from "./events.ts";
import { Hub } from "./hub.ts";
import type { Channel, ChannelType, Command, Post, User } from "./model.ts";
import { createPost, deletePost, patchPost, postView } from "./posts.ts";
import { RateLimiter } from "./rate_limit.ts";
import { addReaction, removeReaction } from "./reactions.ts";
import { Router } from "./router.ts";
import { registerChannelRoutes } from "./routes_channels.ts";
import { registerCommandRoutes } from "./routes_commands.ts";
import { registerFileRoutes } from "./routes_files.ts";
import { registerPostRoutes } from "./routes_posts.ts";
import { registerSystemRoutes } from "./routes_system.ts";
import { registerUserRoutes } from "./routes_users.ts";
import { registerProfileImageRoutes } from "./profile_images.ts";
import { Store } from "./store.ts";
import { insertUser, issueSessionToken } from "./users.ts";
import { detach as detachConn, type WebSocketDeps } from "./websocket.ts";

/** The API object types tests handle, re-exported so they need only this module. */
export type { Channel, Command, Post, RateLimitConfig, RequestLogEntry, ServerConfig, User };

const VERSION = "10.11.0";

/** Options for {@link startMattermostStandIn}. */
export interface StandInOptions {
  /** `ServiceSettings.EnablePostUsernameOverride` (default true). */
  enablePostUsernameOverride?: boolean;
  /** `ServiceSettings.EnablePostIconOverride` (default true). */
  enablePostIconOverride?: boolean;
  /** `ServiceSettings.EnableUserAccessTokens` (default true). */
  enableUserAccessTokens?: boolean;
  /** `ServiceSettings.EnableCommands` (default true). */
  enableCommands?: boolean;
  /** `ServiceSettings.EnableCustomEmoji` (default true). */
  enableCustomEmoji?: boolean;
  /** `ServiceSettings.UniqueEmojiReactionLimitPerPost` (default 50). */
  uniqueEmojiReactionLimitPerPost?: number;
  /** Rate limiting per token; null or absent = off (the server default). */
  rateLimit?: RateLimitConfig | null;
  /** `ServiceSettings.SiteURL` (default: the stand-in's own URL). */
  siteUrl?: string;
  /** `FileSettings.MaxFileSize` in bytes (default 100 MiB). */
  maxFileSize?: number;
  /**
   * Hosts a slash command integration may be called on when they are loopback/private. The real default
   * is empty (loopback refused); the stand-in allows loopback so a bridge on 127.0.0.1 works out of the box.
   */
  allowedUntrustedInternalConnections?: string[];
  /** How long an unauthenticated WebSocket may stay open (default 5000 ms, as the server's auth ticker). */
  websocketAuthTimeoutMs?: number;
  /**
   * The bot's place in the team. `"member"` (default) is what adding a bot to a team gives: `team_user`, and
   * with `system_user` no `manage_slash_commands`. `"admin"` makes it team admin, the way an admin grants
   * the bridge the right to register its command; `"none"` leaves it outside the team.
   */
  botTeamRole?: "member" | "admin" | "none";
  /** How long a `pending_post_id` de-duplicates creates (default 30 s, the server's `pendingPostIDsCacheTTL`). */
  pendingPostIdTtlMs?: number;
  /**
   * The inactivity reaper's tick (default 5 min, `inactiveConnReaperInterval`): each tick forgets dropped
   * WebSockets whose last activity is older than one interval. Tests drive it with `runWebsocketReaper`.
   */
  websocketReaperIntervalMs?: number;
  /** How far the server's clock (post times) is from the machine's, e.g. -3_600_000 for an hour behind. */
  clockOffsetMs?: number;
  /**
   * Permissions added to roles beyond the defaults, by role name, the way an admin adds them (System Console >
   * Permissions, `mmctl permissions add system_user create_post_ephemeral`). Default: none.
   */
  addedRolePermissions?: Record<string, string[]>;
}

/** A misbehaviour of `POST /api/v4/posts` a test switches on with {@link MattermostStandIn.failPostCreates}. */
export type PostCreateFault =
  /** The post is created, then the connection breaks before the answer's body: the client cannot tell. */
  | { kind: "lose-answer" }
  /** Nothing is created; the server answers 500 `app.post.save.app_error`, as when its database fails. */
  | { kind: "server-error" }
  /** Nothing is created; a reverse proxy in front answers `status` with an HTML page (no JSON, no `status_code`). */
  | { kind: "proxy-error"; status: number };

/** A user the tests can act as. */
export interface TestUser {
  id: string;
  username: string;
  /** A session token for `Authorization: Bearer`. */
  token: string;
}

/** Which posts {@link MattermostStandIn.posts} returns. */
export interface PostFilter {
  /** Include `system_*` posts (joins, leaves, header changes). Default false. */
  includeSystem?: boolean;
  /** Include deleted posts. Default false. */
  includeDeleted?: boolean;
}

/** Arguments of {@link MattermostStandIn.invokeCommand}. */
export interface InvokeCommandArgs {
  /** Trigger without the slash. */
  trigger: string;
  channelId: string;
  userId: string;
  text: string;
  /** Send this token instead of the command's (in the form and the header) to forge a call. */
  token?: string;
}

/** A running stand-in and the controls tests use. */
export interface MattermostStandIn {
  /** Base URL, `http://127.0.0.1:PORT`. */
  readonly url: string;
  /** The team created at start (`testteam`). */
  readonly team: { id: string; name: string };
  /** A system admin (`roles: "system_admin system_user"`). */
  readonly admin: TestUser;
  /**
   * The bridge's bot account (`xmppbridge`, `is_bot`, roles `system_user`), in no channel; a plain team member
   * unless {@link StandInOptions.botTeamRole} says otherwise.
   */
  readonly bot: TestUser;
  /** Every HTTP request handled, in order. */
  readonly requestLog: RequestLogEntry[];
  /** Live configuration; change it through {@link MattermostStandIn.setConfig}. */
  readonly config: Readonly<ServerConfig>;

  /** Create a user on the team (and in town-square/off-topic) with a session token. No events. */
  createUser(username: string, opts?: { admin?: boolean; bot?: boolean }): TestUser;
  /** Create a channel on the team, created by the admin (who becomes its first member). No events. */
  createChannel(
    name: string,
    opts?: { displayName?: string; type?: "O" | "P" },
  ): { id: string; name: string };
  /**
   * Add a user to a channel the way Mattermost does it (user joins a public channel; the admin adds to a
   * private one): `user_added` and the join system post are published. Adds to the team first if needed.
   */
  addMember(channelId: string, userId: string): void;
  /** Remove a user from a channel (they leave): `user_removed` and the leave post are published. */
  removeMember(channelId: string, userId: string): void;
  /** Create a post as a user, exactly as that user posting via REST (checks and events included). */
  postAs(
    userId: string,
    channelId: string,
    message: string,
    extra?: { root_id?: string; props?: Record<string, unknown>; type?: string; file_ids?: string[] },
  ): Promise<Post>;
  /** Edit a post's message as a user (`PUT /posts/{id}/patch`). */
  editAs(userId: string, postId: string, message: string): Promise<Post>;
  /** Delete a post as a user (`DELETE /posts/{id}`). */
  deleteAs(userId: string, postId: string): Promise<void>;
  /** React to a post as a user (`POST /reactions`). */
  reactAs(userId: string, postId: string, emojiName: string): Promise<void>;
  /** Remove a user's reaction. */
  unreactAs(userId: string, postId: string, emojiName: string): Promise<void>;
  /** Add a custom emoji named `name`, as an admin uploading one (`POST /emoji`) would. No events. */
  createCustomEmoji(name: string): void;
  /** Test control: the id of the direct channel between two users, when there is one (nothing is created). */
  directChannelOf(userId: string, otherUserId: string): string | undefined;
  /** A post by id as the API returns it (deleted ones included), or undefined. */
  post(postId: string): Post | undefined;
  /** A channel's posts in creation order (by default without system messages and deleted posts). */
  posts(channelId: string, filter?: PostFilter): Post[];
  /** Wait until {@link posts} has at least `count` posts; rejects after `timeoutMs` (default 5000). */
  waitForPosts(channelId: string, count: number, timeoutMs?: number, filter?: PostFilter): Promise<Post[]>;
  /** Registered (live) slash commands. */
  commands(): Command[];
  /** Call a registered slash command's integration the way Mattermost does. */
  invokeCommand(args: InvokeCommandArgs): Promise<CommandCallResult>;
  /** Number of connected, authenticated WebSockets (of one user, or all). */
  websocketCount(userId?: string): number;
  /** Close every WebSocket from the server side, as a network blip would; connection ids are kept for resumption. */
  dropWebsockets(): void;
  /** Close every WebSocket and forget all connection ids, as a server restart would: reconnects get a new `hello`. */
  restartWebsocketSessions(): void;
  // --- Test hooks: misbehaviour on demand, to see how a client copes. ---
  /**
   * The next `times` (default 1) creates through `POST /posts`, after letting `skip` (default 0) pass
   * normally, misbehave as `fault` says. Creates made with {@link postAs} are not affected.
   */
  failPostCreates(fault: PostCreateFault, opts?: { skip?: number; times?: number }): void;
  /**
   * Holds every `POST /posts` in flight after it claimed its `pending_post_id`, until `release` is called;
   * `held()` counts the creates waiting.
   */
  holdPostCreates(): { held(): number; release(): void };

  /**
   * Run one tick of the inactivity reaper as if the time were `now` (default: the real time), e.g.
   * `Date.now() + 6 * 60_000` to forget every dropped connection idle for over 5 minutes by then.
   */
  runWebsocketReaper(now?: number): void;
  /**
   * Run `fn` once, when the next reconnect has taken its connection id back and before its new socket is
   * registered: what `fn` publishes is lost to that connection, and its resume still looks lossless (no
   * `hello`), as between the Go hub's `CheckConn` and `Register`.
   */
  beforeNextWebsocketResume(fn: () => void): void;
  /** Answer WebSocket upgrades with 503 (a server down behind its proxy) until called with false. */
  refuseWebsockets(refuse: boolean): void;
  /** Upgrades refused by {@link refuseWebsockets} so far. */
  readonly refusedWebsockets: number;
  /** Test hook: send `text` as one raw frame to every connected socket of the user; returns how many. */
  sendRawWebsocketFrame(userId: string, text: string): number;
  /**
   * Test hook: publish an event with any `data` (even malformed) to the user's sockets, numbered and queued
   * like a real one.
   */
  sendWebsocketEvent(userId: string, event: string, data: unknown): void;
  /** Turn rate limiting on or off. */
  setRateLimit(limit: RateLimitConfig | null): void;
  /** Change settings while running (e.g. `enablePostUsernameOverride`). */
  setConfig(patch: Partial<Omit<ServerConfig, "version">>): void;
  /** Stop the server, closing every socket and timer. */
  close(): Promise<void>;
}

function hostname(): string {
  try {
    return Deno.hostname();
  } catch {
    return "localhost";
  }
}

/**
 * Start a stand-in on a free loopback port with one team (`testteam`, with town-square and off-topic),
 * an admin and the bot user.
 */
export function startMattermostStandIn(opts: StandInOptions = {}): Promise<MattermostStandIn> {
  return Promise.resolve(new StandIn(opts));
}

interface Waiter {
  /** Resolve if satisfied. */
  check(): void;
  /** Reject because the server is closing. */
  cancel(): void;
}

class StandIn implements MattermostStandIn {
  readonly url: string;
  readonly team: { id: string; name: string };
  readonly admin: TestUser;
  readonly bot: TestUser;
  readonly requestLog: RequestLogEntry[] = [];
  readonly config: ServerConfig;
  readonly #store: Store;
  readonly #hub: Hub;
  readonly #app: App;
  readonly #limiter = new RateLimiter();
  readonly #ws: WebSocketDeps;
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly #waiters = new Set<Waiter>();

  constructor(opts: StandInOptions) {
    this.config = {
      version: VERSION,
      siteUrl: opts.siteUrl ?? "",
      enablePostUsernameOverride: opts.enablePostUsernameOverride ?? true,
      enablePostIconOverride: opts.enablePostIconOverride ?? true,
      enableUserAccessTokens: opts.enableUserAccessTokens ?? true,
      enableCommands: opts.enableCommands ?? true,
      enableCustomEmoji: opts.enableCustomEmoji ?? true,
      uniqueEmojiReactionLimitPerPost: opts.uniqueEmojiReactionLimitPerPost ?? 50,
      maxFileSize: opts.maxFileSize ?? 100 * 1024 * 1024,
      rateLimit: opts.rateLimit ?? null,
      allowedUntrustedInternalConnections: opts.allowedUntrustedInternalConnections ??
        ["127.0.0.1", "localhost", "::1"],
    };
    this.#store = new Store(opts.clockOffsetMs);
    for (const [role, permissions] of Object.entries(opts.addedRolePermissions ?? {})) {
      this.#store.addedRolePermissions.set(role, [...permissions]);
    }
    this.#hub = new Hub(this.#store, opts.websocketReaperIntervalMs);
    this.#app = {
      store: this.#store,
      config: this.config,
      publish: (event) => {
        this.#hub.broadcast(event);
        for (const waiter of this.#waiters) waiter.check();
      },
      isConnected: (userId) => this.#hub.isConnected(userId),
      pendingPostIdTtlMs: opts.pendingPostIdTtlMs ?? 30_000,
    };
    const versionId = `${VERSION}.0.${crypto.randomUUID().replaceAll("-", "")}.false`;
    this.#ws = {
      app: this.#app,
      hub: this.#hub,
      serverVersion: versionId,
      hostname: hostname(),
      authTimeoutMs: opts.websocketAuthTimeoutMs ?? 5000,
      sockets: new Map(),
      refuse: { on: false, count: 0 },
    };
    const router = new Router();
    registerSystemRoutes(router);
    registerUserRoutes(router);
    registerProfileImageRoutes(router);
    registerChannelRoutes(router);
    registerPostRoutes(router);
    registerFileRoutes(router);
    registerCommandRoutes(router);
    const handler = createHandler({
      app: this.#app,
      router,
      limiter: this.#limiter,
      websocket: this.#ws,
      versionId,
      log: this.requestLog,
    });
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      (req, info) => this.#withFaults(req, info, handler),
    );
    this.url = `http://127.0.0.1:${this.#server.addr.port}`;
    this.config.siteUrl ||= this.url;

    const team = insertTeam(this.#store, "testteam", "Test Team");
    this.team = { id: team.id, name: team.name };
    const adminUser = insertUser(this.#store, {
      username: "sysadmin",
      email: "sysadmin@example.com",
      password: "Sys-admin-password-1",
      roles: "system_admin system_user",
    });
    this.admin = this.#enroll(adminUser);
    insertChannel(
      this.#store,
      { team_id: team.id, name: DEFAULT_CHANNEL, display_name: "Town Square" },
      adminUser.id,
    );
    insertChannel(
      this.#store,
      { team_id: team.id, name: "off-topic", display_name: "Off-Topic" },
      adminUser.id,
    );
    const botUser = insertUser(this.#store, {
      username: "xmppbridge",
      is_bot: true,
      bot_description: "XMPP bridge",
      first_name: "XMPP Bridge",
    });
    const botRole = opts.botTeamRole ?? "member";
    if (botRole !== "none") {
      const member = insertTeamMember(this.#store, team.id, botUser.id);
      if (botRole === "admin") Object.assign(member, { roles: "team_user team_admin", scheme_admin: true });
    }
    this.bot = {
      id: botUser.id,
      username: botUser.username,
      token: issueSessionToken(this.#store, botUser.id),
    };
  }

  /** Team member, default channels, token. */
  #enroll(user: User): TestUser {
    insertTeamMember(this.#store, this.team.id, user.id);
    for (const name of [DEFAULT_CHANNEL, "off-topic"]) {
      const channel = this.#store.channelByName(this.team.id, name);
      if (channel && !this.#store.isChannelMember(channel.id, user.id)) {
        insertChannelMember(this.#store, channel.id, user.id);
      }
    }
    return { id: user.id, username: user.username, token: issueSessionToken(this.#store, user.id) };
  }

  #user(userId: string): User {
    const user = this.#store.users.get(userId);
    if (!user) throw new Error(`stand-in: no user ${userId}`);
    return user;
  }

  #channel(channelId: string): Channel {
    const channel = this.#store.channels.get(channelId);
    if (!channel) throw new Error(`stand-in: no channel ${channelId}`);
    return channel;
  }

  createUser(username: string, opts: { admin?: boolean; bot?: boolean } = {}): TestUser {
    const user = insertUser(this.#store, {
      username,
      email: `${username.toLowerCase()}@example.com`,
      password: "Test-password-1",
      roles: opts.admin ? "system_admin system_user" : "system_user",
      is_bot: opts.bot,
    });
    if (!opts.bot) return this.#enroll(user);
    // Bots join the team but, like the bridge's bot, no channel.
    insertTeamMember(this.#store, this.team.id, user.id);
    return { id: user.id, username: user.username, token: issueSessionToken(this.#store, user.id) };
  }

  createChannel(
    name: string,
    opts: { displayName?: string; type?: ChannelType } = {},
  ): { id: string; name: string } {
    const channel = insertChannel(
      this.#store,
      { team_id: this.team.id, name, display_name: opts.displayName ?? name, type: opts.type ?? "O" },
      this.admin.id,
    );
    return { id: channel.id, name: channel.name };
  }

  addMember(channelId: string, userId: string): void {
    const channel = this.#channel(channelId);
    const user = this.#user(userId);
    insertTeamMember(this.#store, channel.team_id, user.id);
    const actor = channel.type === "O" ? user : this.#user(this.admin.id);
    addChannelMember(this.#app, actor, channel, user);
  }

  removeMember(channelId: string, userId: string): void {
    const user = this.#user(userId);
    removeChannelMember(this.#app, user, this.#channel(channelId), user);
  }

  postAs(
    userId: string,
    channelId: string,
    message: string,
    extra: { root_id?: string; props?: Record<string, unknown>; type?: string; file_ids?: string[] } = {},
  ): Promise<Post> {
    return Promise.resolve().then(() =>
      createPost(this.#app, this.#user(userId), { channel_id: channelId, message, ...extra })
    );
  }

  editAs(userId: string, postId: string, message: string): Promise<Post> {
    return Promise.resolve().then(() => patchPost(this.#app, this.#user(userId), postId, { message }));
  }

  deleteAs(userId: string, postId: string): Promise<void> {
    return Promise.resolve().then(() => deletePost(this.#app, this.#user(userId), postId));
  }

  reactAs(userId: string, postId: string, emojiName: string): Promise<void> {
    return Promise.resolve().then(() => {
      addReaction(this.#app, this.#user(userId), { user_id: userId, post_id: postId, emoji_name: emojiName });
    });
  }

  createCustomEmoji(name: string): void {
    this.#store.customEmoji.add(name);
  }

  unreactAs(userId: string, postId: string, emojiName: string): Promise<void> {
    return Promise.resolve().then(() =>
      removeReaction(this.#app, this.#user(userId), userId, postId, emojiName)
    );
  }

  directChannelOf(userId: string, otherUserId: string): string | undefined {
    const name = directChannelName(userId, otherUserId);
    for (const channel of this.#store.channels.values()) {
      if (channel.type === "D" && channel.name === name) return channel.id;
    }
    return undefined;
  }

  post(postId: string): Post | undefined {
    const post = this.#store.posts.get(postId);
    return post ? postView(this.#store, post) : undefined;
  }

  posts(channelId: string, filter: PostFilter = {}): Post[] {
    return this.#store.postsOf(channelId)
      .filter((p) => filter.includeSystem || !p.type.startsWith("system_"))
      .filter((p) => filter.includeDeleted || p.delete_at === 0)
      .map((p) => postView(this.#store, p));
  }

  waitForPosts(channelId: string, count: number, timeoutMs = 5000, filter: PostFilter = {}): Promise<Post[]> {
    return new Promise((resolve, reject) => {
      const settle = () => {
        clearTimeout(timer);
        this.#waiters.delete(waiter);
      };
      const waiter: Waiter = {
        check: () => {
          const posts = this.posts(channelId, filter);
          if (posts.length < count) return;
          settle();
          resolve(posts);
        },
        cancel: () => {
          settle();
          reject(new Error("waitForPosts: the stand-in was closed"));
        },
      };
      const timer = setTimeout(() => {
        settle();
        const have = this.posts(channelId, filter).map((p) => JSON.stringify(p.message));
        reject(
          new Error(
            `waitForPosts: wanted ${count} posts in ${channelId}, have ${have.length}: [${have.join(", ")}]`,
          ),
        );
      }, timeoutMs);
      this.#waiters.add(waiter);
      waiter.check();
    });
  }

  commands(): Command[] {
    return [...this.#store.commands.values()].filter((c) => c.delete_at === 0).map((c) => ({ ...c }));
  }

  async invokeCommand(args: InvokeCommandArgs): Promise<CommandCallResult> {
    const user = this.#user(args.userId);
    const channel = this.#channel(args.channelId);
    const cmd = resolveCommand(this.#app, user, channel, args.trigger);
    return await runCommand(this.#app, user, channel, cmd, args.text, args.token);
  }

  websocketCount(userId?: string): number {
    return this.#hub.all().filter((c) => c.active && c.userId !== "" && (!userId || c.userId === userId))
      .length;
  }

  dropWebsockets(): void {
    for (const conn of this.#hub.all()) if (conn.active) detachConn(this.#ws, conn);
    this.#closeSockets("going away");
  }

  restartWebsocketSessions(): void {
    for (const conn of this.#hub.all()) {
      conn.socket = null;
      this.#hub.remove(conn);
    }
    this.#store.statuses.clear();
    this.#closeSockets("server restart");
  }

  runWebsocketReaper(now?: number): void {
    this.#hub.reap(now);
  }

  beforeNextWebsocketResume(fn: () => void): void {
    this.#ws.beforeNextResume = fn;
  }

  refuseWebsockets(refuse: boolean): void {
    this.#ws.refuse.on = refuse;
  }

  get refusedWebsockets(): number {
    return this.#ws.refuse.count;
  }

  sendRawWebsocketFrame(userId: string, text: string): number {
    return this.#hub.sendRaw(userId, text);
  }

  sendWebsocketEvent(userId: string, event: string, data: unknown): void {
    this.#app.publish(newEvent(event, data as Record<string, unknown>, { userId }));
  }

  /** Close every socket from the server side (1001 going away). */
  #closeSockets(reason: string): void {
    for (const socket of this.#ws.sockets.keys()) {
      try {
        socket.close(1001, reason);
      } catch {
        // Not open yet: the upgrade never completed.
      }
    }
  }

  // --- Test hooks ---

  /** Faults still to come, in order: each lets `skip` creates pass, then misbehaves once. */
  readonly #createFaults: Array<{ fault: PostCreateFault; skip: number }> = [];

  failPostCreates(fault: PostCreateFault, opts: { skip?: number; times?: number } = {}): void {
    for (let i = 0; i < (opts.times ?? 1); i++) {
      this.#createFaults.push({ fault, skip: i === 0 ? opts.skip ?? 0 : 0 });
    }
  }

  holdPostCreates(): { held(): number; release(): void } {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => open = resolve);
    let held = 0;
    const hold = async () => {
      held++;
      await gate;
      held--;
    };
    this.#app.holdCreate = hold;
    return {
      held: () => held,
      release: () => {
        if (this.#app.holdCreate === hold) this.#app.holdCreate = undefined;
        open();
      },
    };
  }

  async #withFaults(
    req: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
    handler: Deno.ServeHandler<Deno.NetAddr>,
  ): Promise<Response> {
    const next = this.#createFaults[0];
    if (!next || req.method !== "POST" || new URL(req.url).pathname !== "/api/v4/posts") {
      return handler(req, info);
    }
    if (next.skip > 0) {
      next.skip--;
      return handler(req, info);
    }
    this.#createFaults.shift();
    const { fault } = next;
    if (fault.kind === "proxy-error") {
      this.requestLog.push({ method: req.method, path: "/api/v4/posts", query: "", status: fault.status });
      return new Response(`<html><body><h1>${fault.status}</h1>nginx</body></html>\n`, {
        status: fault.status,
        headers: { "Content-Type": "text/html" },
      });
    }
    if (fault.kind === "server-error") {
      this.requestLog.push({ method: req.method, path: "/api/v4/posts", query: "", status: 500 });
      return Response.json({
        id: "app.post.save.app_error",
        message: "Unable to save the post.",
        detailed_error: "",
        request_id: "",
        status_code: 500,
      }, { status: 500 });
    }
    const answer = await handler(req, info);
    await answer.body?.cancel();
    // Headers go out, then the body fails: the connection breaks in the middle of the answer.
    const broken = new ReadableStream({ pull: (c) => c.error(new Error("connection lost (test hook)")) });
    return new Response(broken, { status: answer.status, headers: answer.headers });
  }

  setRateLimit(limit: RateLimitConfig | null): void {
    this.config.rateLimit = limit;
    this.#limiter.reset();
  }

  setConfig(patch: Partial<Omit<ServerConfig, "version">>): void {
    Object.assign(this.config, patch);
    if ("rateLimit" in patch) this.#limiter.reset();
  }

  async close(): Promise<void> {
    for (const waiter of [...this.#waiters]) waiter.cancel();
    const closing = [...this.#ws.sockets.values()];
    this.restartWebsocketSessions();
    this.#hub.stop();
    let fallback: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all(closing),
      new Promise<void>((resolve) => fallback = setTimeout(resolve, 2000)),
    ]);
    clearTimeout(fallback);
    await this.#server.shutdown();
  }
}
