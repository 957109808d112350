/**
 * A plain XMPP client that plays a human user in integration tests: it joins rooms, sends group chat messages and
 * records everything it receives, independently of mmxmpp's own XMPP code.
 *
 * @module
 */

import { client, xml } from "@xmpp/client";
import type { Element } from "@xmpp/xml";
import type { Prosody } from "./prosody.ts";

const NS_MUC = "http://jabber.org/protocol/muc";
const NS_MUC_USER = "http://jabber.org/protocol/muc#user";
const NS_SID = "urn:xmpp:sid:0";
const NS_DELAY = "urn:xmpp:delay";
const NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
const NS_STREAM = "http://etherx.jabber.org/streams";
const NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls";
const NS_SM = "urn:xmpp:sm:3";
const DEFAULT_TIMEOUT_MS = 5_000;

/** A group chat message as an occupant received it. */
export interface GroupchatMessage {
  /** Bare room JID, e.g. `room@conference.localhost`. */
  room: string;
  /** Sender's nick (the resource of `from`); empty for messages from the room itself. */
  nick: string;
  /** Full `from` attribute, `room@service/nick`. */
  from: string;
  /** The sender-chosen `id` attribute. */
  id: string | undefined;
  /** Text of `<body/>`, absent for e.g. subject changes or reactions. */
  body: string | undefined;
  /** XEP-0359 `<stanza-id/>` assigned by the room (only one whose `by` is the room JID is trusted). */
  stanzaId: string | undefined;
  /** XEP-0359 `<origin-id/>` chosen by the sender. */
  originId: string | undefined;
  /** Whether it carries a XEP-0203 `<delay/>`, i.e. it is history replayed on join. */
  delayed: boolean;
  /** The whole stanza, for assertions on other children. */
  stanza: Element;
}

/** Options for {@linkcode XmppUser.joinRoom}. */
export interface JoinOptions {
  /** History to request on join (`<history maxstanzas=…/>`); the room's default when absent. */
  maxstanzas?: number;
  /** Milliseconds to wait for the join to complete (default 5000). */
  timeoutMs?: number;
}

/** Extra content for {@linkcode XmppUser.sendGroupchat}. */
export interface GroupchatExtra {
  /** Message `id`; a random one when absent. */
  id?: string;
  /** XEP-0359 origin-id; defaults to the message id, `false` sends none. */
  originId?: string | false;
  /** More children after `<body/>` (e.g. `<replace/>`, `<reply/>`). */
  children?: Element[];
}

/** Options for {@linkcode connectXmppUser}. */
export interface XmppUserOptions {
  /** Resource to bind; the server picks one when absent. */
  resource?: string;
  /**
   * Reconnect after the connection drops (xmpp.js's reconnect, every second) and rejoin the rooms joined before,
   * as a real client would. Default false: a dropped user stays offline until {@linkcode XmppUser.stop}.
   */
  reconnect?: boolean;
}

/** An error reply (`type="error"`) to a stanza; `condition` is the RFC 6120 condition, e.g. "conflict". */
export class StanzaError extends Error {
  /** The defined condition element's name, e.g. "conflict" or "forbidden". */
  readonly condition: string;
  /** The error stanza. */
  readonly stanza: Element;

  /** Builds the error from an error stanza (the one holding `<error/>`). */
  constructor(stanza: Element, what: string) {
    const condition = stanza.getChild("error")?.getChildElements()
      .find((child: Element) => child.attrs.xmlns === NS_STANZAS)?.name ?? "undefined-condition";
    super(`${what} failed: ${condition}`);
    this.name = "StanzaError";
    this.condition = condition;
    this.stanza = stanza;
  }
}

