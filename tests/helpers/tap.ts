/**
 * A TCP relay on loopback that forwards every connection to a target port and records what the clients sent, so
 * that a test can assert on the bytes that went over the wire (on an unencrypted stream).
 *
 * @module
 */

/** A running relay; always {@linkcode Tap.close} it. */
export interface Tap {
  /** The port to connect to instead of the target's. */
  readonly port: number;
  /** How many client connections were accepted so far. */
  readonly connections: number;
  /** Everything the clients sent, all connections in order, decoded as UTF-8. */
  clientText(): string;
  /** Stops listening and closes every connection. */
  close(): Promise<void>;
}

/**
 * Starts a relay to `127.0.0.1:targetPort`.
 *
 * @example
 * ```ts
 * const tap = startTap(prosody.c2sPort);
 * // connect a client to xmpp://127.0.0.1:${tap.port}, then:
 * assert.ok(!tap.clientText().includes(password));
 * await tap.close();
 * ```
 */
export function startTap(targetPort: number): Tap {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const chunks: Uint8Array[] = [];
  const conns = new Set<Deno.Conn>();
  const pipes: Promise<void>[] = [];
  let connections = 0;

  const pipe = async (from: Deno.Conn, to: Deno.Conn, record: boolean) => {
    const buf = new Uint8Array(16_384);
    try {
      for (;;) {
        const n = await from.read(buf);
        if (n === null) break;
        if (record) chunks.push(buf.slice(0, n));
        let written = 0;
        while (written < n) written += await to.write(buf.subarray(written, n));
      }
    } catch {
      // Either side closed; the other is closed below.
    } finally {
      for (const c of [from, to]) {
        if (conns.delete(c)) c.close();
      }
    }
  };

  const accepting = (async () => {
    for await (const client of listener) {
      connections++;
      conns.add(client);
      try {
        const server = await Deno.connect({ hostname: "127.0.0.1", port: targetPort });
        conns.add(server);
        pipes.push(pipe(client, server, true), pipe(server, client, false));
      } catch {
        conns.delete(client);
        client.close();
      }
    }
  })().catch(() => {});

  return {
    port: (listener.addr as Deno.NetAddr).port,
    get connections() {
      return connections;
    },
    clientText() {
      const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
      let at = 0;
      for (const c of chunks) {
        all.set(c, at);
        at += c.length;
      }
      return new TextDecoder().decode(all);
    },
    async close() {
      listener.close();
      for (const c of conns) c.close();
      conns.clear();
      await accepting;
      await Promise.all(pipes);
    },
  };
}
