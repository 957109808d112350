/**
 * The XMPP connector: one client session that joins the mapped MUC rooms and relays between them and the bus.
 *
 * Outgoing messages carry an XEP-0359 origin-id and are confirmed by the room's reflection, which also gives the
 * room-assigned stanza-id for the id map; a message the room never reflects is retried by the bus.
 *
 * After every (re)join of a room read before, what it said while the bridge was away is fetched from its archive
 * (XEP-0313), live messages held meanwhile. With a ghost provider, remote users speak as occupants of their own.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { BridgeContext, BridgeHealth, GhostingBridge } from "../core/bridge.ts";
import { settleWithin } from "../core/deadline.ts";
import { BridgeError, errorMessage } from "../core/errors.ts";
import type { DirectionalMessage, PartSender, SentRefs } from "../core/message.ts";
import { renderTemplate } from "../core/text.ts";
import { createXmppClient, type Element, type TlsOptions, type XmppClient } from "./client.ts";
import { discoInfo } from "./disco.ts";
import { explainXmppFailure, type XmppFailure } from "./explain.ts";
import { normalizeRoomJid } from "./jid.ts";
import { type LeaveReason, MucRooms } from "./muc.ts";
import { buildGroupchat, type Groupchat, parseBody, parseGroupchat, renderBody } from "./stanza.ts";
import type { GhostProvider } from "./ghosts.ts";
import { Reflections } from "./reflections.ts";
import { discoverXeps, type SessionXeps } from "./xeps.ts";
import { fetchRoomArchive } from "./xep0313.ts";
import { NS_MAM } from "./ns.ts";

const log = getLogger(["mmxmpp", "xmpp"]);

/** Settings of {@link XmppBridge}. */
export interface XmppBridgeOptions {
  jid: string;
  password: string;
  service: string;
  resource: string;
  mucNick: string;
  tls?: TlsOptions;
  /** Prefix put before Mattermost users' text: `{username}`, `{displayname}`. */
  nameFormat: string;
  /** How long to wait for the room to reflect a sent message. */
  reflectionTimeoutMs?: number;
  /** Makes remote users occupants of their own (`ibr`, `component`); without it the bridge relays. */
  ghosts?: GhostProvider;
  /**
   * How far back a catch-up from a room's archive reaches after the bridge was away (default 24 h,
   * `BRIDGE_CATCHUP_MAX_AGE`); older messages are counted in a warning and not bridged.
   */
  catchUpMaxAgeMs?: number;
}

/** How much earlier than the last message seen a catch-up asks the archive from: clocks differ. */
const CATCH_UP_MARGIN_MS = 60_000;

/** How many of our own recent origin-ids are remembered to recognise their reflections. */
const OWN_ORIGIN_MEMORY = 10_000;

/**
 * XMPP side of the bridge. Without a ghost provider the bridge's own occupant relays everyone's words; with one,
 * remote users speak as their own occupants and the bridge's session only listens.
 */
export class XmppBridge implements GhostingBridge {
  readonly network = "xmpp";
  private client!: XmppClient;
  private ctx!: BridgeContext;
  private muc!: MucRooms;
  private readonly reflections: Reflections;
  /** Why the last connection attempt failed, until the session is back. */
  private lastFailure?: string;
  /** Origin-ids of everything we sent, relayed or by a ghost: their reflections are ours. */
  private readonly ownOrigins = new Set<string>();
  /**
   * Test-only: the two safeguards against echoes of the bridge's own messages, so that a test can show each works
   * alone. `filter` drops our own origin-ids, ghosts and the bridge's nick; `deliveryId` hands the bus the origin-id.
   */
  readonly echoGuards = { filter: true, deliveryId: true };
  /** The server's capabilities and the XEP modules it enables; found once per process, after the first login. */
  private xeps?: SessionXeps;
  private state: BridgeHealth = {
    network: "xmpp",
    connected: false,
    detail: "not started",
    since: Date.now(),
  };
  private stopping = false;
  private everOnline = false;
  /** Per room, the time of the newest message seen (the room's stamp, else our clock): where a catch-up starts. */
  private readonly lastSeen = new Map<string, number>();
  /** Live messages held while a room's archive is fetched, so that they are handed on after what came before. */
  private readonly buffering = new Map<string, Groupchat[]>();
  /** Per room, settles when the join and the archive catch-up under way are done: sends to the room wait for it. */
  private readonly catchingUp = new Map<string, Promise<void>>();
  /**
   * Possibly our own messages that the room reflected with no send waiting (in its archive after a restart, or
   * late), by origin-id: a send with that delivery id reports them instead of sending again.
   */
  private readonly reflected = new Map<string, SentRefs>();
  /** Rejoins waiting after a kick; cleared by stop() so that none outlives it. */
  private readonly rejoinTimers = new Set<ReturnType<typeof setTimeout>>();
  private readonly domain: string;
  private readonly local: string;

