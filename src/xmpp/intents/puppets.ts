/**
 * The `component` ghost mode: Mattermost users become puppets of an XEP-0114 component, occupants of the rooms under
 * their own nicks, all over the one component connection: no account and no connection per user.
 *
 * A puppet is `{username}@{component domain}/{resource}`. It joins a room lazily, on its first message there, and
 * is confirmed by its own reflection; the component answers disco#info for itself and for every puppet.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { getLogger, type Logger } from "@logtape/logtape";
import xml from "@xmpp/xml";
import { BridgeError, errorMessage, isTransient } from "../../core/errors.ts";
import { settleWithin } from "../../core/deadline.ts";
import { renderTemplate } from "../../core/text.ts";
import type { Element } from "../session/client.ts";
import { type IqContext, XmppComponent } from "./component.ts";
import {
  type DirectAddress,
  type DirectListener,
  type GhostAuthor,
  type GhostProvider,
  nodeSafe,
  type PictureSource,
} from "./ghosts.ts";
import { type Intent, ReflectingIntent } from "./intent.ts";
import { type LeaveReason, MucRooms, type PresenceState } from "../muc/rooms.ts";
import { Reflections } from "../muc/reflections.ts";
import { parseGroupchat } from "../protocol/stanza.ts";
import { NS_CHAT_STATES, NS_DISCO_INFO, NS_MUC, NS_PING, NS_VCARD } from "../protocol/ns.ts";
import { sha1Hex } from "../../core/images.ts";
import { photoUpdate } from "../xeps/xep0153.ts";
import { buildVcard } from "../xeps/xep0054.ts";
import { isDirectChannel } from "../direct.ts";

/** Puppets send chat states (XEP-0085) when their Mattermost users type, and answer vCard requests. */
const FEATURES = [NS_DISCO_INFO, NS_MUC, NS_PING, NS_CHAT_STATES, NS_VCARD];
/** How many rooms are rejoined at once after a reconnection. */
const REJOIN_CONCURRENCY = 8;
/**
 * How long a stop waits for the rooms to confirm the puppets' departures before it closes the component's stream.
 * A server busy telling every occupant of a crowded room about each departure reads them slowly, and what it has not
 * read when the stream closes is lost: those puppets would stay in their rooms.
 */
const STOP_CONFIRM_MS = 3_000;

/** Settings of {@link ComponentPuppets}. */
export interface ComponentPuppetsOptions {
  /** `xmpp://host:port` of the server's component port (`XMPP_COMPONENT_SERVICE`). */
  service: string;
  /** The component's JID, a domain such as `bridge.example.org` (`XMPP_COMPONENT_JID`). */
  domain: string;
  /** The component's shared secret (`XMPP_COMPONENT_SECRET`). */
  secret: string;
  /** A puppet's nick: `{username}` (default) and `{displayname}` are replaced. */
  nickFormat?: string;
  /** Resource of every puppet's full JID (default "mmxmpp"). */
  resource?: string;
  /** How long to wait for a room to reflect a sent message (default 15000). */
  reflectionTimeoutMs?: number;
  /** How long to wait for a room to answer a join (default 15000). */
  joinTimeoutMs?: number;
  /** Delay before the first reconnection attempt, doubled after each failure up to 30 s (default 1000). */
  reconnectDelayMs?: number;
  log?: Logger;
}

/** One Mattermost user's puppet. */
interface Puppet {
  author: GhostAuthor;
  /** Bare JID. */
  jid: string;
  /** The full JID it sends from. */
  occupantSource: string;
  muc: MucRooms;
  /**
   * Joins in progress by room, so concurrent sends share one join: `written` once the join presence is on the
   * stream, `joined` once the room answered.
   */
  joining: Map<string, { written: Promise<void>; joined: Promise<void> }>;
  /** Its voice in rooms. */
  intent: Intent;
  /**
   * SHA-1 of the author's picture, which its presence names (XEP-0153) and its vCard holds; null when the author has
   * none of their own; undefined until known.
   */
  photoHash?: string | null;
  /** The version of the author's picture `photoHash` is of. */
  avatarVersion?: string;
  /** The profile changes being applied, one after the other. */
  syncing: Promise<void>;
}

