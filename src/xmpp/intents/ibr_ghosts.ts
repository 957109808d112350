/**
 * `ibr` ghost mode: every Mattermost user gets an XMPP account of their own, registered in-band (XEP-0077), and
 * speaks in rooms through a session of that account.
 *
 * Sessions are opened lazily on a user's first message, at most one per ghost, and closed after an idle period.
 * Passwords are random per ghost and stored sealed. When registration is refused or rate-limited the connector
 * relays the user's messages meanwhile; rate-limited registrations are retried with backoff until they succeed.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { getLogger } from "@logtape/logtape";
import { Backoff } from "../../core/backoff.ts";
import { settleWithin } from "../../core/deadline.ts";
import { BridgeError, errorMessage } from "../../core/errors.ts";
import { randomPassword, type SecretBox } from "../../core/secretbox.ts";
import type { GhostRecord, Store } from "../../core/store.ts";
import { renderTemplate } from "../../core/text.ts";
import {
  CaTrust,
  createXmppClient,
  type Element,
  type TlsOptions,
  type XmppClient,
} from "../session/client.ts";
import xml from "@xmpp/xml";
import {
  type DirectAddress,
  type DirectListener,
  type GhostAuthor,
  type GhostProvider,
  nodeSafe,
  type PictureSource,
} from "./ghosts.ts";
import { type Intent, SessionIntent } from "./intent.ts";
import { isCertificateRejection } from "../explain.ts";
import { isDirectChannel } from "../direct.ts";
import { MucRooms, type PresenceState } from "../muc/rooms.ts";
import { Reflections } from "../muc/reflections.ts";
import { parseGroupchat } from "../protocol/stanza.ts";
import { cancelRegistration, register, RegistrationError, type RegistrationServer } from "../xeps/xep0077.ts";
import { disableAvatar, publishAvatar } from "../xeps/xep0084.ts";

const log = getLogger(["mmxmpp", "xmpp", "ghosts"]);

/** Why a registration did not succeed. */
export type RegistrationFailure = "taken" | "disabled" | "rate-limited" | "failed";

/** What the ghost mode needs from XEP-0077. */
export interface Registrar {
  /** Registers `username`@domain on a fresh stream. */
  register(
    username: string,
    password: string,
  ): Promise<{ ok: true } | { ok: false; reason: RegistrationFailure; message: string }>;
  /** Cancels the registration of the account `client` is logged in as, from that session. */
  cancel(client: XmppClient): Promise<void>;
}

/**
 * The {@link Registrar} backed by XEP-0077 on `server`. `protectedJid` (the bridge's own account) can never be
 * cancelled through it. Each registration is a TLS connection of its own: like the ghosts' logins, it trusts
 * `server.tls.ca` alone while that verifies the server (`trust`), not the system's ~150 CAs as well, which every
 * connection would parse and keep (about 1 MB and 20 ms of CPU per new ghost).
 */
export function xep0077Registrar(
  server: RegistrationServer,
  protectedJid: string,
  trust: CaTrust = new CaTrust(server.tls),
): Registrar {
  return {
    async register(username, password) {
      try {
        await trust.connect(
          (tls) => register({ ...server, tls, username, password }),
          isCertificateRejection,
        );
        return { ok: true };
      } catch (err) {
        if (!(err instanceof RegistrationError)) throw err;
        // An unreachable server is retried like a rate limit: the registration is never dropped.
        const reason = err.reason === "unreachable"
          ? "rate-limited"
          : err.reason === "taken" || err.reason === "disabled" || err.reason === "rate-limited"
          ? err.reason
          : "failed";
        return { ok: false, reason, message: err.message };
      }
    },
    cancel: (client) => cancelRegistration(client, { protectedJids: [protectedJid] }),
  };
}

/** Settings of {@link IbrGhosts}. */
export interface IbrGhostOptions {
  store: Store;
  box: SecretBox;
  registrar: Registrar;
  service: string;
  /** Domain the ghosts are registered on. */
  domain: string;
  /** Localpart prefix, e.g. `mm_`. */
  prefix: string;
  nickFormat: string;
  /** `{XMPP_RESOURCE}-{node id}`. */
  resource: string;
  tls?: TlsOptions;
  idleMs: number;
  /** Cancel the registration when the user is deactivated. */
  cleanup: boolean;
  reflectionTimeoutMs?: number;
  /** First wait before retrying a rate-limited registration (doubles up to 10 minutes, plus up to as much jitter). */
  registrationRetryMs?: number;
  /** The network whose users the ghosts stand for, as their records are keyed (default "mattermost"). */
  userNetwork?: string;
}

