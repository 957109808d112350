/**
 * An XEP-0114 external component: one stream in the `jabber:component:accept` namespace over which the bridge owns
 * a whole domain and may send from any JID in it, authenticated by a shared-secret handshake.
 *
 * xmpp.js 0.14 ships no component package (npm has `@xmpp/component` only at 0.13), so this module builds one from
 * the 0.14 pieces: the TCP connection with the component namespace, the handshake, IQ routing, and reconnection
 * with backoff.
 *
 * @module
 */
import { createHash } from "node:crypto";
import ConnectionTCP from "@xmpp/tcp/lib/Connection.js";
import middleware from "@xmpp/middleware";
import iqCaller from "@xmpp/iq/caller.js";
import iqCallee from "@xmpp/iq/callee.js";
import reconnect from "@xmpp/reconnect";
import xml from "@xmpp/xml";
import { Backoff } from "../../core/backoff.ts";
import { BridgeError } from "../../core/errors.ts";
import { explainComponentFailure } from "../explain.ts";
import type { Element } from "../session/client.ts";
import { decodeUtf8Streaming } from "../session/utf8_stream.ts";
import { settleStart } from "../session/settled_start.ts";
import { NS_COMPONENT } from "../protocol/ns.ts";

const DEFAULT_PORT = 5347;

/** Settings of {@link XmppComponent}. */
export interface XmppComponentOptions {
  /** `xmpp://host:port` of the server's component port (5347 when no port is given). */
  service: string;
  /** The component's domain, e.g. `bridge.example.org`. */
  domain: string;
  /** The shared secret configured for the component on the server. Never logged, never in an error. */
  secret: string;
  /** Delay before the first reconnection attempt; doubled after each failure (default 1000). */
  reconnectDelayMs?: number;
  /** Longest delay between reconnection attempts (default 30000). */
  maxReconnectDelayMs?: number;
}

/** A JID as xmpp.js parses it. */
export interface Jid {
  local: string;
  domain: string;
  resource: string;
  bare(): Jid;
  toString(): string;
}

/** What an IQ handler is given: the stanza, its only child, and the parsed addresses. */
export interface IqContext {
  stanza: Element;
  element: Element;
  from: Jid | null;
  to: Jid | null;
}

/**
 * Answers one kind of IQ get/set. Return the child of the result, `true` for an empty result, an `<error/>` element
 * for an error reply, or undefined to let the IQ end as `service-unavailable`.
 */
export type IqHandler = (ctx: IqContext) => Element | true | undefined | Promise<Element | true | undefined>;

/** Events of {@link XmppComponent}. */
export interface XmppComponentEvents {
  /** The handshake was accepted, at start and after every reconnection. */
  online: () => void;
  /** The connection was lost; a reconnection is scheduled unless the component is stopping. */
  disconnect: () => void;
  /** An incoming message, presence or IQ. */
  stanza: (stanza: Element) => void;
  /** A connection or stream error, explained (see {@link describeComponentError}). */
  error: (err: BridgeError) => void;
}

/** The parts of xmpp.js's TCP connection (an EventEmitter) used here; its JavaScript carries no usable types. */
interface TcpStream {
  /** Namespace of the stream header, read from the prototype. */
  NS: string;
  status: string;
  timeout: number;
  socket: unknown;
  options: { service: string; domain: string };
  on(event: string, listener: (...args: never[]) => void): void;
  once(event: string, listener: (...args: never[]) => void): void;
  removeListener(event: string, listener: (...args: never[]) => void): void;
  emit(event: string, ...args: unknown[]): boolean;
  isStanza(el: Element): boolean;
  socketParameters(service: string): { port: number | null; host: string } | undefined;
  headerElement(): Element;
  send(el: Element): Promise<void>;
  sendReceive(el: Element): Promise<Element>;
  _jid(jid: string): unknown;
  _ready(resumed: boolean): void;
  start(): Promise<unknown>;
  stop(): Promise<unknown>;
  connect(service: string): Promise<unknown>;
  open(options: { domain?: string; lang?: string }): Promise<unknown>;
  disconnect(): Promise<unknown>;
  _attachSocket(socket: unknown): void;
  _detachSocket(): void;
  _onData(data: unknown): void;
}
const TcpStream = ConnectionTCP as unknown as {
  new (options: TcpStream["options"]): TcpStream;
  prototype: TcpStream;
};

/**
 * The TCP stream of xmpp.js in the component namespace, with the XEP-0114 handshake in place of SASL, decoding what
 * it reads with a streaming UTF-8 decoder; a failed start leaves nothing behind (see settled_start.ts).
 */
class ComponentStream extends settleStart(decodeUtf8Streaming(TcpStream)) {
  constructor(options: { service: string; domain: string }, secret: string) {
    super(options);
    this.on("open", (header: Element) => this.#handshake(String(header.attrs.id ?? ""), secret));
  }

  override socketParameters(service: string) {
    const params = super.socketParameters(service);
    // @xmpp/tcp fills in the client port 5222 when the service names none.
    if (params && !new URL(service).port) params.port = DEFAULT_PORT;
    return params;
  }

  // XEP-0114 streams carry no version: the server must not expect stream features or SASL.
  override headerElement() {
    const el = super.headerElement();
    delete el.attrs.version;
    return el;
  }

  // Every stanza on a component stream must name its sender; default to the component itself.
  override send(el: Element) {
    if (this.isStanza(el) && !el.attrs.from) el.attrs.from = this.options.domain;
    return super.send(el);
  }

  // https://xmpp.org/extensions/xep-0114.html#protocol-handshake: hex SHA-1 of stream id + secret.
  async #handshake(streamId: string, secret: string): Promise<void> {
    try {
      const digest = createHash("sha1").update(streamId + secret, "utf8").digest("hex");
      const answer: Element = await this.sendReceive(xml("handshake", {}, digest));
      if (!answer.is("handshake") || answer.attrs.type === "error") {
        throw new Error(`the server answered the handshake with ${answer.toString().slice(0, 300)}`);
      }
      this._jid(this.options.domain);
      this._ready(false);
    } catch (err) {
      // A refusal arrives as a stream error, which xmpp.js has already emitted and acts on (it closes the stream).
      if ((err as Error)?.name === "StreamError") return;
      this.emit("error", err);
      this.disconnect().catch(() => {});
    }
  }
}