/** A puppet's voice: it speaks from its own full JID over the component's connection. */
class PuppetIntent extends ReflectingIntent {
  constructor(
    readonly jid: string,
    private readonly component: XmppComponent,
    reflections: Reflections,
    private readonly join: (room: string) => Promise<void>,
  ) {
    super(reflections);
  }

  ensureJoined(room: string): Promise<void> {
    return this.join(room.toLowerCase());
  }

  send(stanza: Element): Promise<void> {
    if (this.component.status !== "online") {
      const err = new BridgeError(`the XMPP component ${this.component.domain} is not connected`, {
        transient: true,
      });
      return Promise.reject(err);
    }
    stanza.attrs.from = this.jid;
    return this.component.send(stanza);
  }
}

/**
 * Puppets of one XEP-0114 component.
 *
 * @example
 * ```ts
 * const ghosts = new ComponentPuppets({ service: "xmpp://127.0.0.1:5347", domain: "bridge.example.org", secret });
 * await ghosts.start();
 * const bob = await ghosts.intentFor({ id: userId, name: "bob" });
 * await bob.ensureJoined(room);
 * const { stanzaId } = await bob.sendAwaitingReflection(room, buildGroupchat(room, "hi", originId), originId);
 * ```
 */
export class ComponentPuppets implements GhostProvider {
  readonly mode = "component";
  /** Every puppet writes on the component's one stream: messages may be written ahead of their reflections. */
  readonly oneStream = true;
  private readonly component: XmppComponent;
  private readonly reflections: Reflections;
  private readonly log: Logger;
  private readonly nickFormat: string;
  private readonly resource: string;
  private readonly domain: string;
  private readonly byId = new Map<string, Puppet>();
  private readonly byNode = new Map<string, Puppet>();
  /** Puppets that are or were in each room: isGhost looks only at these. */
  private readonly occupants = new Map<string, Set<Puppet>>();
  /** What each user's puppet says in its rooms besides being there (its status), also for puppets made later. */
  private readonly presences = new Map<string, PresenceState>();
  private everOnline = false;
  private online = false;
  private stopping = false;
  /** Departures sent at stop that their room has not confirmed yet, by `room/nick` and the puppet's full JID. */
  private readonly departing = new Map<string, () => void>();
  /** Receives the 1:1 messages sent to any JID of the component's domain. */
  private directListener?: DirectListener;
  private pictures?: PictureSource;

  constructor(private readonly opts: ComponentPuppetsOptions) {
    this.domain = opts.domain.toLowerCase();
    this.log = opts.log ?? getLogger(["mmxmpp", "xmpp", "component"]);
    this.nickFormat = opts.nickFormat ?? "{username}";
    this.resource = opts.resource ?? "mmxmpp";
    this.reflections = new Reflections(opts.reflectionTimeoutMs);
    this.component = new XmppComponent({
      service: opts.service,
      domain: this.domain,
      secret: opts.secret,
      reconnectDelayMs: opts.reconnectDelayMs,
    });
    this.component.on("stanza", (stanza) => this.onStanza(stanza));
    this.component.on("online", () => this.onOnline());
    this.component.on("disconnect", () => this.onDisconnect());
    this.component.on("error", (err) => {
      if (!this.stopping) {
        this.log.warn("XMPP component {domain}: {error}", { domain: this.domain, error: err.message });
      }
    });
    this.component.iqCallee.get(NS_DISCO_INFO, "query", (ctx) => this.discoInfo(ctx));
    this.component.iqCallee.get(NS_PING, "ping", (ctx) => this.isOurs(ctx) || undefined);
    // A room passes vCard requests to an occupant on to its bare JID: here, the puppet's.
    this.component.iqCallee.get(NS_VCARD, "vCard", (ctx) => this.vcard(ctx));
  }

  /** Connects the component. Rejects with an explained BridgeError (a wrong secret, a refused connection). */
  async start(pictures?: PictureSource): Promise<void> {
    this.pictures = pictures;
    this.stopping = false;
    try {
      await this.component.start();
    } catch (err) {
      throw new BridgeError(
        `cannot connect the XMPP component ${this.domain} to ${this.opts.service}: ${errorMessage(err)}`,
        { transient: err instanceof BridgeError && err.transient, cause: err },
      );
    }
  }

  async intentFor(author: GhostAuthor): Promise<Intent> {
    const puppet = this.puppetFor(author);
    // Before the puppet joins anywhere, so that its presence names its avatar from the start.
    await this.syncProfile(puppet, false);
    return puppet.intent;
  }

