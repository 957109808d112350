/**
 * The WebSocket hub: every connection the server knows, live or recently dropped, and delivery of
 * events to them. Mirrors the Go server's `Hub`/`WebConn` (app/platform/web_hub.go, web_conn.go): each
 * connection id numbers its events from 0, keeps the last 128 it sent (the "dead queue") and, while
 * disconnected, queues up to 256 new ones (the "active queue") so a client that reconnects with
 * `connection_id` + `sequence_number` loses nothing — unless the inactivity reaper forgot the connection
 * first, or the events were published while a reconnect was being handed the connection back.
 *
 * @module
 */

import { encodeEvent, newEvent, type WsEvent } from "./events.ts";
import { newId } from "./ids.ts";
import { isSystemAdmin, type Store } from "./store.ts";

/** `deadQueueSize` in the Go server. */
export const DEAD_QUEUE_SIZE = 128;
/** `sendQueueSize` in the Go server: a disconnected connection overflowing it is forgotten. */
export const SEND_QUEUE_SIZE = 256;
/** `inactiveConnReaperInterval`: how often the reaper runs, and how stale an inactive connection must be. */
export const REAPER_INTERVAL_MS = 5 * 60_000;

/** An event that was written, with the sequence number it went out with. */
interface SentEvent {
  seq: number;
  event: WsEvent;
}

/** One connection id's state; the socket changes when the client reconnects and resumes it. */
export class WebConn {
  /** The connection id sent in `hello`. */
  connectionId: string = newId();
  /** Authenticated user ("" until authenticated). */
  userId = "";
  /** Token that authenticated it. */
  token = "";
  /** The live socket; null while disconnected. */
  socket: WebSocket | null = null;
  /** Next sequence number to assign. */
  sequence = 0;
  /** Last events written, oldest first. */
  deadQueue: SentEvent[] = [];
  /** Events waiting to be written (while disconnected, or before the socket opened). */
  pending: WsEvent[] = [];
  /** How many times a reconnect resumed this connection id. */
  reuseCount = 0;
  /**
   * `lastUserActivityAt`: when a socket last (re)attached, or the session's last REST activity while attached.
   * The reaper keys on it, so a connection idle before it dropped can be forgotten right away.
   */
  lastActivityAt = Date.now();
  /** Closes a socket that never authenticates. */
  authTimer: ReturnType<typeof setTimeout> | undefined;

  /** Whether a socket is attached. */
  get active(): boolean {
    return this.socket !== null;
  }
}

/** Build the `hello` event for a connection. */
export function helloEvent(conn: WebConn, serverVersion: string, hostname: string): WsEvent {
  return newEvent(
    "hello",
    { connection_id: conn.connectionId, server_hostname: hostname, server_version: serverVersion },
    { userId: conn.userId },
  );
}

/**
 * All connections and the broadcast rules (`WebConn.ShouldSendEvent`).
 *
 * @example
 * ```ts
 * const hub = new Hub(store, 5 * 60_000);
 * hub.broadcast(newEvent("posted", data, { channelId }));
 * ```
 */
export class Hub {
  readonly #store: Store;
  readonly #reaperIntervalMs: number;
  readonly #conns = new Set<WebConn>();
  readonly #reaper: ReturnType<typeof setInterval>;

  /** Starts the reaper's tick, every `reaperIntervalMs` (5 min on the real server); {@link stop} ends it. */
  constructor(store: Store, reaperIntervalMs: number = REAPER_INTERVAL_MS) {
    this.#store = store;
    this.#reaperIntervalMs = reaperIntervalMs;
    this.#reaper = setInterval(() => this.reap(), reaperIntervalMs);
  }