/** A connected test user. Create with {@linkcode connectXmppUser}; always {@linkcode XmppUser.stop} it. */
export interface XmppUser {
  /** The bound full JID, e.g. `alice@localhost/test`. */
  readonly jid: string;
  /** Every group chat message received since connecting, in arrival order. */
  readonly messages: GroupchatMessage[];
  /**
   * Joins (or creates: the first occupant creates a room) `room` as `nick`. `room` is a bare JID or a local part
   * at the MUC service. Resolves on the self-presence (status 110); rejects with a {@linkcode StanzaError} on an
   * error presence, e.g. condition "conflict" when the nick is taken.
   */
  joinRoom(room: string, nick: string, opts?: JoinOptions): Promise<void>;
  /** Leaves `room`; resolves on the unavailable self-presence. */
  leaveRoom(room: string): Promise<void>;
  /** Sends a group chat message with `body` to `room` and returns the message id used. */
  sendGroupchat(room: string, body: string, extra?: GroupchatExtra): Promise<string>;
  /**
   * Resolves with the first `count` messages in `room` matching `predicate`, counting those received before the
   * call too. Rejects after `timeoutMs` (default 5000) with a list of what the room did deliver.
   */
  waitForMessages(
    room: string,
    predicate: (message: GroupchatMessage) => boolean,
    count?: number,
    timeoutMs?: number,
  ): Promise<GroupchatMessage[]>;
  /** Waits `ms` and rejects if a message in `room` matching `predicate` arrived in that time. */
  expectSilence(room: string, predicate: (message: GroupchatMessage) => boolean, ms: number): Promise<void>;
  /** Sends an IQ (get/set) and resolves with the result stanza; rejects with xmpp.js's error (has `condition`). */
  iq(stanza: Element, timeoutMs?: number): Promise<Element>;
  /** Sends any stanza as is. */
  send(stanza: Element): Promise<void>;
  /** Calls `handler` with every incoming stanza; returns a function that removes it. */
  onStanza(handler: (stanza: Element) => void): () => void;
  /** Closes the stream and the connection. Idempotent; safe after the server died. */
  stop(): Promise<void>;
}

/**
 * Logs `username@localhost` in to the test server over plain TCP and sends initial presence.
 *
 * The test server's certificate is self-signed and xmpp.js's STARTTLS takes no TLS options, so this client hides
 * the server's STARTTLS offer from xmpp.js and authenticates in the clear (the test config allows it). It also
 * does without XEP-0198 stream management, which is racy in xmpp.js 0.14 (see below).
 *
 * @example
 * ```ts
 * await prosody.register("alice", "secret");
 * const alice = await connectXmppUser(prosody, "alice", "secret");
 * await alice.joinRoom("lobby", "Alice");
 * await alice.sendGroupchat("lobby", "hello");
 * await alice.stop();
 * ```
 */
export async function connectXmppUser(
  prosody: Prosody,
  username: string,
  password: string,
  resourceOrOptions?: string | XmppUserOptions,
): Promise<XmppUser> {
  const options = typeof resourceOrOptions === "string"
    ? { resource: resourceOrOptions }
    : resourceOrOptions ?? {};
  const xmpp = client({
    service: prosody.service,
    domain: prosody.domain,
    username,
    password,
    resource: options.resource,
  });
  decodeStreaming(xmpp);
  const user = new TestUser(xmpp, prosody.mucDomain, options.reconnect ?? false);
  try {
    await xmpp.start();
    await xmpp.send(xml("presence"));
  } catch (error) {
    await user.stop();
    throw new Error(`${username}@${prosody.domain} could not log in: ${error}\n${prosody.logTail(15)}`);
  }
  return user;
}

// deno-lint-ignore no-explicit-any
type XmppClient = any; // @xmpp/client ships no type declarations

/**
 * Makes `xmpp` decode what it reads with a streaming UTF-8 decoder, one per socket. @xmpp/connection 0.14 decodes
 * each chunk on its own, which turns a character cut across two reads into U+FFFD, so long non-ASCII messages
 * would now and then arrive corrupted at this user. Must run before `start()`, which binds `_onData` as the
 * socket listener. (mmxmpp's own fix is src/xmpp/session/utf8_stream.ts; this user stays independent of it.)
 */
function decodeStreaming(xmpp: XmppClient): void {
  let decoder = new TextDecoder();
  const attachSocket = xmpp._attachSocket.bind(xmpp);
  const onData = xmpp._onData.bind(xmpp);
  xmpp._attachSocket = (socket: unknown) => {
    decoder = new TextDecoder();
    attachSocket(socket);
  };
  xmpp._onData = (data: unknown) =>
    onData(data instanceof Uint8Array ? decoder.decode(data, { stream: true }) : data);
}

interface Joined {
  nick: string;
  opts: JoinOptions;
}

class TestUser implements XmppUser {
  readonly messages: GroupchatMessage[] = [];
  readonly #xmpp: XmppClient;
  readonly #mucDomain: string;
  readonly #handlers = new Set<(stanza: Element) => void>();
  readonly #joined = new Map<string, Joined>();
  #stopped = false;

