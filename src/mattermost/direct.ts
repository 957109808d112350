/**
 * Direct messages on Mattermost: the DM channel (type `D`) between a Mattermost user and the puppet of a user of the
 * other network, opened with `POST /channels/direct` by the puppet.
 *
 * The bot is a member of no DM channel, and channel events reach members only (the server's websocket hub checks),
 * so the bot's websocket never sees a DM: each active puppet listens on a websocket of its own, authenticated with
 * its token, and only the events of its direct channels are handed on (its rooms are the bot's to hear). Every active
 * puppet listens, not only those with a DM already: a Mattermost user may open a DM with any of them. What the bot
 * cannot read there (a catch-up, reactions, files) is read with the admin's token.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { DirectPeer, Sender } from "../core/events.ts";
import { BridgeError, errorMessage } from "../core/errors.ts";
import { call, type Client4, statusOf } from "./api.ts";
import { parsePostedEvent } from "./post.ts";
import type { MattermostFiles } from "./files.ts";
import type { MattermostPuppets } from "./puppets.ts";
import { isRecord, MattermostSocket, type ReconnectPolicy } from "./websocket.ts";

const log = getLogger(["mmxmpp", "mattermost", "direct"]);

/** A direct channel of a puppet: who is in it. */
export interface DirectChannel {
  /** The puppet's user id. */
  puppetId: string;
  /** The Mattermost user it is with. */
  userId: string;
}

/** The events of a direct channel the connector handles, as the bot's websocket would give them. */
const RELAYED_EVENTS = new Set([
  "posted",
  "post_edited",
  "post_deleted",
  "reaction_added",
  "reaction_removed",
  // The Mattermost user typing to the puppet (the puppet's own typing never reaches its socket: the server omits
  // the typer).
  "typing",
]);

/** A Mattermost user, as far as a DM needs. */
interface User {
  id: string;
  username: string;
  delete_at?: number;
  is_bot?: boolean;
}

/** Settings of {@link DirectChannels}. */
export interface DirectChannelsOptions {
  /** `http(s)://` of the server. */
  url: string;
  puppets: MattermostPuppets;
  /** The bot's client, for looking users up. */
  bot: Client4;
  botId: string;
  reconnect?: ReconnectPolicy;
  /** An event of a direct channel (`posted`, `post_edited` …), heard by a puppet's websocket. */
  onEvent(event: string, data: Record<string, unknown>, broadcast?: Record<string, unknown>): void;
  /** A puppet's websocket is back after a gap: events may have been lost. */
  onReconnect(): void;
}

/**
 * The puppets' direct channels, and the websockets that hear them.
 *
 * @example
 * ```ts
 * const directs = new DirectChannels({ url, puppets, bot, botId, onEvent, onReconnect });
 * const channel = await directs.open("@bob", xmppSender); // the DM between bob and the sender's puppet
 * ```
 */
export class DirectChannels {
  private readonly known = new Map<string, DirectChannel>();
  private readonly sockets = new Map<string, MattermostSocket>();
  private closed = false;

  constructor(private readonly opts: DirectChannelsOptions) {}

  /** Whether `channel` is a direct channel of a puppet (one seen or opened since the start). */
  has(channel: string): boolean {
    return this.known.has(channel);
  }

  /** Who is in the direct channel `channel`, if it is one. */
  get(channel: string): DirectChannel | undefined {
    return this.known.get(channel);
  }

  /**
   * The user of the other network a post in `channel` goes to: whom the puppet stands for, when that is an address
   * there (a bare JID; a puppet known only by a room's occupant-id or nick has none). Undefined otherwise.
   */
  peerOf(channel: string): DirectPeer | undefined {
    const direct = this.known.get(channel);
    const owner = direct && this.opts.puppets.ownerOf(direct.puppetId);
    if (!owner || !/^[^@/\s]+@[^@/\s]+$/.test(owner.identity)) return undefined;
    return { network: owner.network, id: owner.identity };
  }

  /** The client and file access that read direct channels: the admin's. */
  reader(): { client: Client4; files: MattermostFiles } {
    return this.opts.puppets.adminAccess();
  }