  async updateProfile(author: GhostAuthor): Promise<void> {
    const puppet = this.byId.get(author.id);
    if (!puppet) return;
    puppet.author = author;
    await this.syncProfile(puppet, true);
  }

  presentIn(authorId: string, room: string): Intent | undefined {
    const puppet = this.byId.get(authorId);
    if (!puppet || this.component.status !== "online") return undefined;
    // A 1:1 conversation has no room to be in: the puppet is there while the component is up.
    return isDirectChannel(room) || puppet.muc.nickIn(room.toLowerCase()) ? puppet.intent : undefined;
  }

  async setStatus(authorId: string, presence: PresenceState): Promise<void> {
    if (!presence.show && !presence.status) this.presences.delete(authorId);
    else this.presences.set(authorId, presence);
    // Sent to the rooms it is in now (none while the component is away: they are rejoined with it).
    await this.byId.get(authorId)?.muc.setPresence(presence);
  }

  onDirect(listener: DirectListener): void {
    this.directListener = listener;
  }

  /**
   * A puppet's node is its user's username (a valid Mattermost username is already a valid localpart, so nodeSafe
   * leaves it as it is): a puppet not seen since the start is named by it.
   */
  ownerOf(jid: string): Promise<string | undefined> {
    const bare = jid.split("/")[0].toLowerCase();
    const at = bare.indexOf("@");
    if (at <= 0 || bare.slice(at + 1) !== this.domain) return Promise.resolve(undefined);
    const node = bare.slice(0, at);
    return Promise.resolve(this.byNode.get(node)?.author.id ?? `@${node}`);
  }

  addressOf(jid: string): Promise<DirectAddress | undefined> {
    const bare = jid.split("/")[0].toLowerCase();
    if (bare.slice(bare.indexOf("@") + 1) !== this.domain) return Promise.resolve(undefined);
    return Promise.resolve(this.directAddress(bare));
  }

  /** The address `bare` (any JID of the domain) answers from: its full JID with the puppets' resource. */
  private directAddress(bare: string): DirectAddress {
    return {
      jid: bare,
      send: (stanza) => {
        stanza.attrs.from = bare.includes("@") ? `${bare}/${this.resource}` : bare;
        return this.component.send(stanza);
      },
    };
  }

  isGhost(room: string, nick: string): boolean {
    return this.puppetNamed(room, nick) !== undefined;
  }

  authorOf(room: string, nick: string): GhostAuthor | undefined {
    return this.puppetNamed(room, nick)?.author;
  }

  /**
   * The puppet that is or was `nick` in `room` (also while the room has not confirmed it back yet), or whose nick is
   * changing to it.
   */
  private puppetNamed(room: string, nick: string): Puppet | undefined {
    room = room.toLowerCase();
    for (const puppet of this.occupants.get(room) ?? []) {
      const occupancy = puppet.muc.rooms.get(room);
      if (occupancy?.nick === nick || occupancy?.changingTo === nick || puppet.muc.isUs(room, nick)) {
        return puppet;
      }
    }
    return undefined;
  }

  /**
   * Makes the puppet show its author's current name and picture; changes are applied one at a time. Never throws.
   * `removed`: the author comes from a change of their profile, so that no picture means they removed theirs.
   */
  private syncProfile(puppet: Puppet, removed: boolean): Promise<void> {
    puppet.syncing = puppet.syncing.then(() => this.applyProfile(puppet, removed)).catch((err) =>
      this.log.warn("Puppet {jid} could not take on the profile of its user: {error}", {
        jid: puppet.jid,
        error: errorMessage(err),
      })
    );
    return puppet.syncing;
  }