  constructor(xmpp: XmppClient, mucDomain: string, reconnect: boolean) {
    this.#xmpp = xmpp;
    this.#mucDomain = mucDomain;
    if (!reconnect) xmpp.reconnect.stop();
    // Runs before xmpp.js's middleware sees the stream features, hiding two of them:
    // - STARTTLS, so the client stays on plain TCP (see connectXmppUser);
    // - XEP-0198 stream management: xmpp.js 0.14 counts incoming stanzas a few microtasks late, so a stanza that
    //   arrives together with <enabled/> (e.g. the echo of presence sent right after start()) can be counted after
    //   the counter reset; the client then acks one stanza too many and Prosody closes the stream
    //   ("Client acknowledged more stanzas than sent by server").
    xmpp.prependListener("element", (element: Element) => {
      if (!element.is("features", NS_STREAM)) return;
      element.remove("starttls", NS_TLS);
      element.remove("sm", NS_SM);
    });
    // An EventEmitter without an "error" listener throws; connection errors surface through start() instead.
    xmpp.on("error", () => {});
    xmpp.on("stanza", (stanza: Element) => this.#onStanza(stanza));
    xmpp.on("online", () => this.#rejoinAfterReconnect());
  }

  get jid(): string {
    return this.#xmpp.jid?.toString() ?? "";
  }

  #onStanza(stanza: Element): void {
    if (stanza.is("message") && stanza.attrs.type === "groupchat") this.messages.push(parseGroupchat(stanza));
    for (const handler of this.#handlers) handler(stanza);
  }

  /** A new session (not a XEP-0198 resumption) is no longer in any room, as after a server restart. */
  #rejoinAfterReconnect(): void {
    for (const [room, { nick, opts }] of this.#joined) {
      this.joinRoom(room, nick, { ...opts, maxstanzas: 0 }).catch(() => {});
    }
  }

  #roomJid(room: string): string {
    return room.includes("@") ? room : `${room}@${this.#mucDomain}`;
  }