/** One ghost's live session. */
class GhostSession {
  readonly muc: MucRooms;
  readonly reflections: Reflections;
  /** The ghost's voice in rooms. */
  readonly intent: SessionIntent;
  lastActive = Date.now();
  /** Who it stands for, as last seen sending. */
  author?: GhostAuthor;
  /** The version of the author's picture its account shows as avatar ("" for none), once read from the store. */
  avatarShown?: string;
  /** The profile changes being applied, one after the other. */
  syncing: Promise<void> = Promise.resolve();

  constructor(
    readonly userId: string,
    readonly jid: string,
    readonly client: XmppClient,
    timeoutMs?: number,
    onDirect?: DirectListener,
  ) {
    this.reflections = new Reflections(timeoutMs);
    this.muc = new MucRooms((el: Element) => client.send(el));
    this.intent = new SessionIntent(client, this.muc, this.reflections);
    client.on("stanza", (stanza: Element) => {
      if (stanza.is("presence")) this.muc.handlePresence(stanza);
      else if (stanza.is("message")) {
        const type = stanza.attrs.type;
        const msg = type === "groupchat" || type === "error" ? parseGroupchat(stanza) : null;
        if (msg) this.reflections.settle(msg);
        else onDirect?.(stanza, this.address);
      }
    });
  }

  /** The ghost's own address, to answer 1:1 messages from. */
  get address(): DirectAddress {
    return {
      jid: this.jid,
      // The server stamps a client's stanzas with its JID: a `from` of our own choosing could only be refused.
      send: (stanza) => {
        delete stanza.attrs.from;
        return this.client.send(stanza);
      },
    };
  }
}

/** Ghost accounts registered in-band, one per Mattermost user. */
export class IbrGhosts implements GhostProvider {
  readonly mode = "ibr";
  private readonly sessions = new Map<string, GhostSession>();
  private readonly opening = new Map<string, Promise<GhostSession | null>>();
  /** Users whose registration waits for a retry; their messages are relayed meanwhile. */
  private readonly retrying = new Map<string, ReturnType<typeof setTimeout>>();
  private disabledReason?: string;
  /** Users whose registration failed for good: said once, then relayed. */
  private readonly refused = new Set<string>();
  private idleTimer?: ReturnType<typeof setInterval>;
  /** What each user's ghost says in its rooms besides being there (its status), also for sessions opened later. */
  private readonly presences = new Map<string, PresenceState>();
  private stopped = false;
  /** Ghosts trust XMPP_CA_FILE alone while it verifies the server: a quarter of the memory per connection. */
  private readonly trust: CaTrust;
  /** Receives the 1:1 messages sent to any ghost. */
  private directListener?: DirectListener;
  /** Users whose ghost has a direct conversation: kept connected, never closed as idle. */
  private readonly pinned = new Set<string>();
  /** Reconnections of pinned ghosts waiting after a lost connection. */
  private readonly reopenTimers = new Map<string, ReturnType<typeof setTimeout>>();
  private pictures?: PictureSource;

  constructor(private readonly opts: IbrGhostOptions) {
    this.trust = new CaTrust(opts.tls);
  }

  private get userNetwork(): string {
    return this.opts.userNetwork ?? "mattermost";
  }

  start(pictures?: PictureSource): Promise<void> {
    this.pictures = pictures;
    this.idleTimer = setInterval(
      () => this.closeIdle(),
      Math.max(100, Math.min(60_000, this.opts.idleMs / 2)),
    );
    return Promise.resolve();
  }

  async intentFor(author: GhostAuthor): Promise<Intent | null> {
    const session = await this.session(author);
    if (!session) return null;
    session.lastActive = Date.now();
    session.author = author;
    // Before the ghost joins anywhere, so that its presence carries its avatar's hash from the start.
    await this.syncProfile(session, author, false);
    return session.intent;
  }

  presentIn(authorId: string, room: string): Intent | undefined {
    const session = this.sessions.get(authorId);
    // A 1:1 conversation has no room to be in: the ghost is there while it is connected.
    const present = session?.client.status === "online" &&
      (isDirectChannel(room) || !!session.muc.nickIn(room));
    return present ? session!.intent : undefined;
  }

  async setStatus(authorId: string, presence: PresenceState): Promise<void> {
    if (!presence.show && !presence.status) this.presences.delete(authorId);
    else this.presences.set(authorId, presence);
    await this.sessions.get(authorId)?.muc.setPresence(presence);
  }

  onDirect(listener: DirectListener): void {
    this.directListener = listener;
  }

