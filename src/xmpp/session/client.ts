/**
 * Builds an xmpp.js client from its parts, so that TLS can be configured per connection.
 *
 * `@xmpp/client`'s own STARTTLS step takes no TLS options; this module wires the same pieces (TCP, direct TLS,
 * SASL SCRAM-SHA-1/PLAIN, resource binding, reconnect, IQ caller/callee) with a STARTTLS step that honours a
 * custom CA and an explicit "skip verification" switch, and checks the certificate against the JID's domain.
 * {@link createStreamClient} builds the same stream but stops before authentication, for XEP-0077 registration.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { Client, xml } from "@xmpp/client-core";
import reconnect from "@xmpp/reconnect";
import tcp from "@xmpp/tcp";
import ConnectionTLS from "@xmpp/tls/lib/Connection.js";
import TlsSocket from "@xmpp/tls/lib/Socket.js";
import middleware from "@xmpp/middleware";
import streamFeatures from "@xmpp/stream-features";
import iqCaller from "@xmpp/iq/caller.js";
import iqCallee from "@xmpp/iq/callee.js";
import sasl from "@xmpp/sasl";
import SASLFactory from "saslmechanisms";
import plain from "@xmpp/sasl-plain";
import resourceBinding from "@xmpp/resource-binding";
import net from "node:net";
import tls from "node:tls";
import { decodeUtf8Streaming } from "./utf8_stream.ts";
import { NativeScramSha1 } from "./scram.ts";
import { dropSocket, NegotiationTimeout, settleStart } from "./settled_start.ts";
import { NS_PING, NS_STREAM, NS_TLS } from "../protocol/ns.ts";

const log = getLogger(["mmxmpp", "xmpp"]);

/** An xmpp.js element. */
export type Element = ReturnType<typeof xml>;

/** TLS settings for one connection. */
export interface TlsOptions {
  /** Extra CA certificate(s), PEM, trusted besides the system's CAs. */
  ca?: string;
  /**
   * Trust `ca` alone, not the system's CAs as well. Each TLS connection parses the CAs it is given, and keeps them:
   * with the system's ~150 that costs about 0.8 MB and 15 ms of CPU per connection, which is what a connection per
   * ghost cannot afford. Set once a connection showed that `ca` alone verifies the server.
   */
  caOnly?: boolean;
  /** Accept any certificate. Only for testing; the caller warns. */
  insecureSkipVerify?: boolean;
  /**
   * Log in even when the server offers no TLS (`XMPP_ALLOW_UNENCRYPTED`). Without it, a stream that is still
   * unencrypted when authentication starts (no STARTTLS offered, or the offer stripped on the way) is refused.
   */
  allowUnencrypted?: boolean;
}

/** Options for {@link createXmppClient}. */
export interface XmppClientOptions {
  /** `xmpp://host:port` or `xmpps://host:port`. */
  service: string;
  /** Domain of the account; certificates are checked against it. */
  domain: string;
  username: string;
  password: string;
  resource: string;
  tls?: TlsOptions;
  /**
   * How long each negotiation step (stream header, STARTTLS, closing) may wait for the server; default 10 s
   * (xmpp.js's own 2 s is too short for a loaded server or a slow link: the login would fail and be retried).
   */
  timeoutMs?: number;
}

/** What stream negotiation picked and saw, for logs, capabilities and the doctor. */
export interface Negotiated {
  /** The SASL mechanism used (authenticated clients only). */
  mechanism?: string;
  tlsProtocol?: string;
  peerCertificate?: tls.PeerCertificate;
  /**
   * Namespaces of every stream feature the server offered on the current connection, before and after
   * authentication, e.g. `http://jabber.org/features/iq-register` (XEP-0077) or `urn:xmpp:sm:3`.
   */
  streamFeatures: Set<string>;
}

