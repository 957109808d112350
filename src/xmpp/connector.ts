/**
 * The XMPP connector: one client session that joins the mapped MUC rooms and relays between them and the bus.
 *
 * Outgoing messages carry an XEP-0359 origin-id and are confirmed by the room's reflection, which also gives the
 * room-assigned stanza-id for the id map; a message the room never reflects is retried by the bus. The relay's one
 * stream keeps the order of what it writes, so the bus may write the next message before the last is reflected
 * (`dispatch`, the core's PipeliningBridge).
 *
 * After every (re)join of a room read before, what it said while the bridge was away is fetched from its archive
 * (XEP-0313), or, when it keeps none, asked for as the history its join replays (since the last message seen);
 * live messages are held meanwhile. With a ghost provider, remote users speak as occupants of their own: each voice
 * is an intent (src/xmpp/intents/intent.ts), and the connector builds every stanza once, for whichever speaks.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { xml } from "@xmpp/client-core";
import {
  type AvatarSource,
  type BridgeContext,
  type BridgeHealth,
  type DirectCapable,
  type Dispatched,
  type EditCapable,
  type FileSource,
  type FileStream,
  FileUnavailable,
  type GhostingBridge,
  MESSAGES_ONLY,
  type NoticeCapable,
  type OpenFileOptions,
  type PipeliningBridge,
  type PortalCapabilities,
  type ProfileMirroring,
  type ReactionCapable,
  type RemoveCapable,
  type StatusChange,
  type StatusMirroring,
  type TypingCapable,
} from "../core/bridge.ts";
import { type Image, imageType, MAX_AVATAR_BYTES, readAtMost } from "../core/images.ts";
import { fetchVcard, readVcardPhoto } from "./xeps/xep0054.ts";
import { fetchAvatarData, fetchAvatarMetadata } from "./xeps/xep0084.ts";
import { Backoff, type BackoffPolicy } from "../core/backoff.ts";
import { settleWithin } from "../core/deadline.ts";
import { BridgeError, errorMessage, isTransient } from "../core/errors.ts";
import type {
  BridgeMessage,
  DirectionalMessage,
  EditDelivery,
  PartSender,
  ReactionsDelivery,
  RemoveDelivery,
  SentRefs,
  TypingDelivery,
} from "../core/message.ts";
import type { Attachment, BridgeEvent, Sender } from "../core/events.ts";
import { fileNotice, tooLarge } from "../core/files.ts";
import { renderTemplate } from "../core/text.ts";
import { RecentKeys } from "../core/recent_keys.ts";
import { createXmppClient, type Element, type TlsOptions, type XmppClient } from "./session/client.ts";
import { discoInfo } from "./protocol/disco.ts";
import { explainXmppFailure, type XmppFailure } from "./explain.ts";
import { normalizeRoomJid } from "./protocol/jid.ts";
import { type LeaveReason, MucRooms } from "./muc/rooms.ts";
import {
  buildGroupchat,
  type Delay,
  type Groupchat,
  parseBody,
  parseGroupchat,
  renderBody,
} from "./protocol/stanza.ts";
import { senderMessageId, undeliverableNotice } from "./protocol/undeliverable.ts";
import type { DirectAddress, GhostAuthor, GhostProvider } from "./intents/ghosts.ts";
import { type Intent, SessionIntent } from "./intents/intent.ts";
import { Reflections } from "./muc/reflections.ts";
import { discoverXeps, type SessionXeps } from "./xeps/session_xeps.ts";
import { fetchRoomArchive } from "./xeps/xep0313.ts";
import { NS_MAM, NS_MUC_USER, NS_STYLING } from "./protocol/ns.ts";
import { addReply, prependQuote, readReply, type ReplyPointer, replyPointer } from "./xeps/xep0461.ts";
import { quoteLines, standaloneQuote } from "../core/reply.ts";
import { oobElement, readOobMessage } from "./xeps/xep0066.ts";
import { putToSlot, xep0363 } from "./xeps/xep0363.ts";
import { openUrl } from "./file_fetch.ts";
import { stylingToMarkdown } from "./xeps/xep0393.ts";
import { markdownToStyling } from "./markdown.ts";
import { ghostMentions, type GhostName } from "./mentions.ts";
import { type OccupantChange, Occupants } from "./muc/occupants.ts";
import type { IncomingBase, IncomingReader } from "./incoming.ts";
import { buildCorrection, readCorrection } from "./xeps/xep0308.ts";
import { buildRetraction, readRetraction } from "./xeps/xep0424.ts";
import { readModeration } from "./xeps/xep0425.ts";
import { buildReactions, reactionTargetId, readReactions } from "./xeps/xep0444.ts";
import { chatStateOf, ChatStates, readChatState } from "./xeps/xep0085.ts";
import { OccupantStatuses, presenceOf, statusOfShow } from "./status.ts";
import {
  bareJid,
  directChannel,
  type DirectPair,
  domainAllowed,
  domainOf,
  parseDirectChannel,
} from "./direct.ts";
import {
  asChat,
  carriesContent,
  type Chat,
  chatIds,
  errorReply,
  parseChat,
  readChat,
  refusal,
  type RefusalCondition,
  senderOf,
} from "./direct_chats.ts";

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
  /**
   * Hosts (`name` or `name:port`) files may be downloaded from over plain http (`BRIDGE_FILE_FETCH_HOSTS`); unset,
   * the hosts of the server's XEP-0363 upload service URLs.
   */
  fileFetchHosts?: string[];
  /**
   * The window in which an occupant's presence changes are coalesced into one status change (default 2 s): a room's
   * flood of presences (a join, a server restart) costs one update per user.
   */
  presenceWindowMs?: number;
  /** Direct messages: 1:1 chats with ghosts and puppets. Without it, every one is refused with an error. */
  direct?: DirectOptions;
}

/** Settings of direct messages. */
export interface DirectOptions {
  /** Domains whose users may write to the bridge's ghosts (`BRIDGE_DM_ALLOWED_DOMAINS`; `*.example.org` too). */
  allowedDomains: string[];
  /** Why every direct message is refused right now, told to its sender (e.g. Mattermost puppets are off). */
  refusal?: string;
  /** What a ghost's or puppet's address looks like, told to whoever writes to the bridge's own. */
  addressHint?: string;
}

/** The network whose users the ghosts stand for: the other end of every direct conversation. */
const DIRECT_USER_NETWORK = "mattermost";

/** Largest file copied to an upload service that states no limit (Mattermost's default MaxFileSize). */
const DEFAULT_MAX_FILE_BYTES = 100 * 1024 * 1024;

/** How much earlier than the last message seen a catch-up asks the archive from: clocks differ. */
const CATCH_UP_MARGIN_MS = 60_000;

/** How long after a join a room's replayed history may take before live messages are handed on regardless. */
const HISTORY_END_TIMEOUT_MS = 10_000;

/** History a room replays after our join: what came so far, and its end. */
interface Replay {
  items: Groupchat[];
  /** Ends the replay: the room's subject came, or the join failed. */
  end(): void;
  /** Resolves with the replayed messages once {@link Replay.end} is called, or after a while without it. */
  ended(): Promise<Groupchat[]>;
}

/** How many of our own recent origin-ids are remembered to recognise their reflections. */
const OWN_ORIGIN_MEMORY = 10_000;

/** Waits between attempts to get the session back while the server stays away: 1 s, 2 s, 4 s … up to 30 s. */
const RECONNECT: BackoffPolicy = { initialMs: 1_000, maxMs: 30_000 };

/**
 * Waits before rejoining a room that sent us away (kick, shutdown): 2 s, then twice as long each time it does so
 * again within {@link REJOIN_STAY_MS} of taking us back, up to 5 minutes, so that a kick loop is not a join loop.
 */
const REJOIN: BackoffPolicy = { initialMs: 2_000, maxMs: 300_000 };
/** A rejoin the room kept this long was accepted: the next removal starts the rejoin backoff over. */
const REJOIN_STAY_MS = 60_000;

/**
 * XMPP side of the bridge. Without a ghost provider the bridge's own occupant relays everyone's words; with one,
 * remote users speak as their own occupants and the bridge's session only listens.
 */
