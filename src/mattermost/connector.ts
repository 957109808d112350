/**
 * The Mattermost connector: the bot's REST client and websocket, relaying between mapped channels and the bus.
 *
 * The websocket is authenticated at open (Authorization header), so after a short drop the server replays what it
 * still queued. That queue can be gone (inactivity reaper, restart, another cluster node) or miss events published
 * while the connection was being handed back, so after every reconnect the connector also catches up over REST
 * (`?since=`, with a safety margin, for every mapped channel) and the bus drops whatever was already bridged.
 * At join, a channel read before (a stored read position) first gets what it was sent while the bridge was down,
 * up to `BRIDGE_CATCHUP_MAX_AGE` back; its read position moves on only once those posts were handed on. Both
 * catch-ups also hand on the edits and deletions of older posts that the `?since=` answer shows (catch_up.ts
 * `changeOf`), as the live events would have: the core drops those it already handled.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import {
  type AvatarSource,
  type BridgeContext,
  type BridgeHealth,
  type DirectCapable,
  type EditCapable,
  type FileSource,
  type FileStream,
  FileUnavailable,
  type MembershipCapable,
  MESSAGES_ONLY,
  type NoticeCapable,
  type OpenFileOptions,
  type PortalCapabilities,
  type ProfileMirroring,
  type ReactionCapable,
  type RemoveCapable,
  type StatusChange,
  type StatusMirroring,
  type TypingCapable,
  type UserStatus,
} from "../core/bridge.ts";
import { fileNotice } from "../core/files.ts";
import { MattermostFiles, MAX_FILES_PER_POST } from "./files.ts";
import {
  avatarOf,
  type AvatarShownStore,
  MattermostAvatars,
  pictureVersion,
  resetPicture,
  uploadPicture,
} from "./avatars.ts";
import { type Image, imageType, MAX_AVATAR_BYTES, readAtMost } from "../core/images.ts";
import { Backoff } from "../core/backoff.ts";
import { deadline, settleWithin } from "../core/deadline.ts";
import { BridgeError, errorMessage, isTransient } from "../core/errors.ts";
import type {
  BridgeMessage,
  DirectionalMessage,
  EditDelivery,
  MembershipDelivery,
  PartSender,
  ReactionsDelivery,
  RemoveDelivery,
  SentRefs,
  TypingDelivery,
} from "../core/message.ts";
import { type Attachment, identityOf, type ReplyTo, type Sender } from "../core/events.ts";
import { editOf, isGone, isRelayedChange, postChanges, removalOf } from "./edits.ts";
import { applyReactionSet, parseReactionEvent, type ReactionChange, reactionSetOf } from "./reactions.ts";
import { call, type Client4, createClient, settingsFailure, statusOf } from "./api.ts";
import { BASE_URL_HINT, describeFailure, explainUnreachable } from "./explain.ts";
import { runeLength } from "../core/text.ts";
import {
  changedAt,
  changeOf,
  type PostChangeEvent,
  PostCursors,
  postsInOrder,
  postsSince,
} from "./catch_up.ts";
import {
  type DisplayOptions,
  isBridgeable,
  MAX_POST_RUNES,
  parsePost,
  parsePostedEvent,
  type Post,
  type PostDraft,
  postText,
  renderPosts,
} from "./post.ts";
import { UndeliverableNotices, withRefusalNotice } from "./notices.ts";
import { CALLBACK_PATH, SlashCommand } from "./slash.ts";
import type { MattermostPuppets, Puppet } from "./puppets.ts";
import { runPuppetCommand } from "./puppet_commands.ts";
import { isRecord, MattermostSocket, type ReconnectPolicy } from "./websocket.ts";
import { DirectChannels } from "./direct.ts";
import { MM_ID } from "../settings.ts";
import { isRootRefused, overriddenName, replyOfPost, rootIdFor } from "./threads.ts";
import { standaloneQuote } from "../core/reply.ts";
import { publishUserTyping, TypingIn, TypingOut } from "./typing.ts";
import { readStatuses, StatusPoller } from "./status.ts";

const log = getLogger(["mmxmpp", "mattermost"]);

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
  /** Websocket reconnect timing (default: capped at 30 s). */
  reconnect?: ReconnectPolicy;
  /**
   * How far before the newest post seen a catch-up asks again (default 60 s): `create_at` is neither unique nor
   * committed in order across cluster nodes; the bus drops what was already bridged.
   */
  catchUpMarginMs?: number;
  /** Backoff of a failed catch-up, after a gap or of posts made while down (default 1 s doubling to 60 s). */
  catchUpRetry?: { initialMs: number; maxMs: number };
  /**
   * How far back the catch-up at start reaches for posts made while the bridge was down (default 24 h,
   * `BRIDGE_CATCHUP_MAX_AGE`); older ones are counted in a warning and not bridged.
   */
  catchUpMaxAgeMs?: number;
  /**
   * How long after a user's last `typing` event their typing counts as stopped (default 6 s: the webapp repeats
   * the event every 5 s while its user types).
   */
  typingTimeoutMs?: number;
  /**
   * How often the statuses of the users the bridge handed something of are read, for their stand-ins elsewhere
   * (`BRIDGE_STATUS_POLL_INTERVAL`); 0 or absent: never.
   */
  statusPollMs?: number;
  /** How long after their last activity a user's status stops being read (their ghost's idle time); absent: never. */
  statusWatchMs?: number;
  /** XMPP users as Mattermost users of their own (`BRIDGE_MM_PUPPETS`); without it the bot posts for them. */
  puppets?: MattermostPuppets;
  /** Where the versions of the pictures puppets show are kept, so that a restart does not upload them again. */
  avatarStore?: AvatarShownStore;
}

/** Who makes a post for a message from another network: the author's puppet, or the bot. */
interface Voice {
  client: Client4;
  files: MattermostFiles;
  display: DisplayOptions;
  /** How the id map records the posts' sender. */
  part: PartSender;
}

interface User {
  id: string;
  username: string;
  first_name?: string;
  last_name?: string;
  nickname?: string;
  delete_at?: number;
  /** When the user last set their picture (0: never; the generated default). */
  last_picture_update?: number;
}

