/**
 * The Mattermost connector: the bot's REST client and websocket, relaying between mapped channels and the bus.
 *
 * The websocket is authenticated at open (Authorization header), so after a short drop the server replays missed
 * events; when it cannot (new `hello`), the connector catches up over REST with `?since=` for every mapped channel,
 * and the bus drops whatever was already bridged.
 *
 * @module
 */
import mm from "@mattermost/client";
import { getLogger } from "@logtape/logtape";
import type { Bridge, BridgeContext, BridgeHealth } from "../core/bridge.ts";
import { deadline } from "../core/deadline.ts";
import { BridgeError, errorMessage } from "../core/errors.ts";
import type { DirectionalMessage, SentRefs } from "../core/message.ts";
import { call, type Client4, createClient, statusOf } from "./api.ts";
import { type DisplayOptions, isBridgeable, parsePostedEvent, type Post, renderPosts } from "./post.ts";
import { CALLBACK_PATH, SlashCommand } from "./slash.ts";

const log = getLogger(["mmxmpp", "mattermost"]);
const MM_ID = /^[a-z0-9]{26}$/;

/** Settings of {@link MattermostBridge}. */
export interface MattermostBridgeOptions {
  url: string;
  token: string;
  /** Team for channel names without a team (`MM_TEAM`) and for the slash command. */
  team?: string;
  display: DisplayOptions;
  publicUrl?: string;
  commandToken?: string;
  /** Where to serve the slash-command callback; omitted, no command is served. */
  route?: (method: string, path: string, handler: (req: Request) => Promise<Response>) => void;
  /** How long to wait for the websocket's first `hello`. */
  helloTimeoutMs?: number;
}

interface User {
  id: string;
  username: string;
  first_name?: string;
  last_name?: string;
  nickname?: string;
}

/** Mattermost side of the bridge. */
export class MattermostBridge implements Bridge {
  readonly network = "mattermost";
  private client!: Client4;
  private ws?: InstanceType<typeof mm.WebSocketClient>;
  private ctx!: BridgeContext;
  private botId = "";
  private state: BridgeHealth = {
    network: "mattermost",
    connected: false,
    detail: "not started",
    since: Date.now(),
  };
  /** Posted events are handled one at a time so that user look-ups cannot reorder them. */
  private inbound: Promise<void> = Promise.resolve();
  private readonly users = new Map<string, { user: User; at: number }>();
  /** Newest `create_at` seen per channel: where catch-up starts. */
  private readonly seen = new Map<string, number>();
  private readonly startedAt = Date.now();
  /** Posts already created for a message whose later pieces failed, so a retry does not repeat them. */
  private readonly progress = new WeakMap<DirectionalMessage, string[]>();
  private lastPending = 0;

  constructor(private readonly opts: MattermostBridgeOptions) {}

  async start(ctx: BridgeContext): Promise<void> {
    this.ctx = ctx;
    this.client = createClient(this.opts.url, this.opts.token);
    const me = await call(`log in to ${this.opts.url}`, () => this.client.getMe());
    this.botId = me.id;
    log.info("Logged in to Mattermost as {username} ({kind})", {
      username: me.username,
      kind: me.is_bot ? "bot" : "user",
    });
    await this.connectWebsocket(me.username);
    if (this.opts.route) {
      const command = new SlashCommand({
        client: this.client,
        team: this.opts.team,
        publicUrl: this.opts.publicUrl,
        staticToken: this.opts.commandToken,
        run: (input) => this.ctx.runCommand(input),
      });
      // A failed start leaves no websocket behind, so that it can be tried again.
      await command.setup().catch(async (err) => {
        await this.stop();
        throw err;
      });
      this.opts.route("POST", CALLBACK_PATH, (req) => command.handle(req));
    }
  }

  async stop(): Promise<void> {
    if (this.ws) closeWebsocket(this.ws);
    this.ws = undefined;
    await this.inbound;
    this.setState(false, "stopped");
  }

  health(): BridgeHealth {
    return { ...this.state };
  }

  async resolveChannel(ref: string): Promise<string> {
    const trimmed = ref.trim();
    if (MM_ID.test(trimmed)) {
      const unseen = `no channel has the id ${trimmed}, or the bot cannot see it`;
      const channel = await call(`find channel ${trimmed}`, () => this.client.getChannel(trimmed), {
        403: unseen,
        404: unseen,
      });
      return channel.id;
    }
    const [team, name] = trimmed.includes("/") ? trimmed.split("/", 2) : [this.opts.team, trimmed];
    if (!team || !name) throw new BridgeError(`"${trimmed}" is not team/channel or a channel id`);
    const unseen = `channel ${team}/${name} does not exist, or the bot is not in team ${team}`;
    const channel = await call(
      `find channel ${team}/${name}`,
      () => this.client.getChannelByNameAndTeamName(team, name),
      { 403: unseen, 404: unseen },
    );
    return channel.id;
  }

  async joinChannel(channelId: string): Promise<void> {
    this.seen.set(channelId, Math.max(this.seen.get(channelId) ?? 0, Date.now()));
    // Mattermost answers 403 (not a member, so not allowed to look) or 404 when the bot is not in the channel.
    const member = await call(
      "check the bot's membership",
      () =>
        this.client.getChannelMember(channelId, this.botId).then(() => true, (err) => {
          if (statusOf(err) === 403 || statusOf(err) === 404) return false;
          throw err;
        }),
    );
    if (member) return;
    await call(`add the bot to channel ${channelId}`, () => this.client.addToChannel(this.botId, channelId), {
      403:
        `the bot cannot join channel ${channelId} by itself (a private channel?): add it in Mattermost with /invite`,
    });
    log.info("Joined Mattermost channel {channel}", { channel: channelId });
  }