  /**
   * The nick follows the author's name in every room the puppet is in; a picture of a version not seen yet is
   * fetched for its hash, and the puppet's presence names the new hash in its rooms (XEP-0153). The picture itself
   * is not kept: a vCard request fetches it again (clients ask only when the hash is new to them).
   */
  private async applyProfile(puppet: Puppet, removed: boolean): Promise<void> {
    const { author } = puppet;
    const version = author.avatar?.version;
    let newPicture = false;
    // Without a picture, an author seen sending may only be one whose user could not be read: kept as it was.
    const known = puppet.photoHash !== undefined;
    const none = author.avatar === null || removed;
    if (version !== puppet.avatarVersion && (version !== undefined || none || !known)) {
      const image = version && this.pictures ? await this.pictures(author) : undefined;
      const hash = image ? sha1Hex(image.bytes) : null;
      newPicture = hash !== puppet.photoHash;
      puppet.photoHash = hash;
      puppet.avatarVersion = version;
    }
    const nick = this.nickOf(author);
    for (const [room, occupancy] of puppet.muc.rooms) {
      if (occupancy.nick !== undefined && occupancy.nick !== nick) await puppet.muc.changeNick(room, nick);
      else if (newPicture) await puppet.muc.sendPresence(room);
    }
  }

  /** The vCard of a puppet (XEP-0054): its names and its author's picture. Unknown JIDs get no answer. */
  private async vcard(ctx: IqContext): Promise<Element | undefined> {
    const puppet = ctx.to?.local ? this.addressee(ctx.to.toString()) : undefined;
    if (!puppet) return undefined;
    const { author } = puppet;
    const photo = puppet.photoHash && this.pictures
      ? await this.pictures(author).catch((err) => {
        this.log.warn("Could not fetch the picture of {jid} for its vCard: {error}", {
          jid: puppet.jid,
          error: errorMessage(err),
        });
        return undefined;
      })
      : undefined;
    return buildVcard({ fullName: author.displayName || author.name, nickname: author.name, photo });
  }

  async retire(authorId: string): Promise<void> {
    this.presences.delete(authorId);
    const puppet = this.byId.get(authorId);
    if (!puppet) return;
    this.byId.delete(authorId);
    this.byNode.delete(puppet.jid.split("@")[0]);
    const rooms = puppet.muc.resetAll().map(([room]) => room);
    await Promise.all(rooms.map((room) => this.leave(puppet, room)));
    this.log.info("Puppet {jid} retired from {count} room(s)", { jid: puppet.jid, count: rooms.length });
  }

  async leaveRoom(room: string): Promise<void> {
    room = room.toLowerCase();
    const puppets = [...this.occupants.get(room) ?? []];
    await Promise.all(puppets.map((puppet) => this.leave(puppet, room)));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.reflections.rejectAll(new BridgeError("the bridge is stopping", { transient: true }));
    try {
      const leaving: Promise<void>[] = [];
      const confirmed: Promise<void>[] = [];
      for (const puppet of this.byId.values()) {
        for (const [room] of puppet.muc.resetAll()) {
          const nick = puppet.muc.rooms.get(room)?.nick;
          if (nick !== undefined && this.component.status === "online") {
            const key = departureKey(`${room}/${nick}`, puppet.occupantSource);
            confirmed.push(new Promise((resolve) => this.departing.set(key, resolve)));
          }
          leaving.push(this.leave(puppet, room));
        }
      }
      await Promise.all(leaving);
      const waited = await settleWithin(Promise.all(confirmed), STOP_CONFIRM_MS).then(() =>
        this.departing.size
      );
      if (waited > 0) {
        this.log.warn("{count} puppet departures were not confirmed by their rooms in time", {
          count: waited,
        });
      }
    } finally {
      this.departing.clear();
      await this.component.stop();
    }
  }

  /** The puppet of `author`, created on first use; its JID stays the same for as long as this runs. */
  private puppetFor(author: GhostAuthor): Puppet {
    const known = this.byId.get(author.id);
    if (known) {
      known.author = author;
      return known;
    }
    let node = nodeSafe(author.name);
    // Two usernames that differ only where nodeprep folds them: the later one gets a suffix derived from its id.
    if (this.byNode.has(node)) {
      node = `${node}_${createHash("sha1").update(author.id).digest("hex").slice(0, 6)}`;
    }
    const jid = `${node}@${this.domain}`;
    const occupantSource = `${jid}/${this.resource}`;
    const puppet: Puppet = {
      author,
      jid,
      occupantSource,
      muc: new MucRooms(
        (el) => {
          el.attrs.from = puppet.occupantSource;
          // Every available presence of the puppet names its avatar (XEP-0153), once its hash is known.
          if (el.is("presence") && el.attrs.type === undefined && puppet.photoHash !== undefined) {
            el.append(photoUpdate(puppet.photoHash ?? undefined));
          }
          return this.component.send(el);
        },
        (room, reason) => this.onLeft(puppet, room, reason),
        this.opts.joinTimeoutMs,
      ),
      joining: new Map(),
      syncing: Promise.resolve(),
      intent: new PuppetIntent(
        occupantSource,
        this.component,
        this.reflections,
        (room) => this.ensureJoined(puppet, room),
      ),
    };
    this.byId.set(author.id, puppet);
    this.byNode.set(node, puppet);
    // Nothing to send yet (no room joined): its joins carry it.
    void puppet.muc.setPresence(this.presences.get(author.id) ?? {});
    return puppet;
  }