/** The parts of an xmpp.js client the bridge uses. */
export interface XmppClient {
  readonly status: string;
  readonly jid: { toString(): string; bare(): { toString(): string }; getLocal(): string } | null;
  start(): Promise<unknown>;
  stop(): Promise<unknown>;
  send(element: Element): Promise<void>;
  on(event: string, listener: (...args: never[]) => void): void;
  removeListener(event: string, listener: (...args: never[]) => void): void;
  isSecure(): boolean;
  iqCaller: {
    request(element: Element, timeout?: number): Promise<Element>;
    get(element: Element, to?: string, timeout?: number): Promise<Element>;
  };
  iqCallee: { get(ns: string, name: string, handler: (ctx: unknown) => unknown): void };
  reconnect: { delay: number; stop(): void; start(): void; on(event: string, listener: () => void): void };
  /** What negotiation picked, for logs and the doctor. */
  negotiated: Negotiated;
}

/** Options for {@link createStreamClient}. */
export interface StreamClientOptions {
  /** `xmpp://host:port` or `xmpps://host:port`. */
  service: string;
  /** Domain of the server; certificates are checked against it. */
  domain: string;
  tls?: TlsOptions;
  /** As in {@link XmppClientOptions.timeoutMs}. */
  timeoutMs?: number;
}

/**
 * A stream that is negotiated up to, but not including, authentication: STARTTLS when offered, then nothing.
 * `start()` resolves once the server has sent the features that follow TLS (SASL mechanisms, XEP-0077
 * registration…); the stream then carries pre-authentication IQs such as XEP-0077 registration.
 */
export interface XmppStreamClient {
  readonly status: string;
  start(): Promise<unknown>;
  stop(): Promise<unknown>;
  send(element: Element): Promise<void>;
  on(event: string, listener: (...args: never[]) => void): void;
  isSecure(): boolean;
  iqCaller: { request(element: Element, timeout?: number): Promise<Element> };
  negotiated: Negotiated;
}

/** What a stream-feature handler of xmpp.js is given. */
interface NegotiatingEntity {
  socket: unknown;
  sendReceive(el: Element): Promise<Element>;
  _attachSocket(socket: unknown): void;
  restart(): Promise<void>;
}

/** The SASL step's callback that performs the exchange. */
type Authenticate = (credentials: { username: string; password: string }, mechanism: string) => Promise<void>;

/**
 * Learns, from its connections, whether the extra CA (`XMPP_CA_FILE`) alone verifies the server, so that many
 * connections to it (one per ghost) can each trust that CA alone ({@link TlsOptions.caOnly}): the first connection
 * tries it alone; a certificate rejection makes it, and every later one, trust the system's CAs as well.
 *
 * @example
 * ```ts
 * const trust = new CaTrust({ ca: pem });
 * const client = await trust.connect((tls) => startClient({ ...opts, tls }), isCertificateRejection);
 * ```
 */
export class CaTrust {
  /** Whether `ca` alone verified the server; undefined until a connection tried. */
  #alone?: boolean;

  constructor(private readonly base: TlsOptions = {}) {}

  /** Whether `ca` alone verified the server (false: it did not, the system's CAs are trusted too); undefined until a connection tried. */
  get verifiesAlone(): boolean | undefined {
    return this.#alone;
  }

  /**
   * Runs `attempt` with the TLS options to use now; when it fails with a certificate rejection (as `rejected`
   * tells) while trusting `ca` alone, learns that and runs it once more with the system's CAs too.
   */
  async connect<T>(
    attempt: (tls: TlsOptions) => Promise<T>,
    rejected: (err: unknown) => boolean,
  ): Promise<T> {
    const caOnly = this.base.ca !== undefined && this.#alone !== false;
    try {
      const result = await attempt({ ...this.base, caOnly });
      if (caOnly) this.#alone = true;
      return result;
    } catch (err) {
      if (!caOnly || !rejected(err)) throw err;
      this.#alone = false;
      log.info("XMPP_CA_FILE alone does not verify the server; trusting the system's CAs too");
      return await attempt({ ...this.base, caOnly: false });
    }
  }
}