export class XmppBridge
  implements
    DirectCapable,
    GhostingBridge,
    NoticeCapable,
    PipeliningBridge,
    FileSource,
    EditCapable,
    RemoveCapable,
    ReactionCapable,
    TypingCapable,
    StatusMirroring,
    ProfileMirroring,
    AvatarSource {
  readonly network = "xmpp";
  private client!: XmppClient;
  private ctx!: BridgeContext;
  private muc!: MucRooms;
  private readonly reflections: Reflections;
  /** Why the last connection attempt failed, until the session is back. */
  private lastFailure?: string;
  /** Origin-ids of everything we sent, relayed or by a ghost: their reflections are ours. */
  private readonly ownOrigins = new RecentKeys(OWN_ORIGIN_MEMORY);
  /**
   * Test-only: the two safeguards against echoes of the bridge's own messages, so that a test can show each works
   * alone. `filter` drops our own origin-ids, ghosts and the bridge's nick; `deliveryId` hands the bus the origin-id.
   */
  readonly echoGuards = { filter: true, deliveryId: true };
  /**
   * Steps that add to every message this connector sends, whichever voice speaks it (the relay, a ghost, a puppet):
   * an element a feature needs is added here once, in the order the steps were registered.
   */
  readonly outgoing: Array<(stanza: Element, dm: DirectionalMessage) => void> = [];
  /**
   * Readers of a room's messages, tried in order before the message is taken as a new one: each returns the event
   * the stanza stands for (an edit, a removal, reactions …), null to drop it, or undefined when it is not theirs.
   * Each XEP module registers one.
   */
  readonly incoming: IncomingReader[] = [];
  /** The occupants' statuses, from their presence, coalesced per user before they reach the core. */
  private readonly statuses: OccupantStatuses;
  /** What each ghost or puppet shows as typing in each room (XEP-0085), rate-limited. */
  private readonly chatStates = new ChatStates();
  /** The bridge's own occupant, which relays everyone without a voice of their own. */
  private relay!: Intent;
  /** Who is in each joined room: nicks for mentions, real JIDs (where revealed) for who sent a message. */
  private readonly occupants = new Occupants();
  /** The server's capabilities and the XEP modules it enables; found once per process, after the first login. */
  private xeps?: SessionXeps;
  /** Settles once the capability discovery under way (or the last one) is over. */
  private discovering?: Promise<void>;
  /** The hosts of the upload service's URLs, learnt from one slot it gives (the default of `fileFetchHosts`). */
  private uploadHosts?: Promise<Set<string>>;
  /** Parts of a message with files already in the room, so that a retry does not send them again. */
  private readonly fileProgress = new WeakMap<DirectionalMessage, SentRefs>();
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
  /** History being replayed by rooms without an archive, after our join. */
  private readonly replays = new Map<string, Replay>();
  /** Mapped rooms the bridge cannot be in right now, and why (a ban, a destroyed room, a failed rejoin): /healthz. */
  private readonly roomTrouble = new Map<string, string>();
  /** Rooms that banned the bridge since it last joined them: nothing can be delivered there until a rejoin. */
  private readonly banned = new Set<string>();
  /** Per room, settles when the join and the archive catch-up under way are done: sends to the room wait for it. */
  private readonly catchingUp = new Map<string, Promise<void>>();
  /**
   * Possibly our own messages that the room reflected with no send waiting (in its archive after a restart, or
   * late), by origin-id: a send with that delivery id reports them instead of sending again.
   */
  private readonly reflected = new Map<string, SentRefs>();
  /** Rejoins waiting after a kick; cleared by stop() so that none outlives it. */
  private readonly rejoinTimers = new Set<ReturnType<typeof setTimeout>>();
  /** Per room sent away: the rejoin backoff, and when the last rejoin succeeded. */
  private readonly rejoins = new Map<string, { backoff: Backoff; rejoinedAt?: number }>();
  private readonly domain: string;
  private readonly local: string;
  /** Drives `@xmpp/reconnect`, which has one fixed `delay` and no backoff of its own. */
  private readonly reconnectBackoff = new Backoff(RECONNECT);
  /** 1:1 messages are read one after the other (an owner look-up may wait), so that they reach the core in order. */
  private directInbound: Promise<void> = Promise.resolve();
  /** Per XMPP user (bare JID) writing to a ghost, the full JID they last wrote from: where an error reply goes. */
  private readonly peerResources = new Map<string, string>();

  constructor(private readonly opts: XmppBridgeOptions) {
    [this.local, this.domain] = opts.jid.split("@");
    this.reflections = new Reflections(opts.reflectionTimeoutMs);
    this.statuses = new OccupantStatuses(
      opts.presenceWindowMs ?? 2_000,
      (change) => this.ctx.statusChanged(change),
    );
    // The room's announcement of a moderation before an occupant's retraction: both carry `<retract>`.
    // A correction's new text is styled like a message's: read as Markdown the same way.
    const readStyledCorrection: IncomingReader = (msg, base) => {
      const edit = readCorrection(msg, base);
      return edit?.kind === "edit" ? { ...edit, text: this.markdownOf(msg, edit.text) } : edit;
    };
    // Chat states last: a reactions message may carry one too, and is reactions.
    this.incoming.push(readModeration, readRetraction, readStyledCorrection, readReactions, readChatState);
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
    this.relay = new SessionIntent(this.client, this.muc, this.reflections);
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
    this.opts.ghosts?.onDirect?.((stanza, address) => this.onDirect(stanza, address));
    try {
      await this.client.start();
    } catch (err) {
      this.client.reconnect.stop();
      await this.client.stop().catch(() => {});
      throw startFailure(err, this.opts);
    }
    if (this.opts.ghosts) {
      try {
        await this.opts.ghosts.start((author) => this.pictureOf(author));
      } catch (err) {
        // Leave nothing running, so that the start can be tried again.
        this.client.reconnect.stop();
        await settleWithin(this.client.stop(), 2_000);
        throw err;
      }
      log.info("Mattermost users appear as themselves ({mode} mode)", { mode: this.opts.ghosts.mode });
      void this.keepDirectGhostsOnline();
    }
  }

  /** Connects the ghosts that have direct conversations, so that what their peers write arrives. */
  private async keepDirectGhostsOnline(): Promise<void> {
    const channels = await this.ctx.mappedChannels().catch((): string[] => []);
    const ghosts = new Set(channels.flatMap((c) => parseDirectChannel(c)?.ghost ?? []));
    for (const jid of ghosts) await this.opts.ghosts?.keepOnline?.(jid);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.chatStates.clear();
    this.statuses.clear();
    for (const timer of this.rejoinTimers) clearTimeout(timer);
    this.rejoinTimers.clear();
    this.rejoins.clear();
    // Side by side: the ghosts may wait for their rooms to confirm their departures, which must not hold up the
    // session's own (both share the few seconds the process gives a stop). Even when the ghosts fail to stop, the
    // bridge's own session must not outlive stop().
    const [ghosts, session] = await Promise.allSettled([
      this.opts.ghosts?.stop(),
      this.client ? this.stopSession() : undefined,
    ]);
    if (ghosts.status === "rejected") throw ghosts.reason;
    if (session.status === "rejected") throw session.reason;
  }

  private async stopSession(): Promise<void> {
    this.client.reconnect.stop();
    this.reflections.rejectAll(new BridgeError("the bridge is stopping", { transient: true }));
    for (const replay of [...this.replays.values()]) replay.end();
    this.muc?.resetAll();
    if (this.client.status === "online") {
      await Promise.all([...this.muc.rooms.keys()].map((room) => this.muc.leave(room).catch(() => {})));
    }
    await settleWithin(this.client.stop(), 2_000);
    this.setState(false, "stopped");
  }

  health(): BridgeHealth {
    if (this.roomTrouble.size === 0) return { ...this.state };
    return { ...this.state, detail: [this.state.detail, ...this.roomTrouble.values()].join("; ") };
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
    const pair = parseDirectChannel(room);
    // A 1:1 conversation is joined by nobody: its ghost only has to be there to hear its peer.
    if (pair) return await this.opts.ghosts?.keepOnline?.(pair.ghost);
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

  /**
   * Joins `room` and catches up on what it said since `position` (when known), holding live messages meanwhile:
   * from its archive (XEP-0313) when it keeps one, else from the history it replays at join (XEP-0045 §7.2.15).
   */
  private async joinAndCatchUp(room: string, nick: string, position: number | undefined): Promise<void> {
    let caughtUp!: () => void;
    const done = new Promise<void>((resolve) => caughtUp = resolve);
    const finish = () => {
      if (this.catchingUp.get(room) === done) this.catchingUp.delete(room);
      caughtUp();
    };
    this.catchingUp.set(room, done);
    if (position === undefined) {
      try {
        await this.muc.join(room, nick);
      } finally {
        finish();
      }
      this.roomTrouble.delete(room);
      this.banned.delete(room);
      return;
    }
    const since = position - CATCH_UP_MARGIN_MS;
    const held: Groupchat[] = [];
    this.buffering.set(room, held);
    let missed: Promise<{ from: string; items: Groupchat[] }>;
    let replay: Replay | undefined;
    try {
      if (await this.keepsArchive(room)) {
        await this.muc.join(room, nick);
        missed = fetchRoomArchive(this.client, room, { start: since }).then((archived) => ({
          from: "archive",
          items: archived.flatMap((item) => {
            const parsed = parseGroupchat(item.message);
            if (!parsed || parsed.room !== room || parsed.error) return [];
            return [{ ...parsed, stanzaId: item.archiveId, stamp: item.stamp ?? parsed.stamp }];
          }),
        }));
      } else {
        log.info("{room} keeps no archive (XEP-0313): catching up from the history it replays at join", {
          room,
        });
        replay = this.expectHistory(room);
        await this.muc.join(room, nick, { historySince: since });
        missed = replay.ended().then((items) => ({ from: "history", items }));
      }
    } catch (err) {
      replay?.end();
      if (this.buffering.get(room) === held) this.buffering.delete(room);
      finish();
      throw err;
    }
    this.roomTrouble.delete(room);
    this.banned.delete(room);
    void this.catchUpRoom(room, position, missed, held).finally(finish);
  }

  /** Whether `room` offers XEP-0313; a room that does not answer is treated as keeping none. */
  private async keepsArchive(room: string): Promise<boolean> {
    const info = await discoInfo(this.client, room).catch(() => undefined);
    return info?.features.has(NS_MAM) ?? false;
  }

  /**
   * Starts collecting the history `room` replays after our join (delayed messages, before the room's subject,
   * which always comes last); {@link Replay.ended} gives them once the subject came, or after a while without it.
   */
  private expectHistory(room: string): Replay {
    const items: Groupchat[] = [];
    let resolve!: (items: Groupchat[]) => void;
    const done = new Promise<Groupchat[]>((r) => resolve = r);
    let timer: ReturnType<typeof setTimeout> | undefined;
    let finished = false;
    const replay: Replay = {
      items,
      end: () => {
        finished = true;
        clearTimeout(timer);
        if (this.replays.get(room) === replay) this.replays.delete(room);
        resolve(items);
      },
      ended: () => {
        // Counted from the join: a room that never sends its subject does not hold live messages for long.
        if (!finished) timer ??= setTimeout(() => replay.end(), HISTORY_END_TIMEOUT_MS);
        return done;
      },
    };
    this.replays.get(room)?.end();
    this.replays.set(room, replay);
    return replay;
  }

  /**
   * Hands on what `room` said since `position` less a margin (`missed`, oldest first), then the live messages
   * `held` meanwhile; the id map drops what was already bridged, and what is older than BRIDGE_CATCHUP_MAX_AGE is
   * counted in a warning instead.
   */
  private async catchUpRoom(
    room: string,
    position: number,
    missed: Promise<{ from: string; items: Groupchat[] }>,
    held: Groupchat[],
  ): Promise<void> {
    try {
      const { from, items } = await missed;
      const since = position - CATCH_UP_MARGIN_MS;
      const cutoff = Date.now() - (this.opts.catchUpMaxAgeMs ?? 24 * 3_600_000);
      let caughtUp = 0;
      let tooOld = 0;
      for (const msg of items) {
        const stamp = msg.stamp ?? Date.now();
        // A room may replay more than was asked for; what came before is not missed.
        if (stamp < since) continue;
        if (stamp < cutoff) {
          if (stamp > position) tooOld++;
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
      log.info("Fetched {count} message(s) of {room} from its {from} after the bridge was away", {
        count: caughtUp,
        room,
        from,
      });
    } catch (err) {
      log.warn("Could not fetch what {room} said while the bridge was away: {error}", {
        room,
        error: errorMessage(err),
      });
    } finally {
      if (this.buffering.get(room) === held) this.buffering.delete(room);
      for (const msg of held) this.onGroupchat(msg);
    }
  }

  async leaveChannel(room: string): Promise<void> {
    if (parseDirectChannel(room)) return;
    this.roomTrouble.delete(room);
    await this.opts.ghosts?.leaveRoom(room);
    await this.muc.leave(room);
    this.occupants.forget(room);
    this.statuses.forgetRoom(room);
  }

  async remoteUserGone(_network: string, userId: string): Promise<void> {
    await this.opts.ghosts?.retire(userId);
  }

  /**
   * Corrections (XEP-0308), retractions (XEP-0424) and reactions (XEP-0444) need nothing of the room: clients apply
   * them, and any occupant may send them for its own messages.
   */
  portalCapabilities(_room: string): PortalCapabilities {
    // Typing shows only as the typer's own ghost or puppet: the relay typing for everyone would tell nothing.
    return { ...MESSAGES_ONLY, canEdit: true, canRemove: true, reactions: true, typing: !!this.opts.ghosts };
  }

  /**
   * Shows the sender's typing as XEP-0085 `composing`, its end as `paused`, from the sender's ghost or puppet, and
   * only where it is already an occupant: a ghost never connects or joins a room just to type. Rate-limited per
   * voice and room (see {@link ChatStates}).
   */
  async sendTyping(d: TypingDelivery): Promise<void> {
    const room = d.targetChannel;
    const pair = parseDirectChannel(room);
    const intent = pair
      ? await this.directTypingVoice(d.event.sender, room, pair)
      : this.opts.ghosts?.presentIn(d.event.sender.id, room);
    if (!intent) return;
    const state = d.event.active ? "composing" : "paused";
    await this.chatStates.set(
      room,
      intent.jid,
      state,
      (stanza) => intent.send(pair ? asChat(stanza, pair.peer) : stanza),
    );
  }

  /**
   * Who shows the sender's typing in the 1:1 conversation `pair`: the JID the peer writes to, and only when it can
   * speak without connecting. Component puppets all write on the component's stream, which is up; an ibr ghost only
   * when its session is (a direct conversation keeps it so, see keepOnline).
   */
  private async directTypingVoice(
    sender: Sender,
    channel: string,
    pair: DirectPair,
  ): Promise<Intent | undefined> {
    const ghosts = this.opts.ghosts;
    if (!ghosts) return undefined;
    const intent = ghosts.oneStream
      ? await ghosts.intentFor(sender) ?? undefined
      : ghosts.presentIn(sender.id, channel);
    return intent && bareJid(intent.jid) === pair.ghost ? intent : undefined;
  }

  /**
   * Sends an XEP-0308 correction of the bridged message, from the JID that sent it (clients ignore a correction
   * from anyone else), pointing at its message id. A Mattermost post is one message in the room, the first part
   * (only a post's text is corrected; what follows it, such as files, is not text to correct): that one is corrected.
   */
  async sendEdit(d: EditDelivery): Promise<void> {
    const room = d.targetChannel;
    const part = d.targetMessage.parts[0];
    const originalId = part?.messageId ?? part?.originId;
    if (!originalId) {
      throw new BridgeError(`the id map has no message id of the message to correct in ${room}`);
    }
    if (await this.readyToSend(room, d.deliveryId)) return;
    const intent = await this.voiceOf(part.sender, d.event.sender, room);
    const body = this.bodyFor(room, d.event.text, d.event.action, d.event.sender, intent === this.relay);
    const stanza = buildCorrection(room, body, d.deliveryId, originalId);
    const stanzaId = await this.speak(intent, room, stanza, d.deliveryId);
    await this.recordFollowUp(room, originalId, stanzaId);
  }

  /**
   * Retracts (XEP-0424) every message the bridged post became, each from the JID that sent it, pointing at the
   * room's stanza-id (the message id when the room gave none), with the XEP-0428 fallback body.
   */
  async sendRemove(d: RemoveDelivery): Promise<void> {
    const room = d.targetChannel;
    const { parts } = d.targetMessage;
    for (const [i, part] of parts.entries()) {
      const targetId = part.stanzaId ?? part.originId ?? part.messageId;
      if (!targetId) continue;
      // One id per retraction, the same on every retry.
      const id = parts.length === 1 ? d.deliveryId : `${d.deliveryId}-${i}`;
      if (await this.readyToSend(room, id)) continue;
      const intent = await this.voiceOf(part.sender, d.event.sender, room);
      const stanzaId = await this.speak(intent, room, buildRetraction(room, id, targetId), id);
      await this.recordFollowUp(room, targetId, stanzaId);
    }
  }

  /**
   * Records the room's stanza-id of a correction or retraction we sent as another id of the message it points at
   * (`knownId`): when the room's archive hands it back after a restart, from a ghost or puppet whose session is not
   * up yet to be recognised, the id map knows it as our own output and it is dropped, not bridged back.
   */
  private async recordFollowUp(room: string, knownId: string, stanzaId: string | undefined): Promise<void> {
    if (!stanzaId) return;
    await this.ctx.addMessageAlias(room, knownId, stanzaId).catch((err) =>
      log.warn("Could not record the room's id of a correction or retraction in {room}: {error}", {
        room,
        error: errorMessage(err),
      })
    );
  }

  /**
   * The voice that sent a part (`sender`, as the id map recorded it) for a follow-up by `author`: the relay, or the
   * author's ghost or puppet when it is the JID that sent the part. A part whose sender was not recorded gets the
   * voice the current mode gives the author. Throws a permanent error when that JID cannot speak now (the mode
   * changed since): a correction from another JID would not be applied by clients.
   */
  private async voiceOf(sender: PartSender, author: Sender, room: string): Promise<Intent> {
    if (sender.kind === "relay") return this.relay;
    const ghost = await this.opts.ghosts?.intentFor(author) ?? null;
    if (sender.kind !== "ghost" && sender.kind !== "puppet") return ghost ?? this.relay;
    if (ghost && ghost.jid.split("/")[0] === sender.id) return ghost;
    throw new BridgeError(
      `the message in ${room} was sent as ${sender.id}, which the bridge cannot speak as now (${
        this.opts.ghosts ? `${this.opts.ghosts.mode} mode gives ${ghost?.jid ?? "no JID"}` : "relay mode"
      })`,
    );
  }

  /**
   * Sends a XEP-0444 reactions message pointing at the room's stanza-id of the bridged message. With a ghost mode
   * the sender's own ghost or puppet sends the sender's set; the relay, reacting for every Mattermost user at once,
   * sends the union of their sets (`shared`): XMPP cannot show who reacted then, only that someone did.
   */
  async sendReactions(d: ReactionsDelivery): Promise<void> {
    const room = d.targetChannel;
    if (await this.readyToSend(room, d.deliveryId)) return;
    const { intent, relayed } = await this.authorVoice(d.event.sender);
    const emojis = relayed ? d.shared : d.event.emojis;
    const stanza = buildReactions(room, reactionTargetId(d.targetMessage), emojis, d.deliveryId);
    await this.speak(intent, room, stanza, d.deliveryId);
  }

  async send(dm: DirectionalMessage): Promise<SentRefs> {
    return await (await this.dispatch(dm)).confirmed;
  }

  /**
   * Writes the message and resolves before the room reflects it: the bridge's one stream and the room keep the
   * order of what it writes, so the next message may follow at once; so does the component's, which all puppets
   * share. IBR ghosts write on streams of their own, which nothing orders against the others: there it resolves
   * only once the room reflected the message.
   */
  async dispatch(dm: DirectionalMessage): Promise<Dispatched> {
    if (dm.message.attachments?.length) return { confirmed: Promise.resolve(await this.sendWithFiles(dm)) };
    const already = await this.readyToSend(dm.targetChannel, dm.deliveryId);
    const reply = this.replyPointerOf(dm);
    // Sent as this reply before: its thread is the one this delivery would have put it in.
    if (already) return { confirmed: Promise.resolve(inThread(already, reply)) };
    const room = dm.targetChannel;
    const id = dm.deliveryId;
    const { intent, relayed, sender } = await this.authorVoice(dm.message.sender);
    const stanza = this.groupchatFor(dm, relayed, reply);
    if (!relayed) this.chatStates.messageSent(room, intent.jid, stanza);
    if (parseDirectChannel(room)) {
      // Nothing reflects a 1:1 message: it is there once written.
      await this.speak(intent, room, stanza, id);
      return { confirmed: Promise.resolve(inThread(sentRefs(id, undefined, sender), reply)) };
    }
    await intent.ensureJoined(room);
    const { reflected } = await intent.sendAhead(room, stanza, id);
    const confirmed = reflected.then(({ stanzaId }) => inThread(sentRefs(id, stanzaId, sender), reply));
    // Ahead only on a stream that keeps order against the messages before: the relay's, or the one all puppets share.
    if (this.opts.ghosts && (relayed || !this.opts.ghosts.oneStream)) {
      return { confirmed: Promise.resolve(await confirmed) };
    }
    return { confirmed };
  }

  /**
   * Who speaks for `author` in a room: their own ghost or puppet when the ghost mode gives one, else the bridge's
   * occupant, which relays them (`relayed`); and how the id map records that voice as a part's sender.
   */
  private async authorVoice(
    author: Sender,
  ): Promise<{ intent: Intent; relayed: boolean; sender: PartSender }> {
    const ghost = await this.opts.ghosts?.intentFor(author) ?? null;
    if (!ghost) return { intent: this.relay, relayed: true, sender: { kind: "relay" } };
    const kind = this.opts.ghosts?.mode === "component" ? "puppet" : "ghost";
    return { intent: ghost, relayed: false, sender: { kind, id: ghost.jid.split("/")[0] } };
  }

  /**
   * Sends a message with files, one stanza after the other from the author's voice: its text (relayed: with the
   * author's name, also when there is no text), then per file an XEP-0066 message whose body is exactly the URL the
   * file was uploaded to (XEP-0363), which clients show inline. A file that cannot be copied (too large, refused, no
   * upload service) is sent as a line with its link and why instead, so nothing is silently dropped. Each part has
   * its own origin-id (`deliveryId`, then `deliveryId~n` for the n-th file) and is recorded in the id map; a retry
   * sends only the parts not sent yet.
   */
  private async sendWithFiles(dm: DirectionalMessage): Promise<SentRefs> {
    const room = dm.targetChannel;
    const files = dm.message.attachments ?? [];
    const { intent, relayed, sender } = await this.authorVoice(dm.message.sender);
    const done = this.fileProgress.get(dm) ?? { ids: [], parts: [] };
    this.fileProgress.set(dm, done);
    // A reply: the text goes into its parent's thread, and every part is recorded there.
    const reply = this.replyPointerOf(dm);
    const pieces: Array<{ id: string; stanza: () => Promise<Element> }> = [];
    if (dm.message.text.trim() !== "" || relayed) {
      const text = dm.message.text.trim() !== ""
        ? dm.message.text
        : `📎 ${files.map((f) => f.name).join(", ")}`;
      pieces.push({
        id: dm.deliveryId,
        stanza: () =>
          Promise.resolve(this.groupchatFor({ ...dm, message: { ...dm.message, text } }, relayed, reply)),
      });
    }
    files.forEach((file, i) => {
      const id = `${dm.deliveryId}~${i + 1}`;
      pieces.push({ id, stanza: () => this.fileStanza(dm, file, id, relayed) });
    });
    for (const piece of pieces.slice(done.parts!.length)) {
      let refs = await this.readyToSend(room, piece.id);
      if (!refs) {
        const stanza = await piece.stanza();
        if (!relayed) this.chatStates.messageSent(room, intent.jid, stanza);
        const stanzaId = await this.speak(intent, room, stanza, piece.id);
        refs = sentRefs(piece.id, stanzaId, sender);
      }
      refs = inThread(refs, reply);
      done.ids.push(...refs.ids);
      done.parts!.push(...refs.parts!);
    }
    return { ids: [...done.ids], parts: [...done.parts!] };
  }

  /**
   * The stanza that shares `file` in the room: copied to the upload service, an XEP-0066 message whose body is the
   * URL; else a line with the file's link and why it was not copied. A transient failure (no answer) is thrown, for
   * the bus to retry the message.
   */
  private async fileStanza(
    dm: DirectionalMessage,
    file: Attachment,
    id: string,
    relayed: boolean,
  ): Promise<Element> {
    let url: string;
    try {
      url = await this.copyFile(dm, file);
    } catch (err) {
      if (!(err instanceof FileUnavailable)) throw err;
      log.debug("Not copied: {name}", { name: file.name });
      log.warn("Could not copy a file from {source} to {room}: {reason}; sent its link instead", {
        source: dm.source,
        room: dm.targetChannel,
        reason: err.message,
      });
      // A line like any message of the author's: relayed, with their name.
      const text = fileNotice(file, err.message);
      return this.groupchatFor(
        { ...dm, deliveryId: id, message: { ...dm.message, text, action: false } },
        relayed,
      );
    }
    // The body is exactly the URL, even relayed: clients show the file inline only then.
    const stanza = buildGroupchat(dm.targetChannel, url, id, this.delayOf(dm.message));
    stanza.append(oobElement(url));
    for (const step of this.outgoing) step(stanza, dm);
    return stanza;
  }

  /** Copies `file` from its source network to the server's upload service; resolves with its GET URL. */
  private async copyFile(dm: DirectionalMessage, file: Attachment): Promise<string> {
    const upload = await this.uploadService();
    if (!upload) throw new FileUnavailable("failed", "the XMPP server has no upload service");
    const maxBytes = upload.maxFileSize ?? DEFAULT_MAX_FILE_BYTES;
    // Known too large: not even fetched.
    if (file.size !== undefined && file.size > maxBytes) throw tooLarge(maxBytes, file.size);
    const stream = await this.ctx.openFile(dm.source, file, { maxBytes });
    try {
      const size = stream.size ?? file.size;
      if (size === undefined) {
        throw new FileUnavailable("failed", "its size is not known, and an XMPP upload needs it");
      }
      const mimeType = file.mimeType ?? stream.mimeType;
      const slot = await upload.requestSlot({ name: file.name, size, mimeType });
      await putToSlot(slot, stream.body, { size, mimeType });
      return slot.get;
    } finally {
      // Unread when the copy failed before the PUT took it; cancelling a consumed stream does nothing.
      await stream.body.cancel().catch(() => {});
    }
  }

  /** The XEP-0363 API, once discovery is over; undefined when the server has no upload service. */
  private async uploadService() {
    if (!this.xeps) await this.discovering;
    return this.xeps?.xeps.get(xep0363);
  }

  /** Serves a file an XMPP message shared by URL: downloaded under the fetch policy (see file_fetch.ts). */
  openFile(file: Attachment, opts: OpenFileOptions): Promise<FileStream> {
    return openUrl(file.source, { ...opts, httpAllowed: (host) => this.httpAllowed(host) });
  }

  /** Whether files may be downloaded from `host` over plain http. */
  private async httpAllowed(host: string): Promise<boolean> {
    if (this.opts.fileFetchHosts) return this.opts.fileFetchHosts.includes(host);
    return (await this.defaultFetchHosts()).has(host);
  }

  /**
   * The hosts of the upload service's URLs: they are not in its disco#info, so they are learnt from a slot it gives
   * (asked once for a one-byte file that is never uploaded; XEP-0363 slots expire unused).
   */
  private defaultFetchHosts(): Promise<Set<string>> {
    this.uploadHosts ??= (async () => {
      const upload = await this.uploadService();
      if (!upload) throw new Error("the server has no upload service (or its discovery failed)");
      const slot = await upload.requestSlot({ name: "probe.bin", size: 1 });
      return new Set([new URL(slot.get).host, new URL(slot.put).host]);
    })().catch((err) => {
      this.uploadHosts = undefined;
      log.warn("Could not learn the hosts of the XMPP upload service: {error}", { error: errorMessage(err) });
      return new Set<string>();
    });
    return this.uploadHosts;
  }

  /**
   * Checks that a stanza with origin-id `id` can go to `room` now (throws as `send` does when not), and whether it
   * already went: the refs of an earlier send the room reflected, else undefined, with `id` remembered as ours.
   */
  private async readyToSend(room: string, id: string): Promise<SentRefs | undefined> {
    // A 1:1 conversation has no room to be in, nor an archive to look in: its ghost's voice says when it cannot send.
    if (parseDirectChannel(room)) return undefined;
    if (this.banned.has(room)) {
      // Waiting cannot help: the bridge does not rejoin a room that banned it until it is restarted.
      throw new BridgeError(`the bridge is banned from ${room}`, {
        notice: "the XMPP room has banned the bridge",
      });
    }
    if (this.client.status !== "online" || !this.muc.nickIn(room)) {
      const why = this.roomTrouble.get(room);
      throw new BridgeError(`not in ${room} right now${why ? ` (${why})` : ""}`, { transient: true });
    }
    // The same origin-id on every retry (the delivery id), so that any reflection of it is recognised as ours.
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
    return undefined;
  }

  /**
   * Sends `stanza` (built for a room) as `intent` into `channel`, resolving once it is there: in a room once the room
   * reflected it, with the room's stanza-id; in a 1:1 conversation, which reflects nothing, once it is written.
   */
  private async speak(
    intent: Intent,
    channel: string,
    stanza: Element,
    id: string,
  ): Promise<string | undefined> {
    const pair = parseDirectChannel(channel);
    if (!pair) {
      await intent.ensureJoined(channel);
      return (await intent.sendAwaitingReflection(channel, stanza, id)).stanzaId;
    }
    // The peer knows the conversation by the ghost's JID: another JID would be another conversation.
    if (intent === this.relay || bareJid(intent.jid) !== pair.ghost) {
      throw new BridgeError(
        `the direct conversation with ${pair.peer} is held by ${pair.ghost}, which the bridge cannot speak as now (${
          this.opts.ghosts ? `${this.opts.ghosts.mode} mode gives ${intent.jid || "no JID"}` : "relay mode"
        })`,
        { notice: `the XMPP side cannot write to ${pair.peer} as ${pair.ghost} any more` },
      );
    }
    try {
      await intent.send(asChat(stanza, pair.peer));
    } catch (err) {
      throw new BridgeError(`cannot write to ${pair.peer} as ${pair.ghost}: ${errorMessage(err)}`, {
        transient: true,
      });
    }
    return undefined;
  }

  /** Where `dm` points as a reply in its room (XEP-0461), when its parent reached the room. */
  private replyPointerOf(dm: DirectionalMessage): ReplyPointer | undefined {
    if (!dm.parent) return undefined;
    const room = dm.targetChannel;
    // Only the relay's occupant JID is known for sure; `to` is optional (XEP-0461 §3).
    return replyPointer(dm.parent, (part) => {
      const nick = part.sender.kind === "relay" ? this.muc.nickIn(room) : undefined;
      return nick ? `${room}/${nick}` : undefined;
    });
  }

  /**
   * The one stanza `dm` is sent as, by whichever voice speaks it; `relayed` names the author in the body; `reply`
   * makes it a reply in its parent's thread.
   */
  private groupchatFor(dm: DirectionalMessage, relayed: boolean, reply?: ReplyPointer): Element {
    const { text, action, sender: author } = dm.message;
    const stanza = buildGroupchat(
      dm.targetChannel,
      this.bodyFor(dm.targetChannel, text, action, author, relayed),
      dm.deliveryId,
      this.delayOf(dm.message),
    );
    for (const step of this.outgoing) step(stanza, dm);
    // Last, so that the fallback's offsets count the body as sent. An action keeps no quote in front: `/me` must
    // lead its body. A reply whose parent never reached the room stands alone after a quote of it.
    if (reply) {
      addReply(stanza, reply, action ? undefined : quoteLines(dm.message.replyTo ?? { targetId: "" }));
    } else {
      prependQuote(stanza, standaloneQuote(dm));
    }
    return stanza;
  }

  /** The body that carries Markdown `text` by `author` in `room`, styled (XEP-0393); `relayed` names the author. */
  private bodyFor(
    room: string,
    text: string,
    action: boolean | undefined,
    author: Sender,
    relayed: boolean,
  ): string {
    const relayedAs = relayed
      ? {
        prefix: renderTemplate(this.opts.nameFormat, {
          username: author.name,
          displayname: author.displayName ?? author.name,
        }),
        name: relayedName(this.opts.nameFormat, author),
      }
      : undefined;
    return renderBody(this.styledFor(room, text), { action, relayedAs });
  }

  /**
   * The XEP-0393 body that shows Mattermost Markdown `text` in `room`: an `@username` that is an occupant's nick
   * becomes the plain nick, which XMPP clients highlight for that occupant. (In relay mode XMPP users have no
   * Mattermost account: Mattermost users mention them by their nick, lowercased.)
   */
  styledFor(room: string, text: string): string {
    return markdownToStyling(text, { mention: (username) => this.occupants.find(room, username) });
  }

  /**
   * The Mattermost Markdown for `body`, read from `msg`'s room: its styling as Markdown (everything else escaped,
   * or all of it when the sender marked it `<unstyled/>`), and the ghosts it addresses by nick as `@username`.
   */
  markdownOf(msg: Groupchat, body: string): string {
    const unstyled = msg.stanza.getChild("unstyled", NS_STYLING) !== undefined;
    return stylingToMarkdown(ghostMentions(body, this.ghostNames(msg.room)), { unstyled });
  }

  /** The ghosts (or puppets) in `room` by nick, with the Mattermost usernames they stand for. */
  private ghostNames(room: string): GhostName[] {
    const ghosts = this.opts.ghosts;
    if (!ghosts?.authorOf) return [];
    return this.occupants.nicks(room).flatMap((nick) => {
      const author = ghosts.authorOf!(room, nick);
      return author ? [{ nick, username: author.name }] : [];
    });
  }

  /**
   * A caught-up message reaches the room late: a XEP-0203 delay from the bridge carries its original time, which
   * clients show instead of the time it arrived. Live messages go without.
   */
  private delayOf(message: BridgeMessage): Delay | undefined {
    return message.caughtUp ? { stamp: message.timestamp, from: this.opts.jid } : undefined;
  }

  /**
   * The picture of a remote author, for their ghost's avatar: fetched from their network (`openAvatar`), at most
   * {@link MAX_AVATAR_BYTES}; undefined, logged, when it cannot be had (too large, not a picture).
   */
  private async pictureOf(author: GhostAuthor): Promise<Image | undefined> {
    if (!author.avatar || !author.network) return undefined;
    try {
      const stream = await this.ctx.openAvatar(author.network, author as Sender, {
        maxBytes: MAX_AVATAR_BYTES,
      });
      const bytes = await readAtMost(stream.body, MAX_AVATAR_BYTES);
      const type = imageType(bytes);
      if (type) return { bytes, type };
      log.info("The picture of {network} user {userId} is no PNG, JPEG, GIF or WebP; not shown", {
        network: author.network,
        userId: author.id,
      });
    } catch (err) {
      if (!(err instanceof FileUnavailable)) throw err;
      log.info("The picture of {network} user {userId} is not shown: {reason}", {
        network: author.network,
        userId: author.id,
        reason: err.message,
      });
    }
    return undefined;
  }

  /** A remote user's name or picture changed: their ghost or puppet, if online, follows (see `updateProfile`). */
  async sendProfile(sender: Sender): Promise<void> {
    await this.opts.ghosts?.updateProfile?.(sender);
  }

  /**
   * The picture an occupant's presence names (XEP-0153): their vCard (XEP-0054), asked through their occupant JID
   * (the room passes the request on to their account); else, when the room revealed their real JID, their XEP-0084
   * avatar, then their vCard, asked of their account.
   */
  async openAvatar(sender: Sender, opts: OpenFileOptions): Promise<FileStream> {
    const vcardOf = async (jid: string) => {
      const vcard = await fetchVcard(this.client, jid);
      return vcard ? readVcardPhoto(vcard, opts.maxBytes) : undefined;
    };
    const pepOf = async (jid: string) => {
      const info = await fetchAvatarMetadata(this.client, jid);
      return info ? await fetchAvatarData(this.client, jid, info, opts.maxBytes) : undefined;
    };
    const occupantJid = sender.avatar?.source;
    const account = sender.accountId;
    const tries = [
      ...(occupantJid ? [() => vcardOf(occupantJid)] : []),
      ...(account ? [() => pepOf(account), () => vcardOf(account)] : []),
    ];
    let lastError: unknown = new FileUnavailable("failed", `no JID to ask ${sender.name}'s picture of`);
    for (const attempt of tries) {
      try {
        const photo = await attempt();
        if (photo) {
          return {
            body: new Blob([photo.bytes.slice()]).stream(),
            size: photo.bytes.length,
            mimeType: photo.type,
          };
        }
        lastError = new FileUnavailable(
          "failed",
          `${sender.name} has no picture of at most ${opts.maxBytes} bytes`,
        );
      } catch (err) {
        lastError = err;
      }
    }
    if (lastError instanceof FileUnavailable) throw lastError;
    const condition = (lastError as { condition?: string } | undefined)?.condition;
    // A refusal by the server or the account stays a refusal; no answer may pass.
    if (condition) throw new FileUnavailable("refused", `the picture could not be had (${condition})`);
    throw new BridgeError(`cannot fetch the picture of ${sender.name}: ${errorMessage(lastError)}`, {
      transient: true,
    });
  }

  /**
   * Tells the occupant who said `message` that it was not delivered: an error reply to their message through the
   * room, which clients show on the message itself (see undeliverable.ts).
   */
  async notifyUndeliverable(message: BridgeMessage, reason: string): Promise<void> {
    const room = message.portal.channel;
    const pair = parseDirectChannel(room);
    if (pair) return await this.refuseDirect(pair, message, "not-acceptable", reason);
    if (this.client?.status !== "online" || !this.muc.nickIn(room)) {
      log.warn(
        "Could not tell {nick} in {room} that a message was not delivered: the bridge is not in the room",
        {
          nick: message.sender.name,
          room,
        },
      );
      return;
    }
    const text = `Your message could not be bridged: ${reason}.`;
    await this.client.send(
      undeliverableNotice(`${room}/${message.sender.name}`, senderMessageId(message), text),
    );
  }

  /**
   * Tells the XMPP user of `pair` that their `message` was not bridged: an error reply from the ghost's address to
   * the full JID they last wrote from, carrying the message's id, so that their client marks it failed.
   */
  private async refuseDirect(
    pair: { peer: string; ghost: string },
    message: BridgeMessage,
    condition: RefusalCondition,
    reason: string,
  ): Promise<void> {
    const address = await this.opts.ghosts?.addressOf?.(pair.ghost);
    if (!address) {
      log.warn("Could not tell {peer} that a direct message was not delivered: {ghost} cannot speak now", {
        peer: pair.peer,
        ghost: pair.ghost,
      });
      return;
    }
    const to = this.peerResources.get(pair.peer) ?? pair.peer;
    // The `id` attribute the client chose: the first of a 1:1 message's ids (see chatIds).
    const id = message.ids[0];
    await address.send(
      errorReply({ to, from: address.jid, id }, condition, `Your message could not be bridged: ${reason}.`),
    );
  }

  /**
   * A 1:1 message written to `address` (a ghost, a puppet, another JID of the component, or the bridge's own
   * account): handed to the core as an event of the direct conversation between its sender and the ghost, or
   * answered with an error that says why not. Never dropped silently, except what carries nothing to read (chat
   * states, receipts) and what our own JIDs send. Chat states are the peer's typing: bridged where the message would
   * be, never answered.
   */
  private onDirect(stanza: Element, address: DirectAddress): void {
    const chat = parseChat(stanza);
    if (!chat) return;
    const content = carriesContent(chat);
    if (!content && (chat.error || chatStateOf(chat.stanza) === undefined)) return;
    const peer = senderOf(chat);
    if (peer === bareJid(this.opts.jid)) return;
    const refuse = (condition: RefusalCondition, why: string) => {
      if (!content) return;
      log.info("Refused a direct message from {peer} to {to}: {why}", { peer, to: address.jid, why });
      address.send(refusal(chat, condition, `Your message could not be delivered: ${why}.`)).catch((err) =>
        log.warn("Could not answer {peer}'s direct message: {error}", { peer, error: errorMessage(err) })
      );
    };
    const refused = this.directRefusal(chat, address);
    if (refused) return refuse(refused.condition, refused.why);
    this.directInbound = this.directInbound.then(async () => {
      // Our own ghosts never write to each other: whatever one sends here is not a person's message.
      if (await this.opts.ghosts?.ownerOf?.(peer)) return;
      const owner = await this.opts.ghosts?.ownerOf?.(address.jid);
      if (!owner) {
        return refuse(
          "item-not-found",
          `${address.jid} is not the address of a Mattermost user on this bridge`,
        );
      }
      this.peerResources.set(peer, chat.from);
      const event = this.directEventOf(chat, address.jid, owner);
      if (!event) return;
      log.debug("Received a direct {kind} from {peer} to {to}: {body}", {
        kind: event.kind,
        peer,
        to: address.jid,
        body: chat.body,
      });
      this.ctx.receive(event);
    }).catch((err) =>
      log.warn("Could not read a direct message from {peer}: {error}", {
        peer,
        error: errorMessage(err),
      })
    );
  }

  /** Why a 1:1 message is refused before anything is looked up, if it is. */
  private directRefusal(
    chat: Chat,
    address: DirectAddress,
  ): { condition: RefusalCondition; why: string } | undefined {
    const direct = this.opts.direct;
    // A private message through a room (XEP-0045 §7.5) comes from an occupant, whose address the room keeps. First,
    // and answered `not-acceptable`: rooms take most other errors between occupants for a bounce and kick the
    // sender of the error (Prosody's is_kickable_error), which would be the ghost or the bridge.
    if (this.muc.rooms.has(bareJid(chat.from)) || chat.stanza.getChild("x", NS_MUC_USER)) {
      return {
        condition: "not-acceptable",
        why:
          "private messages through a room are not bridged; write to a Mattermost user's address from your own",
      };
    }
    const ownAccount = address.jid === bareJid(this.opts.jid) || !address.jid.includes("@");
    if (ownAccount) {
      const hint = direct?.addressHint ? ` such as ${direct.addressHint}` : "";
      return {
        condition: "service-unavailable",
        why: `${address.jid} is the bridge itself; write to a Mattermost user's address${hint}`,
      };
    }
    if (!this.opts.ghosts || !direct) {
      return { condition: "service-unavailable", why: "this bridge does not carry direct messages" };
    }
    if (direct.refusal) return { condition: "service-unavailable", why: direct.refusal };
    if (!domainAllowed(chat.from, direct.allowedDomains)) {
      return {
        condition: "not-allowed",
        why: `direct messages from ${domainOf(chat.from)} are not accepted by this bridge`,
      };
    }
    return undefined;
  }

  /** The event a 1:1 message from `chat`'s sender to `ghost`, who stands for `owner`, stands for. */
  private directEventOf(chat: Chat, ghost: string, owner: string): BridgeEvent | undefined {
    const peer = senderOf(chat);
    const ids = chatIds(chat);
    const base: IncomingBase = {
      eventId: ids[0] ?? crypto.randomUUID(),
      ids,
      portal: { network: this.network, channel: directChannel(peer, ghost) },
      sender: { network: this.network, id: peer, name: peer.slice(0, peer.indexOf("@")) },
      // Held by the server while the ghost was offline: shown at its original time.
      timestamp: chat.stamp ?? Date.now(),
      caughtUp: chat.stamp !== undefined || undefined,
      deliveryId: this.echoGuards.deliveryId ? chat.originId : undefined,
    };
    const event = readChat(chat, base, (body) => this.markdownOfDirect(chat, body));
    return event && { ...event, direct: { network: DIRECT_USER_NETWORK, id: owner } };
  }

  /** The Mattermost Markdown for the body of a 1:1 message (its styling, unless marked `<unstyled/>`). */
  private markdownOfDirect(chat: Chat, body: string): string {
    const unstyled = chat.stanza.getChild("unstyled", NS_STYLING) !== undefined;
    return stylingToMarkdown(body, { unstyled });
  }

  /**
   * The 1:1 conversation between the XMPP user `user` (a bare JID) and the ghost or puppet of `remote`, a user of
   * the other network: where a direct message of theirs goes. Connects the ghost and keeps it so. Throws a
   * permanent BridgeError when there can be none (no ghost mode, a domain not allowed, no ghost for the author).
   */
  async openDirect(req: { user: string; remote: Sender }): Promise<string> {
    const user = bareJid(req.user);
    if (!this.opts.ghosts || !this.opts.direct) {
      throw new BridgeError("direct messages need BRIDGE_GHOST_MODE=ibr or component", {
        notice: "direct messages to XMPP are not enabled on this bridge",
      });
    }
    if (!domainAllowed(user, this.opts.direct.allowedDomains)) {
      throw new BridgeError(`${domainOf(user)} is not in BRIDGE_DM_ALLOWED_DOMAINS`, {
        notice: `direct messages to users of ${domainOf(user)} are not allowed by this bridge`,
      });
    }
    const { intent, relayed } = await this.authorVoice(req.remote);
    if (relayed) {
      throw new BridgeError(`${req.remote.name} has no XMPP account of their own to write to ${user} from`, {
        notice: "you have no XMPP account of your own on this bridge yet",
      });
    }
    const ghost = bareJid(intent.jid);
    await this.opts.ghosts.keepOnline?.(ghost);
    return directChannel(user, ghost);
  }

  private onStanza(stanza: Element): void {
    try {
      if (stanza.is("presence")) {
        this.muc.handlePresence(stanza);
        // Who is leaving, read before the tracker forgets them (their real JID says who they are).
        const leaving = stanza.attrs.type === "unavailable" ? this.occupantSender(stanza) : undefined;
        const change = this.occupants.handlePresence(stanza);
        if (change) this.onOccupantChange(change);
        this.trackStatus(stanza, leaving);
        return;
      }
      const type = stanza.attrs.type;
      if (stanza.is("message") && type !== "groupchat" && type !== "error") {
        // Written to the bridge's own account: answered, never bridged (see onDirect).
        this.onDirect(stanza, {
          jid: bareJid(this.opts.jid),
          send: (reply) => {
            delete reply.attrs.from;
            return this.client.send(reply);
          },
        });
        return;
      }
      const msg = parseGroupchat(stanza);
      if (msg) this.onGroupchat(msg);
    } catch (err) {
      log.warn("Ignored a stanza that could not be handled: {error}", { error: errorMessage(err) });
    }
  }

  /**
   * Relays one message of a room; `caughtUp` ones come from a catch-up (its archive, or the history it replayed at
   * our join). True when handed to the core.
   */
  private onGroupchat(msg: Groupchat, caughtUp = false): boolean {
    const ownNick = this.muc.nickIn(msg.room);
    if (!caughtUp) {
      const settled = this.reflections.settle(msg);
      // A bounce usually means we are no longer an occupant: rejoin, and the bus retries the message.
      // A window of sends bounces together: one rejoin per room at a time (a join under way takes them all back).
      if (settled === "bounced" && !this.catchingUp.has(msg.room)) this.rejoin(msg.room);
      if (settled !== "unknown") return false;
    }
    if (msg.error || !this.muc.rooms.has(msg.room)) return false;
    const replay = caughtUp ? undefined : this.replays.get(msg.room);
    if (replay) {
      // The room's subject comes after the history it replays at join: the catch-up can go on.
      if (msg.subject !== undefined && msg.body === undefined) replay.end();
      else if (msg.delayed) replay.items.push(msg);
      if (msg.delayed || msg.subject !== undefined) return false;
    }
    const held = this.buffering.get(msg.room);
    if (held && !caughtUp) {
      held.push(msg);
      return false;
    }
    if (!msg.delayed || caughtUp) this.recordPosition(msg.room, msg.stamp ?? Date.now());
    const ours = (msg.originId && this.ownOrigins.has(msg.originId)) ||
      this.opts.ghosts?.isGhost(msg.room, msg.nick);
    const fromOwnNick = ownNick !== undefined && msg.nick === ownNick;
    // Live, only the relay's own late reflections (a ghost's are its session's business, and every one of them
    // passes here). In an archive, any occupant may be one of our ghosts, whose sessions a restart has not reopened.
    const possiblyOurs = caughtUp ? ours || fromOwnNick || this.opts.ghosts !== undefined : fromOwnNick;
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
    // History the room replays at join is bridged only through a catch-up, which knows what was missed.
    if (msg.delayed && !caughtUp) return false;
    const event = this.eventOf(msg, caughtUp);
    if (!event) return false;
    log.debug("Received a {kind} from {room}/{nick}: {body}", {
      kind: event.kind,
      room: msg.room,
      nick: msg.nick,
      body: msg.body,
    });
    this.ctx.receive(event);
    return true;
  }

  /**
   * The event a room's message stands for: the first {@link incoming} reader that knows it decides (a correction,
   * a retraction, reactions …); else a message, when it has a body.
   */
  private eventOf(msg: Groupchat, caughtUp: boolean): BridgeEvent | undefined {
    // The room's stanza-id is unique in the room; ids the sender chose are not (some clients count "1", "2" …), so
    // they are kept qualified by the sender's nick, which is also how corrections (XEP-0308) refer to them.
    const senderIds = [msg.originId, msg.id].filter((x): x is string => !!x).map((x) => `${msg.nick}/${x}`);
    const ids = [...new Set([msg.stanzaId, ...senderIds].filter((x): x is string => !!x))];
    const base: IncomingBase = {
      eventId: ids[0] ?? crypto.randomUUID(),
      ids,
      portal: { network: this.network, channel: msg.room },
      sender: this.senderOf(msg.room, msg.nick, msg.occupantId),
      timestamp: caughtUp ? msg.stamp ?? Date.now() : Date.now(),
      caughtUp: caughtUp || undefined,
      deliveryId: this.echoGuards.deliveryId ? msg.originId : undefined,
    };
    for (const read of this.incoming) {
      const event = read(msg, base);
      if (event !== undefined) return event ?? undefined;
    }
    // The room's own messages (its announcements) are read by the readers above, never bridged as said by someone.
    if (msg.nick === "") return undefined;
    const { replyTo, body } = readReply(msg.stanza, msg.body ?? "");
    // A reply with nothing but its quote still says what it quoted.
    const text = body.trim() === "" ? msg.body ?? "" : body;
    const reply = replyTo ? { replyTo } : {};
    // Files shared with it (XEP-0066), read from the body without the reply's quote.
    const shared = readOobMessage({ ...msg, body: text }, base);
    if (shared) return { ...shared, text: this.markdownOf(msg, shared.text), ...reply };
    if (text === "") return undefined;
    const { text: said, action } = parseBody(text);
    return {
      kind: "message",
      ...base,
      text: this.markdownOf(msg, said),
      ...(action ? { action } : {}),
      ...reply,
    };
  }

  /**
   * Who `nick` of `room` is, as stable as the room lets us tell (an edit or removal must come from the same): its
   * XEP-0421 occupant-id; else the real bare JID the room revealed; else the occupant JID (`room/nick`). The real
   * JID, when revealed, is also their `accountId`, the same in every room.
   */
  private senderOf(room: string, nick: string, occupantId?: string): Sender {
    const occupant = this.occupants.get(room, nick);
    const realJid = occupant?.realJid;
    const id = occupantId ?? occupant?.occupantId ?? realJid ?? `${room}/${nick}`;
    // The picture their presence names (XEP-0153), asked for through their occupant JID (see openAvatar); null when
    // it says they have none (an empty <photo/>).
    const hash = occupant?.photoHash;
    return {
      network: this.network,
      id,
      name: nick,
      ...(realJid && realJid !== id ? { accountId: realJid } : {}),
      ...(hash
        ? { avatar: { version: hash, source: `${room}/${nick}` } }
        : hash === null
        ? { avatar: null }
        : {}),
    };
  }

  /**
   * An occupant other than the bridge's own (relay, ghosts, puppets) arrived in or left a room: their stand-in on the
   * other network follows (`membership`); a nick change is a change of their profile.
   */
  private onOccupantChange(change: OccupantChange): void {
    const { room, nick, occupantId } = change.occupant;
    const own = this.muc.nickIn(room);
    if (own === undefined || nick === own || this.opts.ghosts?.isGhost(room, nick)) return;
    const sender = this.senderOf(room, nick, occupantId);
    if (change.renamedFrom !== undefined || change.pictureChanged) {
      this.ctx.profileChanged(sender);
      return;
    }
    this.ctx.receive({
      kind: "membership",
      eventId: crypto.randomUUID(),
      portal: { network: this.network, channel: room },
      sender,
      timestamp: Date.now(),
      present: change.present,
    });
  }

  /**
   * The sender a presence from a room's occupant names, unless it is the bridge's own occupant or one of its ghosts
   * or puppets (their presence is the bridge's doing), or the room is not one the bridge is in or joining: the
   * occupants already there are announced before the room confirms our join (XEP-0045 §7.2.3), and count too.
   */
  private occupantSender(stanza: Element): { room: string; sender: Sender } | undefined {
    const from = String(stanza.attrs.from ?? "");
    const slash = from.indexOf("/");
    if (slash < 0) return undefined;
    const room = from.slice(0, slash).toLowerCase();
    const nick = from.slice(slash + 1);
    const occupancy = this.muc.rooms.get(room);
    if (!occupancy || nick === occupancy.nick || this.opts.ghosts?.isGhost(room, nick)) return undefined;
    const self = stanza.getChild("x", NS_MUC_USER)?.getChildren("status").some((s: Element) =>
      s.attrs.code === "110"
    );
    return self ? undefined : { room, sender: this.senderOf(room, nick) };
  }

  /** Follows an occupant's status from their presence (`leaving`: who an unavailable presence was from). */
  private trackStatus(stanza: Element, leaving: { room: string; sender: Sender } | undefined): void {
    const type = stanza.attrs.type;
    if (type === "unavailable") {
      if (leaving) this.statuses.gone(leaving.room, leaving.sender);
      return;
    }
    if (type !== undefined) return;
    const occupant = this.occupantSender(stanza);
    if (occupant) this.statuses.present(occupant.room, occupant.sender, statusOfShow(stanza));
  }

  /**
   * Shows a Mattermost user's status as their ghost's or puppet's presence in the rooms it is in (and at its later
   * joins); a user without one is not given one for it.
   */
  async sendStatus(change: StatusChange): Promise<void> {
    await this.opts.ghosts?.setStatus(change.sender.id, presenceOf(change.status));
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
    // Available, so that a chat to the bridge's own address reaches it and is answered (see onDirect), not held
    // by the server as for an account nobody is logged in to.
    this.client.send(xml("presence", {})).catch(() => {});
    // In the background, so that a slow service does not hold up rejoining; retried on the next login if it failed.
    if (!this.xeps) {
      this.discovering = discoverXeps(this.client, {
        service: this.opts.service,
        domain: this.domain,
        tls: this.opts.tls,
        protectedJids: [this.opts.jid],
      }).then(
        (found) => {
          this.xeps = found;
        },
        (err) => log.warn("XMPP capability discovery failed: {error}", { error: errorMessage(err) }),
      );
    }
    const rooms = this.muc.resetAll();
    if (this.everOnline) log.info("XMPP session is back; rejoining {count} room(s)", { count: rooms.length });
    this.everOnline = true;
    this.reconnectBackoff.reset();
    this.client.reconnect.delay = this.reconnectBackoff.next();
    // What the rooms said while the session was away comes from their archives.
    for (const [room, nick] of rooms) {
      await this.joinAndCatchUp(room, nick, this.lastSeen.get(room)).catch((err) =>
        this.rejoinFailed(room, err)
      );
    }
  }

  private onDisconnect(): void {
    if (this.stopping) return;
    const why = this.lastFailure ? `: ${this.lastFailure}` : "";
    // @xmpp/reconnect's own disconnect listener (registered first) has just scheduled this attempt with `delay`.
    const seconds = this.client.reconnect.delay / 1000;
    this.setState(
      false,
      `disconnected from ${this.opts.service}; reconnecting${why}; next attempt in ${seconds} s`,
    );
    this.reflections.rejectAll(
      new BridgeError("XMPP connection lost before the room confirmed a message", { transient: true }),
    );
    this.muc.resetAll();
    this.occupants.clear();
    this.statuses.clear();
    // Every failed attempt ends in another disconnect: this sets the wait before the next one.
    this.client.reconnect.delay = this.reconnectBackoff.next();
  }

  private onLeft(room: string, reason: LeaveReason): void {
    if (this.stopping) return;
    if (reason === "banned") {
      this.banned.add(room);
      log.error("Banned from {room}: not rejoining; lift the ban on {jid}, then restart the bridge", {
        room,
        jid: this.opts.jid,
      });
      this.roomTrouble.set(
        room,
        `banned from ${room}: lift the ban on ${this.opts.jid}, then restart the bridge`,
      );
      return;
    }
    if (reason === "left") return;
    if (reason === "destroyed") this.roomTrouble.set(room, `${room} was destroyed; trying to join it again`);
    let state = this.rejoins.get(room);
    if (!state) this.rejoins.set(room, state = { backoff: new Backoff(REJOIN) });
    if (state.rejoinedAt !== undefined && Date.now() - state.rejoinedAt >= REJOIN_STAY_MS) {
      state.backoff.reset();
    }
    state.rejoinedAt = undefined;
    this.scheduleRejoin(room, state.backoff);
  }

  private scheduleRejoin(room: string, backoff: Backoff): void {
    const waitMs = backoff.next();
    log.info("Rejoining {room} in {waitMs} ms (attempt {attempt})", {
      room,
      waitMs,
      attempt: backoff.failures,
    });
    const timer = setTimeout(() => {
      this.rejoinTimers.delete(timer);
      this.rejoin(room, backoff);
    }, waitMs);
    this.rejoinTimers.add(timer);
  }

  /** Joins `room` again when still wanted; after a removal, `backoff` schedules another try if this one times out. */
  private rejoin(room: string, backoff?: Backoff): void {
    const occ = this.muc.rooms.get(room);
    if (!occ || this.stopping || this.client.status !== "online") return;
    this.joinAndCatchUp(room, occ.wantedNick, this.lastSeen.get(room)).then(
      () => {
        const state = this.rejoins.get(room);
        if (backoff && state?.backoff === backoff) state.rejoinedAt = Date.now();
      },
      (err) => {
        this.rejoinFailed(room, err);
        // No answer, or the join could not be sent: try again later. A refusal needs a person.
        if (backoff && isTransient(err) && !this.stopping) this.scheduleRejoin(room, backoff);
      },
    );
  }

  /** Logs a failed rejoin and keeps its reason for /healthz until the room is joined again. */
  private rejoinFailed(room: string, err: unknown): void {
    log.error("Could not rejoin {room}: {error}", { room, error: errorMessage(err) });
    const was = this.roomTrouble.get(room) ?? "";
    // A ban already says what to do (a message bounced at the ban may still try a rejoin, which the ban refuses).
    if (was.startsWith("banned")) return;
    const destroyed = was.includes("was destroyed") ? `${room} was destroyed; ` : "";
    this.roomTrouble.set(room, `${destroyed}cannot rejoin ${room}: ${errorMessage(err)}`);
  }

  private rememberReflected(originId: string, stanzaId: string, sender: PartSender): void {
    this.reflected.set(originId, sentRefs(originId, stanzaId, sender));
    if (this.reflected.size > OWN_ORIGIN_MEMORY) {
      this.reflected.delete(this.reflected.keys().next().value!);
    }
  }

  private rememberOwn(originId: string): void {
    this.ownOrigins.add(originId);
  }

  private setState(connected: boolean, detail: string): void {
    if (this.state.connected !== connected || this.state.detail !== detail) {
      this.state = { network: this.network, connected, detail, since: Date.now() };
    }
  }
}

/**
 * What a message sent with `id` (its message id and origin-id) and reflected with `stanzaId` is in the room; a
 * `reply` records its thread and the id it answers.
 */
function sentRefs(id: string, stanzaId: string | undefined, sender: PartSender): SentRefs {
  return {
    ids: stanzaId ? [id, stanzaId] : [id],
    parts: [{ messageId: id, originId: id, ...(stanzaId ? { stanzaId } : {}), sender }],
  };
}

/** `refs` with each part placed in the thread of `reply` (the reply they were sent as), when they were one. */
function inThread(refs: SentRefs, reply: ReplyPointer | undefined): SentRefs {
  if (!reply) return refs;
  const thread = { threadRoot: reply.thread, replyTo: reply.id };
  return { ...refs, parts: refs.parts?.map((part) => ({ ...part, ...thread })) };
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