  /** Mattermost channels are left alone on unmap: an admin may still want the bot there. */
  leaveChannel(): Promise<void> {
    return Promise.resolve();
  }

  async send(dm: DirectionalMessage): Promise<SentRefs> {
    const drafts = renderPosts(dm.message.text, dm.message.author, dm.source, this.opts.display);
    const done = this.progress.get(dm) ?? [];
    this.progress.set(dm, done);
    for (const draft of drafts.slice(done.length)) {
      const body = {
        channel_id: dm.targetChannel,
        message: draft.message,
        props: draft.props,
        // Lets the server recognise a retried create whose first answer got lost.
        pending_post_id: `${this.botId}:${this.nextPendingStamp()}`,
      };
      const post = await call(
        `post to channel ${dm.targetChannel}`,
        () => this.client.createPost(body as never),
      );
      done.push(post.id);
    }
    return { ids: [...done] };
  }

  private nextPendingStamp(): number {
    this.lastPending = Math.max(Date.now(), this.lastPending + 1);
    return this.lastPending;
  }

  private connectWebsocket(username: string): Promise<void> {
    const token = this.opts.token;
    const ws = new mm.WebSocketClient({
      newWebSocketFn: (url: string) => new WebSocket(url, { headers: { Authorization: `Bearer ${token}` } }),
    });
    this.ws = ws;
    let helloed: () => void;
    const firstHello = new Promise<void>((resolve) => helloed = resolve);
    ws.addMessageListener((msg: { event?: string; data?: unknown }) => {
      if (msg.event === "hello") {
        this.setState(true, `connected as ${username}`);
        helloed();
      } else if (msg.event === "posted") {
        this.onPosted(msg.data);
      } else if (msg.event === "user_updated") {
        const user = (msg.data as { user?: { id?: string; delete_at?: number } })?.user;
        if (user?.id && user.delete_at) {
          log.info("Mattermost user {userId} was deactivated", { userId: user.id });
          this.ctx.userDeactivated(user.id);
        }
      }
    });
    // A new hello on reconnect means the server could not replay what we missed: fetch it over REST.
    ws.addMissedMessageListener(() => {
      this.inbound = this.inbound.then(() => this.catchUp());
    });
    ws.addCloseListener((failures: number) => {
      this.setState(false, `websocket closed (${failures} failed attempt(s)); reconnecting`);
    });
    ws.initialize(this.opts.url.replace(/^http/, "ws") + "/api/v4/websocket");
    return deadline(firstHello, this.opts.helloTimeoutMs ?? 15_000, () => {
      closeWebsocket(ws);
      return new BridgeError(`no websocket hello from ${this.opts.url} (is /api/v4/websocket proxied?)`);
    });
  }

  private onPosted(data: unknown): void {
    const post = parsePostedEvent(data);
    if (!post) {
      log.warn("Ignored a malformed posted event");
      return;
    }
    this.inbound = this.inbound.then(() => this.handlePost(post));
  }

  private async handlePost(post: Post): Promise<void> {
    this.seen.set(post.channel_id, Math.max(this.seen.get(post.channel_id) ?? 0, post.create_at));
    if (!isBridgeable(post, this.botId)) return;
    const user = await this.user(post.user_id);
    log.debug("Received post {postId} in {channel}: {message}", {
      postId: post.id,
      channel: post.channel_id,
      message: post.message,
    });
    this.ctx.receive({
      network: this.network,
      channel: post.channel_id,
      ids: [post.id],
      author: {
        id: post.user_id,
        name: user?.username ?? post.user_id,
        displayName: user ? displayName(user) : undefined,
      },
      text: post.message,
      timestamp: post.create_at,
    });
  }

  private async catchUp(): Promise<void> {
    const channels = await this.ctx.mappedChannels();
    for (const channel of channels) {
      const since = this.seen.get(channel) ?? this.startedAt;
      try {
        const list = await call(
          `catch up on channel ${channel}`,
          () => this.client.getPostsSince(channel, since),
        );
        const posts = Object.values(list.posts as Record<string, Post>)
          .filter((p) => p.create_at > since)
          .sort((a, b) => a.create_at - b.create_at);
        log.info("Caught up {count} post(s) in {channel} after a websocket gap", {
          count: posts.length,
          channel,
        });
        for (const post of posts) await this.handlePost(post);
      } catch (err) {
        log.error("Catch-up of {channel} failed: {error}", { channel, error: errorMessage(err) });
      }
    }
  }

  private async user(id: string): Promise<User | undefined> {
    const cached = this.users.get(id);
    if (cached && Date.now() - cached.at < 10 * 60_000) return cached.user;
    try {
      const user = await call(`look up user ${id}`, () => this.client.getUser(id)) as User;
      this.users.set(id, { user, at: Date.now() });
      return user;
    } catch (err) {
      log.warn("Could not look up user {id}: {error}", { id, error: errorMessage(err) });
      return cached?.user;
    }
  }

  private setState(connected: boolean, detail: string): void {
    if (this.state.connected !== connected || this.state.detail !== detail) {
      this.state = { network: this.network, connected, detail, since: Date.now() };
    }
  }
}

/** Closes for good, also while still connecting (Client4's `close` only handles an open socket). */
function closeWebsocket(ws: InstanceType<typeof mm.WebSocketClient>): void {
  ws.close();
  const conn = (ws as unknown as { conn: WebSocket | null }).conn;
  if (conn) {
    conn.onclose = null;
    conn.close();
    (ws as unknown as { conn: WebSocket | null }).conn = null;
  }
}

function displayName(user: User): string {
  const full = [user.first_name, user.last_name].filter(Boolean).join(" ");
  return user.nickname || full || user.username;
}