/** Node TLS connect options for `opts`. */
export function tlsConnectOptions(domain: string, opts: TlsOptions = {}): tls.ConnectionOptions {
  return {
    servername: domain,
    // Node's (and Deno's) `ca` replaces the system's CAs rather than adding to them.
    ca: opts.ca ? (opts.caOnly ? [opts.ca] : [...tls.rootCertificates, opts.ca]) : undefined,
    rejectUnauthorized: !opts.insecureSkipVerify,
    checkServerIdentity: (_host, cert) => tls.checkServerIdentity(domain, cert),
  };
}

/**
 * Creates (but does not start) a client for one account.
 *
 * @example
 * ```ts
 * const xmpp = createXmppClient({ service: "xmpp://chat.example.org:5222", domain: "example.org",
 *   username: "bridge", password, resource: "mattermost-bridge" });
 * await xmpp.start();
 * ```
 */
export function createXmppClient(opts: XmppClientOptions): XmppClient {
  const { entity, mw, features, caller, negotiated } = negotiatingEntity(opts);
  const callee = iqCallee({ middleware: mw, entity });
  const reconnector = reconnect({ entity });

  const saslFactory = new SASLFactory();
  saslFactory.use(NativeScramSha1);
  plain(saslFactory);
  sasl(
    { streamFeatures: features, saslFactory },
    async (authenticate: Authenticate, mechanisms: string[]) => {
      if (!entity.isSecure() && !opts.tls?.allowUnencrypted) {
        throw new Error(
          "the server offered no TLS (no STARTTLS), so the bridge will not log in over this unencrypted " +
            "connection: enable TLS on the server, use xmpps://, or set XMPP_ALLOW_UNENCRYPTED=true for a " +
            "server on a trusted network",
        );
      }
      // Never send PLAIN over an unencrypted stream.
      const mechanism = entity.isSecure() ? mechanisms[0] : mechanisms.find((m: string) => m !== "PLAIN");
      if (!mechanism) throw new Error("the server offers only PLAIN authentication on an unencrypted stream");
      negotiated.mechanism = mechanism;
      await authenticate({ username: opts.username, password: opts.password }, mechanism);
    },
  );
  resourceBinding({ iqCaller: caller, streamFeatures: features }, opts.resource);
  callee.get(NS_PING, "ping", () => ({}));

  return Object.assign(entity, { iqCaller: caller, iqCallee: callee, reconnect: reconnector, negotiated });
}

/**
 * Creates (but does not start) a client that opens a stream, negotiates STARTTLS when the server offers it (with
 * the same TLS options as {@link createXmppClient}) and stops before authentication: it never sends SASL. For
 * XEP-0077 registration of a new account. It does not reconnect; stop it when done.
 *
 * @example
 * ```ts
 * const stream = createStreamClient({ service: "xmpp://chat.example.org:5222", domain: "example.org" });
 * await stream.start();
 * const form = await stream.iqCaller.request(xml("iq", { type: "get" }, xml("query", { xmlns: "jabber:iq:register" })));
 * await stream.stop();
 * ```
 */
export function createStreamClient(opts: StreamClientOptions): XmppStreamClient {
  const { entity, mw, caller, negotiated } = negotiatingEntity(opts);
  // Runs after the STARTTLS step, which consumes the features that offer it: these features are the last before
  // authentication, so the stream is as far as it goes.
  mw.use(
    (
      { stanza, entity }: { stanza: Element; entity: { _ready(resumed: boolean): void } },
      next: () => unknown,
    ) => {
      if (!stanza.is("features", NS_STREAM)) return next();
      entity._ready(false);
    },
  );
  return Object.assign(entity, { iqCaller: caller, negotiated });
}

/**
 * xmpp.js's client, decoding what it reads with a streaming UTF-8 decoder (every transport, after STARTTLS too),
 * whose failed start leaves nothing behind and whose stream that does not open is dropped (see settled_start.ts).
 */
const StreamingClient = settleStart(decodeUtf8Streaming(Client));

