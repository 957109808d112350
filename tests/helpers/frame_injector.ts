/**
 * A TCP proxy for tests that passes everything through and, on request, slips a raw websocket frame of any bytes
 * into what the server sends on each upgraded connection, between two of the server's frames. It sends what no
 * server API can: a text frame whose payload is not valid UTF-8, as a broken proxy or a memory error could.
 *
 * @module
 */
import { freePort } from "./ports.ts";

/** A running proxy. Always {@linkcode FrameInjector.close} it. */
export interface FrameInjector {
  /** The port clients connect to, on 127.0.0.1. */
  readonly port: number;
  /**
   * Queues a server-to-client frame with `payload` (opcode 1, text, unless given) on every websocket connection
   * open now, sent at the next frame boundary. Returns how many connections will get it.
   */
  inject(payload: Uint8Array, opcode?: number): number;
  /** Frames injected so far (written to a client). */
  readonly injected: number;
  close(): Promise<void>;
}

/** Starts a proxy to `targetPort` on 127.0.0.1. */
export function startFrameInjector(targetPort: number): FrameInjector {
  const port = freePort();
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  const conns = new Set<Deno.Conn>();
  const sockets = new Set<Downstream>();
  let injected = 0;

  const serve = async () => {
    for await (const client of listener) {
      conns.add(client);
      Deno.connect({ hostname: "127.0.0.1", port: targetPort }).then((server) => {
        conns.add(server);
        const down = new Downstream(client, () => injected++);
        pipe(client, server).finally(() => closeBoth(client, server));
        down.pump(server).finally(() => {
          sockets.delete(down);
          closeBoth(client, server);
        });
        sockets.add(down);
      }, () => client.close());
    }
  };
  const serving = serve().catch(() => {});

  const closeBoth = (a: Deno.Conn, b: Deno.Conn) => {
    for (const c of [a, b]) {
      if (!conns.delete(c)) continue;
      try {
        c.close();
      } catch { /* closed */ }
    }
  };

  return {
    port,
    get injected() {
      return injected;
    },
    inject(payload, opcode = 1) {
      const frame = frameOf(payload, opcode);
      let n = 0;
      for (const s of sockets) if (s.queue(frame)) n++;
      return n;
    },
    async close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      conns.clear();
      await serving;
    },
  };
}

/** An unmasked, final server frame. */
function frameOf(payload: Uint8Array, opcode: number): Uint8Array {
  const n = payload.length;
  const head = n < 126 ? [0x80 | opcode, n] : n < 65_536 ? [0x80 | opcode, 126, n >> 8, n & 0xff] : null;
  if (!head) throw new Error("payloads of 64 KiB and more are not needed here");
  const frame = new Uint8Array(head.length + n);
  frame.set(head);
  frame.set(payload, head.length);
  return frame;
}

async function pipe(from: Deno.Conn, to: Deno.Conn): Promise<void> {
  try {
    for await (const chunk of from.readable) await writeAll(to, chunk);
  } catch { /* either side closed */ }
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let off = 0; off < data.length;) off += await conn.write(data.subarray(off));
}

/** The server-to-client direction of one connection: finds frame boundaries once the connection is upgraded. */
class Downstream {
  #http = "";
  #upgraded = false;
  /** A plain HTTP connection (its first answer was no upgrade): not looked into any more. */
  #plain = false;
  /** Header bytes of the frame being read, until it is complete. */
  #header: number[] = [];
  /** Bytes of the current frame's payload still to come. */
  #remaining = 0;
  #pending: Uint8Array[] = [];
  #writing: Promise<void> = Promise.resolve();

  constructor(private readonly client: Deno.Conn, private readonly onInjected: () => void) {}

  /** Queues `frame`; false when this connection is no websocket. */
  queue(frame: Uint8Array): boolean {
    if (!this.#upgraded) return false;
    this.#pending.push(frame);
    this.#flushIfBetweenFrames();
    return true;
  }

  async pump(server: Deno.Conn): Promise<void> {
    try {
      for await (const chunk of server.readable) {
        this.#writing = this.#writing.then(() => writeAll(this.client, chunk));
        this.#track(chunk);
        this.#flushIfBetweenFrames();
        await this.#writing;
      }
    } catch { /* either side closed */ }
  }

  #flushIfBetweenFrames(): void {
    if (!this.#upgraded || this.#remaining > 0 || this.#header.length > 0) return;
    for (const frame of this.#pending.splice(0)) {
      this.#writing = this.#writing.then(() => writeAll(this.client, frame)).then(this.onInjected);
    }
  }

  #track(chunk: Uint8Array): void {
    let i = 0;
    if (this.#plain) return;
    if (!this.#upgraded) {
      this.#http += new TextDecoder("latin1").decode(chunk);
      const end = this.#http.indexOf("\r\n\r\n");
      if (end < 0) return;
      if (!this.#http.startsWith("HTTP/1.1 101")) {
        this.#plain = true; // a websocket is upgraded on its own connection, in its first exchange
        this.#http = "";
        return;
      }
      this.#upgraded = true;
      i = chunk.length - (this.#http.length - end - 4);
    }
    while (i < chunk.length) {
      if (this.#remaining > 0) {
        const step = Math.min(this.#remaining, chunk.length - i);
        this.#remaining -= step;
        i += step;
        continue;
      }
      this.#header.push(chunk[i++]);
      const h = this.#header;
      if (h.length < 2) continue;
      const len7 = h[1] & 0x7f;
      const masked = (h[1] & 0x80) !== 0;
      const need = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0);
      if (h.length < need) continue;
      let len = len7;
      if (len7 === 126) len = (h[2] << 8) | h[3];
      if (len7 === 127) len = h.slice(2, 10).reduce((acc, b) => acc * 256 + b, 0);
      this.#remaining = len + (masked ? 4 : 0);
      this.#header = [];
    }
  }
}