/** Mattermost side of the bridge. */
export class MattermostBridge
  implements
    DirectCapable,
    NoticeCapable,
    FileSource,
    EditCapable,
    RemoveCapable,
    ReactionCapable,
    MembershipCapable,
    TypingCapable,
    StatusMirroring,
    AvatarSource,
    ProfileMirroring {
  readonly network = "mattermost";
  private client!: Client4;
  /** Aborted by stop(): ends a REST call's wait on a 429, so that stop() is not held up by a rate limit. */
  private clientStop = new AbortController();
  private notices!: UndeliverableNotices;
  private files!: MattermostFiles;
  private avatars!: MattermostAvatars;
  /**
   * Per puppet user id: the version of the picture it shows ("" for none), once read; the newest sender seen, whose
   * picture it is to show; and the upload under way.
   */
  private readonly puppetPictures = new Map<
    string,
    { shown?: string; latest: Sender; syncing: Promise<void> }
  >();
  /** Files of a message already uploaded (their ids), and notices for those that could not be, across retries. */
  private readonly uploads = new WeakMap<DirectionalMessage, { fileIds: string[]; notices: string[] }>();
  private socket?: MattermostSocket;
  /** The puppets' direct channels (with puppets only). */
  private directs?: DirectChannels;
  private ctx!: BridgeContext;
  private botId = "";
  private state: BridgeHealth = {
    network: "mattermost",
    connected: false,
    detail: "not started",
    since: Date.now(),
  };
  /** Posted events and catch-ups run one at a time, in order, so that user look-ups cannot reorder them. */
  private inbound: Promise<void> = Promise.resolve();
  private readonly users = new Map<string, { user: User; at: number }>();
  /** Thread roots read for their replies' quotes, with their author's name (see `replyOf`). */
  private readonly roots = new Map<string, { post?: Post; author?: string; at: number }>();
  /** Where each channel's catch-up starts. */
  private readonly cursors = new PostCursors();
  private catchUpTimer?: ReturnType<typeof setTimeout>;
  /**
   * Channels whose posts from while the bridge was down are still being fetched, with the live posts held meanwhile:
   * they are handed on after the older ones, in order.
   */
  private readonly resuming = new Map<string, Post[]>();
  private readonly resumeTimers = new Set<ReturnType<typeof setTimeout>>();
  /** Waits between failed catch-ups after a websocket gap; reset by one that succeeds. */
  private readonly catchUpBackoff: Backoff;
  private stopped = false;
  /**
   * Reaction events queued per (post, user) and not yet handled: only the last of a burst reads the user's set
   * (the others would read the same set, or an older one).
   */
  private readonly reactionsQueued = new Map<string, number>();
  /** Posts already created for a message whose later pieces failed, so a retry does not repeat them. */
  private readonly progress = new WeakMap<DirectionalMessage, string[]>();
  /**
   * Test-only: the two safeguards against echoes of the bridge's own posts, so that a test can show each works
   * alone. `filter` drops posts by the bot or carrying the bridge marker; `deliveryId` hands the bus the delivery id
   * found in an incoming post's `pending_post_id`.
   */
  readonly echoGuards = { filter: true, deliveryId: true };

  /** Mattermost users' typing, as starts and ends. */
  private readonly typingIn: TypingIn;
  /** Numbers the typing events handed on, so that each has an id of its own. */
  private typingCount = 0;
  /** Statuses of the users whose stand-ins may be elsewhere, polled. */
  private statusPoller?: StatusPoller;
  /** The status each puppet was last given, so that an unchanged one is not set again. */
  private readonly puppetStatuses = new Map<string, UserStatus>();
  /**
   * The last status of each XMPP user (by puppet identity) that had no puppet yet when it came: given to the
   * puppet once it is made, at its first post.
   */
  private readonly waitingStatuses = new Map<string, StatusChange>();
  /** XMPP users' typing shown by their puppets, kept up while it lasts. */
  private readonly typingOut: TypingOut;

  constructor(private readonly opts: MattermostBridgeOptions) {
    this.catchUpBackoff = new Backoff(this.catchUpRetry());
    this.typingIn = new TypingIn({
      timeoutMs: opts.typingTimeoutMs ?? 6_000,
      onChange: ({ channelId, userId, active }) =>
        this.enqueue("typing", () => this.relayTyping(channelId, userId, active)),
    });
    this.typingOut = new TypingOut({
      // Under the 5 s after which clients drop an indicator; XEP-0085 clients send `paused` within 30 s.
      refreshMs: 4_000,
      maxMs: 30_000,
      publish: async (userId, channelId) => {
        const client = await this.opts.puppets?.clientOf(userId);
        if (client) await publishUserTyping(client, userId, channelId);
      },
      onError: (err) =>
        log.debug("Could not keep a puppet's typing up: {error}", { error: errorMessage(err) }),
    });
  }

  async start(ctx: BridgeContext): Promise<void> {
    this.ctx = ctx;
    this.clientStop = new AbortController();
    this.client = createClient(this.opts.url, this.opts.token, this.clientStop.signal);
    this.notices = new UndeliverableNotices(this.client);
    this.files = new MattermostFiles(this.opts.url, this.opts.token, this.client);
    this.avatars = new MattermostAvatars(this.opts.url, this.opts.token);
    // Waiting cannot fix MM_URL or a certificate: such a failure ends the start, with what to do.
    const me = await call(`log in to ${this.opts.url}`, () => this.client.getMe(), {
      404: `cannot log in to ${this.opts.url}: it answered 404 for /api/v4/users/me; ${BASE_URL_HINT}`,
    }).catch((err) => {
      throw settingsFailure(err);
    });
    this.botId = me.id;
    log.info("Logged in to Mattermost as {username} ({kind})", {
      username: me.username,
      kind: me.is_bot ? "bot" : "user",
    });
    // Before the websocket: the puppets' own posts must be known as ours from the first event on.
    await this.opts.puppets?.start();
    await this.connectWebsocket(me.username);
    if (this.opts.statusPollMs) this.startStatusPoller(this.opts.statusPollMs);
    if (this.opts.puppets) {
      this.directs = new DirectChannels({
        url: this.opts.url,
        puppets: this.opts.puppets,
        bot: this.client,
        botId: this.botId,
        reconnect: this.opts.reconnect,
        onEvent: (event, data, broadcast) => this.onEvent(event, data, broadcast),
        onReconnect: () => this.enqueue("catch-up", () => this.catchUp()),
      });
      void this.restoreDirects(this.directs);
    }
    if (this.opts.route) {
      const command = new SlashCommand({
        client: this.client,
        team: this.opts.team,
        publicUrl: this.opts.publicUrl,
        staticToken: this.opts.commandToken,
        run: (input) => this.runCommand(input),
      });
      // A failed start leaves no websocket behind, so that it can be tried again.
      await command.setup().catch(async (err) => {
        await this.stop();
        throw err;
      });
      // GET for commands an admin created by hand with method GET.
      for (const method of ["POST", "GET"]) {
        this.opts.route(method, CALLBACK_PATH, (req) => command.handle(req));
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.clientStop.abort();
    this.typingIn.clear();
    this.typingOut.clear();
    await this.statusPoller?.stop();
    this.opts.puppets?.stop();
    clearTimeout(this.catchUpTimer);
    for (const timer of this.resumeTimers) clearTimeout(timer);
    this.resumeTimers.clear();
    this.socket?.close();
    this.socket = undefined;
    this.directs?.close();
    this.directs = undefined;
    await this.inbound;
    // Picture uploads under way (they never throw) are given a moment to finish, not to hold up the stop.
    await settleWithin(Promise.all([...this.puppetPictures.values()].map((p) => p.syncing)), 2_000);
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
    // Mattermost answers 403 (not a member, so not allowed to look) or 404 when the bot is not in the channel.
    const member = await call(
      "check the bot's membership",
      () =>
        this.client.getChannelMember(channelId, this.botId).then(() => true, (err) => {
          if (statusOf(err) === 403 || statusOf(err) === 404) return false;
          throw err;
        }),
    );
    if (!member) {
      await call(
        `add the bot to channel ${channelId}`,
        () => this.client.addToChannel(this.botId, channelId),
        {
          403:
            `the bot cannot join channel ${channelId} by itself (a private channel?): add it in Mattermost with /invite`,
        },
      );
      log.info("Joined Mattermost channel {channel}", { channel: channelId });
    }
    await this.seedCursor(channelId);
  }

  /** Starts the channel's catch-up cursor at its newest post, in the server's time (our clock may differ). */
  private async seedCursor(channelId: string): Promise<void> {
    const stored = await this.ctx.loadCursor(channelId).catch((err) => {
      log.warn("Could not read how far {channel} was read before: {error}", {
        channel: channelId,
        error: errorMessage(err),
      });
      return undefined;
    });
    await this.seedFromServer(channelId);
    const newest = this.cursors.get(channelId)?.floor;
    // Never read before: reading starts at the newest post, recorded at once (a crash soon after is caught up).
    if (stored === undefined && newest !== undefined) this.ctx.saveCursor(channelId, newest);
    if (stored !== undefined && newest !== undefined) {
      // Posts may have been made, edited or deleted while the bridge was down (the last two leave no trace in the
      // newest post): fetch them before anything newer is recorded as read. One `?since=` per channel.
      this.resuming.set(channelId, []);
      this.enqueue("catch-up", () => this.resume(channelId, stored, newest));
    }
  }

  /** Starts the channel's live cursor at its newest post (in the server's time). */
  private async seedFromServer(channelId: string): Promise<void> {
    try {
      const list = await call(
        `read the newest post of channel ${channelId}`,
        () => this.readerOf(channelId).getPosts(channelId, 0, 1),
      );
      const empty = ((list as { order?: unknown[] }).order ?? []).length === 0;
      const newest = postsInOrder(list)[0]?.create_at;
      // An empty channel starts at 0: everything posted from now on is new.
      if (!empty && newest === undefined) throw new BridgeError("its newest post has no valid create_at");
      this.cursors.seed(channelId, newest ?? 0);
    } catch (err) {
      log.warn("Could not read the newest post of {channel}; catch-up starts from the local clock: {error}", {
        channel: channelId,
        error: errorMessage(err),
      });
      this.cursors.seed(channelId, Date.now());
    }
  }

  /** Mattermost channels are left alone on unmap: an admin may still want the bot there. */
  leaveChannel(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * The bot may patch and delete its own posts in any channel it posts in (api4/post.go patchPost, deletePost), and
   * reacts for every XMPP user; with puppets, each does so for their own.
   */
  portalCapabilities(_channel: string): PortalCapabilities {
    // Typing shows only as the typer's own puppet: the bot typing for everyone would tell nothing.
    const typing = this.opts.puppets?.mode.kind === "tokens";
    return { ...MESSAGES_ONLY, canEdit: true, canRemove: true, reactions: true, typing };
  }

  /**
   * Shows an XMPP user's typing as their puppet's, kept up while it lasts (see {@link TypingOut}), and only where
   * the puppet already is a member: no puppet is made, and none joins a channel, just to type. In a direct channel,
   * only the puppet that is in it types.
   */
  async sendTyping(d: TypingDelivery): Promise<void> {
    const direct = this.directs?.get(d.targetChannel);
    const userId = direct
      ? (this.opts.puppets?.existingUserId(d.event.sender) === direct.puppetId ? direct.puppetId : undefined)
      : this.opts.puppets?.existingUserId(d.event.sender, d.targetChannel);
    if (!userId) return;
    await this.typingOut.set(userId, d.targetChannel, d.event.active);
  }

  /**
   * Gives the bot's posts that carry the bridged message the edit's text: each post is patched with the piece of
   * the new text at its place; a text that now needs more posts gets them, one that needs fewer deletes the rest.
   */
  async sendEdit(d: EditDelivery): Promise<void> {
    // Changed by whoever posted it: a puppet's post by the puppet, the bot's by the bot.
    const voice = await this.voiceOfPart(d.targetMessage.parts[0]?.sender);
    const drafts = renderPosts(d.event, d.source, voice.display);
    // On Mattermost every id of a bridged message is one of its posts, in order (those an edit added, too).
    const postIds = d.targetMessage.ids;
    for (const change of postChanges(postIds, drafts)) {
      if (change.kind === "delete") {
        await this.deletePost(change.postId, voice.client);
        continue;
      }
      if (change.kind === "patch") {
        const { postId, draft } = change;
        const patched = await call(
          `edit post ${postId}`,
          () => voice.client.patchPost({ id: postId, message: draft.message }),
        ).then(() => true, (err) => {
          // A later piece that an earlier, shorter edit deleted (Mattermost answers 403 for a deleted post) is
          // posted anew below. The first post is the message itself: gone, it stays gone.
          if (postId !== postIds[0] && statusOf(err) === 403) return false;
          throw err;
        });
        if (patched) continue;
      }
      const piece = change.kind === "create" ? change.piece : postIds.indexOf(change.postId);
      const post = await this.createPiece(voice.client, d.targetChannel, change.draft, d.deliveryId, piece);
      // Recorded as another post of the message, so that a later edit or deletion reaches it too.
      await this.ctx.addMessageAlias(d.targetChannel, postIds[0], post.id);
    }
  }

  /**
   * An XMPP user joined or left a mapped room: with puppets, theirs joins or leaves the channel (made when it is the
   * user's first appearance). Without puppets there is no one to move.
   */
  async sendMembership(d: MembershipDelivery): Promise<void> {
    await this.opts.puppets?.setMembership(d.event.sender, d.targetChannel, d.event.present);
  }

  /** Deletes every post that carries the bridged message; one already gone counts as deleted. */
  async sendRemove(d: RemoveDelivery): Promise<void> {
    const { client } = await this.voiceOfPart(d.targetMessage.parts[0]?.sender);
    for (const postId of d.targetMessage.ids) await this.deletePost(postId, client);
  }

  private async deletePost(postId: string, client: Client4): Promise<void> {
    await call(`delete post ${postId}`, () => client.deletePost(postId)).catch((err) => {
      if (!isGone(err)) throw err;
    });
  }

  /**
   * With puppets, makes the sender's puppet's reactions on the first post of the bridged message exactly the
   * sender's set. Without, makes the bot's reactions the union of every XMPP sender's set (`shared`): the bot reacts
   * for all of them, so one withdrawing an emoji another still has keeps it.
   */
  async sendReactions(d: ReactionsDelivery): Promise<void> {
    const postId = d.targetMessage.parts.find((p) => p.postId)?.postId ?? d.targetMessage.ids[0];
    const voice = await this.voiceFor(d.event.sender, d.targetChannel);
    if (voice.part.kind === "puppet") {
      await applyReactionSet(voice.client, postId, voice.part.id, d.event.emojis);
    } else await applyReactionSet(this.client, postId, this.botId, d.shared);
  }

  async send(dm: DirectionalMessage): Promise<SentRefs> {
    const direct = this.directs?.get(dm.targetChannel);
    if (direct) await this.checkAddressee(direct.userId);
    return await this.sendAs(dm, await this.voiceFor(dm.message.sender, dm.targetChannel));
  }

  /** Posts `dm` as `voice` (the author's puppet, or the bot). */
  private async sendAs(dm: DirectionalMessage, voice: Voice): Promise<SentRefs> {
    // A reply goes into its parent's thread (Mattermost has one level: the parent's root).
    const rootId = dm.parent ? rootIdFor(dm.parent) : undefined;
    if (voice.part.kind === "puppet") {
      // The post ends the author's typing: clients drop the indicator at it, and it must not be published again.
      void this.typingOut.set(voice.part.id, dm.targetChannel, false);
      // A status that came before the puppet was made is given to it now (its post made it online meanwhile).
      const waiting = this.waitingStatuses.get(identityOf(dm.message.sender));
      if (waiting) {
        this.sendStatus(waiting).catch((err) =>
          log.debug("Could not set a puppet's status: {error}", { error: errorMessage(err) })
        );
      }
    }
    const files = dm.message.attachments?.length ? await this.uploadFiles(dm, voice.files) : undefined;
    const message = files?.notices.length
      ? { ...dm.message, text: [dm.message.text, ...files.notices].filter((t) => t.trim() !== "").join("\n") }
      : dm.message;
    const drafts = renderPosts(message, dm.source, voice.display);
    // A reply whose parent never got here stands alone after a quote of it (a blank line ends a Markdown quote),
    // when the quote fits in the first post.
    const quote = standaloneQuote(dm);
    if (quote && runeLength(quote + drafts[0].message) < MAX_POST_RUNES) {
      drafts[0].message = `${quote}\n${drafts[0].message}`;
    }
    const done = this.progress.get(dm) ?? [];
    this.progress.set(dm, done);
    for (let piece = done.length; piece < drafts.length; piece++) {
      let post;
      try {
        post = await this.createPiece(voice.client, dm.targetChannel, drafts[piece], dm.deliveryId, piece, {
          ...(rootId ? { root_id: rootId } : {}),
          // The files go with the first post: the text that comes with them.
          ...(piece === 0 && files?.fileIds.length ? { file_ids: files.fileIds } : {}),
        });
      } catch (err) {
        // The root went away (deleted) since the parent was recorded: the reply stands alone, quoting its parent.
        if (rootId && piece === 0 && isRootRefused(err)) {
          log.info("Mattermost refused the thread of a reply in {channel}: posted on its own", {
            channel: dm.targetChannel,
          });
          return this.sendAs({ ...dm, parent: undefined }, voice);
        }
        // The puppet's token no longer works (revoked, or the puppet deactivated by an admin): the bot posts it,
        // with files uploaded again as the bot (a post keeps only its author's files).
        if (voice.part.kind === "puppet" && done.length === 0 && statusOf(err) === 401) {
          log.warn("Mattermost refused the token of puppet {userId}; the bot posts for {sender}", {
            userId: voice.part.id,
            sender: dm.message.sender.name,
          });
          this.opts.puppets?.tokenRefused(voice.part.id);
          this.uploads.delete(dm);
          return this.sendAs(dm, this.botVoice());
        }
        throw withRefusalNotice(err);
      }
      done.push(post.id);
    }
    const thread = rootId ? { threadRoot: rootId, replyTo: rootId } : {};
    return {
      ids: [...done],
      parts: done.map((postId) => ({ postId, sender: voice.part, ...thread })),
    };
  }

  /**
   * Who posts a message of `sender` (of another network) in `channel`: their puppet when puppets are on and can
   * speak (made a member of the channel first), else the bot.
   */
  private async voiceFor(sender: Sender, channel: string): Promise<Voice> {
    const puppet = sender.network === this.network
      ? undefined
      : await this.opts.puppets?.puppetFor(sender, channel)
        .catch((err) => {
          // Worth another try: the bus retries the message. Refused for good (the admin token revoked, a username
          // Mattermost will not take): the bot posts it rather than lose it.
          if (isTransient(err)) throw err;
          log.warn("Could not post as the puppet of {sender}; the bot posts for them: {error}", {
            sender: sender.name,
            error: errorMessage(err),
          });
          return undefined;
        });
    if (!puppet) return this.botVoice();
    // A puppet seen for the first time can be written to directly from now on.
    void this.directs?.listenAs(puppet.userId);
    // In the background: the post need not wait for a picture.
    void this.showPicture(sender, puppet);
    return {
      client: puppet.client,
      files: puppet.files,
      display: { ...this.opts.display, mode: "puppet" },
      part: { kind: "puppet", id: puppet.userId },
    };
  }

  /** The bot, posting for a remote user with their name shown as the display options say. */
  private botVoice(): Voice {
    return { client: this.client, files: this.files, display: this.opts.display, part: { kind: "relay" } };
  }

  /**
   * Who changes a post the id map recorded as made by `sender`: the puppet that made it (or, when its token cannot
   * be had, the admin, who may change anyone's posts), else the bot; and how its text is shown.
   */
  private async voiceOfPart(sender: PartSender | undefined): Promise<Pick<Voice, "client" | "display">> {
    if (sender?.kind === "puppet") {
      const client = await this.opts.puppets?.clientOf(sender.id);
      if (client) return { client, display: { ...this.opts.display, mode: "puppet" } };
    }
    return { client: this.client, display: this.opts.display };
  }

  /**
   * Creates piece `piece` of delivery `deliveryId` in `channel` as `draft` says, with `extra` fields (thread, files).
   * Its `pending_post_id` is the same on every retry of this piece: the server answers a repeated create within 30 s
   * with the post the first one made, so a create whose answer got lost is not posted twice.
   */
  private createPiece(
    client: Client4,
    channel: string,
    draft: PostDraft,
    deliveryId: string,
    piece: number,
    extra: { root_id?: string; file_ids?: string[] } = {},
  ): Promise<{ id: string }> {
    const body = {
      channel_id: channel,
      message: draft.message,
      type: draft.type,
      props: draft.props,
      pending_post_id: pendingPostId(this.botId, deliveryId, piece),
      ...extra,
    };
    return call(`post to channel ${channel}`, () => client.createPost(body as never));
  }

  /**
   * Copies the files of `dm` from their network to the target channel (`POST /files`), at most
   * {@link MAX_FILES_PER_POST}; a file that cannot be copied (too large for Mattermost, refused, gone) becomes a
   * notice line with its link. A transient failure is thrown, for the bus to retry: files uploaded before it are
   * kept and not uploaded again.
   */
  private async uploadFiles(
    dm: DirectionalMessage,
    uploader: MattermostFiles,
  ): Promise<{ fileIds: string[]; notices: string[] }> {
    const state = this.uploads.get(dm) ?? { fileIds: [], notices: [] };
    this.uploads.set(dm, state);
    const files = dm.message.attachments ?? [];
    const maxBytes = await uploader.maxBytes();
    for (const [i, file] of files.entries()) {
      if (i < state.fileIds.length + state.notices.length) continue;
      if (state.fileIds.length >= MAX_FILES_PER_POST) {
        state.notices.push(fileNotice(file, `a Mattermost post holds at most ${MAX_FILES_PER_POST} files`));
        continue;
      }
      try {
        state.fileIds.push(await this.copyFile(dm, file, maxBytes, uploader));
      } catch (err) {
        if (!(err instanceof FileUnavailable)) throw err;
        log.debug("Not copied: {name}", { name: file.name });
        log.warn("Could not copy a file from {source} to {channel}: {reason}; posted its link instead", {
          source: dm.source,
          channel: dm.targetChannel,
          reason: err.message,
        });
        state.notices.push(fileNotice(file, err.message));
      }
    }
    return state;
  }

  private async copyFile(
    dm: DirectionalMessage,
    file: Attachment,
    maxBytes: number,
    uploader: MattermostFiles,
  ): Promise<string> {
    const stream = await this.ctx.openFile(dm.source, file, { maxBytes });
    try {
      return await uploader.upload(dm.targetChannel, file, stream);
    } finally {
      await stream.body.cancel().catch(() => {});
    }
  }

  /** Serves the bytes of a file attached to a post, fetched with the bot's token. */
  async openFile(attachment: Attachment, opts: OpenFileOptions): Promise<FileStream> {
    try {
      return await this.files.open(attachment, opts);
    } catch (err) {
      // A file of a direct conversation, which the bot is not in: the admin may read it.
      if (!(err instanceof FileUnavailable) || err.problem !== "refused" || !this.directs) throw err;
      return await this.directs.reader().files.open(attachment, opts);
    }
  }

  /**
   * Tells the author of a post that it will never reach the other network: an ephemeral post, or a reply in its
   * thread when the bot may not post ephemeral messages (see notices.ts).
   */
  async notifyUndeliverable(message: BridgeMessage, reason: string): Promise<void> {
    const subject = { channel: message.portal.channel, postId: message.ids[0], author: message.sender };
    await this.notices.send(subject, `Your message could not be bridged: ${reason}.`);
  }

  private connectWebsocket(username: string): Promise<void> {
    let helloed!: () => void;
    const firstHello = new Promise<void>((resolve) => helloed = resolve);
    const url = this.opts.url.replace(/^http/, "ws") + "/api/v4/websocket";
    /** Why the last attempt to open the websocket failed, for the start failure and /healthz. */
    let lastError: string | undefined;
    const socket = new MattermostSocket({
      url,
      token: this.opts.token,
      reconnect: this.opts.reconnect,
      events: {
        onEvent: (event, data, broadcast) => {
          if (event === "hello") {
            lastError = undefined;
            this.setState(true, `connected as ${username}`);
            helloed();
          } else if (event === "user_updated") {
            this.onUserUpdated(data);
          } else {
            this.onEvent(event, data, broadcast);
          }
        },
        // No hello follows a lossless resume, and a resume replays only what the server still had queued: mark
        // the connection up here, and fetch the gap over REST every time.
        onReconnect: () => {
          lastError = undefined;
          this.setState(true, `connected as ${username}`);
          this.enqueue("catch-up", () => this.catchUp());
        },
        onClose: (failures) => {
          const why = lastError ? `: ${lastError}` : "";
          this.setState(false, `websocket closed (${failures} failed attempt(s))${why}; reconnecting`);
        },
        onError: (err) => {
          lastError = describeFailure(explainUnreachable(err, url));
        },
      },
    });
    this.socket = socket;
    socket.open();
    return deadline(firstHello, this.opts.helloTimeoutMs ?? 15_000, () => {
      socket.close();
      const why = lastError ??
        "the proxy in front of Mattermost must pass websocket upgrades on /api/v4/websocket";
      return new BridgeError(`no websocket hello from ${url}: ${why}`, { kind: "configuration" });
    });
  }

  /** A channel's event, heard by the bot's websocket or (a direct channel's) by a puppet's. */
  private onEvent(event: string, data: Record<string, unknown>, broadcast?: Record<string, unknown>): void {
    if (event === "posted") {
      this.onPosted(data);
    } else if (event === "post_edited" || event === "post_deleted") {
      this.onPostChanged(event, data);
    } else if (event === "reaction_added" || event === "reaction_removed") {
      this.onReaction(event, data, broadcast);
    } else if (event === "typing") {
      this.onTyping(data, broadcast);
    }
  }

  /** The client that reads `channel`: the bot's, or for a puppet's direct channel (the bot is not in) the admin's. */
  private readerOf(channel: string): Client4 {
    return this.directs?.has(channel) ? this.directs.reader().client : this.client;
  }

  /**
   * Finds the direct channels among the mapped ones (their puppets then listen) and starts reading each from where
   * it was read before the stop; then lets every other active puppet listen, for DMs opened on Mattermost.
   */
  private async restoreDirects(directs: DirectChannels): Promise<void> {
    for (const channel of await this.ctx.mappedChannels().catch((): string[] => [])) {
      if (this.stopped) return;
      const direct = await directs.find(channel).catch((err) => {
        log.warn("Could not tell whether {channel} is a direct channel: {error}", {
          channel,
          error: errorMessage(err),
        });
        return undefined;
      });
      if (direct) await this.seedCursor(channel);
    }
    await directs.listenAll();
  }

  /**
   * The DM channel between the Mattermost user `user` (a user id, or `@username` when the other network knows only
   * the name) and the puppet of `remote`; its posts are read from now on.
   */
  async openDirect(input: { user: string; remote: Sender }): Promise<string> {
    if (!this.directs) {
      throw new BridgeError("direct messages need BRIDGE_MM_PUPPETS=true", {
        notice: "this bridge does not carry direct messages to Mattermost users",
      });
    }
    const channel = await this.directs.open(input.user, input.remote);
    await this.seedCursor(channel);
    return channel;
  }

  /** Throws a permanent error, with a notice for the author, when the user a DM goes to is deactivated. */
  private async checkAddressee(userId: string): Promise<void> {
    const user = await this.user(userId);
    if (user?.delete_at) {
      throw new BridgeError(`Mattermost user ${user.username} is deactivated`, {
        notice: `${user.username} is deactivated on Mattermost`,
      });
    }
  }

  /** Runs `step` after everything queued before it; a failed step is logged and never stops the ones after it. */
  private enqueue(what: string, step: () => Promise<void>): void {
    this.inbound = this.inbound.then(step).catch((err) => {
      log.error("Handling Mattermost {what} failed: {error}", { what, error: errorMessage(err) });
    });
  }

  private onPosted(data: unknown): void {
    const post = parsePostedEvent(data);
    if (!post) {
      log.warn("Ignored a malformed posted event");
      return;
    }
    // Clients take the post as the end of its author's typing: no end needs to follow it.
    this.typingIn.posted(post.channel_id, post.user_id);
    this.enqueue("post", () => this.handlePost(post));
  }

  /**
   * Reads the statuses of the users the bridge handed something of every `intervalMs`, and hands their changes to
   * the core (`status_change` reaches only the user's own connections).
   */
  private startStatusPoller(intervalMs: number): void {
    this.statusPoller = new StatusPoller({
      intervalMs,
      forgetAfterMs: this.opts.statusWatchMs,
      read: (ids) => readStatuses(this.client, ids),
      onChange: (userId, status) =>
        this.enqueue(
          "status",
          async () => this.ctx.statusChanged({ sender: await this.senderOf(userId), status }),
        ),
      onError: (err) => log.warn("Could not read Mattermost statuses: {error}", { error: errorMessage(err) }),
    });
    this.statusPoller.start();
  }

  /**
   * Gives an XMPP user's puppet their status (`PUT /users/{id}/status`, as the puppet, or as the admin when its
   * token cannot be had: api4/status.go allows the user themself or `edit_other_users`). A user without a puppet is
   * not given one for it; an unchanged status is not set again.
   */
  async sendStatus(change: StatusChange): Promise<void> {
    if (!this.opts.puppets) return;
    const userId = this.opts.puppets.existingUserId(change.sender);
    const identity = identityOf(change.sender);
    if (!userId) {
      this.waitingStatuses.delete(identity);
      this.waitingStatuses.set(identity, change);
      // Bounded: the oldest is forgotten (that user's puppet then shows the status its first post gives it).
      if (this.waitingStatuses.size > 10_000) {
        this.waitingStatuses.delete(this.waitingStatuses.keys().next().value!);
      }
      return;
    }
    this.waitingStatuses.delete(identity);
    if (this.puppetStatuses.get(userId) === change.status) return;
    const client = await this.opts.puppets?.clientOf(userId);
    if (!client) return;
    await call(
      `set the status of puppet ${userId}`,
      () => client.updateStatus({ user_id: userId, status: change.status } as never),
    );
    this.puppetStatuses.set(userId, change.status);
  }

  /** A `typing` event: `{user_id, parent_id}`, the channel in the broadcast. */
  private onTyping(data: Record<string, unknown>, broadcast?: Record<string, unknown>): void {
    const userId = data.user_id;
    const channelId = broadcast?.channel_id;
    if (typeof userId !== "string" || typeof channelId !== "string" || channelId === "") {
      log.warn("Ignored a malformed typing event");
      return;
    }
    // The bot types for no one, and a puppet's typing is an XMPP user's, shown by the bridge: neither goes back.
    if (userId === this.botId || this.isPuppet(userId)) return;
    this.typingIn.typed(channelId, userId, typeof data.parent_id === "string" ? data.parent_id : "");
  }

  /** Hands a start or end of typing on; unmapped channels are left to the core to count. */
  private async relayTyping(channelId: string, userId: string, active: boolean): Promise<void> {
    this.statusPoller?.watch(userId);
    this.ctx.receive({
      kind: "typing",
      eventId: `typing:${channelId}:${userId}:${Date.now()}:${++this.typingCount}`,
      portal: { network: this.network, channel: channelId },
      sender: await this.senderOf(userId),
      timestamp: Date.now(),
      active,
    });
  }

  /** An edited or deleted post: handed on in order with new posts, so that an edit follows its post. */
  private onPostChanged(event: "post_edited" | "post_deleted", data: unknown): void {
    const post = parsePostedEvent(data);
    if (!post) {
      log.warn("Ignored a malformed {event} event", { event });
      return;
    }
    this.enqueue(event, () => this.relayChange(event, post));
  }

  /**
   * Hands on an edit or deletion of `post`, received live or found by a catch-up: the same change has the same
   * event id either way (edits.ts), so the core drops the second.
   */
  private async relayChange(event: PostChangeEvent, post: Post): Promise<void> {
    // The bot's and the puppets' own patches and deletions (what the other side asked for) come back as these events.
    if (this.echoGuards.filter && (!isRelayedChange(post, this.botId) || this.isPuppet(post.user_id))) return;
    const sender = await this.senderOf(post.user_id);
    const change = event === "post_edited" ? editOf(post, sender) : removalOf(post, sender);
    if (!change) return;
    log.debug("Received a {kind} of post {postId} in {channel}", {
      kind: change.kind,
      postId: post.id,
      channel: post.channel_id,
    });
    this.ctx.receive(change);
  }

  /** The author of a post as the core names them. */
  private async senderOf(userId: string): Promise<Sender> {
    const user = await this.user(userId);
    return user ? this.senderFrom(user) : { network: this.network, id: userId, name: userId };
  }

  /**
   * A user as the core names them: their names, and their picture when they set one (`last_picture_update`), else
   * null (the default picture: none of their own).
   */
  private senderFrom(user: User): Sender {
    return {
      network: this.network,
      id: user.id,
      name: user.username,
      displayName: displayName(user),
      avatar: avatarOf(user) ?? null,
    };
  }

  /**
   * An XMPP user's nick or picture changed: their puppet is renamed (puppets.ts `puppetFor` does it when the nick
   * differs) and shows the new picture.
   */
  async sendProfile(sender: Sender): Promise<void> {
    if (sender.network === this.network || !this.opts.puppets) return;
    const puppet = await this.opts.puppets.puppetFor(sender);
    if (puppet) await this.showPicture(sender, puppet);
  }

  /**
   * Makes `puppet` show the picture `sender.avatar` names, when its version is new to it: fetched from the sender's
   * network (at most {@link MAX_AVATAR_BYTES}; a larger one is skipped, logged) and uploaded as the puppet's own
   * picture; a sender with none (`null`) puts the puppet back on the default picture. One change at a time per
   * puppet. Never throws.
   */
  private showPicture(sender: Sender, puppet: Puppet): Promise<void> {
    const version = pictureVersion(sender);
    if (version === undefined) return Promise.resolve();
    let state = this.puppetPictures.get(puppet.userId);
    if (!state) {
      this.puppetPictures.set(puppet.userId, state = { latest: sender, syncing: Promise.resolve() });
    }
    if (state.shown === version) return state.syncing;
    const picture = state;
    // Changes that come faster than uploads are coalesced: each step shows the newest picture, the later ones
    // then find it shown (a flood of avatar changes costs one upload at a time, not one each).
    picture.latest = sender;
    picture.syncing = picture.syncing.then(async () => {
      const newest = picture.latest;
      const wanted = pictureVersion(newest);
      if (wanted === undefined) return;
      const identity = identityOf(newest);
      picture.shown ??=
        await this.opts.avatarStore?.getAvatarShown(newest.network, identity, puppet.userId) ?? "";
      if (picture.shown === wanted) return;
      const image = wanted === "" ? undefined : await this.pictureOf(newest);
      if (wanted === "") {
        await resetPicture(puppet.client, puppet.userId);
        log.info("Puppet {username} is back on the default picture: its XMPP user has none", {
          username: puppet.username,
        });
      } else if (image) {
        await uploadPicture(puppet.client, puppet.userId, image);
        log.info("Puppet {username} shows the new picture of its XMPP user", { username: puppet.username });
      }
      picture.shown = wanted;
      await this.opts.avatarStore?.setAvatarShown(newest.network, identity, puppet.userId, wanted);
    }).catch((err) =>
      log.warn("Puppet {username} could not take on its XMPP user's picture: {error}", {
        username: puppet.username,
        error: errorMessage(err),
      })
    );
    return picture.syncing;
  }

  /** The picture `sender.avatar` names, from their network; undefined, logged, when it cannot be had for good. */
  private async pictureOf(sender: Sender): Promise<Image | undefined> {
    try {
      const stream = await this.ctx.openAvatar(sender.network, sender, { maxBytes: MAX_AVATAR_BYTES });
      const bytes = await readAtMost(stream.body, MAX_AVATAR_BYTES);
      const type = imageType(bytes);
      if (type) return { bytes, type };
      log.info("The picture of {name} is no PNG, JPEG, GIF or WebP; not shown", { name: sender.name });
    } catch (err) {
      if (!(err instanceof FileUnavailable)) throw err;
      log.info("The picture of {name} is not shown: {reason}", { name: sender.name, reason: err.message });
    }
    return undefined;
  }

  /** Serves the picture of a user this connector named in a sender (`avatar.source` is the user id). */
  openAvatar(sender: Sender, opts: OpenFileOptions): Promise<FileStream> {
    return this.avatars.open(sender.avatar?.source ?? sender.id, opts);
  }

  private onReaction(
    event: string,
    data: Record<string, unknown>,
    broadcast?: Record<string, unknown>,
  ): void {
    const change = parseReactionEvent(event, data, broadcast);
    if (!change) {
      log.warn("Ignored a malformed {event} event", { event });
      return;
    }
    // The bot's and the puppets' reactions are those made for XMPP users: their echo must not go back.
    if (change.userId === this.botId || this.isPuppet(change.userId)) return;
    const key = `${change.postId}:${change.userId}`;
    this.reactionsQueued.set(key, (this.reactionsQueued.get(key) ?? 0) + 1);
    this.enqueue("reaction", () => this.relayReactions(change, key));
  }

  /** Hands on the user's complete current set on the post, read once the last of their queued changes is due. */
  private async relayReactions(change: ReactionChange, key: string): Promise<void> {
    const left = (this.reactionsQueued.get(key) ?? 1) - 1;
    if (left > 0) {
      this.reactionsQueued.set(key, left);
      return;
    }
    this.reactionsQueued.delete(key);
    if (!await this.isMapped(change.channelId)) return;
    this.statusPoller?.watch(change.userId);
    const emojis = await reactionSetOf(this.readerOf(change.channelId), change.postId, change.userId);
    // Unique per change and the same when the websocket replays it.
    const eventId = [
      change.postId,
      change.userId,
      change.emojiName,
      change.added ? "added" : "removed",
      change.at,
    ]
      .join(":");
    this.ctx.receive({
      kind: "reactions",
      eventId,
      portal: { network: this.network, channel: change.channelId },
      sender: await this.senderOf(change.userId),
      targetId: change.postId,
      emojis,
      timestamp: change.at || Date.now(),
    });
  }

  private onUserUpdated(data: Record<string, unknown>): void {
    const user = data.user;
    if (!isRecord(user) || typeof user.id !== "string") {
      log.warn("Ignored a malformed user_updated event");
      return;
    }
    if (this.isPuppet(user.id)) {
      // It stands for an XMPP user, who has nothing to retire on XMPP; deactivated by an admin, the bot speaks for
      // them meanwhile.
      this.opts.puppets?.userUpdated(user.id, typeof user.delete_at === "number" ? user.delete_at : 0);
      return;
    }
    if (typeof user.delete_at === "number" && user.delete_at > 0) {
      // Looked up again when next needed: a deactivated user is written to no more.
      this.users.delete(user.id);
      log.info("Mattermost user {userId} was deactivated", { userId: user.id });
      this.ctx.userDeactivated(user.id);
      return;
    }
    // The bot and the puppets are not users of this network to show elsewhere (a puppet's new picture is ours).
    if (typeof user.username !== "string" || user.id === this.botId || this.isPuppet(user.id)) return;
    const updated = user as unknown as User;
    const before = this.users.get(user.id)?.user;
    // The event carries the user as they are now: it also refreshes what posts' senders are read from.
    this.users.set(user.id, { user: updated, at: Date.now() });
    const was = before ? this.senderFrom(before) : undefined;
    const now = this.senderFrom(updated);
    // Any other change (a status, a setting) is no news to the other network.
    if (
      was && was.name === now.name && was.displayName === now.displayName &&
      was.avatar?.version === now.avatar?.version
    ) return;
    log.debug("Mattermost user {userId} changed their name or picture", { userId: user.id });
    this.ctx.profileChanged(now);
  }

  /**
   * Hands one post on. `resumed`: fetched for a channel whose posts from while the bridge was down are being
   * caught up; `caughtUp`: fetched by any catch-up, so bridged late.
   */
  private async handlePost(post: Post, opts: { resumed?: boolean; caughtUp?: boolean } = {}): Promise<void> {
    const { resumed = false, caughtUp = false } = opts;
    if (!resumed) {
      // Mapped but not joined yet: the join reads on from the stored position (or starts at the newest post), which
      // covers this post; handing it on now would put it before older posts made while the bridge was down. (An
      // unmapped channel's posts go on, for the core to count.)
      if (!this.cursors.get(post.channel_id) && await this.isMapped(post.channel_id)) return;
      const held = this.resuming.get(post.channel_id);
      if (held) {
        held.push(post);
        return;
      }
    }
    try {
      await this.relayPost(post, caughtUp);
    } finally {
      // Recorded as read once handed to the core.
      if (post.create_at !== undefined) this.ctx.saveCursor(post.channel_id, post.create_at);
    }
  }

  /** Whether `userId` is a puppet of an XMPP user: what it does, the bridge did. */
  private isPuppet(userId: string): boolean {
    return this.opts.puppets?.isPuppet(userId) ?? false;
  }

  /** Runs a command: the puppets' own ones here, the bridge's in the core. */
  private async runCommand(
    input: { channel: string; userId: string; isAdmin: boolean; text: string },
  ): Promise<string> {
    const puppets = this.opts.puppets;
    if (!puppets || !input.isAdmin) return await this.ctx.runCommand(input);
    return await runPuppetCommand(puppets, input.text, {
      mappedChannels: () => this.ctx.mappedChannels(),
      core: () => this.ctx.runCommand(input),
    });
  }

  private async isMapped(channel: string): Promise<boolean> {
    return (await this.ctx.mappedChannels().catch((): string[] => [])).includes(channel);
  }

  private async relayPost(post: Post, caughtUp: boolean): Promise<void> {
    // A direct channel a Mattermost user just opened with a puppet is read from its first post on (its mapping,
    // made by the core for this post, then finds it read, not waiting for a join that never comes to a DM).
    if (
      this.directs?.has(post.channel_id) && !this.cursors.get(post.channel_id) && post.create_at !== undefined
    ) {
      this.cursors.seed(post.channel_id, post.create_at - 1);
    }
    this.cursors.advance(post.channel_id, post.create_at);
    const bridgeable = this.echoGuards.filter
      ? isBridgeable(post, this.botId) && !this.isPuppet(post.user_id)
      : isBridgeable({ ...post, props: {} }, "");
    if (!bridgeable) return;
    // A post in a direct conversation goes to the user the puppet stands for.
    const direct = this.directs?.has(post.channel_id) ? this.directs.peerOf(post.channel_id) : undefined;
    if (this.directs?.has(post.channel_id) && !direct) return await this.refuseDirect(post);
    const sender = await this.senderOf(post.user_id);
    // Their ghost or puppet appears on the other side with this post: its status is worth following from now on.
    this.statusPoller?.watch(post.user_id);
    const files = this.directs?.has(post.channel_id) ? this.directs.reader().files : this.files;
    const attachments = post.file_ids?.length ? await files.attachmentsOf(post) : [];
    // Only files, none of which could be read (logged): nothing is left to bridge.
    if (attachments.length === 0 && postText(post).text.trim() === "") return;
    log.debug("Received post {postId} in {channel}: {message}", {
      postId: post.id,
      channel: post.channel_id,
      message: post.message,
    });
    const replyTo = await this.replyOf(post);
    this.ctx.receive({
      kind: "message",
      ...(replyTo ? { replyTo } : {}),
      eventId: post.id,
      portal: { network: this.network, channel: post.channel_id },
      ids: [post.id],
      sender,
      ...postText(post),
      timestamp: post.create_at ?? Date.now(),
      caughtUp: caughtUp || undefined,
      ...(attachments.length ? { attachments } : {}),
      deliveryId: this.echoGuards.deliveryId ? deliveryIdOf(post.pending_post_id, this.botId) : undefined,
      ...(direct ? { direct } : {}),
    });
  }

  /**
   * Tells the author of a post in a puppet's direct channel that it cannot reach the user the puppet stands for:
   * their address is not known (a room that hides real JIDs names them only there).
   */
  private async refuseDirect(post: Post): Promise<void> {
    log.info("A direct message in {channel} has nowhere to go: its puppet stands for no known address", {
      channel: post.channel_id,
    });
    const author = await this.senderOf(post.user_id);
    await this.notices.send(
      { channel: post.channel_id, postId: post.id, author },
      "Your message could not be bridged: the bridge does not know this XMPP user's address, only their name in a " +
        "room, so it cannot write to them directly.",
    ).catch((err) => log.warn("Could not answer a direct message: {error}", { error: errorMessage(err) }));
  }

  /**
   * Fetches what every mapped channel got since its cursor (minus the margin) and handles it in order. A failure
   * is retried with backoff, on the inbound queue, so live posts keep flowing meanwhile.
   */
  private async catchUp(): Promise<void> {
    clearTimeout(this.catchUpTimer);
    this.catchUpTimer = undefined;
    if (this.stopped) return;
    try {
      const failed: string[] = [];
      for (const channel of await this.ctx.mappedChannels()) {
        try {
          await this.catchUpChannel(channel);
        } catch (err) {
          failed.push(channel);
          log.warn("Catch-up of {channel} failed: {error}", { channel, error: errorMessage(err) });
        }
      }
      if (failed.length > 0) throw new BridgeError(`catch-up failed for ${failed.join(", ")}`);
      this.catchUpBackoff.reset();
    } catch (err) {
      if (this.stopped) return; // stop() is waiting for this catch-up: no timer may outlive it
      const waitMs = this.catchUpBackoff.next();
      log.warn("Catch-up after a websocket gap failed; retrying in {waitMs} ms: {error}", {
        waitMs,
        error: errorMessage(err),
      });
      this.catchUpTimer = setTimeout(() => this.enqueue("catch-up", () => this.catchUp()), waitMs);
    }
  }

  /**
   * Bridges what `channel` got while the bridge was down: posts after `stored` (less the margin) up to `newest`,
   * those within the maximum age (older ones are counted and skipped), and the edits and deletions of the posts
   * handed on before (`changeOf`) within that age. A failure is retried with backoff.
   */
  private async resume(
    channel: string,
    stored: number,
    newest: number,
    backoff = new Backoff(this.catchUpRetry()),
  ): Promise<void> {
    if (this.stopped) return;
    const since = this.sinceBefore(stored);
    const cutoff = newest - (this.opts.catchUpMaxAgeMs ?? 24 * 3_600_000);
    let answer: Post[];
    try {
      answer = await postsSince(this.readerOf(channel), channel, since);
    } catch (err) {
      if (this.stopped) return; // stop() is waiting for this step: no timer may outlive it
      const waitMs = backoff.next();
      log.warn(
        "Could not fetch what {channel} got while the bridge was down; retrying in {waitMs} ms: {error}",
        { channel, waitMs, error: errorMessage(err) },
      );
      const timer = setTimeout(() => {
        this.resumeTimers.delete(timer);
        this.enqueue("catch-up", () => this.resume(channel, stored, newest, backoff));
      }, waitMs);
      this.resumeTimers.add(timer);
      return;
    }
    const posts = answer.filter((p) =>
      p.create_at !== undefined && p.create_at > since && p.create_at <= newest
    );
    const old = posts.filter((p) => p.create_at! <= cutoff && p.create_at! > stored);
    if (old.length > 0) {
      log.warn(
        "Skipped {count} post(s) in {channel} made while the bridge was down and older than " +
          "BRIDGE_CATCHUP_MAX_AGE ({maxAgeMs} ms before the newest)",
        { count: old.length, channel, maxAgeMs: newest - cutoff },
      );
    }
    const fresh = posts.filter((p) => p.create_at! > cutoff);
    // Posts already handed on before the stop that were edited or deleted since, within the maximum age.
    const changes = new Map<Post, PostChangeEvent>();
    for (const post of answer) {
      const change = changeOf(post, since, stored);
      if (change && changedAt(post, change) > cutoff) changes.set(post, change);
    }
    const count = fresh.filter((p) => p.create_at! > stored).length;
    if (count + changes.size > 0) {
      log.info(
        "Caught up {count} post(s) and {changes} edit(s) and deletion(s) in {channel} made while the bridge was down",
        { count, changes: changes.size, channel },
      );
    }
    await this.handleCaughtUp(answer, fresh, changes, { resumed: true, caughtUp: true });
    const held = this.resuming.get(channel) ?? [];
    this.resuming.delete(channel);
    this.ctx.saveCursor(channel, newest);
    // Live posts that came meanwhile; those the fetch had already handed on are dropped by the core as duplicates.
    for (const post of held) await this.handlePost(post);
  }

  /**
   * Where a catch-up from `position` asks from: the margin earlier (`create_at` is neither unique nor committed in
   * order), and never below 1, since the server treats `since <= 0` as "no since" and lists pages instead.
   */
  private sinceBefore(position: number): number {
    return Math.max(1, position - (this.opts.catchUpMarginMs ?? 60_000));
  }

  /** The backoff of both catch-ups, the one after a websocket gap and the one of posts made while down. */
  private catchUpRetry(): { initialMs: number; maxMs: number } {
    return this.opts.catchUpRetry ?? { initialMs: 1_000, maxMs: 60_000 };
  }

  private async catchUpChannel(channel: string): Promise<void> {
    const cursor = this.cursors.get(channel);
    if (!cursor) return; // not joined yet: its join seeds the cursor
    const since = this.sinceBefore(cursor.seen);
    const after = Math.max(since, cursor.floor);
    const answer = await postsSince(this.readerOf(channel), channel, since);
    const posts = answer.filter((p) => p.create_at !== undefined && p.create_at > after);
    // Posts handed on before the gap (live, or by an earlier run) that were edited or deleted during it.
    const changes = new Map<Post, PostChangeEvent>();
    for (const post of answer) {
      const change = changeOf(post, since, cursor.seen);
      if (change) changes.set(post, change);
    }
    if (posts.length + changes.size > 0) {
      log.info(
        "Caught up {count} post(s) and {changes} edit(s) and deletion(s) in {channel} after a websocket gap",
        { count: posts.length, changes: changes.size, channel },
      );
    }
    await this.handleCaughtUp(answer, posts, changes, { caughtUp: true });
  }

  /**
   * Hands on what a catch-up found, in the order of `answer` (oldest post first): each post of `posts`, and right
   * after a post the change `changes` has for it, so that an edit follows its post.
   */
  private async handleCaughtUp(
    answer: Post[],
    posts: Post[],
    changes: ReadonlyMap<Post, PostChangeEvent>,
    opts: { resumed?: boolean; caughtUp?: boolean },
  ): Promise<void> {
    const handOn = new Set(posts);
    for (const post of answer) {
      if (handOn.has(post)) await this.handlePost(post, opts);
      const change = changes.get(post);
      if (change) await this.relayChange(change, post);
    }
  }

  /**
   * What a thread reply answers: its root, with the root's text and author for a network where the root never
   * arrived (fetched, and kept a while: a thread's replies share it). Without the root's text when it cannot be read.
   */
  private async replyOf(post: Post): Promise<ReplyTo | undefined> {
    if (!post.root_id) return undefined;
    const rootId = post.root_id;
    let root = this.roots.get(rootId);
    if (!root || Date.now() - root.at > 10 * 60_000) {
      try {
        const fetched = parsePost(
          await call(`read post ${rootId}`, () => this.readerOf(post.channel_id).getPost(rootId)),
        );
        const author = fetched
          ? overriddenName(fetched) ?? (await this.user(fetched.user_id))?.username
          : undefined;
        root = { post: fetched ?? undefined, author, at: Date.now() };
        this.roots.set(rootId, root);
        if (this.roots.size > 1_000) this.roots.delete(this.roots.keys().next().value!);
      } catch (err) {
        log.warn("Could not read the root {rootId} of a reply: {error}", {
          rootId,
          error: errorMessage(err),
        });
      }
    }
    return replyOfPost(post, root?.post, () => root?.author);
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

/**
 * The `pending_post_id` of one piece of a delivery: the server takes any string and deduplicates on the exact value,
 * whoever sends it, so the bot's id in front keeps it apart from other clients' (the webapp sends `user id:ms`).
 */
function pendingPostId(botId: string, deliveryId: string, piece: number): string {
  return `${botId}:${deliveryId}:${piece}`;
}

/** The delivery id in a `pending_post_id` the bot made with {@link pendingPostId}, if it is one. */
function deliveryIdOf(pending: string | undefined, botId: string): string | undefined {
  const [user, deliveryId, piece] = pending?.split(":") ?? [];
  return user === botId && deliveryId && piece !== undefined ? deliveryId : undefined;
}

function displayName(user: User): string {
  const full = [user.first_name, user.last_name].filter(Boolean).join(" ");
  return user.nickname || full || user.username;
}
