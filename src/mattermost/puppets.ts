/**
 * Mattermost puppets (`BRIDGE_MM_PUPPETS`): each XMPP user seen in a mapped room becomes a Mattermost user of their
 * own, who posts, edits, deletes and reacts with a personal access token the bridge made for them.
 *
 * An admin's token (`MM_ADMIN_TOKEN`) creates the users (`POST /users`), their tokens (`POST /users/{id}/tokens`) and
 * their team and channel memberships, and deactivates them. A puppet is keyed by the XMPP user's identity (the real
 * bare JID, else the occupant-id, else room and nick: `Sender.accountId ?? Sender.id`), stored in KV with its sealed
 * token, so that a nick change renames the puppet instead of making a second one. Its props carry a hash of that
 * identity, by which a puppet is recognised again when the KV file was lost.
 *
 * Where the server has personal access tokens off (`EnableUserAccessTokens`), no puppet can speak: the start log
 * says so, and {@link MattermostPuppets.puppetFor} answers undefined, so the connector posts as the bot, with the
 * name shown through `override_username` as without puppets.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { identityOf, type Sender } from "../core/events.ts";
import { BridgeError, errorMessage } from "../core/errors.ts";
import { randomPassword, type SecretBox } from "../core/secretbox.ts";
import type { PuppetOwner, PuppetRecord } from "../core/store.ts";
import { call, type Client4, createClient, statusOf } from "./api.ts";
import { MattermostFiles } from "./files.ts";
import { identityTag, puppetEmail, puppetUsername, usernameSource } from "./puppet_names.ts";

const log = getLogger(["mmxmpp", "mattermost", "puppets"]);

/** User prop marking a Mattermost user as a puppet of the bridge; its value names the represented user's network. */
export const PUPPET_PROP = "mmxmpp_puppet";
/** User prop with {@link identityTag} of the identity a puppet stands for. */
export const PUPPET_IDENTITY_PROP = "mmxmpp_identity";
/** Longest first name and nickname Mattermost takes, in runes (`model/user.go`). */
const NAME_MAX_RUNES = 64;
/** How many usernames are tried before giving up on a puppet (each taken by someone else). */
const MAX_NAME_ATTEMPTS = 8;

/** What the puppets keep in KV: the part of the store they use. */
export interface PuppetStore {
  getPuppet(network: string, identity: string): Promise<PuppetRecord | null>;
  puppetOwner(userId: string): Promise<PuppetOwner | null>;
  createPuppet(record: PuppetRecord): Promise<boolean>;
  updatePuppet(record: PuppetRecord): Promise<void>;
  listPuppets(): Promise<PuppetRecord[]>;
}

/** Settings of {@link MattermostPuppets}. */
export interface PuppetsOptions {
  url: string;
  /** A system admin's token (`MM_ADMIN_TOKEN`). */
  adminToken: string;
  /** Username prefix (`BRIDGE_MM_PUPPET_PREFIX`). */
  prefix: string;
  store: PuppetStore;
  /** Seals the puppets' tokens (encrypting when `BRIDGE_SECRET_KEY` is set). */
  box: SecretBox;
}

/** A puppet ready to act: its user and a client (and file access) authenticated as it. */
export interface Puppet {
  userId: string;
  username: string;
  client: Client4;
  /** Uploads files as the puppet: a post keeps only files its own author uploaded. */
  files: MattermostFiles;
}

/**
 * Whether puppets can speak: `tokens` (they post as themselves), `fallback` (personal access tokens are off: the bot
 * posts for them, `reason` says why).
 */
export type PuppetMode = { kind: "tokens" } | { kind: "fallback"; reason: string };

/** One puppet as `/xmppbridge puppets` lists it. */
export interface PuppetListing {
  username: string;
  displayName: string;
  /** Mapped channels the XMPP user is present in. */
  channels: number;
  /** `cleaned-up`: by `puppet-cleanup`, back when seen again; `suspended`: by someone else in Mattermost. */
  state: "active" | "cleaned-up" | "suspended";
}

interface User {
  id: string;
  username: string;
  delete_at?: number;
  props?: Record<string, string>;
}

