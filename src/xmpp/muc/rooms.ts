/**
 * XEP-0045 multi-user chat: joining (with history suppressed, or since a time), nick conflicts, and tracking our
 * occupancy.
 *
 * The join is done when our own presence comes back with status 110. A kick (307) or a room shutdown makes us
 * leave; the owner of this object decides whether to join again.
 *
 * @module
 */
import { xml } from "@xmpp/client-core";
import { getLogger } from "@logtape/logtape";
import type { Element } from "../session/client.ts";
import { BridgeError } from "../../core/errors.ts";
import { errorCondition } from "../protocol/stanza.ts";
import { NS_MUC, NS_MUC_USER } from "../protocol/ns.ts";

const log = getLogger(["mmxmpp", "xmpp", "muc"]);

/** Our state in one room. */
export interface Occupancy {
  /** The nick we asked for. */
  wantedNick: string;
  /** The nick we got (after conflict handling); set once joined. */
  nick?: string;
  /** The nick we asked the room to change to, until it answered (see {@link MucRooms.changeNick}). */
  changingTo?: string;
  joined: boolean;
}

/** What a presence says besides being there (RFC 6121 §4.7.2): nothing is plain available. */
export interface PresenceState {
  /** `away`, `xa` (extended away), `dnd` (do not disturb) or `chat`. */
  show?: "away" | "xa" | "dnd" | "chat";
  /** A human-readable status text. */
  status?: string;
}

/** The `<show/>` and `<status/>` children of a presence saying `state`. */
export function presenceChildren(state: PresenceState): Element[] {
  return [
    ...(state.show ? [xml("show", {}, state.show)] : []),
    ...(state.status ? [xml("status", {}, state.status)] : []),
  ];
}

/** Why we are no longer in a room. */
export type LeaveReason = "kicked" | "banned" | "destroyed" | "shutdown" | "removed" | "left";

interface PendingJoin {
  nick: string;
  resolve: () => void;
  reject: (err: Error) => void;
  timer: ReturnType<typeof setTimeout>;
  /** What the join presence said (see setPresence): a change meanwhile is sent once joined. */
  presence: PresenceState;
}

/**
 * Joins and leaves rooms over one session.
 *
 * Feed it every incoming presence with {@link MucRooms.handlePresence}.
 */
export class MucRooms {
  readonly rooms = new Map<string, Occupancy>();
  private readonly pending = new Map<string, PendingJoin>();
  /** What this session's presence in its rooms says besides being there: see setPresence. */
  private presence: PresenceState = {};

  constructor(
    private readonly send: (el: Element) => Promise<void>,
    private readonly onLeft: (room: string, reason: LeaveReason) => void = () => {},
    private readonly joinTimeoutMs = 15_000,
  ) {}

  /** Our nick in `room`, if joined. */
  nickIn(room: string): string | undefined {
    const occ = this.rooms.get(room);
    return occ?.joined ? occ.nick : undefined;
  }

  /**
   * True when `nick` in `room` is us: our nick there, or the nick a join under way asked for. Another session in the
   * room (the bridge's own) may see our arrival before this one sees the room's answer to it.
   */
  isUs(room: string, nick: string): boolean {
    return this.nickIn(room) === nick || this.pending.get(room)?.nick === nick || this.isOurNick(room, nick);
  }

  /**
   * Joins `room` as `nick` (or a variant of it when taken), without history, or with what the room said since
   * `opts.historySince` (ms since the epoch; XEP-0045 §7.2.15), which it sends after our own presence.
   * `opts.onWritten` is called once the first join presence is written, before the room has answered.
   */
  async join(
    room: string,
    nick: string,
    opts: { historySince?: number; onWritten?: () => void } = {},
  ): Promise<string> {
    this.rooms.set(room, { wantedNick: nick, joined: false });
    for (let attempt = 0; attempt < 6; attempt++) {
      const tryNick = attempt === 0 ? nick : attempt === 1 ? `${nick}_` : `${nick}_${attempt}`;
      try {
        await this.joinOnce(room, tryNick, opts.historySince, attempt === 0 ? opts.onWritten : undefined);
        // The occupancy was recorded when the room's answer came (see handlePresence); a kick may follow at once.
        const joinedAs = this.rooms.get(room)?.nick ?? tryNick;
        log.info("Joined {room} as {nick}", { room, nick: joinedAs });
        return joinedAs;
      } catch (err) {
        if (err instanceof BridgeError && err.message.includes("conflict")) {
          log.warn("Nick {nick} is taken in {room}; trying another", { room, nick: tryNick });
          continue;
        }
        throw err;
      }
    }
    throw new BridgeError(`every nick variant of ${nick} is taken in ${room}`);
  }

  /**
   * Makes `state` what this session's presence says in every room it is in, now and at its later joins. Resolves
   * once sent to the rooms joined now.
   */
  async setPresence(state: PresenceState): Promise<void> {
    this.presence = state;
    await Promise.all(
      [...this.rooms].filter(([, occ]) => occ.joined && occ.nick).map(([room, occ]) =>
        this.send(xml("presence", { to: `${room}/${occ.nick}` }, ...presenceChildren(state)))
      ),
    );
  }

  /** True when `nick` is ours in `room`: the nick we have, or the one we are changing to. */
  isOurNick(room: string, nick: string): boolean {
    const occ = this.rooms.get(room);
    return occ?.joined === true && (occ.nick === nick || occ.changingTo === nick);
  }