  private nickOf(author: GhostAuthor): string {
    const nick = renderTemplate(this.nickFormat, {
      username: author.name,
      displayname: author.displayName || author.name,
    }).trim();
    return nick || author.name;
  }

  /**
   * Makes the puppet an occupant of `room` as far as speaking goes: resolves once its join presence is written, not
   * once the room answered. The room handles a stream's stanzas in order, so a message written next comes from an
   * occupant, and the puppet's next message need not wait for the room's presence of every occupant (the answer
   * ends with the puppet's own presence, after one presence per occupant: about half a second in a room of 1,000).
   * A join the room refuses makes that message bounce, and the bus sends it again once the join is settled.
   * Concurrent callers share one join.
   */
  private async ensureJoined(puppet: Puppet, room: string): Promise<void> {
    if (this.component.status !== "online") {
      throw new BridgeError(`the XMPP component ${this.domain} is not connected`, { transient: true });
    }
    if (puppet.muc.nickIn(room)) return;
    let joining = puppet.joining.get(room);
    if (!joining) {
      const nick = puppet.muc.rooms.get(room)?.wantedNick ?? this.nickOf(puppet.author);
      let occupants = this.occupants.get(room);
      if (!occupants) this.occupants.set(room, occupants = new Set());
      occupants.add(puppet);
      let written!: () => void;
      const writing = new Promise<void>((resolve) => written = resolve);
      const joined = puppet.muc.join(room, nick, { onWritten: () => written() }).then(
        () => {},
        (err) => {
          // Forget the room: the next message tries again, and a reconnection does not rejoin it meanwhile.
          if (!puppet.muc.nickIn(room)) this.forget(puppet, room);
          throw new BridgeError(`${puppet.jid} ${errorMessage(err)}`, {
            transient: isTransient(err),
            cause: err,
          });
        },
      ).finally(() => puppet.joining.delete(room));
      // A join that fails after its presence was written is told by the bounce of the message that follows it.
      joined.catch(() => {});
      joining = { written: Promise.race([writing, joined]), joined };
      puppet.joining.set(room, joining);
    }
    await joining.written;
  }

  /** Leaves `room` (an unavailable presence when the puppet has a nick there) and forgets it. Never throws. */
  private async leave(puppet: Puppet, room: string): Promise<void> {
    try {
      if (this.component.status === "online") await puppet.muc.leave(room);
    } catch (err) {
      this.log.debug("{jid} could not leave {room}: {error}", {
        jid: puppet.jid,
        room,
        error: errorMessage(err),
      });
    }
    this.forget(puppet, room);
  }

  private forget(puppet: Puppet, room: string): void {
    puppet.muc.rooms.delete(room);
    const occupants = this.occupants.get(room);
    occupants?.delete(puppet);
    if (occupants?.size === 0) this.occupants.delete(room);
  }

  private onStanza(stanza: Element): void {
    try {
      const type = stanza.attrs.type;
      if (stanza.is("message") && type !== "groupchat" && type !== "error") {
        // A 1:1 message, to a puppet or to any other JID of the domain (the listener refuses what is nobody's).
        const to = String(stanza.attrs.to ?? "").split("/")[0].toLowerCase();
        if (to === this.domain || to.endsWith(`@${this.domain}`)) {
          this.directListener?.(stanza, this.directAddress(to));
        }
        return;
      }
      const puppet = this.addressee(String(stanza.attrs.to ?? ""));
      if (!puppet) return;
      if (stanza.is("presence")) {
        if (stanza.attrs.type === "unavailable" && this.departing.size > 0) {
          const key = departureKey(String(stanza.attrs.from ?? ""), String(stanza.attrs.to ?? ""));
          this.departing.get(key)?.();
          this.departing.delete(key);
        }
        puppet.muc.handlePresence(stanza);
        return;
      }
      const msg = parseGroupchat(stanza);
      if (!msg) return;
      if (msg.error) {
        // The room bounced the puppet's message: it is probably no longer an occupant, so join on the next send.
        if (this.reflections.settle(msg) === "bounced") {
          const occupancy = puppet.muc.rooms.get(msg.room);
          if (occupancy) occupancy.joined = false;
        }
      } else if (msg.nick !== "" && puppet.muc.rooms.get(msg.room)?.nick === msg.nick) {
        // The puppet's own message, reflected to itself: the room's stanza-id confirms it.
        this.reflections.settle(msg);
      }
    } catch (err) {
      this.log.warn("Ignored a stanza that could not be handled: {error}", { error: errorMessage(err) });
    }
  }

