/**
 * Where the bridge's memory goes, seen from inside the process: what `deno task bench` (section 3) runs with
 * `--v8-flags=--expose-gc` next to the start task's own flags.
 *
 * - `memory_probe.ts imports GROUP...`: a bare process first, then each group (module specifiers joined by commas)
 *   imported in turn; after each, a forced GC and one line of memory figures on stdout. Nothing else is loaded
 *   before the first line.
 * - `memory_probe.ts runtime CERT KEY`: a bare process, then each part of Deno's own runtime the bridge uses, used
 *   once in turn with no npm module loaded (KV, an HTTP server and fetch, TLS, WebSocket, Node's TLS layer); after
 *   each, a forced GC and one line. CERT and KEY: a self-signed PEM pair for localhost.
 * - `memory_probe.ts bridge ARGS...`: runs `main.ts` with ARGS, as `deno task start` would; every `mem` line on
 *   stdin is answered on stdout with the figures as they are, then again after a forced GC.
 *
 * Each answer is one line, `@@memory ` and a JSON {@link MemorySnapshot} (or an array of them). Written with
 * `Deno.stdout.writeSync`: the running bridge sends `console.log` to its debug log.
 *
 * @module
 */

/** One look at the process's memory, in bytes. */
export interface MemorySnapshot {
  label: string;
  /** From /proc/self/status: resident set, and its anonymous (heap, stacks) and file-backed (binary) parts. */
  rss: number;
  rssAnon: number;
  rssFile: number;
  /** From `Deno.memoryUsage()`: the V8 heap's reservation, its live part, and memory outside it. */
  heapTotal: number;
  heapUsed: number;
  external: number;
  /** V8's heap spaces by name (bridge mode only: `node:v8` is not loaded in imports mode). */
  spaces?: Record<string, { size: number; used: number }>;
  gc: boolean;
}

/** The prefix of every answer line. */
export const PROBE_PREFIX = "@@memory ";

const gc = (globalThis as { gc?: () => void }).gc;

function kib(status: string, field: string): number {
  const m = status.match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Two forced collections with a turn of the event loop between, so that finalizers and weak maps settle. */
async function collect(): Promise<void> {
  if (!gc) return;
  gc();
  await new Promise((r) => setTimeout(r, 10));
  gc();
}

function snapshot(label: string, spaces?: MemorySnapshot["spaces"]): MemorySnapshot {
  const status = Deno.readTextFileSync("/proc/self/status");
  const m = Deno.memoryUsage();
  return {
    label,
    rss: kib(status, "VmRSS"),
    rssAnon: kib(status, "RssAnon"),
    rssFile: kib(status, "RssFile"),
    heapTotal: m.heapTotal,
    heapUsed: m.heapUsed,
    external: m.external,
    ...(spaces ? { spaces } : {}),
    gc: !!gc,
  };
}

function answer(value: unknown): void {
  Deno.stdout.writeSync(new TextEncoder().encode(PROBE_PREFIX + JSON.stringify(value) + "\n"));
}

async function imports(specs: string[]): Promise<void> {
  await collect();
  answer(snapshot("bare"));
  for (const group of specs) {
    for (const spec of group.split(",")) await import(spec);
    await collect();
    answer(snapshot(group));
  }
}

/** Each part of Deno's runtime the bridge uses, once, in the order the bridge's start uses them. */
async function runtime(certFile: string, keyFile: string): Promise<void> {
  const cert = await Deno.readTextFile(certFile);
  const key = await Deno.readTextFile(keyFile);
  const step = async (label: string, use: () => Promise<void>) => {
    await use();
    await collect();
    answer(snapshot(label));
  };
  await collect();
  answer(snapshot("bare"));
  const dir = await Deno.makeTempDir({ prefix: "mmxmpp-probe-" });
  await step("kv", async () => {
    const kv = await Deno.openKv(`${dir}/probe.kv`);
    await kv.set(["probe"], { at: Date.now() });
    await kv.get(["probe"]);
    kv.close();
  });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    if (req.headers.get("upgrade") === "websocket") {
      const { socket, response } = Deno.upgradeWebSocket(req);
      socket.onmessage = (e) => socket.send(e.data);
      return response;
    }
    return new Response("ok");
  });
  const port = server.addr.port;
  await step("http", async () => {
    const res = await fetch(`http://127.0.0.1:${port}/`);
    await res.text();
  });
  const tls = Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert, key });
  const echo = (async () => {
    for await (const conn of tls) {
      (async () => {
        const buf = new Uint8Array(64);
        const n = await conn.read(buf).catch(() => null);
        if (n) await conn.write(buf.subarray(0, n)).catch(() => {});
        conn.close();
      })();
    }
  })();
  await step("tls", async () => {
    const conn = await Deno.connectTls({ hostname: "localhost", port: tls.addr.port, caCerts: [cert] });
    await conn.write(new TextEncoder().encode("ping"));
    await conn.read(new Uint8Array(64));
    conn.close();
  });
  await step("websocket", async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
    await new Promise((resolve, reject) => {
      ws.onopen = () => ws.send("ping");
      ws.onmessage = resolve;
      ws.onerror = reject;
    });
    ws.close();
  });
  await step("node-tls", async () => {
    const nodeTls = await import("node:tls");
    await new Promise<void>((resolve, reject) => {
      const socket = nodeTls.connect({
        host: "127.0.0.1",
        servername: "localhost",
        port: tls.addr.port,
        ca: cert,
      });
      socket.once("secureConnect", () => socket.write("ping"));
      socket.once("data", () => (socket.end(), resolve()));
      socket.once("error", reject);
    });
  });
  tls.close();
  await echo.catch(() => {});
  await server.shutdown();
  await Deno.remove(dir, { recursive: true });
}

async function bridge(args: string[]): Promise<number> {
  const v8 = (await import("node:v8")).default;
  const spaces = () =>
    Object.fromEntries(
      v8.getHeapSpaceStatistics().filter((s) => s.space_size > 0)
        .map((s) => [s.space_name, { size: s.space_size, used: s.space_used_size }]),
    );
  (async () => {
    let buf = "";
    for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const command = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (command !== "mem") continue;
        const idle = snapshot("idle", spaces());
        await collect();
        answer([idle, snapshot("after GC", spaces())]);
      }
    }
  })();
  const { main } = await import("../main.ts");
  return await main(args);
}

if (import.meta.main) {
  const [mode, ...rest] = Deno.args;
  if (mode === "imports") await imports(rest);
  else if (mode === "runtime") await runtime(rest[0], rest[1]);
  else if (mode === "bridge") Deno.exit(await bridge(rest));
  else {
    console.error("usage: memory_probe.ts imports GROUP... | runtime CERT KEY | bridge [ARGS...]");
    Deno.exit(2);
  }
}