/** What to tell an admin when personal access tokens are off. */
export const TOKENS_OFF_FIX =
  "turn on System Console → Integrations → Integration Management → Enable Personal " +
  "Access Tokens (ServiceSettings.EnableUserAccessTokens)";

/**
 * The Mattermost users that stand in for XMPP users.
 *
 * @example
 * ```ts
 * const puppets = new MattermostPuppets({ url, adminToken, prefix: "xmpp-", store, box });
 * await puppets.start();
 * const puppet = await puppets.puppetFor(sender, channelId);
 * if (puppet) await puppet.client.createPost({ channel_id: channelId, message: "hi" } as never);
 * ```
 */
export class MattermostPuppets {
  private admin!: Client4;
  private adminFiles?: MattermostFiles;
  private stopSignal = new AbortController();
  private state: PuppetMode = { kind: "fallback", reason: "not started" };
  /** Records by `network\0identity`, and identities by user id: loaded at start, kept current. */
  private readonly records = new Map<string, PuppetRecord>();
  private readonly owners = new Map<string, PuppetOwner>();
  /** Clients of puppets whose token was opened, by user id. */
  private readonly clients = new Map<string, Puppet>();
  /** Work on one puppet runs one step at a time (creation, renaming, membership), by record key. */
  private readonly queues = new Map<string, Promise<unknown>>();
  /** Teams each puppet was found or made a member of, as `userId\0teamId`. */
  private readonly teams = new Set<string>();
  /** The team of each channel looked up, and whether it is a direct or group channel (which has none). */
  private readonly channelPlaces = new Map<string, { teamId: string; direct: boolean }>();

  constructor(private readonly opts: PuppetsOptions) {}

  /**
   * Checks the admin token and whether personal access tokens are on, and loads the stored puppets. Throws a
   * configuration error when `MM_ADMIN_TOKEN` is not a system admin's; tokens being off is not an error (the bot
   * posts for the XMPP users then), but is logged with what to do.
   */
  async start(): Promise<void> {
    this.stopSignal = new AbortController();
    this.admin = createClient(this.opts.url, this.opts.adminToken, this.stopSignal.signal);
    this.adminFiles = undefined;
    const me = await call("read the admin account of MM_ADMIN_TOKEN (/users/me)", () => this.admin.getMe(), {
      401: "MM_ADMIN_TOKEN is not a valid token: create a personal access token for a system admin",
    }).catch((err) => {
      if (statusOf(err) === 401) {
        throw new BridgeError(errorMessage(err), { kind: "credentials", cause: err });
      }
      throw err;
    });
    if (!me.roles.split(" ").includes("system_admin")) {
      throw new BridgeError(
        `MM_ADMIN_TOKEN belongs to ${me.username}, who is not a system admin: puppets need an admin's token ` +
          "to create users",
        { kind: "configuration" },
      );
    }
    const config = await call(
      "read the client configuration (/config/client)",
      () => this.admin.getClientConfig(),
    ) as unknown as Record<string, string>;
    this.state = config.EnableUserAccessTokens === "true" ? { kind: "tokens" } : {
      kind: "fallback",
      reason: "personal access tokens are off on the Mattermost server",
    };
    for (const record of await this.opts.store.listPuppets()) this.remember(record);
    if (this.state.kind === "tokens") {
      log.info("Mattermost puppets on: XMPP users post as Mattermost users of their own ({count} so far)", {
        count: this.records.size,
      });
    } else {
      log.warn(
        "Mattermost puppets are on, but {reason}: XMPP users are posted by the bot instead; {fix}",
        { reason: this.state.reason, fix: TOKENS_OFF_FIX },
      );
    }
  }

  /** Ends waits of REST calls on a rate limit. */
  stop(): void {
    this.stopSignal.abort();
  }

  /** Whom the puppet `userId` stands for: the network and identity of the user, if it is a puppet. */
  ownerOf(userId: string): PuppetOwner | undefined {
    return this.owners.get(userId);
  }

  /** The user ids of the puppets not deactivated. */
  activeUserIds(): string[] {
    return [...this.records.values()].filter((r) => r.deactivatedAt === undefined).map((r) => r.userId);
  }

