/**
 * The bot's Mattermost websocket: `@mattermost/client`'s WebSocketClient with every frame checked before the client
 * sees it, a reconnect backoff capped at 30 s, and the connection's life reported through plain callbacks.
 *
 * The client's own message handler trusts the network: it `JSON.parse`s every frame unguarded and reads
 * `msg.seq_reply` and `msg.data.connection_id` without checking, so one `null` or non-JSON frame (a proxy, a plugin,
 * a bug) would throw out of the socket's event handler and end the process. {@link parseFrame} decides what the
 * client may see; anything else is logged and skipped.
 *
 * @module
 */
import mm from "@mattermost/client";
import { getLogger } from "@logtape/logtape";
import { Backoff, type BackoffPolicy } from "../core/backoff.ts";
import { errorMessage } from "../core/errors.ts";

const log = getLogger(["mmxmpp", "mattermost", "websocket"]);

/** How the websocket reconnects: a first wait of `initialMs`, never more than `maxMs + jitterMs`. */
export type ReconnectPolicy = BackoffPolicy;

/**
 * 3 s, 6 s, 12 s, 24 s, then 28 s, each plus up to 2 s of jitter: never more than 30 s. The client's own defaults
 * grow to 5 minutes (`maxWebSocketRetryTime: 300000`) after seven failures, which can leave the bridge deaf that
 * long after the server is back.
 */
export const DEFAULT_RECONNECT: ReconnectPolicy = { initialMs: 3_000, maxMs: 28_000, jitterMs: 2_000 };

/** A server event in the stream, numbered by `seq`. */
export interface EventFrame {
  kind: "event";
  event: string;
  seq: number;
  data: Record<string, unknown>;
}

/** An answer to a request the client sent. */
export interface ReplyFrame {
  kind: "reply";
  seqReply: number;
}

/** What {@link parseFrame} makes of a frame. */
export type Frame = EventFrame | ReplyFrame | { kind: "invalid"; reason: string };

/** True for a plain JSON object (not null, not an array). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isSeq(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

/**
 * Classifies one websocket frame as the server would send it: an event (`event` string, `seq` counter, `data`
 * object; a `hello` also names its `connection_id`) or a reply (`seq_reply` ≥ 1, which is all the client keys its
 * callbacks by). Never throws.
 *
 * @example
 * ```ts
 * parseFrame('{"event":"hello","seq":0,"data":{"connection_id":"abc"}}').kind; // "event"
 * parseFrame("null"); // { kind: "invalid", reason: "not a JSON object" }
 * ```
 */
export function parseFrame(raw: unknown): Frame {
  if (typeof raw !== "string") return { kind: "invalid", reason: "not a text frame" };
  let msg: unknown;
  try {
    msg = JSON.parse(raw);
  } catch {
    return { kind: "invalid", reason: "not JSON" };
  }
  if (!isRecord(msg)) return { kind: "invalid", reason: "not a JSON object" };
  if ("seq_reply" in msg) {
    const seqReply = msg.seq_reply;
    // Only an integer the client could have sent: "__proto__" would make it call Object.prototype.
    return isSeq(seqReply) && seqReply >= 1
      ? { kind: "reply", seqReply }
      : { kind: "invalid", reason: "a reply whose seq_reply is not a request number" };
  }
  if (typeof msg.event !== "string" || msg.event === "") return { kind: "invalid", reason: "no event name" };
  if (!isSeq(msg.seq)) return { kind: "invalid", reason: "no sequence number" };
  const data = isRecord(msg.data) ? msg.data : {};
  if (msg.event === "hello" && typeof data.connection_id !== "string") {
    return { kind: "invalid", reason: "a hello without connection_id" };
  }
  return { kind: "event", event: msg.event, seq: msg.seq, data };
}

/**
 * Hands a frame to the client's message handler only when {@link parseFrame} accepts it, and never lets the handler
 * throw out of the socket's event loop. Returns whether the frame was handed on.
 */
export function deliverFrame(
  data: unknown,
  handler: ((ev: MessageEvent) => unknown) | null,
  ev: MessageEvent,
) {
  const frame = parseFrame(data);
  if (frame.kind === "invalid") {
    log.warn("Skipped a websocket frame that is not a Mattermost event: {reason} ({size} characters)", {
      reason: frame.reason,
      size: typeof data === "string" ? data.length : 0,
    });
    return false;
  }
  try {
    handler?.(ev);
  } catch (err) {
    log.error("Handling a websocket {kind} failed: {error}", { kind: frame.kind, error: errorMessage(err) });
  }
  return true;
}

/**
 * Wraps a WebSocket so that the `onmessage` handler the client installs only ever sees frames {@link deliverFrame}
 * lets through.
 */