  constructor(private readonly opts: XmppBridgeOptions) {
    [this.local, this.domain] = opts.jid.split("@");
    this.reflections = new Reflections(opts.reflectionTimeoutMs);
  }

  async start(ctx: BridgeContext): Promise<void> {
    this.ctx = ctx;
    this.client = createXmppClient({
      service: this.opts.service,
      domain: this.domain,
      username: this.local,
      password: this.opts.password,
      resource: this.opts.resource,
      tls: this.opts.tls,
    });
    this.muc = new MucRooms((el) => this.client.send(el), (room, reason) => this.onLeft(room, reason));
    this.client.on("stanza", (stanza: Element) => this.onStanza(stanza));
    this.client.on("online", (jid: unknown) => this.onOnline(String(jid)));
    this.client.on("offline", () => this.setState(false, "offline"));
    this.client.on("disconnect", () => this.onDisconnect());
    this.client.on("error", (err: Error) => {
      if (this.stopping) return;
      log.warn("XMPP connection error: {error}", { error: errorMessage(err) });
      // While reconnecting, /healthz says why the last attempt failed.
      if (this.everOnline) this.lastFailure = oneLine(explainFor(err, this.opts));
    });
    this.stopping = false;
    try {
      await this.client.start();
    } catch (err) {
      this.client.reconnect.stop();
      await this.client.stop().catch(() => {});
      throw startFailure(err, this.opts);
    }
    if (this.opts.ghosts) {
      try {
        await this.opts.ghosts.start();
      } catch (err) {
        // Leave nothing running, so that the start can be tried again.
        this.client.reconnect.stop();
        await settleWithin(this.client.stop(), 2_000);
        throw err;
      }
      log.info("Mattermost users appear as themselves ({mode} mode)", { mode: this.opts.ghosts.mode });
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    for (const timer of this.rejoinTimers) clearTimeout(timer);
    this.rejoinTimers.clear();
    try {
      await this.opts.ghosts?.stop();
    } finally {
      // Even when the ghosts fail to stop, the bridge's own session must not outlive stop().
      if (this.client) await this.stopSession();
    }
  }

  private async stopSession(): Promise<void> {
    this.client.reconnect.stop();
    this.reflections.rejectAll(new BridgeError("the bridge is stopping", { transient: true }));
    this.muc?.resetAll();
    if (this.client.status === "online") {
      await Promise.all([...this.muc.rooms.keys()].map((room) => this.muc.leave(room).catch(() => {})));
    }
    await settleWithin(this.client.stop(), 2_000);
    this.setState(false, "stopped");
  }

  health(): BridgeHealth {
    return { ...this.state };
  }

  async resolveChannel(ref: string, opts: { mustExist: boolean }): Promise<string> {
    const room = normalizeRoomJid(ref);
    if (!opts.mustExist) return room;
    try {
      const info = await discoInfo(this.client, room);
      if (!info.identities.some((i) => i.category === "conference")) {
        throw new BridgeError(`${room} exists but is not a multi-user chat room`);
      }
      return room;
    } catch (err) {
      if (err instanceof BridgeError) throw err;
      const condition = (err as { condition?: string }).condition;
      if (condition === "item-not-found") throw new BridgeError(`room ${room} does not exist on its server`);
      if (condition === "remote-server-not-found" || condition === "remote-server-timeout") {
        throw new BridgeError(`the server of ${room} cannot be reached (${condition})`);
      }
      throw new BridgeError(`cannot check room ${room}: ${condition ?? errorMessage(err)}`, {
        transient: true,
      });
    }
  }

  async joinChannel(room: string): Promise<void> {
    if (this.muc.nickIn(room)) return;
    if (this.client.status !== "online") {
      // Remember the room; it is joined when the session comes (back) online.
      this.muc.rooms.set(room, { wantedNick: this.opts.mucNick, joined: false });
      throw new BridgeError("XMPP is not connected; the room will be joined on reconnect", {
        transient: true,
      });
    }
    const position = this.lastSeen.get(room) ?? await this.ctx.loadCursor(room).catch(() => undefined);
    // Never read before: reading starts now, recorded at once so that a crash soon after is caught up from here.
    if (position === undefined) this.recordPosition(room, Date.now());
    await this.joinAndCatchUp(room, this.opts.mucNick, position);
  }

  /** Joins `room` and then fetches what it archived since `position` (when known), holding live messages meanwhile. */
  private async joinAndCatchUp(room: string, nick: string, position: number | undefined): Promise<void> {
    let caughtUp!: () => void;
    const done = new Promise<void>((resolve) => caughtUp = resolve);
    const finish = () => {
      if (this.catchingUp.get(room) === done) this.catchingUp.delete(room);
      caughtUp();
    };
    this.catchingUp.set(room, done);
    if (position !== undefined) this.buffering.set(room, []);
    try {
      await this.muc.join(room, nick);
    } catch (err) {
      this.buffering.delete(room);
      finish();
      throw err;
    }
    void this.catchUpRoom(room, position).finally(finish);
  }

  /**
   * Hands on what `room` archived (XEP-0313) since `position` less a margin, then the live messages held
   * meanwhile; the id map drops what was already bridged. Without a position (never read) or an archive, only
   * the held messages.
   */
  private async catchUpRoom(room: string, position: number | undefined): Promise<void> {
    try {
      if (position === undefined) return;
      const info = await discoInfo(this.client, room).catch(() => undefined);
      if (!info?.features.has(NS_MAM)) {
        log.info(
          "{room} keeps no archive (XEP-0313): what was said there while the bridge was away is not fetched",
          {
            room,
          },
        );
        return;
      }
      const cutoff = Date.now() - (this.opts.catchUpMaxAgeMs ?? 24 * 3_600_000);
      const archived = await fetchRoomArchive(this.client, room, { start: position - CATCH_UP_MARGIN_MS });
      let caughtUp = 0;
      let tooOld = 0;
      for (const item of archived) {
        const parsed = parseGroupchat(item.message);
        if (!parsed || parsed.room !== room || parsed.error) continue;
        const msg: Groupchat = { ...parsed, stanzaId: item.archiveId, stamp: item.stamp ?? parsed.stamp };
        if ((msg.stamp ?? Date.now()) < cutoff) {
          if ((msg.stamp ?? 0) > position) tooOld++;
          continue;
        }
        if (this.onGroupchat(msg, true)) caughtUp++;
      }
      if (tooOld > 0) {
        log.warn(
          "Skipped {count} message(s) in {room} from while the bridge was away, older than BRIDGE_CATCHUP_MAX_AGE",
          { count: tooOld, room },
        );
      }
      log.info("Fetched {count} message(s) of {room} from its archive after the bridge was away", {
        count: caughtUp,
        room,
      });
    } catch (err) {
      log.warn("Could not fetch what {room} archived while the bridge was away: {error}", {
        room,
        error: errorMessage(err),
      });
    } finally {
      const held = this.buffering.get(room) ?? [];
      this.buffering.delete(room);
      for (const msg of held) this.onGroupchat(msg);
    }
  }

  async leaveChannel(room: string): Promise<void> {
    await this.opts.ghosts?.leaveRoom(room);
    await this.muc.leave(room);
  }

  async remoteUserGone(_network: string, userId: string): Promise<void> {
    await this.opts.ghosts?.retire(userId);
  }

  async send(dm: DirectionalMessage): Promise<SentRefs> {
    const room = dm.targetChannel;
    if (this.client.status !== "online" || !this.muc.nickIn(room)) {
      throw new BridgeError(`not in ${room} right now`, { transient: true });
    }
    const author = dm.message.author;
    // The same origin-id on every retry, so that any reflection of this delivery is recognised as ours.
    const id = dm.deliveryId;
    // Sent before a crash, or before its waiter gave up, and reflected: report it, never send it twice. A delivery
    // replayed after a restart waits for the room's archive first, where that reflection would be.
    await this.catchingUp.get(room);
    const already = this.reflected.get(id);
    if (already) {
      this.reflected.delete(id);
      log.debug("{room} had already reflected delivery {id}: recorded, not sent again", { room, id });
      return already;
    }
    this.rememberOwn(id);
    const { text, action } = dm.message;
    if (this.opts.ghosts) {
      const sent = await this.opts.ghosts.sendAs(author, room, renderBody(text, { action }), id);
      if (sent) return sentRefs(id, sent.stanzaId, sent.sender);
      // This author cannot be a ghost right now: relay the message ourselves.
    }
    const relayedAs = {
      prefix: renderTemplate(this.opts.nameFormat, {
        username: author.name,
        displayname: author.displayName ?? author.name,
      }),
      name: relayedName(this.opts.nameFormat, author),
    };
    const reflected = this.reflections.expect(room, id);
    try {
      await this.client.send(buildGroupchat(room, renderBody(text, { action, relayedAs }), id));
    } catch (err) {
      const failure = new BridgeError(`cannot send to ${room}: ${errorMessage(err)}`, { transient: true });
      this.reflections.cancel(id, failure);
      throw failure;
    }
    return sentRefs(id, await reflected, { kind: "relay" });
  }

  private onStanza(stanza: Element): void {
    try {
      if (stanza.is("presence")) {
        this.muc.handlePresence(stanza);
        return;
      }
      const msg = parseGroupchat(stanza);
      if (msg) this.onGroupchat(msg);
    } catch (err) {
      log.warn("Ignored a stanza that could not be handled: {error}", { error: errorMessage(err) });
    }
  }

  /** Relays one message of a room; `archived` ones come from its archive (XEP-0313). True when handed to the core. */
  private onGroupchat(msg: Groupchat, archived = false): boolean {
    const ownNick = this.muc.nickIn(msg.room);
    if (!archived) {
      const settled = this.reflections.settle(msg);
      // A bounce usually means we are no longer an occupant: rejoin, and the bus retries the message.
      if (settled === "bounced") this.rejoin(msg.room);
      if (settled !== "unknown") return false;
    }
    if (msg.error || !this.muc.rooms.has(msg.room)) return false;
    const held = this.buffering.get(msg.room);
    if (held && !archived) {
      held.push(msg);
      return false;
    }
    if (!msg.delayed || archived) this.recordPosition(msg.room, msg.stamp ?? Date.now());
    const ours = (msg.originId && this.ownOrigins.has(msg.originId)) ||
      this.opts.ghosts?.isGhost(msg.room, msg.nick);
    const fromOwnNick = ownNick !== undefined && msg.nick === ownNick;
    // Live, only the relay's own late reflections (a ghost's are its session's business, and every one of them
    // passes here). In an archive, any occupant may be one of our ghosts, whose sessions a restart has not reopened.
    const possiblyOurs = archived ? ours || fromOwnNick || this.opts.ghosts !== undefined : fromOwnNick;
    if (msg.originId && msg.stanzaId && possiblyOurs) {
      this.rememberReflected(
        msg.originId,
        msg.stanzaId,
        fromOwnNick ? { kind: "relay" } : { kind: "unknown" },
      );
    }
    if (this.echoGuards.filter && (ours || fromOwnNick)) {
      // Our own message, reflected after its waiter gave up: record the room's id so later references resolve.
      if (msg.originId && msg.stanzaId) {
        // In the background, from a stanza handler: a failure here must be caught, or it ends the process.
        this.ctx.addMessageAlias(msg.room, msg.originId, msg.stanzaId, "stanzaId").catch((err) =>
          log.warn("Could not record the room's id of our message in {room}: {error}", {
            room: msg.room,
            error: errorMessage(err),
          })
        );
      }
      return false;
    }
    // History the room replays at join is never bridged: what was missed comes from the archive instead.
    if ((msg.delayed && !archived) || msg.body === undefined || msg.body === "" || msg.nick === "") {
      return false;
    }
    // The room's stanza-id is unique in the room; ids the sender chose are not (some clients count "1", "2" …), so
    // they are kept qualified by the sender's nick, which is also how corrections (XEP-0308) refer to them.
    const senderIds = [msg.originId, msg.id].filter((x): x is string => !!x).map((x) => `${msg.nick}/${x}`);
    const ids = [...new Set([msg.stanzaId, ...senderIds].filter((x): x is string => !!x))];
    log.debug("Received from {room}/{nick}: {body}", { room: msg.room, nick: msg.nick, body: msg.body });
    this.ctx.receive({
      network: this.network,
      channel: msg.room,
      ids,
      author: { id: msg.occupantId ?? `${msg.room}/${msg.nick}`, name: msg.nick },
      ...parseBody(msg.body),
      timestamp: archived ? msg.stamp ?? Date.now() : Date.now(),
      deliveryId: this.echoGuards.deliveryId ? msg.originId : undefined,
    });
    return true;
  }

  /** Remembers how far `room` was read, here and (in batches) in the store. */
  private recordPosition(room: string, time: number): void {
    if (!Number.isFinite(time) || time <= (this.lastSeen.get(room) ?? -Infinity)) return;
    this.lastSeen.set(room, time);
    this.ctx.saveCursor(room, time);
  }

  /** Capabilities discovered on the bridge's session, once known. */
  capabilities(): SessionXeps | undefined {
    return this.xeps;
  }

  private async onOnline(jid: string): Promise<void> {
    this.setState(true, `connected as ${jid}`);
    this.lastFailure = undefined;
    // In the background, so that a slow service does not hold up rejoining; retried on the next login if it failed.
    if (!this.xeps) {
      discoverXeps(this.client, {
        service: this.opts.service,
        domain: this.domain,
        tls: this.opts.tls,
        protectedJids: [this.opts.jid],
      }).then(
        (found) => this.xeps = found,
        (err) => log.warn("XMPP capability discovery failed: {error}", { error: errorMessage(err) }),
      );
    }
    const rooms = this.muc.resetAll();
    if (this.everOnline) log.info("XMPP session is back; rejoining {count} room(s)", { count: rooms.length });
    this.everOnline = true;
    this.client.reconnect.delay = 1_000;
    // What the rooms said while the session was away comes from their archives.
    for (const [room, nick] of rooms) {
      await this.joinAndCatchUp(room, nick, this.lastSeen.get(room)).catch((err) =>
        log.error("Could not rejoin {room}: {error}", { room, error: errorMessage(err) })
      );
    }
  }

  private onDisconnect(): void {
    if (this.stopping) return;
    const why = this.lastFailure ? `: ${this.lastFailure}` : "";
    this.setState(false, `disconnected from ${this.opts.service}; reconnecting${why}`);
    this.reflections.rejectAll(
      new BridgeError("XMPP connection lost before the room confirmed a message", { transient: true }),
    );
    this.muc.resetAll();
    // Back off: 1 s, 2 s, 4 s … up to 30 s between attempts while the server stays away.
    this.client.reconnect.delay = Math.min(30_000, Math.max(1_000, this.client.reconnect.delay * 2));
  }

  private onLeft(room: string, reason: LeaveReason): void {
    if (this.stopping) return;
    if (reason === "banned") {
      log.error("Banned from {room}: not rejoining; lift the ban on {jid}, then restart the bridge", {
        room,
        jid: this.opts.jid,
      });
      return;
    }
    if (reason === "left") return;
    const timer = setTimeout(() => {
      this.rejoinTimers.delete(timer);
      this.rejoin(room);
    }, 2_000);
    this.rejoinTimers.add(timer);
  }

  private rejoin(room: string): void {
    const occ = this.muc.rooms.get(room);
    if (!occ || this.stopping || this.client.status !== "online") return;
    this.joinAndCatchUp(room, occ.wantedNick, this.lastSeen.get(room)).catch((err) =>
      log.error("Could not rejoin {room}: {error}", { room, error: errorMessage(err) })
    );
  }

  private rememberReflected(originId: string, stanzaId: string, sender: PartSender): void {
    this.reflected.set(originId, sentRefs(originId, stanzaId, sender));
    if (this.reflected.size > OWN_ORIGIN_MEMORY) {
      this.reflected.delete(this.reflected.keys().next().value!);
    }
  }

  private rememberOwn(originId: string): void {
    this.ownOrigins.add(originId);
    if (this.ownOrigins.size > OWN_ORIGIN_MEMORY) {
      this.ownOrigins.delete(this.ownOrigins.values().next().value!);
    }
  }

  private setState(connected: boolean, detail: string): void {
    if (this.state.connected !== connected || this.state.detail !== detail) {
      this.state = { network: this.network, connected, detail, since: Date.now() };
    }
  }
}

/** What a message sent with `id` (its message id and origin-id) and reflected with `stanzaId` is in the room. */
function sentRefs(id: string, stanzaId: string | undefined, sender: PartSender): SentRefs {
  return {
    ids: stanzaId ? [id, stanzaId] : [id],
    parts: [{ messageId: id, originId: id, ...(stanzaId ? { stanzaId } : {}), sender }],
  };
}

/**
 * The author's name in a relayed action (`* name waves`): the display name when the name template shows only
 * that, else the username, as a message's prefix would show them.
 */
function relayedName(nameFormat: string, author: { name: string; displayName?: string }): string {
  const displayOnly = nameFormat.includes("{displayname}") && !nameFormat.includes("{username}");
  return displayOnly ? author.displayName ?? author.name : author.name;
}

/** A connection failure of the bridge's session, explained (the root cause, and which setting to change). */
function explainFor(err: unknown, opts: XmppBridgeOptions): XmppFailure {
  return explainXmppFailure(err, {
    service: opts.service,
    account: opts.jid,
    passwordSetting: "XMPP_PASSWORD",
    skipVerifySetting: "XMPP_TLS_INSECURE_SKIP_VERIFY=true",
  });
}

/** A failure as one line: the reason, then what to do. */
function oneLine(f: XmppFailure): string {
  return f.fix ? `${f.reason}; ${f.fix}` : f.reason;
}

/**
 * The error a failed login at start is reported with: the root cause and what to do, and whether a retry can help
 * (a server that is down) or the account or the settings must change (an exit code then says which).
 */
function startFailure(err: unknown, opts: XmppBridgeOptions): BridgeError {
  const f = explainFor(err, opts);
  return new BridgeError(`cannot connect to XMPP at ${opts.service} as ${opts.jid}: ${oneLine(f)}`, {
    cause: err,
    transient: f.transient,
    kind: f.kind,
  });
}