  /**
   * The puppet `userId`'s clients (opening its token), when it is an active puppet and puppets can speak; for what
   * it does on its own behalf (its direct conversations).
   */
  async puppetOf(userId: string): Promise<Puppet | undefined> {
    const owner = this.owners.get(userId);
    const record = owner && this.records.get(keyOf(owner.network, owner.identity));
    if (!owner || !record || record.deactivatedAt !== undefined || this.state.kind !== "tokens") {
      return undefined;
    }
    return await this.serially(owner.network, owner.identity, () => this.clientFor(record));
  }

  /**
   * A client and file access with the admin's token, which may read any channel: the direct conversations of the
   * puppets, which the bot is not in.
   */
  adminAccess(): { client: Client4; files: MattermostFiles } {
    this.adminFiles ??= new MattermostFiles(this.opts.url, this.opts.adminToken, this.admin);
    return { client: this.admin, files: this.adminFiles };
  }

  /** Whether puppets speak for themselves, or the bot posts for them (and why). */
  get mode(): PuppetMode {
    return this.state;
  }

  /** Whether the Mattermost user `userId` is one of the bridge's puppets: its posts and reactions are our own. */
  isPuppet(userId: string): boolean {
    return this.owners.has(userId);
  }

  /** The XMPP identity the puppet user `userId` stands for (`Sender.accountId ?? Sender.id`), if it is a puppet. */
  identityOf(userId: string): string | undefined {
    return this.owners.get(userId)?.identity;
  }

  /**
   * The puppet of `sender` (made when there is none, renamed when the nick changed, reactivated after a cleanup),
   * a member of `channel` when given; undefined when puppets cannot speak (tokens off). Throws when Mattermost
   * cannot be reached or refuses, for the caller to retry.
   */
  async puppetFor(sender: Sender, channel?: string): Promise<Puppet | undefined> {
    if (this.state.kind !== "tokens") return undefined;
    const identity = identityOf(sender);
    return await this.serially(sender.network, identity, async () => {
      if (this.records.get(keyOf(sender.network, identity))?.suspended) return undefined;
      let record = await this.ensureUser(sender, identity);
      if (channel) record = await this.ensureMember(record, channel);
      return await this.clientFor(record);
    });
  }

  /**
   * The user id of `sender`'s puppet when it exists, is active and is a member of `channel` (when given); else
   * undefined. Never creates, renames or adds a puppet anywhere: for what is only worth showing where the puppet
   * already is (typing, status).
   */
  existingUserId(sender: Sender, channel?: string): string | undefined {
    if (this.state.kind !== "tokens") return undefined;
    const record = this.records.get(keyOf(sender.network, identityOf(sender)));
    if (!record || record.deactivatedAt !== undefined) return undefined;
    return channel === undefined || record.channels.includes(channel) ? record.userId : undefined;
  }

  /**
   * A client that may change the posts of the puppet `userId`: the puppet's own when its token can be had, else the
   * admin's (a system admin may edit and delete anyone's posts: tokens off, the puppet suspended). Undefined when
   * `userId` is not a puppet.
   */
  async clientOf(userId: string): Promise<Client4 | undefined> {
    const owner = this.owners.get(userId);
    if (!owner) return undefined;
    const record = this.records.get(keyOf(owner.network, owner.identity));
    if (!record) return undefined;
    // A suspended puppet's token is refused; without tokens there is none.
    if (this.state.kind !== "tokens" || record.suspended) return this.admin;
    try {
      return (await this.serially(owner.network, owner.identity, () => this.clientFor(record)))?.client ??
        this.admin;
    } catch (err) {
      log.warn("Could not open the token of puppet {username}; acting as the admin: {error}", {
        username: record.username,
        error: errorMessage(err),
      });
      return this.admin;
    }
  }

  /**
   * The server refused the token of the puppet `userId` (revoked, or the user deactivated outside the bridge): it
   * is forgotten, so that the next use makes a new one.
   */
  tokenRefused(userId: string): void {
    this.clients.delete(userId);
    const owner = this.owners.get(userId);
    const record = owner && this.records.get(keyOf(owner.network, owner.identity));
    if (!record) return;
    this.serially(record.network, record.identity, async () => {
      const current = this.records.get(keyOf(record.network, record.identity))!;
      // Deactivated while the bridge was not listening: the same as when it was (userUpdated).
      const user = await call(
        `read puppet ${current.username}`,
        () => this.admin.getUser(userId) as Promise<User>,
      );
      await this.save({ ...current, token: undefined });
      if (user.delete_at) await this.suspend(userId);
    }).catch((err) =>
      log.warn("Could not forget the refused token of puppet {username}: {error}", {
        username: record.username,
        error: errorMessage(err),
      })
    );
  }