  /**
   * Asks `room` for `nick` instead of ours (XEP-0045 §7.6), when joined there with another; the next join asks for it
   * too. The room's answer (status 303, then our presence under the new nick) moves our nick; a refusal (the nick is
   * taken) leaves it.
   */
  async changeNick(room: string, nick: string): Promise<void> {
    const occ = this.rooms.get(room);
    if (!occ) return;
    occ.wantedNick = nick;
    if (!occ.joined || !occ.nick || occ.nick === nick) return;
    occ.changingTo = nick;
    log.info("Changing nick in {room} from {nick} to {newNick}", { room, nick: occ.nick, newNick: nick });
    await this.send(xml("presence", { to: `${room}/${nick}` }, ...presenceChildren(this.presence)));
  }

  /** Sends our presence to `room` again, when joined: what it carries changed (an avatar's hash). */
  async sendPresence(room: string): Promise<void> {
    const occ = this.rooms.get(room);
    if (occ?.joined && occ.nick) {
      await this.send(xml("presence", { to: `${room}/${occ.nick}` }, ...presenceChildren(this.presence)));
    }
  }

  /** Leaves `room` and forgets it. */
  async leave(room: string): Promise<void> {
    const occ = this.rooms.get(room);
    this.rooms.delete(room);
    if (occ?.nick) await this.send(xml("presence", { to: `${room}/${occ.nick}`, type: "unavailable" }));
  }

  /** Marks every room as not joined (after a disconnect); returns the rooms to join again. */
  resetAll(): Array<[string, string]> {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new BridgeError("disconnected while joining", { transient: true }));
    }
    this.pending.clear();
    return [...this.rooms].map(([room, occ]) => {
      occ.joined = false;
      return [room, occ.wantedNick];
    });
  }

  /** Processes a presence stanza; returns true when it concerned one of our rooms' own occupancy. */
  handlePresence(stanza: Element): boolean {
    const from = String(stanza.attrs.from ?? "");
    const slash = from.indexOf("/");
    if (slash < 0) return false;
    const room = from.slice(0, slash).toLowerCase();
    const nick = from.slice(slash + 1);
    const pending = this.pending.get(room);
    const changing = this.rooms.get(room);
    if (stanza.attrs.type === "error" && changing?.changingTo === nick && !pending) {
      log.warn("{room} refused our nick change to {nick}: {condition}", {
        room,
        nick,
        condition: errorCondition(stanza) ?? "error",
      });
      changing.changingTo = undefined;
      return true;
    }
    if (stanza.attrs.type === "error" && pending && pending.nick === nick) {
      this.finish(
        room,
        new BridgeError(`cannot join ${room}: ${errorCondition(stanza) ?? "error"}`, { transient: false }),
      );
      return true;
    }
    const x = stanza.getChild("x", NS_MUC_USER);
    const codes = new Set<string>(x?.getChildren("status").map((s: Element) => String(s.attrs.code)) ?? []);
    const self = codes.has("110");
    if (!self) return false;
    if (stanza.attrs.type !== "unavailable") {
      if (pending) {
        // Recorded now, not when join() resumes: a kick parsed from the same read must find us in the room.
        const occ = this.rooms.get(room);
        if (occ) Object.assign(occ, { nick, joined: true });
        // Changed while the join was under way: the room has the old one.
        const changed = pending.presence !== this.presence;
        this.finish(room);
        if (changed) {
          this.send(xml("presence", { to: `${room}/${nick}` }, ...presenceChildren(this.presence))).catch((
            err,
          ) => log.debug("Could not update our presence in {room}: {error}", { room, error: String(err) }));
        }
      }
      return true;
    }
    const occ = this.rooms.get(room);
    if (!occ || occ.nick !== nick) return true;
    // Status 303 is a nick change we did not ask for; the new nick comes in the next presence.
    if (codes.has("303")) {
      occ.nick = x?.getChild("item")?.attrs.nick ?? occ.nick;
      if (occ.changingTo === occ.nick) occ.changingTo = undefined;
      return true;
    }
    occ.joined = false;
    const reason: LeaveReason = codes.has("301")
      ? "banned"
      : codes.has("307")
      ? "kicked"
      : codes.has("332")
      ? "shutdown"
      : codes.has("321") || codes.has("322")
      ? "removed"
      : x?.getChild("destroy")
      ? "destroyed"
      : "left";
    log.warn("Left {room}: {reason}", { room, reason });
    this.onLeft(room, reason);
    return true;
  }

  private joinOnce(
    room: string,
    nick: string,
    historySince: number | undefined,
    onWritten?: () => void,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => this.finish(room, new BridgeError(`no answer from ${room} when joining`, { transient: true })),
        this.joinTimeoutMs,
      );
      this.pending.get(room)?.reject(new BridgeError("superseded by a newer join", { transient: true }));
      this.pending.set(room, { nick, resolve, reject, timer, presence: this.presence });
      this.send(
        xml(
          "presence",
          { to: `${room}/${nick}` },
          xml("x", { xmlns: NS_MUC }, xml("history", historyRequest(historySince))),
          ...presenceChildren(this.presence),
        ),
      ).then(
        onWritten,
        (err) => this.finish(room, new BridgeError(`cannot send join: ${err}`, { transient: true })),
      );
    });
  }

  private finish(room: string, err?: Error): void {
    const p = this.pending.get(room);
    if (!p) return;
    this.pending.delete(room);
    clearTimeout(p.timer);
    if (err) {
      const e = err instanceof BridgeError && /: conflict$/.test(err.message)
        ? new BridgeError(`nick conflict in ${room}`)
        : err;
      p.reject(e);
    } else p.resolve();
  }
}

/** The attributes of a join's `<history/>`: none at all, or since a time (XEP-0082, whole seconds, rounded down). */
function historyRequest(since: number | undefined): Record<string, string> {
  if (since === undefined) return { maxstanzas: "0" };
  return { since: new Date(Math.floor(since / 1_000) * 1_000).toISOString().replace(".000Z", "Z") };
}
