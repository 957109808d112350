/**
 * A start for xmpp.js connections that leaves nothing behind when it fails, and a stream that does not open in time
 * dropped like a lost connection.
 *
 * `Connection#start` in `@xmpp/connection` 0.14 sets up its wait for `online` (which also listens for `error`)
 * before it connects and opens the stream. When connecting or opening fails, start() rejects with that error but
 * the wait stays behind with nobody handling it: the next `error` the connection emits (the STARTTLS step or the
 * handshake failing on the stream that went on negotiating, a socket error…) rejects it, an unhandled rejection,
 * which ends the process. And a stream whose header never comes times out with the socket left open, so no
 * `disconnect` follows and `@xmpp/reconnect` never tries again.
 *
 * @module
 */

/** The parts of an xmpp.js `Connection` that this mixin uses and overrides. */
interface StartingConnection {
  status: string;
  timeout: number;
  socket: unknown;
  options: { service?: string; domain?: string; lang?: string };
  connect(service: string): Promise<unknown>;
  open(options: { domain?: string; lang?: string }): Promise<unknown>;
  start(): Promise<unknown>;
  once(event: string, listener: (...args: never[]) => void): unknown;
  removeListener(event: string, listener: (...args: never[]) => void): unknown;
  _detachSocket(): void;
}

// deno-lint-ignore no-explicit-any -- a mixin's constructor must accept any arguments (TS2545)
type ConnectionClass = new (...args: any[]) => StartingConnection;

/**
 * No stream header (or no answer to a negotiation step) within the connection's timeout. Named `TimeoutError`
 * like xmpp.js's own, so that it reads as transient wherever failures are explained: the server is slow or
 * overloaded, and a later attempt may succeed.
 */
export class NegotiationTimeout extends Error {
  override name = "TimeoutError";
}

/**
 * Extends an xmpp.js connection class (`Client`, `ConnectionTCP`, …): start() rejects with the first failure and
 * leaves no listener behind; a stream that does not open within `timeout` rejects with a
 * {@link NegotiationTimeout} and its socket is closed, so that `disconnect` fires and a reconnect can follow.
 *
 * @example
 * ```ts
 * import { Client } from "@xmpp/client-core";
 * const entity = new (settleStart(Client))({ service: "xmpp://chat.example.org", domain: "example.org" });
 * ```
 */
export function settleStart<C extends ConnectionClass>(Base: C): C {
  return class extends Base {
    override async start(): Promise<unknown> {
      if (this.status !== "offline") throw new Error("Connection is not offline");
      const { service, domain, lang } = this.options;
      await this.connect(service ?? "");
      let stopWaiting = () => {};
      const online = new Promise((resolve, reject) => {
        const onOnline = (jid: never) => (stopWaiting(), resolve(jid));
        const onError = (err: never) => (stopWaiting(), reject(err));
        stopWaiting = () => {
          this.removeListener("online", onOnline);
          this.removeListener("error", onError);
        };
        this.once("online", onOnline);
        this.once("error", onError);
      });
      // An "error" that also fails open() rejects this wait too, before anyone awaits it.
      online.catch(() => {});
      try {
        await this.open({ domain, lang });
      } catch (err) {
        stopWaiting();
        throw err;
      }
      return online;
    }

    /**
     * xmpp.js lets go of a socket it gave up closing (the server did not close its side within the timeout, as when
     * it is still busy with what was written last) and removes its listeners, "error" included: a reset that comes
     * later would be an uncaught error that ends the process. The socket keeps a listener that ignores it; it is not
     * destroyed, so that the server still reads what was written before.
     */
    override _detachSocket(): void {
      const socket = this.socket as { on?(event: string, listener: () => void): void } | null;
      super._detachSocket();
      socket?.on?.("error", () => {});
    }

    override async open(options: { domain?: string; lang?: string }): Promise<unknown> {
      try {
        return await super.open(options);
      } catch (err) {
        if ((err as Error)?.name !== "TimeoutError") throw err;
        // The server is there but does not answer: drop the connection, as if it were lost.
        dropSocket(this.socket);
        throw new NegotiationTimeout(
          `the server did not open the XML stream (no stream header) within ${this.timeout} ms`,
          { cause: err },
        );
      }
    }
  };
}

/**
 * Closes a connection's socket at once, without the closing handshake a server that does not answer would never
 * complete: a net socket, or @xmpp/tls's wrapper around a TLS socket. Its `close` makes the connection
 * `disconnect`.
 */
export function dropSocket(socket: unknown): void {
  const s = socket as { socket?: { destroy?(): void } | null; destroy?(): void } | null;
  s?.destroy?.();
  s?.socket?.destroy?.();
}