  /**
   * Follows a Mattermost user's `user_updated` event: a puppet deactivated by someone else (not `puppet-cleanup`)
   * is suspended, the bot speaking for its XMPP user, until it is reactivated in Mattermost.
   */
  userUpdated(userId: string, deleteAt: number): void {
    const owner = this.owners.get(userId);
    if (!owner) return;
    this.serially(owner.network, owner.identity, async () => {
      const record = this.records.get(keyOf(owner.network, owner.identity))!;
      if (deleteAt > 0) await this.suspend(userId);
      else if (record.suspended) {
        await this.save({ ...record, suspended: undefined });
        log.info("Puppet {username} was reactivated in Mattermost: it speaks for its XMPP user again", {
          username: record.username,
        });
      }
    }).catch((err) =>
      log.warn("Could not follow a change of puppet {userId}: {error}", { userId, error: errorMessage(err) })
    );
  }

  /** Marks the puppet `userId`, deactivated in Mattermost by someone else, as suspended; not one we cleaned up. */
  private async suspend(userId: string): Promise<void> {
    const owner = this.owners.get(userId)!;
    const record = this.records.get(keyOf(owner.network, owner.identity))!;
    if (record.deactivatedAt !== undefined || record.suspended) return;
    this.clients.delete(userId);
    await this.save({ ...record, suspended: true });
    log.info(
      "Puppet {username} was deactivated in Mattermost: the bot speaks for its XMPP user until it is reactivated",
      { username: record.username },
    );
  }

  /**
   * Follows an XMPP user's presence in a mapped room: present, their puppet (made if needed) joins `channel`;
   * gone, it leaves it. Nothing when puppets cannot speak.
   */
  async setMembership(sender: Sender, channel: string, present: boolean): Promise<void> {
    if (this.state.kind !== "tokens") return;
    const identity = identityOf(sender);
    if (present) {
      await this.puppetFor(sender, channel);
      return;
    }
    await this.serially(sender.network, identity, async () => {
      const record = this.records.get(keyOf(sender.network, identity));
      if (!record || !record.channels.includes(channel)) return;
      await call(
        `remove puppet ${record.username} from channel ${channel}`,
        () => this.admin.removeFromChannel(record.userId, channel),
      ).catch((err) => {
        // Already out (removed by someone, or the channel is gone).
        if (statusOf(err) !== 404) throw err;
      });
      await this.save({ ...record, channels: record.channels.filter((c) => c !== channel) });
      log.debug("Puppet {username} left {channel}", { username: record.username, channel });
    });
  }

  /** Every puppet, by username. */
  list(): PuppetListing[] {
    return [...this.records.values()]
      .map((r): PuppetListing => ({
        username: r.username,
        displayName: r.displayName,
        channels: r.channels.length,
        state: r.suspended ? "suspended" : r.deactivatedAt === undefined ? "active" : "cleaned-up",
      }))
      .sort((a, b) => a.username.localeCompare(b.username));
  }

  /**
   * Deactivates every active puppet whose XMPP user is in none of `mappedChannels`; returns their usernames. A
   * puppet seen again later is reactivated. A puppet that cannot be deactivated is logged and left for next time.
   */
  async cleanup(mappedChannels: readonly string[]): Promise<{ deactivated: string[]; failed: string[] }> {
    const mapped = new Set(mappedChannels);
    const deactivated: string[] = [];
    const failed: string[] = [];
    for (const record of [...this.records.values()]) {
      if (
        record.deactivatedAt !== undefined || record.suspended || record.channels.some((c) => mapped.has(c))
      ) {
        continue;
      }
      try {
        await this.serially(record.network, record.identity, async () => {
          const current = this.records.get(keyOf(record.network, record.identity))!;
          // Seen again meanwhile.
          if (
            current.channels.some((c) => mapped.has(c)) || current.deactivatedAt !== undefined ||
            current.suspended
          ) {
            return;
          }
          await call(
            `deactivate puppet ${current.username}`,
            () => this.admin.updateUserActive(current.userId, false),
          );
          this.clients.delete(current.userId);
          await this.save({ ...current, channels: [], deactivatedAt: Date.now() });
          deactivated.push(current.username);
        });
      } catch (err) {
        failed.push(record.username);
        log.warn("Could not deactivate puppet {username}: {error}", {
          username: record.username,
          error: errorMessage(err),
        });
      }
    }
    if (deactivated.length > 0) {
      log.info("Deactivated {count} puppet(s) no longer in any mapped room", { count: deactivated.length });
    }
    return { deactivated, failed };
  }

