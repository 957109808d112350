/**
 * A TCP proxy for tests that cuts the server's bytes inside multi-byte UTF-8 characters and makes sure that the
 * client reads every piece with a separate read.
 *
 * Writing pieces one by one is not enough: the kernel queues them and the client's next read returns all of them
 * at once. So after each piece the proxy waits until the piece has reached the client's socket and the client has
 * read it, as the kernel reports in `/proc/net/tcp` (the `tx_queue` and `rx_queue` columns). The next piece can then
 * only arrive in a later read. This works without touching the client, also when it runs in this process.
 *
 * With `tls`, the proxy is the TLS server for the client (`xmpps://`, direct TLS) and talks plain TCP to the
 * server, so it sees, and cuts, the plaintext: each piece becomes its own TLS record.
 *
 * Linux only (it reads `/proc/net/tcp`), IPv4 loopback only.
 *
 * @module
 */
import { freePort } from "./ports.ts";

/** Options for {@linkcode startSplittingProxy}. */
export interface SplittingProxyOptions {
  /** Port of the server on 127.0.0.1. */
  targetPort: number;
  /**
   * Fewest bytes between two cuts. 1 cuts before every continuation byte, i.e. inside every multi-byte character
   * at every possible place; larger values cut inside the first character that starts at least this many bytes
   * after the last cut, so that long texts get their cuts without a wait per character.
   */
  minSpacing?: number;
  /** Terminate TLS towards the client with this certificate and key (PEM). */
  tls?: { cert: string; key: string };
  /**
   * Close the first connection right after the client has read this many pieces ending inside a character, so that
   * it is left holding part of one.
   */
  dropFirstAfterCuts?: number;
}

/** A running proxy. */
export interface SplittingProxy {
  /** The port clients connect to, on 127.0.0.1. */
  readonly port: number;
  /** See {@linkcode SplittingProxyOptions.minSpacing}; takes effect at once. */
  minSpacing: number;
  /** How many server→client bytes were cut inside a multi-byte character, over all connections. */
  readonly cuts: number;
  /** How many client connections were accepted. */
  readonly connections: number;
  /** Closes the listener and every connection. */
  close(): Promise<void>;
}

/**
 * Starts a proxy on a free port of 127.0.0.1 that forwards to `targetPort`, cutting what the server sends.
 *
 * @example
 * ```ts
 * const proxy = await startSplittingProxy({ targetPort: prosody.c2sPort });
 * // connect a client to xmpp://127.0.0.1:${proxy.port}
 * await proxy.close();
 * ```
 */
export function startSplittingProxy(opts: SplittingProxyOptions): Promise<SplittingProxy> {
  const port = freePort();
  const listener: Deno.Listener = opts.tls
    ? Deno.listenTls({ hostname: "127.0.0.1", port, cert: opts.tls.cert, key: opts.tls.key })
    : Deno.listen({ hostname: "127.0.0.1", port });
  const conns = new Set<Deno.Conn>();
  const pumps: Promise<void>[] = [];
  const stats = { cuts: 0, connections: 0, minSpacing: opts.minSpacing ?? 1 };

  const serve = async () => {
    for await (const client of listener) {
      stats.connections++;
      const clientPort = (client.remoteAddr as Deno.NetAddr).port;
      let server: Deno.Conn;
      try {
        server = await Deno.connect({ hostname: "127.0.0.1", port: opts.targetPort });
      } catch {
        client.close();
        continue;
      }
      conns.add(client);
      conns.add(server);
      const closeBoth = () => {
        for (const c of [client, server]) {
          if (conns.delete(c)) {
            try {
              c.close();
            } catch { /* already closed */ }
          }
        }
      };
      const dropAfter = stats.connections === 1 ? opts.dropFirstAfterCuts : undefined;
      let cutsHere = 0;
      const onCut = () => {
        stats.cuts++;
        return ++cutsHere === dropAfter;
      };
      pumps.push(
        pipe(client, server).finally(closeBoth),
        pipeSplitting(server, client, clientPort, port, () => stats.minSpacing, onCut).finally(closeBoth),
      );
    }
  };
  const serving = serve().catch(() => {});

  return Promise.resolve({
    port,
    get minSpacing() {
      return stats.minSpacing;
    },
    set minSpacing(value: number) {
      stats.minSpacing = value;
    },
    get cuts() {
      return stats.cuts;
    },
    get connections() {
      return stats.connections;
    },
    async close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
      conns.clear();
      await serving;
      await Promise.allSettled(pumps);
    },
  });
}

async function pipe(from: Deno.Conn, to: Deno.Conn): Promise<void> {
  const buf = new Uint8Array(65_536);
  try {
    for (;;) {
      const n = await from.read(buf);
      if (n === null) return;
      await writeAll(to, buf.subarray(0, n));
    }
  } catch { /* either side closed */ }
}

/**
 * Forwards server→client bytes, cut inside multi-byte characters, each piece read by the client on its own. After
 * each cut, `onCut` says whether to stop here (the caller then closes the connection).
 */
async function pipeSplitting(
  from: Deno.Conn,
  to: Deno.Conn,
  clientPort: number,
  proxyPort: number,
  minSpacing: () => number,
  onCut: () => boolean,
): Promise<void> {
  const buf = new Uint8Array(65_536);
  let sinceCut = 0;
  try {
    for (;;) {
      const n = await from.read(buf);
      if (n === null) return;
      const chunk = buf.subarray(0, n);
      let start = 0;
      for (let i = 0; i < chunk.length; i++, sinceCut++) {
        // A continuation byte (10xxxxxx) means a cut here lands inside a character.
        if ((chunk[i] & 0xc0) !== 0x80 || sinceCut < minSpacing() || i === start) continue;
        await writeAll(to, chunk.subarray(start, i));
        await drained(clientPort, proxyPort);
        if (onCut()) return;
        start = i;
        sinceCut = 0;
      }
      await writeAll(to, chunk.subarray(start));
    }
  } catch { /* either side closed */ }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
}

/**
 * Waits until everything the proxy sent has reached the client's socket (the proxy's side has no unacknowledged
 * bytes, `tx_queue`) and the client has read all of it (its side has an empty `rx_queue`), or the connection is gone.
 */
async function drained(clientPort: number, proxyPort: number): Promise<void> {
  const client = `0100007F:${hex4(clientPort)}`;
  const proxy = `0100007F:${hex4(proxyPort)}`;
  for (;;) {
    const rows = (await Deno.readTextFile("/proc/net/tcp")).split("\n").map((line) =>
      line.trim().split(/\s+/)
    );
    // Fields: sl local_address rem_address st tx_queue:rx_queue …
    const queue = (local: string, remote: string, side: 0 | 1) => {
      const row = rows.find((f) => f[1] === local && f[2] === remote);
      return row ? parseInt(row[4].split(":")[side], 16) : 0;
    };
    if (queue(proxy, client, 0) === 0 && queue(client, proxy, 1) === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
}

function hex4(port: number): string {
  return port.toString(16).toUpperCase().padStart(4, "0");
}