  /** Stop the reaper's tick. */
  stop(): void {
    clearInterval(this.#reaper);
  }

  /**
   * One tick of the inactivity reaper (`RemoveInactiveConnections`): forget every disconnected connection
   * whose last activity is more than the interval before `now`. Tests pass a later `now` instead of waiting.
   */
  reap(now: number = Date.now()): void {
    for (const conn of this.all()) {
      if (!conn.active && now - conn.lastActivityAt > this.#reaperIntervalMs) this.remove(conn);
    }
  }

  /** A REST call by the session with `token` counts as activity for its connected sockets (`UpdateActivity`). */
  touch(token: string, now: number = Date.now()): void {
    for (const conn of this.all()) if (conn.active && conn.token === token) conn.lastActivityAt = now;
  }

  /** Track a connection. */
  add(conn: WebConn): void {
    this.#conns.add(conn);
  }

  /** Stop tracking a connection (its queues are gone). */
  remove(conn: WebConn): void {
    clearTimeout(conn.authTimer);
    this.#conns.delete(conn);
  }

  /** Live and recently dropped connections. */
  all(): WebConn[] {
    return [...this.#conns];
  }

  /** Whether the user has a connected, authenticated socket. */
  isConnected(userId: string): boolean {
    return this.all().some((c) => c.active && c.userId === userId);
  }

  /**
   * Take the disconnected connection a reconnecting client names, as `CheckConn` does: same user, not
   * connected, not yet expired. It leaves the hub until the new socket opens and {@link add} puts it back
   * (events in between are not queued for it, as in the Go hub). Returns undefined when the server no
   * longer has it.
   */
  takeInactive(userId: string, connectionId: string): WebConn | undefined {
    const conn = this.all().find((c) => !c.active && c.userId === userId && c.connectionId === connectionId);
    if (conn) this.#conns.delete(conn);
    return conn;
  }

  /** Deliver an event to every connection it is for, queueing it for disconnected ones. */
  broadcast(event: WsEvent): void {
    for (const conn of this.all()) {
      if (!this.#shouldSend(conn, event)) continue;
      if (conn.active && conn.pending.length === 0) {
        this.write(conn, event);
      } else if (conn.pending.length >= SEND_QUEUE_SIZE) {
        this.remove(conn); // the Go hub closes and forgets a connection whose queue is full
      } else {
        conn.pending.push(event);
      }
    }
  }

  /** Number an event for a connection, remember it in the dead queue and send it. */
  write(conn: WebConn, event: WsEvent): void {
    const seq = conn.sequence++;
    conn.deadQueue.push({ seq, event });
    if (conn.deadQueue.length > DEAD_QUEUE_SIZE) conn.deadQueue.shift();
    this.#send(conn, encodeEvent(event, seq));
  }

  /** Test hook: write `text` as it is to the user's connected sockets (no numbering, no queue). */
  sendRaw(userId: string, text: string): number {
    const conns = this.all().filter((c) => c.active && c.userId === userId);
    for (const conn of conns) this.#send(conn, text);
    return conns.length;
  }

  /** Send a reply (`seq_reply`), which is never numbered nor kept for replay. */
  reply(conn: WebConn, reply: Record<string, unknown>): void {
    this.#send(conn, JSON.stringify(reply));
  }

  /**
   * Resume a reconnected connection from the sequence number the client expects next, like the start of
   * the Go `writePump`: replay from the dead queue if it holds that number; if events were lost, start
   * over with a new connection id and a `hello` at seq 0; otherwise nothing to replay. Then flush the
   * events queued while it was away.
   */
  resume(conn: WebConn, nextSeq: number, hello: () => WsEvent): void {
    conn.sequence = nextSeq;
    if (nextSeq !== 0) {
      const index = conn.deadQueue.findIndex((e) => e.seq === nextSeq);
      const last = conn.deadQueue[conn.deadQueue.length - 1];
      if (index >= 0) {
        for (const sent of conn.deadQueue.slice(index)) {
          this.#send(conn, encodeEvent(sent.event, sent.seq));
          conn.sequence = sent.seq + 1;
        }
      } else if (last && last.seq !== nextSeq - 1) {
        conn.deadQueue = [];
        conn.connectionId = newId();
        conn.sequence = 0;
        this.write(conn, hello());
      }
    }
    this.flush(conn);
  }

  /** Write everything queued for a connected socket, in order. */
  flush(conn: WebConn): void {
    while (conn.active && conn.pending.length) this.write(conn, conn.pending.shift()!);
  }

  #send(conn: WebConn, text: string): void {
    if (conn.socket?.readyState === WebSocket.OPEN) conn.socket.send(text);
  }

  #shouldSend(conn: WebConn, event: WsEvent): boolean {
    if (!conn.userId) return false;
    const user = this.#store.userByToken(conn.token);
    if (!user) return false;
    if (event.audience === "admins" && !isSystemAdmin(user)) return false;
    if (event.audience === "non_admins" && isSystemAdmin(user)) return false;
    const b = event.broadcast;
    if (b.connection_id) return conn.connectionId === b.connection_id;
    if (b.omit_connection_id && conn.connectionId === b.omit_connection_id) return false;
    if (b.user_id) return conn.userId === b.user_id;
    if (b.omit_users?.[conn.userId]) return false;
    if (b.channel_id) return this.#store.isChannelMember(b.channel_id, conn.userId);
    if (b.team_id) return this.#store.isTeamMember(b.team_id, conn.userId);
    return true;
  }
}
