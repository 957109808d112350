/**
 * Streaming UTF-8 decoding for xmpp.js connections.
 *
 * `@xmpp/connection` 0.14 decodes every socket chunk on its own (`data.toString("utf8")` in `Connection#_onData`),
 * so a multi-byte character whose bytes fall into two reads turns into U+FFFD replacement characters. TCP and TLS
 * cut the stream wherever they like, so a long message of non-ASCII text is corrupted now and then.
 *
 * @module
 */

/** The two methods of an xmpp.js `Connection` that this mixin overrides. */
interface SocketDataHandling {
  _attachSocket(socket: unknown): void;
  _onData(data: unknown): void;
  /** The stream's XML parser; its "error" event ends the stream as bad-format. */
  parser?: { emit(event: "error", error: Error): unknown };
}

// deno-lint-ignore no-explicit-any -- a mixin's constructor must accept any arguments (TS2545)
type ConnectionClass = new (...args: any[]) => SocketDataHandling;

/**
 * Extends an xmpp.js connection class (`Client`, `ConnectionTCP`, …) so that socket bytes are decoded with a
 * streaming decoder, which holds back an incomplete character until its remaining bytes arrive.
 *
 * Each attached socket gets a fresh decoder: a new connection (reconnect) or the TLS socket that replaces the TCP
 * one after STARTTLS starts a new byte stream, and a partial character left by the old one must not leak into it.
 *
 * @example
 * ```ts
 * import { Client } from "@xmpp/client-core";
 * const entity = new (decodeUtf8Streaming(Client))({ service: "xmpp://chat.example.org", domain: "example.org" });
 * ```
 */
export function decodeUtf8Streaming<C extends ConnectionClass>(Base: C): C {
  return class extends Base {
    #decoder = new TextDecoder();

    override _attachSocket(socket: unknown): void {
      this.#decoder = new TextDecoder();
      super._attachSocket(socket);
    }

    // xmpp.js binds this method as the socket's "data" listener on the first _attachSocket, so overriding it here
    // covers every socket of the connection. Its own `toString("utf8")` leaves a string as it is.
    override _onData(data: unknown): void {
      const text = data instanceof Uint8Array ? this.#decoder.decode(data, { stream: true }) : data;
      try {
        super._onData(text);
      } catch (err) {
        // @xmpp/xml's parser throws on some malformed XML (an end tag before any start tag) instead of emitting
        // "error"; thrown from a socket listener it would end the process. Handled like its other errors: the
        // stream ends with a bad-format stream error.
        this.parser?.emit("error", err instanceof Error ? err : new Error(String(err)));
      }
    }
  };
}