/** Default of {@link XmppClientOptions.timeoutMs}. */
const NEGOTIATION_TIMEOUT_MS = 10_000;

/**
 * An xmpp.js entity with the transports (TCP, direct TLS with our options), middleware, IQ caller and our STARTTLS
 * step, which records what was negotiated.
 */
function negotiatingEntity({ service, domain, tls: tlsOptions, timeoutMs }: StreamClientOptions) {
  const tlsOpts = tlsConnectOptions(domain, tlsOptions);
  const entity = new StreamingClient({ service, domain, timeout: timeoutMs ?? NEGOTIATION_TIMEOUT_MS });
  const negotiated: Negotiated = { streamFeatures: new Set() };
  // An EventEmitter without an "error" listener throws, and @xmpp/middleware emits a stream-feature step's failure
  // from a promise nobody holds: that throw would be an unhandled rejection, which ends the process. Failures reach
  // callers through start() and their own "error" listeners.
  entity.on("error", () => {});

  // Direct TLS (xmpps://) with our options.
  class DirectTls extends ConnectionTLS {
    socketParameters(service: string) {
      const params = super.socketParameters(service);
      return params && { ...params, ...tlsOpts };
    }
  }
  tcp({ entity });
  entity.transports.push(DirectTls);

  entity.on("connecting", () => negotiated.streamFeatures.clear());
  entity.on("element", (el: Element) => {
    if (!el.is("features", NS_STREAM)) return;
    for (const feature of el.getChildElements()) negotiated.streamFeatures.add(String(feature.getNS()));
  });

  const mw = middleware({ entity });
  const features = streamFeatures({ middleware: mw });
  const caller = iqCaller({ middleware: mw, entity });

  features.use("starttls", NS_TLS, async ({ entity }: { entity: NegotiatingEntity }, next: () => unknown) => {
    const socket = entity.socket;
    // Already encrypted (xmpps://): a server behind a TLS-terminating proxy still offers STARTTLS; go on to SASL.
    if (!(socket instanceof net.Socket) || socket instanceof tls.TLSSocket) return next();
    const secure = new TlsSocket();
    let step = "STARTTLS";
    try {
      const answer = await entity.sendReceive(xml("starttls", { xmlns: NS_TLS }));
      if (!answer.is("proceed", NS_TLS)) throw new Error("the server refused STARTTLS");
      step = "the TLS handshake after STARTTLS";
      await new Promise<void>((resolve, reject) => {
        secure.once("connect", () => resolve());
        secure.once("error", (err: Error) => reject(err));
        secure.connect({ socket, ...tlsOpts });
      });
      entity._attachSocket(secure);
      step = "the stream restart after STARTTLS";
      await entity.restart();
    } catch (err) {
      // A half-negotiated stream is of no use: drop it, so that "disconnect" follows and a reconnect can try again.
      // The error goes on to @xmpp/middleware, which emits it as the connection's "error" (start() rejects with it).
      dropSocket(secure);
      socket.destroy();
      throw startTlsFailure(err, step);
    }
  });

  entity.on("online", () => {
    const raw = entity.socket?.socket;
    if (raw instanceof tls.TLSSocket) {
      negotiated.tlsProtocol = raw.getProtocol() ?? undefined;
      negotiated.peerCertificate = raw.getPeerCertificate();
    }
  });

  return { entity, mw, features, caller, negotiated };
}

/** A failure of the STARTTLS step, naming the step; a timeout stays a {@link NegotiationTimeout} (transient). */
function startTlsFailure(err: unknown, step: string): Error {
  const e = err as Error;
  if (e?.name !== "TimeoutError") return err instanceof Error ? err : new Error(String(err));
  const what = e.message ? e.message.replace(/^the server /, "") : "did not answer in time";
  // The cause is xmpp.js's bare TimeoutError, so that explain.ts's root cause is this message, which names the step.
  return new NegotiationTimeout(`${step}: the server ${what}`, { cause: e.cause ?? err });
}