ComponentStream.prototype.NS = NS_COMPONENT;

/**
 * A component connection failure as the {@link BridgeError} the bridge raises: the reason and what to do, from
 * {@link explainComponentFailure}, shared with the doctor. The secret never appears.
 *
 * @example
 * ```ts
 * describeComponentError({ condition: "not-authorized" }, "bridge.example.org", service).message;
 * // "the server refused the handshake for bridge.example.org (not-authorized): XMPP_COMPONENT_SECRET does not …"
 * ```
 */
export function describeComponentError(err: unknown, domain: string, service: string): BridgeError {
  if (err instanceof BridgeError) return err;
  const f = explainComponentFailure(err, { jid: domain, service });
  return new BridgeError(f.fix ? `${f.reason}: ${f.fix}` : f.reason, { transient: f.transient, cause: err });
}

/**
 * One component connection: starts with the handshake, answers IQs through {@link XmppComponent.iqCallee},
 * reconnects with backoff (1 s, 2 s, 4 s … up to 30 s) and emits `online` again after each reconnection.
 *
 * @example
 * ```ts
 * const component = new XmppComponent({ service: "xmpp://127.0.0.1:5347", domain: "bridge.example.org", secret });
 * component.on("stanza", (stanza) => console.log(stanza.toString()));
 * await component.start();
 * await component.send(xml("presence", { from: "bob@bridge.example.org/mm", to: "room@muc.example.org/bob" }));
 * ```
 */
export class XmppComponent {
  readonly domain: string;
  /** `xmpp://host:port` of the server's component port. */
  readonly service: string;
  /** Sends IQs and awaits their answers. */
  readonly iqCaller: { request(iq: Element, timeoutMs?: number): Promise<Element> };
  /** Routes incoming IQ get/set to handlers; anything unhandled is answered `service-unavailable`. */
  readonly iqCallee: {
    get(ns: string, name: string, handler: IqHandler): void;
    set(ns: string, name: string, handler: IqHandler): void;
  };
  readonly #stream: ComponentStream;
  readonly #reconnect: { delay: number; start(): void; stop(): void };
  /** Drives `@xmpp/reconnect`, which has one fixed `delay` and no backoff of its own. */
  readonly #backoff: Backoff;
  #reconnecting = true;

  constructor(opts: XmppComponentOptions) {
    this.domain = opts.domain;
    this.service = opts.service;
    this.#backoff = new Backoff({
      initialMs: opts.reconnectDelayMs ?? 1_000,
      maxMs: opts.maxReconnectDelayMs ?? 30_000,
    });
    this.#stream = new ComponentStream({ service: opts.service, domain: opts.domain }, opts.secret);
    // An EventEmitter without an "error" listener throws; errors reach callers through start() and on("error").
    this.#stream.on("error", () => {});
    // Registered before the reconnect module's own listener, so the delay is set before it schedules.
    this.#stream.on("disconnect", () => this.#reconnect.delay = this.#backoff.next());
    this.#stream.on("online", () => this.#backoff.reset());
    const mw = middleware({ entity: this.#stream });
    this.iqCaller = iqCaller({ middleware: mw, entity: this.#stream });
    this.iqCallee = iqCallee({ middleware: mw, entity: this.#stream });
    this.#reconnect = reconnect({ entity: this.#stream });
  }

  /** `online` once the handshake is accepted; see xmpp.js's connection statuses for the others. */
  get status(): string {
    return this.#stream.status;
  }

  /** Listens to one of {@link XmppComponentEvents}. */
  on<E extends keyof XmppComponentEvents>(event: E, listener: XmppComponentEvents[E]): void {
    if (event === "error") {
      const explain = listener as XmppComponentEvents["error"];
      this.#stream.on(
        "error",
        (err: unknown) => explain(describeComponentError(err, this.domain, this.service)),
      );
    } else this.#stream.on(event, listener);
  }

  /** Sends a stanza; without a `from` it comes from the component's domain. */
  send(stanza: Element): Promise<void> {
    return this.#stream.send(stanza);
  }

  /**
   * Connects and performs the handshake. Rejects with an explained {@link BridgeError} and does not retry when the
   * first connection fails; once online, lost connections are retried until {@link XmppComponent.stop}.
   */
  async start(): Promise<void> {
    if (!this.#reconnecting) {
      this.#reconnect.start();
      this.#reconnecting = true;
    }
    try {
      await this.#stream.start();
    } catch (err) {
      await this.stop();
      throw describeComponentError(err, this.domain, this.service);
    }
  }

  /** Stops reconnecting and closes the stream. Never throws. */
  async stop(): Promise<void> {
    this.#reconnect.stop();
    this.#reconnecting = false;
    if (this.#stream.status === "offline") return;
    await this.#stream.stop().catch(() => {});
  }
}