  async ownerOf(jid: string): Promise<string | undefined> {
    const owner = await this.opts.store.ghostOwner(jid.toLowerCase());
    return owner?.network === this.userNetwork ? owner.userId : undefined;
  }

  async addressOf(jid: string): Promise<DirectAddress | undefined> {
    const session = await this.sessionOf(jid).catch((err) => {
      log.warn("Could not connect ghost {jid}: {error}", { jid, error: errorMessage(err) });
      return undefined;
    });
    return session?.address;
  }

  async keepOnline(jid: string): Promise<void> {
    const userId = await this.ownerOf(jid);
    if (!userId || this.stopped) return;
    this.pinned.add(userId);
    await this.addressOf(jid);
  }

  /** The live session of the ghost `jid`, connecting it from its record when it is not up. */
  private async sessionOf(jid: string): Promise<GhostSession | undefined> {
    const userId = await this.ownerOf(jid);
    if (!userId || this.stopped) return undefined;
    const live = this.sessions.get(userId);
    if (live) return live;
    let opening = this.opening.get(userId);
    if (!opening) {
      opening = (async () => {
        const record = await this.opts.store.getGhost(this.userNetwork, userId);
        if (!record) return null;
        const session = await this.connect(record);
        this.sessions.set(userId, session);
        log.info("Ghost {jid} is online for its direct conversations", { jid: record.jid });
        return session;
      })().finally(() => this.opening.delete(userId));
      this.opening.set(userId, opening);
    }
    return await opening ?? undefined;
  }

  async updateProfile(author: GhostAuthor): Promise<void> {
    const session = this.sessions.get(author.id);
    if (!session) return; // offline: it follows when next used (intentFor)
    session.author = author;
    await this.syncProfile(session, author, true);
  }

  isGhost(room: string, nick: string): boolean {
    for (const s of this.sessions.values()) if (s.muc.isUs(room, nick)) return true;
    return false;
  }

  authorOf(room: string, nick: string): GhostAuthor | undefined {
    for (const s of this.sessions.values()) if (s.muc.isUs(room, nick)) return s.author;
    return undefined;
  }

  /**
   * Makes the ghost show `author`'s current name and picture; changes are applied one at a time. Never throws.
   * `removed`: `author` comes from a change of their profile, so that no picture means they removed theirs (an
   * author seen sending without one may only be one whose user could not be read).
   */
  private syncProfile(session: GhostSession, author: GhostAuthor, removed: boolean): Promise<void> {
    session.syncing = session.syncing.then(() => this.applyProfile(session, author, removed)).catch((err) =>
      log.warn("Ghost {jid} could not take on the profile of its user: {error}", {
        jid: session.jid,
        error: errorMessage(err),
      })
    );
    return session.syncing;
  }

  /**
   * The nick follows the author's name in every room the ghost is in (and at its next joins). A picture whose version
   * the account does not show yet is published as its avatar (XEP-0084, from its own session; the server serves it
   * as its vCard and puts its hash in its presence), and the ghost's presence goes again to its rooms; a picture
   * `removed` is withdrawn the same way.
   */
  private async applyProfile(session: GhostSession, author: GhostAuthor, removed: boolean): Promise<void> {
    const nick = renderTemplate(this.opts.nickFormat, {
      username: author.name,
      displayname: author.displayName ?? author.name,
    });
    session.intent.joinAs = nick;
    for (const room of session.muc.rooms.keys()) await session.muc.changeNick(room, nick);
    // "" stands for no picture.
    const wanted = author.avatar === null ? "" : author.avatar?.version ?? (removed ? "" : undefined);
    if (wanted === undefined || !this.pictures) return;
    session.avatarShown ??= await this.opts.store.getAvatarShown(this.userNetwork, author.id, session.jid) ??
      "";
    if (session.avatarShown === wanted) return;
    const image = wanted === "" ? undefined : await this.pictures(author);
    if (image || wanted === "") {
      try {
        if (image) await publishAvatar(session.client, image);
        else await disableAvatar(session.client);
        log.info("Ghost {jid} shows its user's {what}", {
          jid: session.jid,
          what: image ? "new picture" : "lack of a picture",
        });
        for (const room of session.muc.rooms.keys()) await session.muc.sendPresence(room);
      } catch (err) {
        // Without an answer it may work later; a refusal (no PEP on the server) would be the same every time.
        if (!(err as { condition?: string }).condition) throw err;
        log.warn("The server refused the avatar of ghost {jid}: {error}", {
          jid: session.jid,
          error: errorMessage(err),
        });
      }
    }
    session.avatarShown = wanted;
    await this.opts.store.setAvatarShown(this.userNetwork, author.id, session.jid, wanted);
  }