export function guardFrames<T extends EventTarget>(socket: T): T {
  let handler: ((ev: MessageEvent) => unknown) | null = null;
  // The client reconnects without a word: say once why an open socket closed (e.g. 1007, a frame that was not
  // UTF-8), so that a gap in the log has a cause. Failed attempts to open are reported through onError.
  let opened = false;
  let error = "";
  socket.addEventListener("open", () => opened = true);
  socket.addEventListener("error", (ev) => error = String((ev as ErrorEvent).message ?? ""));
  socket.addEventListener("close", (ev) => {
    const { code, reason } = ev as CloseEvent;
    // 1000 and 1005 are a normal close, e.g. the bridge's own at stop.
    if (!opened || code === 1000 || code === 1005) return;
    log.warn("The Mattermost websocket closed ({why}); reconnecting", {
      why: [code ? `code ${code}` : "", reason, error].filter(Boolean).join(": ") || "no reason given",
    });
  });
  socket.addEventListener(
    "message",
    (ev) => deliverFrame((ev as MessageEvent).data, handler, ev as MessageEvent),
  );
  Object.defineProperty(socket, "onmessage", {
    configurable: true,
    get: () => handler,
    set: (h: ((ev: MessageEvent) => unknown) | null) => handler = h,
  });
  return socket;
}

/** What {@link MattermostSocket} reports. Callbacks must not throw (a throw is logged and swallowed). */
export interface SocketEvents {
  /**
   * An event, in sequence; `data` is always an object but its fields are unchecked, as are those of `broadcast`
   * (who it went to: `channel_id`, `user_id` …), when the event had one.
   */
  onEvent(event: string, data: Record<string, unknown>, broadcast?: Record<string, unknown>): void;
  /** The socket opened again after a close; resumed or not, events may have been lost meanwhile. */
  onReconnect(): void;
  /** The socket closed; `failures` counts attempts since it was last open. */
  onClose(failures: number): void;
  /** An attempt to open the socket failed, or the open socket broke; `error` is what the WebSocket said. */
  onError?(error: unknown): void;
}

/** Settings of {@link MattermostSocket}. */
export interface MattermostSocketOptions {
  /** `ws(s)://host/api/v4/websocket`. */
  url: string;
  token: string;
  reconnect?: ReconnectPolicy;
  events: SocketEvents;
  /** Opens the socket (default: a WebSocket with the token in the `Authorization` header); tests pass a fake. */
  connect?: (url: string, token: string) => WebSocket;
}

/**
 * One reconnecting, guarded websocket to Mattermost, authenticated at open by the `Authorization` header (only such
 * a socket can resume its connection id and get missed events replayed).
 *
 * @example
 * ```ts
 * const socket = new MattermostSocket({ url, token, events: { onEvent, onReconnect, onClose } });
 * socket.open();
 * socket.close();
 * ```
 */
export class MattermostSocket {
  private readonly client: InstanceType<typeof mm.WebSocketClient>;

  constructor(private readonly opts: MattermostSocketOptions) {
    const policy = opts.reconnect ?? DEFAULT_RECONNECT;
    const backoff = new Backoff(policy);
    const connect = opts.connect ??
      ((url: string, token: string) => new WebSocket(url, { headers: { Authorization: `Bearer ${token}` } }));
    this.client = new mm.WebSocketClient({
      newWebSocketFn: (url: string) => guardFrames(connect(url, opts.token)),
      // The client waits `minWebSocketRetryTime` (never grown, no jitter of its own) after each close; the close
      // listener below sets it from the backoff first.
      minWebSocketRetryTime: policy.initialMs,
      reconnectJitterRange: 0,
      maxWebSocketFails: Infinity,
    });
    const config = (this.client as unknown as { config: { minWebSocketRetryTime: number } }).config;
    const { events } = opts;
    this.client.addMessageListener((msg) => {
      const { event, data, broadcast } = msg as { event?: unknown; data?: unknown; broadcast?: unknown };
      if (typeof event !== "string") return;
      guarded(
        "event",
        () => events.onEvent(event, isRecord(data) ? data : {}, isRecord(broadcast) ? broadcast : undefined),
      );
    });
    // The client only records the hello's connection id (and restarts its sequence on a new one) when a
    // missed-message listener exists; without one every resume would be refused and the socket would loop. The
    // gap itself is handled on reconnect.
    this.client.addMissedMessageListener(() => {});
    this.client.addReconnectListener(() => guarded("reconnect", () => events.onReconnect()));
    // Called before the client schedules its reconnect; `failures` is 1 on the first close after an open.
    this.client.addCloseListener((failures: number) => {
      if (failures === 1) backoff.reset();
      config.minWebSocketRetryTime = backoff.next();
      guarded("close", () => events.onClose(failures));
    });
    this.client.addErrorListener((ev: Event) =>
      guarded("error", () => events.onError?.((ev as ErrorEvent).error ?? (ev as ErrorEvent).message ?? ev))
    );
  }

  /** Starts connecting; reconnects by itself until {@link close}. */
  open(): void {
    this.client.initialize(this.opts.url);
  }

  /** Closes for good, also while still connecting (the client's `close` only handles an open socket). */
  close(): void {
    this.client.close();
    const inner = this.client as unknown as { conn: WebSocket | null };
    if (inner.conn) {
      inner.conn.onclose = null;
      inner.conn.close();
      inner.conn = null;
    }
  }
}

function guarded(what: string, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    log.error("The websocket {what} handler failed: {error}", { what, error: errorMessage(err) });
  }
}