  /** Runs `step` after the other work on the same puppet. */
  private serially<T>(network: string, identity: string, step: () => Promise<T>): Promise<T> {
    const key = keyOf(network, identity);
    const run = (this.queues.get(key) ?? Promise.resolve()).catch(() => {}).then(step);
    this.queues.set(key, run);
    run.finally(() => {
      if (this.queues.get(key) === run) this.queues.delete(key);
    }).catch(() => {});
    return run;
  }

  /** The puppet's record: made when there is none, reactivated when cleaned up, renamed when the nick changed. */
  private async ensureUser(sender: Sender, identity: string): Promise<PuppetRecord> {
    const nick = sender.displayName ?? sender.name;
    let record = this.records.get(keyOf(sender.network, identity)) ??
      await this.opts.store.getPuppet(sender.network, identity);
    if (!record) return await this.createUser(sender.network, identity, nick);
    if (record.deactivatedAt !== undefined) {
      await call(
        `reactivate puppet ${record.username}`,
        () => this.admin.updateUserActive(record!.userId, true),
      );
      record = { ...record, deactivatedAt: undefined };
      await this.save(record);
      log.info("Reactivated puppet {username}", { username: record.username });
    }
    if (record.displayName !== nick) {
      const name = truncateRunes(nick, NAME_MAX_RUNES);
      await call(
        `rename puppet ${record.username}`,
        () => this.admin.patchUser({ id: record!.userId, nickname: name, first_name: name } as never),
      );
      log.debug("Puppet {username} is now shown as {name}", { username: record.username, name });
      record = { ...record, displayName: nick };
      await this.save(record);
    }
    return record;
  }

  /**
   * Makes the Mattermost user for `identity`: the first free username of {@link puppetUsername}'s candidates, or a
   * user already made for this identity (its props say so) whose record was lost.
   */
  private async createUser(network: string, identity: string, nick: string): Promise<PuppetRecord> {
    const tag = identityTag(identity);
    const source = usernameSource(identity, nick);
    const name = truncateRunes(nick, NAME_MAX_RUNES);
    for (let attempt = 0; attempt < MAX_NAME_ATTEMPTS; attempt++) {
      const username = puppetUsername(this.opts.prefix, source, identity, attempt);
      const existing = await call(
        `look up user ${username}`,
        () => this.admin.getUserByUsername(username) as Promise<User>,
      ).catch((err) => {
        if (statusOf(err) === 404) return undefined;
        throw err;
      });
      let user: User | undefined;
      if (existing) {
        // Taken by someone else: the next candidate. Our own, made before the KV file was lost: adopted.
        if (existing.props?.[PUPPET_IDENTITY_PROP] !== tag) continue;
        if (existing.delete_at) {
          await call("reactivate a puppet", () => this.admin.updateUserActive(existing.id, true));
        }
        user = existing;
      } else {
        user = await call(`create puppet ${username}`, () =>
          this.admin.createUser(
            {
              username,
              email: puppetEmail(username),
              password: randomPassword(),
              nickname: name,
              first_name: name,
              props: { [PUPPET_PROP]: network, [PUPPET_IDENTITY_PROP]: tag },
            } as never,
            "",
            "",
          ) as Promise<User>).catch((err) => {
            // Taken between the look-up and the create (by a person signing up): the next candidate.
            if (statusOf(err) === 400 && /exists/.test(errorMessage(err))) return undefined;
            throw err;
          });
        if (!user) continue;
      }
      const record: PuppetRecord = {
        network,
        identity,
        userId: user.id,
        username: user.username,
        displayName: nick,
        channels: [],
        createdAt: Date.now(),
      };
      if (!await this.opts.store.createPuppet(record)) {
        throw new BridgeError(`the puppet ${username} is already recorded for another XMPP user`);
      }
      this.remember(record);
      log.info("Created Mattermost puppet {username} for an XMPP user", { username: user.username });
      return record;
    }
    throw new BridgeError(
      `no free Mattermost username for the puppet of ${nick} (tried ${MAX_NAME_ATTEMPTS}); check ` +
        "BRIDGE_MM_PUPPET_PREFIX",
    );
  }