  /** Users with a live session (for health and tests). */
  liveSessions(): string[] {
    return [...this.sessions.keys()];
  }

  async retire(userId: string): Promise<void> {
    clearTimeout(this.retrying.get(userId));
    this.retrying.delete(userId);
    this.presences.delete(userId);
    this.pinned.delete(userId);
    clearTimeout(this.reopenTimers.get(userId));
    this.reopenTimers.delete(userId);
    const record = await this.opts.store.getGhost(this.userNetwork, userId);
    let session = this.sessions.get(userId);
    if (session) await this.close(session);
    if (!record || !this.opts.cleanup) return;
    // Cancelling is done from the ghost's own session, never from the bridge's.
    session = await this.connect(record).catch((err) => {
      log.warn("Could not log in as {jid} to cancel its registration: {error}", {
        jid: record.jid,
        error: errorMessage(err),
      });
      return undefined;
    });
    if (!session) return;
    try {
      await this.opts.registrar.cancel(session.client);
      await this.opts.store.deleteGhost(this.userNetwork, userId);
      log.info("Cancelled the registration of ghost {jid}", { jid: record.jid });
    } finally {
      await session.client.stop().catch(() => {});
    }
  }

  async leaveRoom(room: string): Promise<void> {
    await Promise.all([...this.sessions.values()].map((s) => s.muc.leave(room).catch(() => {})));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.idleTimer);
    for (const t of this.reopenTimers.values()) clearTimeout(t);
    this.reopenTimers.clear();
    for (const t of this.retrying.values()) clearTimeout(t);
    this.retrying.clear();
    await Promise.all([...this.sessions.values()].map((s) => this.close(s)));
  }

  /** The live session of `author`, opening (and registering) it when needed; null means "relay instead". */
  private session(author: GhostAuthor): Promise<GhostSession | null> {
    const live = this.sessions.get(author.id);
    if (live) return Promise.resolve(live);
    if (this.disabledReason || this.refused.has(author.id) || this.retrying.has(author.id) || this.stopped) {
      return Promise.resolve(null);
    }
    let opening = this.opening.get(author.id);
    if (!opening) {
      opening = this.open(author).finally(() => this.opening.delete(author.id));
      this.opening.set(author.id, opening);
    }
    return opening;
  }

  private async open(author: GhostAuthor): Promise<GhostSession | null> {
    const record = await this.opts.store.getGhost(this.userNetwork, author.id) ?? await this.create(author);
    if (!record) return null;
    const session = await this.connect(record);
    // Before any join: the joins carry it.
    await session.muc.setPresence(this.presences.get(author.id) ?? {});
    this.sessions.set(author.id, session);
    log.info("Ghost {jid} is online", { jid: record.jid });
    return session;
  }

  /**
   * Registers a new account for `author`; null when it cannot be done now. `backoff` times the retries of a
   * rate-limited registration; `suffixed` is set once the plain name turned out to be taken.
   */
  private async create(
    author: GhostAuthor,
    backoff = this.registrationBackoff(),
    suffixed = false,
  ): Promise<GhostRecord | null> {
    const base = this.opts.prefix + nodeSafe(author.name);
    const owner = await this.opts.store.ghostOwner(`${base}@${this.opts.domain}`);
    // A name already held by someone else gets a stable suffix derived from the user id.
    const node = suffixed || (owner && (owner.network !== this.userNetwork || owner.userId !== author.id))
      ? `${base}_${createHash("sha256").update(author.id).digest("hex").slice(0, 6)}`
      : base;
    const jid = `${node}@${this.opts.domain}`;
    const password = randomPassword();
    const res = await this.opts.registrar.register(node, password);
    if (!res.ok) {
      switch (res.reason) {
        case "taken":
          if (!suffixed) return this.create(author, backoff, true);
          break;
        case "rate-limited":
          log.warn("Registration of {jid} is rate-limited by the server; relaying meanwhile, retry {n}", {
            jid,
            n: backoff.failures + 1,
          });
          this.retryLater(author, backoff);
          return null;
        case "disabled":
          this.disabledReason = res.message;
          log.error("The XMPP server does not allow in-band registration ({reason}); every user is relayed", {
            reason: res.message,
          });
          return null;
      }
      this.refused.add(author.id);
      log.error("Could not register ghost {jid}: {reason}; this user is relayed", {
        jid,
        reason: res.message,
      });
      return null;
    }
    const record: GhostRecord = {
      network: this.userNetwork,
      userId: author.id,
      jid,
      password: await this.opts.box.seal(password),
      createdAt: Date.now(),
    };
    if (!await this.opts.store.createGhost(record)) {
      throw new BridgeError(`ghost ${jid} was registered but could not be recorded`, { transient: true });
    }
    log.info("Registered ghost {jid} for Mattermost user {userId}", { jid, userId: author.id });
    return record;
  }

  /**
   * The waits between a user's rate-limited registrations: 5 s, 10 s, 20 s … at most 10 minutes, never giving up.
   * Every ghost registers from the bridge's address, which the server limits as one: the jitter (up to the first
   * wait) keeps users limited together from all coming back at the same instant, where again only one gets through.
   */
  private registrationBackoff(): Backoff {
    const initialMs = this.opts.registrationRetryMs ?? 5_000;
    return new Backoff({ initialMs, maxMs: Math.max(initialMs, 600_000), jitterMs: initialMs });
  }

  /** Retries a rate-limited registration after the next wait of `backoff`. */
  private retryLater(author: GhostAuthor, backoff: Backoff): void {
    const wait = backoff.next();
    this.retrying.set(
      author.id,
      setTimeout(() => {
        this.retrying.delete(author.id);
        if (this.stopped) return;
        this.create(author, backoff).catch((err) =>
          log.error("Registration retry for {userId} failed: {error}", {
            userId: author.id,
            error: errorMessage(err),
          })
        );
      }, wait),
    );
  }

  private async connect(record: GhostRecord): Promise<GhostSession> {
    const password = await this.opts.box.open(record.password);
    try {
      return await this.trust.connect((tls) => this.login(record, password, tls), isCertificateRejection);
    } catch (err) {
      throw new BridgeError(`ghost ${record.jid} cannot log in: ${errorMessage(err)}`, { transient: true });
    }
  }

  /** One login of the ghost `record`; on failure, the client is stopped and the error thrown. */
  private async login(record: GhostRecord, password: string, tls: TlsOptions): Promise<GhostSession> {
    const [local, domain] = record.jid.split("@");
    const client = createXmppClient({
      service: this.opts.service,
      domain,
      username: local,
      password,
      resource: this.opts.resource,
      tls,
    });
    // A ghost that loses its connection is simply reopened on its next message.
    client.reconnect.stop();
    client.on("error", () => {});
    const session = new GhostSession(
      record.userId,
      record.jid,
      client,
      this.opts.reflectionTimeoutMs,
      this.directListener,
    );
    client.on("disconnect", () => {
      const wasLive = this.sessions.get(record.userId) === session;
      if (wasLive) this.sessions.delete(record.userId);
      session.reflections.rejectAll(
        new BridgeError(`ghost ${record.jid} was disconnected`, { transient: true }),
      );
      if (wasLive && this.pinned.has(record.userId)) this.reopenLater(record.jid, record.userId);
    });
    try {
      await client.start();
    } catch (err) {
      await client.stop().catch(() => {});
      throw err;
    }
    // Available, so that the server routes 1:1 messages to the ghost's bare JID here, and hands over what it
    // stored for it while it was offline (RFC 6121 §8.5.2.1.1, Prosody's mod_offline).
    if (this.directListener) await client.send(xml("presence", {})).catch(() => {});
    return session;
  }

  /** Connects a pinned ghost again after it lost its connection, until it is back or the bridge stops. */
  private reopenLater(
    jid: string,
    userId: string,
    backoff = new Backoff({ initialMs: 1_000, maxMs: 60_000 }),
  ): void {
    if (this.stopped || this.reopenTimers.has(userId)) return;
    const timer = setTimeout(() => {
      this.reopenTimers.delete(userId);
      this.sessionOf(jid).catch((err) => {
        log.warn("Could not reconnect ghost {jid}, which has direct conversations: {error}", {
          jid,
          error: errorMessage(err),
        });
        this.reopenLater(jid, userId, backoff);
      });
    }, backoff.next());
    this.reopenTimers.set(userId, timer);
  }

  private closeIdle(): void {
    const now = Date.now();
    for (const s of this.sessions.values()) {
      if (this.pinned.has(s.userId)) continue;
      if (now - s.lastActive >= this.opts.idleMs) {
        log.info("Ghost {jid} was idle; disconnecting", { jid: s.jid });
        void this.close(s);
      }
    }
  }

  private async close(session: GhostSession): Promise<void> {
    this.sessions.delete(session.userId);
    session.reflections.rejectAll(new BridgeError(`ghost ${session.jid} is closing`, { transient: true }));
    if (session.client.status === "online") {
      await Promise.all([...session.muc.rooms.keys()].map((r) => session.muc.leave(r).catch(() => {})));
    }
    await settleWithin(session.client.stop(), 2_000);
  }
}