  /** Resolves with the first stanza `match` accepts; its non-undefined return value becomes the result. */
  #waitFor<T>(match: (stanza: Element) => T | undefined, timeoutMs: number, what: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        this.#handlers.delete(handler);
      };
      const seen: string[] = [];
      const handler = (stanza: Element) => {
        seen.push(stanza.toString());
        try {
          const result = match(stanza);
          if (result === undefined) return;
          done();
          resolve(result);
        } catch (error) {
          done();
          reject(error);
        }
      };
      const timer = setTimeout(() => {
        done();
        const last = seen.slice(-10).map((stanza) => `  ${stanza}`).join("\n") || "  (nothing)";
        reject(
          new Error(`${this.jid}: ${what} timed out after ${timeoutMs} ms; last stanzas received:\n${last}`),
        );
      }, timeoutMs);
      this.#handlers.add(handler);
    });
  }

  async joinRoom(room: string, nick: string, opts: JoinOptions = {}): Promise<void> {
    const roomJid = this.#roomJid(room);
    const what = `joining ${roomJid} as ${nick}`;
    const joined = this.#waitFor(
      (stanza) => {
        if (!stanza.is("presence") || bare(stanza.attrs.from) !== roomJid) return undefined;
        if (stanza.attrs.type === "error") throw new StanzaError(stanza, what);
        if (stanza.attrs.type === "unavailable" || !isSelfPresence(stanza)) return undefined;
        return true;
      },
      opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      what,
    );
    const history = opts.maxstanzas === undefined
      ? []
      : [xml("history", { maxstanzas: String(opts.maxstanzas) })];
    await sendThenWait(
      this.#xmpp.send(xml("presence", { to: `${roomJid}/${nick}` }, xml("x", { xmlns: NS_MUC }, ...history))),
      joined,
    );
    this.#joined.set(roomJid, { nick, opts });
  }

  async leaveRoom(room: string): Promise<void> {
    const roomJid = this.#roomJid(room);
    const joined = this.#joined.get(roomJid);
    if (!joined) throw new Error(`${this.jid} is not in ${roomJid}`);
    this.#joined.delete(roomJid);
    const left = this.#waitFor(
      (stanza) =>
        stanza.is("presence") && bare(stanza.attrs.from) === roomJid && stanza.attrs.type === "unavailable" &&
          isSelfPresence(stanza)
          ? true
          : undefined,
      DEFAULT_TIMEOUT_MS,
      `leaving ${roomJid}`,
    );
    await sendThenWait(
      this.#xmpp.send(xml("presence", { to: `${roomJid}/${joined.nick}`, type: "unavailable" })),
      left,
    );
  }

  async sendGroupchat(room: string, body: string, extra: GroupchatExtra = {}): Promise<string> {
    const id = extra.id ?? crypto.randomUUID();
    const originId = extra.originId ?? id;
    const children = [
      xml("body", {}, body),
      ...(originId === false ? [] : [xml("origin-id", { xmlns: NS_SID, id: originId })]),
      ...(extra.children ?? []),
    ];
    await this.#xmpp.send(xml("message", { to: this.#roomJid(room), type: "groupchat", id }, ...children));
    return id;
  }

  waitForMessages(
    room: string,
    predicate: (message: GroupchatMessage) => boolean,
    count = 1,
    timeoutMs = DEFAULT_TIMEOUT_MS,
  ): Promise<GroupchatMessage[]> {
    const roomJid = this.#roomJid(room);
    const matching = () => this.messages.filter((m) => m.room === roomJid && predicate(m));
    if (matching().length >= count) return Promise.resolve(matching().slice(0, count));
    return this.#waitFor(
      () => {
        const found = matching();
        return found.length >= count ? found.slice(0, count) : undefined;
      },
      timeoutMs,
      `waiting for ${count} matching message(s) in ${roomJid}`,
    ).catch((error) => {
      const seen = this.messages.filter((m) => m.room === roomJid).map((m) => `  <${m.nick}> ${m.body}`);
      throw new Error(`${error.message}; received in that room:\n${seen.join("\n") || "  (nothing)"}`);
    });
  }

  async expectSilence(
    room: string,
    predicate: (message: GroupchatMessage) => boolean,
    ms: number,
  ): Promise<void> {
    const roomJid = this.#roomJid(room);
    const start = this.messages.length;
    await new Promise((resolve) => setTimeout(resolve, ms));
    const unexpected = this.messages.slice(start).filter((m) => m.room === roomJid && predicate(m));
    if (unexpected.length > 0) {
      const list = unexpected.map((m) => `  <${m.nick}> ${m.body}`).join("\n");
      throw new Error(`${this.jid} expected no matching message in ${roomJid} for ${ms} ms, got:\n${list}`);
    }
  }

  iq(stanza: Element, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Element> {
    return this.#xmpp.iqCaller.request(stanza, timeoutMs);
  }

  send(stanza: Element): Promise<void> {
    return this.#xmpp.send(stanza);
  }

  onStanza(handler: (stanza: Element) => void): () => void {
    this.#handlers.add(handler);
    return () => this.#handlers.delete(handler);
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#joined.clear();
    this.#xmpp.reconnect.stop();
    try {
      await this.#xmpp.stop();
    } catch {
      // The server may be gone already; the socket is closed either way.
    }
  }
}

/** Awaits a send and then the reply awaited since before it, without leaving the reply's rejection unhandled. */
async function sendThenWait<T>(sent: Promise<void>, reply: Promise<T>): Promise<T> {
  try {
    await sent;
  } catch (error) {
    reply.catch(() => {});
    throw error;
  }
  return await reply;
}

function bare(jid: string | undefined): string {
  return (jid ?? "").split("/")[0];
}

function isSelfPresence(presence: Element): boolean {
  const x = presence.getChild("x", NS_MUC_USER);
  return x?.getChildren("status").some((status: Element) => status.attrs.code === "110") ?? false;
}

function parseGroupchat(stanza: Element): GroupchatMessage {
  const from: string = stanza.attrs.from ?? "";
  const room = bare(from);
  const slash = from.indexOf("/");
  const stanzaId = stanza.getChildren("stanza-id", NS_SID).find((el: Element) => el.attrs.by === room);
  return {
    room,
    nick: slash === -1 ? "" : from.slice(slash + 1),
    from,
    id: stanza.attrs.id,
    body: stanza.getChildText("body") ?? undefined,
    stanzaId: stanzaId?.attrs.id,
    originId: stanza.getChild("origin-id", NS_SID)?.attrs.id,
    delayed: stanza.getChild("delay", NS_DELAY) !== undefined,
    stanza,
  };
}