  /**
   * Makes the puppet a member of the team of `channel`, then of `channel`, unless it is already; a direct or group
   * channel is left as it is.
   */
  private async ensureMember(record: PuppetRecord, channel: string): Promise<PuppetRecord> {
    if (record.channels.includes(channel)) return record;
    let place = this.channelPlaces.get(channel);
    if (!place) {
      const found = await call(`find channel ${channel}`, () => this.admin.getChannel(channel));
      place = { teamId: found.team_id, direct: found.type === "D" || found.type === "G" };
      this.channelPlaces.set(channel, place);
    }
    // Its members are fixed when it is made (Mattermost refuses to add any: 400
    // api.channel.add_user_to_channel.type.app_error): the puppet is in it or never.
    if (place.direct) return record;
    const teamId = place.teamId;
    if (!this.teams.has(`${record.userId}\0${teamId}`)) {
      await call(
        `add puppet ${record.username} to team ${teamId}`,
        () => this.admin.addToTeam(teamId, record.userId),
      );
      this.teams.add(`${record.userId}\0${teamId}`);
    }
    await call(
      `add puppet ${record.username} to channel ${channel}`,
      () => this.admin.addToChannel(record.userId, channel),
    );
    const updated = { ...record, channels: [...record.channels, channel] };
    await this.save(updated);
    log.debug("Puppet {username} joined {channel}", { username: record.username, channel });
    return updated;
  }

  /**
   * The puppet's clients, opening its stored token or having one made. Undefined when the server refuses tokens
   * (turned off since the start): from then on the bot posts for every XMPP user, as the log says.
   */
  private async clientFor(record: PuppetRecord): Promise<Puppet | undefined> {
    const cached = this.clients.get(record.userId);
    if (cached) return cached;
    let token: string;
    if (record.token) {
      token = await this.opts.box.open(record.token);
    } else {
      const made = await call(
        `create an access token for puppet ${record.username}`,
        () => this.admin.createUserAccessToken(record.userId, "mmxmpp puppet"),
      ).catch((err) => {
        if (statusOf(err) !== 501) throw err;
        this.state = { kind: "fallback", reason: "the Mattermost server refused a personal access token" };
        log.warn(
          "Mattermost puppets cannot post: {reason}; XMPP users are posted by the bot instead; {fix}",
          {
            reason: this.state.reason,
            fix: TOKENS_OFF_FIX,
          },
        );
        return undefined;
      });
      if (!made) return undefined;
      if (!made.token) {
        throw new BridgeError(`Mattermost made a token for puppet ${record.username} without its value`);
      }
      token = made.token;
      await this.save({ ...record, token: await this.opts.box.seal(token) });
    }
    const client = createClient(this.opts.url, token, this.stopSignal.signal);
    const puppet: Puppet = {
      userId: record.userId,
      username: record.username,
      client,
      files: new MattermostFiles(this.opts.url, token, client),
    };
    this.clients.set(record.userId, puppet);
    return puppet;
  }

  private async save(record: PuppetRecord): Promise<void> {
    await this.opts.store.updatePuppet(record);
    this.remember(record);
  }

  private remember(record: PuppetRecord): void {
    this.records.set(keyOf(record.network, record.identity), record);
    this.owners.set(record.userId, { network: record.network, identity: record.identity });
  }
}

function keyOf(network: string, identity: string): string {
  return `${network}\0${identity}`;
}

function truncateRunes(text: string, max: number): string {
  const runes = [...text];
  return runes.length <= max ? text : runes.slice(0, max).join("");
}