  /** The puppet a stanza is addressed to, if any. */
  private addressee(to: string): Puppet | undefined {
    const at = to.indexOf("@");
    if (at < 0) return undefined;
    const domain = to.slice(at + 1).split("/")[0].toLowerCase();
    return domain === this.domain ? this.byNode.get(to.slice(0, at).toLowerCase()) : undefined;
  }

  /** Unknown puppets get no answer, so the callee replies service-unavailable as for any nonexistent JID. */
  private discoInfo(ctx: IqContext): Element | undefined {
    const node = ctx.element.attrs.node;
    if (!ctx.to?.local) {
      return discoResult(node, { category: "gateway", type: "mattermost", name: "Mattermost bridge" });
    }
    const puppet = this.addressee(ctx.to.toString());
    if (!puppet) return undefined;
    return discoResult(node, {
      category: "client",
      type: "pc",
      name: puppet.author.displayName || puppet.author.name,
    });
  }

  private isOurs(ctx: IqContext): boolean {
    return !ctx.to?.local || this.addressee(ctx.to.toString()) !== undefined;
  }

  private onOnline(): void {
    const again = this.everOnline;
    this.everOnline = this.online = true;
    this.log.info("XMPP component {domain} is online", { domain: this.domain });
    if (again) void this.rejoinAll();
  }

  private onDisconnect(): void {
    if (this.stopping) return;
    // Every failed reconnection attempt ends in another disconnect; say it once.
    if (this.online) {
      this.log.warn("XMPP component {domain} lost its connection; reconnecting", { domain: this.domain });
    }
    this.online = false;
    this.reflections.rejectAll(
      new BridgeError("the XMPP component lost its connection before the room confirmed a message", {
        transient: true,
      }),
    );
    for (const puppet of this.byId.values()) puppet.muc.resetAll();
  }

  /** After a reconnection no puppet is an occupant any more (the server saw the component go): join again. */
  private async rejoinAll(): Promise<void> {
    const queue: Array<[Puppet, string]> = [];
    for (const puppet of this.byId.values()) {
      for (const [room] of puppet.muc.resetAll()) queue.push([puppet, room]);
    }
    this.log.info("Rejoining {count} puppet occupancies", { count: queue.length });
    const worker = async () => {
      for (let next = queue.shift(); next; next = queue.shift()) {
        const [puppet, room] = next;
        if (this.stopping || this.component.status !== "online") return;
        await this.ensureJoined(puppet, room).catch((err) =>
          this.log.warn("{jid} could not rejoin {room}: {error}", {
            jid: puppet.jid,
            room,
            error: errorMessage(err),
          })
        );
      }
    };
    await Promise.all(Array.from({ length: REJOIN_CONCURRENCY }, worker));
  }

  private onLeft(puppet: Puppet, room: string, reason: LeaveReason): void {
    // Kicked, room destroyed or shut down: the puppet joins again with its next message there.
    this.log.info("{jid} is no longer in {room} ({reason})", { jid: puppet.jid, room, reason });
  }
}

/** How a departure and the room's confirmation of it are matched: the occupant's JID and the puppet's full JID. */
function departureKey(occupant: string, puppet: string): string {
  return `${occupant}\n${puppet}`.toLowerCase();
}

function discoResult(
  node: string | undefined,
  identity: { category: string; type: string; name: string },
): Element {
  return xml(
    "query",
    { xmlns: NS_DISCO_INFO, node },
    xml("identity", identity),
    ...FEATURES.map((feature) => xml("feature", { var: feature })),
  );
}