  /**
   * The DM channel between the Mattermost user `user` (a user id, or `@username`) and the puppet of `remote`, opened
   * by the puppet (made when needed), whose websocket then listens. Throws a permanent BridgeError whose notice says
   * why to `remote` when there can be none: puppets cannot speak, no such user, a deactivated one, a puppet or the
   * bot.
   */
  async open(user: string, remote: Sender): Promise<string> {
    const { puppets } = this.opts;
    if (puppets.mode.kind !== "tokens") {
      throw new BridgeError(
        `direct messages need Mattermost puppets, which cannot post: ${puppets.mode.reason}`,
        {
          notice: "Mattermost users cannot be written to directly through this bridge right now",
        },
      );
    }
    const target = await this.lookUp(user);
    if (target.delete_at) {
      throw new BridgeError(`Mattermost user ${target.username} is deactivated`, {
        notice: `${target.username} is deactivated on Mattermost`,
      });
    }
    if (target.id === this.opts.botId || puppets.isPuppet(target.id)) {
      throw new BridgeError(`${target.username} is the bridge's own user, not a person on Mattermost`, {
        notice: `${target.username} is not a Mattermost user one can write to`,
      });
    }
    const puppet = await puppets.puppetFor(remote);
    if (!puppet) {
      throw new BridgeError("the puppet of a direct message's author cannot post", {
        notice: "Mattermost users cannot be written to directly through this bridge right now",
      });
    }
    const channel = await call(
      `open the direct channel between ${puppet.username} and ${target.username}`,
      () => puppet.client.createDirectChannel([puppet.userId, target.id]),
    );
    this.known.set(channel.id, { puppetId: puppet.userId, userId: target.id });
    this.listen(puppet.userId, puppet.client.getToken());
    return channel.id;
  }

  /**
   * Whether `channel` (a mapped channel) is a puppet's direct channel, read with the admin's token; remembered, and
   * its puppet listening, when it is.
   */
  async find(channel: string): Promise<DirectChannel | undefined> {
    const known = this.known.get(channel);
    if (known) return known;
    const found = await call(`read channel ${channel}`, () => this.reader().client.getChannel(channel))
      .catch((err) => {
        if (statusOf(err) === 404) return undefined;
        throw err;
      });
    if (found?.type !== "D") return undefined;
    const ids = found.name.split("__");
    const puppetId = ids.find((id) => this.opts.puppets.isPuppet(id));
    const userId = ids.find((id) => id !== puppetId);
    if (!puppetId || !userId) return undefined;
    const direct = { puppetId, userId };
    this.known.set(channel, direct);
    await this.listenAs(puppetId);
    return direct;
  }

  /** Lets every active puppet listen, so that a Mattermost user can open a DM with any of them. */
  async listenAll(): Promise<void> {
    for (const userId of this.opts.puppets.activeUserIds()) await this.listenAs(userId);
  }

  /** Lets the puppet `userId` listen (once), opening its token. A failure is logged: it listens once used again. */
  async listenAs(userId: string): Promise<void> {
    if (this.sockets.has(userId) || this.closed) return;
    try {
      const puppet = await this.opts.puppets.puppetOf(userId);
      if (puppet) this.listen(userId, puppet.client.getToken());
    } catch (err) {
      log.warn("Puppet {userId} cannot listen for direct messages: {error}", {
        userId,
        error: errorMessage(err),
      });
    }
  }

  /** Closes every puppet's websocket. */
  close(): void {
    this.closed = true;
    for (const socket of this.sockets.values()) socket.close();
    this.sockets.clear();
  }

  private listen(puppetId: string, token: string): void {
    if (this.sockets.has(puppetId) || this.closed) return;
    const socket = new MattermostSocket({
      url: this.opts.url.replace(/^http/, "ws") + "/api/v4/websocket",
      token,
      reconnect: this.opts.reconnect,
      events: {
        onEvent: (event, data, broadcast) => this.onEvent(puppetId, event, data, broadcast),
        onReconnect: () => this.opts.onReconnect(),
        onClose: () => {},
      },
    });
    this.sockets.set(puppetId, socket);
    socket.open();
  }

  /** Hands on an event of one of the puppet's direct channels; a first post in a new one makes it known. */
  private onEvent(
    puppetId: string,
    event: string,
    data: Record<string, unknown>,
    broadcast?: Record<string, unknown>,
  ): void {
    if (!RELAYED_EVENTS.has(event)) return;
    const post = event.startsWith("post") ? parsePostedEvent(data) : null;
    const channel = post?.channel_id ?? (isRecord(broadcast) ? String(broadcast.channel_id ?? "") : "");
    if (!this.known.has(channel)) {
      // A Mattermost user wrote to the puppet first: a DM channel not seen before.
      if (event !== "posted" || data.channel_type !== "D" || !post || post.user_id === puppetId) return;
      this.known.set(channel, { puppetId, userId: post.user_id });
    }
    if (this.known.get(channel)?.puppetId !== puppetId) return;
    this.opts.onEvent(event, data, broadcast);
  }

  /** A user by id or `@username`; a permanent error with a notice when there is none. */
  private async lookUp(ref: string): Promise<User> {
    const byName = ref.startsWith("@");
    const name = byName ? ref.slice(1) : ref;
    const user = await call(
      `look up Mattermost user ${ref}`,
      () => (byName ? this.opts.bot.getUserByUsername(name) : this.opts.bot.getUser(name)) as Promise<User>,
    ).catch((err) => {
      if (statusOf(err) === 404 || statusOf(err) === 400) return undefined;
      throw err;
    });
    if (!user) {
      throw new BridgeError(`there is no Mattermost user ${ref}`, {
        notice: `there is no Mattermost user ${byName ? name : "with that address"}`,
      });
    }
    return user;
  }
}
