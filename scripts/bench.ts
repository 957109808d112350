/**
 * mmxmpp's benchmark: speed and memory of the core bus and of the whole bridge against a real Prosody and the
 * Mattermost stand-in, all on 127.0.0.1. Prints a table and writes `bench/results.json` and `bench/results.md`
 * (overwritten on every run). See `bench/README.md` for what each number means.
 *
 * Run: `deno task bench`. Nothing here asserts on timings; a run fails only when a message goes missing.
 *
 * The memory numbers come from the bridge running in its own process (this script started with `--child-bridge`
 * and `--v8-flags=--expose-gc`), so that the stand-in's and the test user's own memory do not count.
 *
 * @module
 */
import { benchScram } from "./bench_scram.ts";
import { benchGhosts } from "./bench_ghosts.ts";
import { benchScale, renderScale } from "./bench_scale.ts";
import { fileURLToPath } from "node:url";
import { Session } from "node:inspector/promises";
import v8 from "node:v8";
import type { Bridge } from "../src/core/bridge.ts";
import { MessageBus } from "../src/core/bus.ts";
import type { BridgeMessage } from "../src/core/message.ts";
import { Store } from "../src/core/store.ts";
import { loadConfig, secretsOf } from "../src/config.ts";
import { type RunningBridge, startBridge } from "../src/app.ts";
import { setupLogging } from "../src/log.ts";
import { startWorld, type World } from "../tests/helpers/harness.ts";
import { freePort } from "../tests/helpers/ports.ts";
import { FakeBridge } from "../tests/helpers/fake_bridge.ts";
import type { Element } from "@xmpp/xml";
import { idleMemory, renderIdle, startCommand } from "./bench_memory.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "");
const SELF = fileURLToPath(import.meta.url);
const CHILD_FLAG = "--child-bridge";
/** The start task's V8 flags (what ships), and --expose-gc so that the memory samples can force a GC. */
const CHILD_V8_FLAGS = `--v8-flags=${[...startCommand().v8Flags, "--expose-gc"].join(",")}`;

/** Sizes; all loops are bounded by these. */
const SIZES = {
  busMessages: 5_000,
  busWarmup: 500,
  kvOps: 2_000,
  roundTrips: 200,
  roundTripWarmup: 20,
  burst: 500,
  burstReps: 3,
  memMessages: 10_000,
  memBurst: 500,
  memPairs: 10,
  /** Sustained load: this many messages each way, paced at `sustainedRate` per second each way. */
  sustainedMessages: 5_000,
  sustainedRate: 500,
  /** The same at a rate this machine keeps up with, for the latency when nothing queues. */
  sustainedLowMessages: 1_000,
  sustainedLowRate: 100,
  /** Direct Prosody round trips (the XMPP user's own reflection) next to the sustained run. */
  rttProbes: 100,
  rttProbeIntervalMs: 100,
  /** IBR ghosts brought online per phase (registration, warm logins). */
  ghosts: 100,
};

/** The rows of the bursts table: the two bridged directions, then their same-run baselines without the bridge. */
const BURST_ROWS = {
  mm_to_xmpp: "MM → XMPP",
  xmpp_to_mm: "XMPP → MM",
  prosody_reflected: "baseline: XMPP user → room, reflected (no bridge)",
  mm_rest_one_at_a_time: "baseline: REST posts one at a time → websocket (no bridge)",
};

/** Burst msgs/s of the code before pipelining (issue 7's "today"), for the ratio the issue asks for. */
const BURST_BASELINE_MSGS_PER_S = 517;
const WAIT_ONE_MS = 10_000;
/**
 * `BENCH_CPU_PROF=<dir>`: the child bridge writes a V8 CPU profile of the bursts and of the sustained run there
 * (`<phase>.cpuprofile`, for Chrome DevTools), taken with `node:inspector`.
 */
const PROFILE_DIR = Deno.env.get("BENCH_CPU_PROF");
/**
 * `BENCH_ONLY=bursts,sustained` runs only the named phases (bus, scram, ghosts, scale, idle, latency, bursts,
 * sustained, memory) and prints their numbers as JSON instead of writing bench/results.*: for working on one of them.
 */
const ONLY = Deno.env.get("BENCH_ONLY")?.split(",").map((s) => s.trim()).filter(Boolean);
const PHASES = ["bus", "scram", "ghosts", "scale", "idle", "latency", "bursts", "sustained", "memory"];
if (ONLY?.some((p) => !PHASES.includes(p))) {
  throw new Error(`BENCH_ONLY names an unknown phase: ${ONLY.join(",")}; phases are ${PHASES.join(", ")}`);
}
/** True when the phase is to run (all of them, unless BENCH_ONLY names some). */
const runs = (phase: string) => !ONLY || ONLY.includes(phase);
const WAIT_BURST_MS = 60_000;

// ---------------------------------------------------------------------------------------------------------------
// statistics

interface Summary {
  n: number;
  median: number;
  p95: number;
  mean: number;
  min: number;
  max: number;
}

function summarize(samples: number[]): Summary {
  const s = [...samples].sort((a, b) => a - b);
  const rank = (q: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return { n: s.length, median: rank(0.5), p95: rank(0.95), mean, min: s[0], max: s[s.length - 1] };
}

const round = (x: number, digits = 3) => Number(x.toFixed(digits));
const ms = (x: number) => x < 1 ? `${(x * 1000).toFixed(0)} µs` : `${x.toFixed(2)} ms`;
const ratio = (a: number, b: number) => round(a / b, 2);
const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
const benchStart = performance.now();
const progress = (text: string) =>
  console.error(`[bench ${((performance.now() - benchStart) / 1000).toFixed(1).padStart(5)} s] ${text}`);

function lat(samples: number[]): { median_ms: number; p95_ms: number; mean_ms: number; n: number } {
  const s = summarize(samples);
  return { median_ms: round(s.median, 4), p95_ms: round(s.p95, 4), mean_ms: round(s.mean, 4), n: s.n };
}

// ---------------------------------------------------------------------------------------------------------------
// 1. core bus with a real Store and two fake bridges

interface BusVariantResult {
  /** Sequential: publish, wait until fully handled, next. */
  publish_to_send?: ReturnType<typeof lat>;
  publish_to_done: ReturnType<typeof lat>;
  /** Burst: publish all, then drain. */
  burst_msgs_per_s: number;
  burst_total_ms: number;
}

async function benchBus(): Promise<Record<string, unknown>> {
  const dir = await Deno.makeTempDir({ prefix: "mmxmpp-bench-bus-" });
  const store = await Store.open(`${dir}/bus.kv`);
  const left = new FakeBridge("left");
  const right = new FakeBridge("right");
  const bus = new MessageBus(store, new Map<string, Bridge>([["left", left], ["right", right]]));
  let seq = 0;
  const message = (channel: string): BridgeMessage => {
    const n = seq++;
    const id = `post${String(n).padStart(22, "0")}`;
    return {
      kind: "message",
      eventId: id,
      portal: { network: "left", channel },
      ids: [id],
      sender: { network: "left", id: "user0000000000000000000000", name: "bob" },
      text: `benchmark message number ${n}`,
      timestamp: Date.now(),
    };
  };
  try {
    await store.addMapping({
      channels: { left: "mapped-left", right: "mapped-right@rooms.example" },
      origin: "static",
      createdAt: Date.now(),
    });

    // Raw cost of the store operations the bus makes per message.
    const kv = {
      findLinkMiss: [] as number[],
      getMapping: [] as number[],
      saveLink: [] as number[],
      saveLinksPerLink: [] as number[],
    };
    for (let i = 0; i < SIZES.kvOps; i++) {
      let t = performance.now();
      await store.findLink("left", "mapped-left", `nope-${i}`);
      kv.findLinkMiss.push(performance.now() - t);
      t = performance.now();
      await store.getMapping("left", "mapped-left");
      kv.getMapping.push(performance.now() - t);
      t = performance.now();
      await store.saveLink({
        id: crypto.randomUUID(),
        source: "left",
        refs: {
          left: {
            channel: "kv-left",
            ids: [`kvpost-${i}`],
            parts: [{ postId: `kvpost-${i}`, sender: { kind: "author" } }],
          },
          right: {
            channel: "kv-right",
            ids: [`kvorigin-${i}`, `kvstanza-${i}`],
            parts: [{
              messageId: `kvorigin-${i}`,
              originId: `kvorigin-${i}`,
              stanzaId: `kvstanza-${i}`,
              sender: { kind: "relay" },
            }],
          },
        },
        createdAt: Date.now(),
      });
      kv.saveLink.push(performance.now() - t);
    }

    // The id map written in group commits, as the bus's outbox does under load: the cost per link.
    const batchOf = 32;
    for (let b = 0; b < SIZES.kvOps / batchOf; b++) {
      const links = Array.from({ length: batchOf }, (_, k) => ({
        id: crypto.randomUUID(),
        source: "left",
        refs: {
          left: {
            channel: "kv-left",
            ids: [`kvbatch-${b}-${k}`],
            parts: [{ sender: { kind: "author" as const } }],
          },
          right: {
            channel: "kv-right",
            ids: [`kvborigin-${b}-${k}`, `kvbstanza-${b}-${k}`],
            parts: [{ sender: { kind: "relay" as const } }],
          },
        },
        createdAt: Date.now(),
      }));
      const t = performance.now();
      await store.writeBatch(links.map((link) => ({ kind: "deliver" as const, entry: undefined, link })));
      kv.saveLinksPerLink.push((performance.now() - t) / batchOf);
    }

    // The bus's durable writes (outbox entries and id-map records) all go through writeBatch.
    const realWrite = store.writeBatch.bind(store);
    const variants: Array<{ name: string; channel: string; saveLink: boolean; delivers: boolean }> = [
      { name: "mapped", channel: "mapped-left", saveLink: true, delivers: true },
      { name: "mapped_no_idmap_write", channel: "mapped-left", saveLink: false, delivers: true },
      { name: "unmapped", channel: "unmapped-left", saveLink: true, delivers: false },
    ];
    const results: Record<string, BusVariantResult> = {};

    // Warm-up (JIT, KV page cache), not recorded.
    for (let i = 0; i < SIZES.busWarmup; i++) bus.publish(message("mapped-left"));
    await bus.drain();

    for (const v of variants) {
      store.writeBatch = v.saveLink ? realWrite : () => Promise.resolve();
      const toSend: number[] = [];
      const toDone: number[] = [];
      for (let i = 0; i < SIZES.busMessages; i++) {
        const m = message(v.channel);
        let sentAt = 0;
        left.behave = right.behave = () => {
          sentAt = performance.now();
          return Promise.resolve();
        };
        const t0 = performance.now();
        bus.publish(m);
        await bus.drain();
        const t2 = performance.now();
        if (v.delivers) {
          if (sentAt === 0) throw new Error(`bus bench: message ${i} of ${v.name} was not delivered`);
          toSend.push(sentAt - t0);
        }
        toDone.push(t2 - t0);
      }
      left.behave = right.behave = () => Promise.resolve();
      const burst = Array.from({ length: SIZES.busMessages }, () => message(v.channel));
      const t0 = performance.now();
      for (const m of burst) bus.publish(m);
      await bus.drain();
      const total = performance.now() - t0;
      results[v.name] = {
        ...(v.delivers ? { publish_to_send: lat(toSend) } : {}),
        publish_to_done: lat(toDone),
        burst_msgs_per_s: Math.round(SIZES.busMessages / (total / 1000)),
        burst_total_ms: round(total, 1),
      };
    }
    store.writeBatch = realWrite;
    const stats = { ...bus.stats };
    const expected = SIZES.busWarmup + 4 * SIZES.busMessages;
    if (stats.delivered !== expected || stats.failed !== 0) {
      throw new Error(`bus bench: delivered ${stats.delivered}/${expected}, failed ${stats.failed}`);
    }
    const mapped = results.mapped.publish_to_done.median_ms;
    const noWrite = results.mapped_no_idmap_write.publish_to_done.median_ms;
    const unmapped = results.unmapped.publish_to_done.median_ms;
    return {
      messages_per_variant: SIZES.busMessages,
      kv_file: "temporary Deno KV (SQLite) file",
      kv_ops: {
        find_link_miss: lat(kv.findLinkMiss),
        get_mapping: lat(kv.getMapping),
        save_link: lat(kv.saveLink),
        save_links_32_per_link: lat(kv.saveLinksPerLink),
      },
      variants: results,
      ratios: {
        /** Whole per-message cost, mapped vs. routing lookup only. */
        mapped_vs_unmapped: ratio(mapped, unmapped),
        /** Whole per-message cost with vs. without the outbox and id-map writes. */
        idmap_write_overhead: ratio(mapped, noWrite),
        burst_throughput_unmapped_vs_mapped: ratio(
          results.unmapped.burst_msgs_per_s,
          results.mapped.burst_msgs_per_s,
        ),
      },
      stats,
    };
  } finally {
    bus.stop();
    store.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------------------------------
// observers: the XMPP user and a Mattermost websocket client, with a timestamp per arrival

interface Arrival {
  /** Room (XMPP) or channel id (Mattermost). */
  where: string;
  text: string;
  at: number;
}

/** Dispatches arrivals to whoever waits for them; nothing is kept. */
class Watch {
  private readonly listeners = new Set<(a: Arrival) => void>();

  emit(a: Arrival): void {
    for (const l of this.listeners) l(a);
  }

  /** Calls `listener` with every arrival until the returned function is called. */
  listen(listener: (a: Arrival) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolves with the arrival time of `text` in `where`. Register before sending. */
  one(where: string, text: string, timeoutMs = WAIT_ONE_MS): Promise<number> {
    return this.until((a) => a.where === where && a.text === text ? a.at : undefined, timeoutMs, text);
  }

  /** Collects `count` arrivals in `where` starting with `prefix`; resolves with their indexes in arrival order. */
  many(
    where: string,
    prefix: string,
    count: number,
    timeoutMs = WAIT_BURST_MS,
  ): Promise<{ order: number[]; at: number }> {
    const order: number[] = [];
    return this.until(
      (a) => {
        if (a.where !== where || !a.text.startsWith(prefix)) return undefined;
        order.push(Number(a.text.slice(prefix.length)));
        return order.length >= count ? { order, at: a.at } : undefined;
      },
      timeoutMs,
      `${count} × ${prefix}… (got ${order.length})`,
    );
  }

  private until<T>(match: (a: Arrival) => T | undefined, timeoutMs: number, what: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const listener = (a: Arrival) => {
        const r = match(a);
        if (r === undefined) return;
        this.listeners.delete(listener);
        clearTimeout(timer);
        resolve(r);
      };
      const timer = setTimeout(() => {
        this.listeners.delete(listener);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      this.listeners.add(listener);
    });
  }
}

/** Connects a Mattermost user's websocket (as a browser would) and emits every `posted` event. */
async function mattermostWatcher(url: string, token: string): Promise<{ watch: Watch; close: () => void }> {
  const watch = new Watch();
  const socket = new WebSocket(url.replace(/^http/, "ws") + "/api/v4/websocket", {
    headers: { Authorization: `Bearer ${token}` },
  });
  const hello = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no websocket hello from the stand-in")), WAIT_ONE_MS);
    socket.onmessage = (e) => {
      const at = performance.now();
      const event = JSON.parse(e.data as string);
      if (event.event === "hello") {
        clearTimeout(timer);
        resolve();
      } else if (event.event === "posted") {
        const post = JSON.parse(event.data.post);
        watch.emit({ where: post.channel_id, text: post.message, at });
      }
    };
  });
  await hello;
  return { watch, close: () => socket.close() };
}

/** Emits every group chat message the XMPP user receives, as `nick\u0000body`. */
function xmppWatcher(world: World): Watch {
  const watch = new Watch();
  world.alice.onStanza((stanza: Element) => {
    if (!stanza.is("message") || stanza.attrs.type !== "groupchat") return;
    const body = stanza.getChildText("body");
    if (body === null || body === undefined) return;
    const at = performance.now();
    const from = String(stanza.attrs.from ?? "");
    const slash = from.indexOf("/");
    watch.emit({ where: from.slice(0, slash), text: `${from.slice(slash + 1)}\u0000${body}`, at });
  });
  return watch;
}

// ---------------------------------------------------------------------------------------------------------------
// the bridge under test: in this process, or in a child process

interface BridgeUnderTest {
  mode: "in-process" | "child-process";
  /** Waits until the bridge's bus is idle (no timing). */
  settle(): Promise<void>;
  stats(): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

function inProcess(bridge: RunningBridge): BridgeUnderTest {
  return {
    mode: "in-process",
    settle: () => bridge.manager.bus.drain(),
    stats: () => Promise.resolve({ ...bridge.manager.stats() }),
    stop: () => bridge.stop(),
  };
}

interface ChildMemory {
  /** V8 heap spaces: reserved size and used bytes. */
  spaces: Record<string, { size: number; used: number }>;
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  gc: boolean;
  stats: Record<string, number>;
}

interface ChildBridge extends BridgeUnderTest {
  memory(): Promise<ChildMemory>;
  /** Runs `phase` with the child's CPU profiler on, when `BENCH_CPU_PROF` is set. */
  profiled<T>(label: string, phase: () => Promise<T>): Promise<T>;
  pid: number;
}

const PROTOCOL_PREFIX = "@@bench ";

/** Starts `scripts/bench.ts --child-bridge` with `env` and talks to it over stdin/stdout, one line each way. */
async function spawnChild(env: Record<string, string>): Promise<ChildBridge> {
  const child = new Deno.Command(Deno.execPath(), {
    // BENCH_CPU_PROF=<dir> writes a V8 CPU profile of the child bridge there (open it in Chrome DevTools).
    args: [
      "run",
      "--allow-all",
      "--unstable-kv",
      CHILD_V8_FLAGS,
      ...(Deno.env.get("BENCH_CPU_PROF")
        ? ["--cpu-prof", `--cpu-prof-dir=${Deno.env.get("BENCH_CPU_PROF")}`]
        : []),
      SELF,
      CHILD_FLAG,
    ],
    cwd: ROOT,
    env: { ...env, NO_COLOR: "1", ...(PROFILE_DIR ? { BENCH_CPU_PROF: PROFILE_DIR } : {}) },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let stderrTail = "";
  (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      stderrTail = (stderrTail + chunk).slice(-4_000);
    }
  })();
  const replies: Array<(line: string) => void> = [];
  const backlog: string[] = [];
  (async () => {
    let buf = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!line.startsWith(PROTOCOL_PREFIX)) continue;
        const waiter = replies.shift();
        if (waiter) waiter(line.slice(PROTOCOL_PREFIX.length));
        else backlog.push(line.slice(PROTOCOL_PREFIX.length));
      }
    }
  })();
  const writer = child.stdin.getWriter();
  const encoder = new TextEncoder();
  const next = (what: string, timeoutMs = 30_000) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`bridge child: no answer to ${what}; stderr:\n${stderrTail}`)),
        timeoutMs,
      );
      const take = (line: string) => {
        clearTimeout(timer);
        const reply = JSON.parse(line);
        if (reply.error) reject(new Error(`bridge child: ${reply.error}; stderr:\n${stderrTail}`));
        else resolve(reply);
      };
      const early = backlog.shift();
      if (early !== undefined) take(early);
      else replies.push(take);
    });
  const ask = async (command: string, timeoutMs?: number) => {
    const reply = next(command, timeoutMs);
    await writer.write(encoder.encode(command + "\n"));
    return await reply;
  };
  try {
    await next("start");
  } catch (err) {
    child.kill("SIGKILL");
    throw err;
  }
  return {
    mode: "child-process",
    pid: child.pid,
    // A bridge behind after a sustained run on a busy machine may take a while to catch up.
    settle: async () => void await ask("drain", 180_000),
    stats: async () => (await ask("mem")).stats as Record<string, number>,
    memory: async () => (await ask("mem")) as unknown as ChildMemory,
    profiled: async (label, phase) => {
      if (!PROFILE_DIR) return await phase();
      await ask("prof-start");
      try {
        return await phase();
      } finally {
        await ask(`prof-stop ${label}`);
      }
    },
    stop: async () => {
      await ask("stop").catch(() => {});
      await writer.close().catch(() => {});
      const exited = await Promise.race([
        child.status.then(() => true),
        new Promise<false>((r) => setTimeout(() => r(false), 5_000)),
      ]);
      if (!exited) child.kill("SIGKILL");
      await child.status;
    },
  };
}

/**
 * Runs `phase` with this process's CPU profiler on, when `BENCH_CPU_PROF` is set: where the stand-in, the XMPP
 * user and the paced senders spend their time (`<label>.cpuprofile`).
 */
async function profiledHere<T>(label: string, phase: () => Promise<T>): Promise<T> {
  if (!PROFILE_DIR) return await phase();
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.start");
  try {
    return await phase();
  } finally {
    const { profile } = await session.post("Profiler.stop");
    session.disconnect();
    await Deno.writeTextFile(`${PROFILE_DIR}/${label}.cpuprofile`, JSON.stringify(profile));
  }
}

/** The child side: a bridge configured from the environment, answering `mem`, `drain` and `stop`. */
async function childMain(): Promise<void> {
  const reply = (value: unknown) => console.log(PROTOCOL_PREFIX + JSON.stringify(value));
  const loaded = loadConfig(Deno.env.toObject());
  if (!loaded.ok) {
    reply({ error: loaded.errors.join("; ") });
    Deno.exit(2);
  }
  await setupLogging({ level: "warn", format: "json", secrets: secretsOf(loaded.config) });
  let bridge: RunningBridge;
  try {
    bridge = await startBridge(loaded.config, { retry: { initialMs: 100, maxMs: 1_000 } });
  } catch (err) {
    reply({ error: String(err) });
    Deno.exit(1);
  }
  const gc = (globalThis as { gc?: () => void }).gc;
  const memory = async () => {
    if (gc) {
      // Twice, with a turn of the event loop between, so that finalizers and weak maps settle.
      gc();
      await new Promise((r) => setTimeout(r, 10));
      gc();
    }
    const m = Deno.memoryUsage();
    const spaces = Object.fromEntries(
      v8.getHeapSpaceStatistics().filter((s) => s.space_size > 0)
        .map((s) => [s.space_name, { size: s.space_size, used: s.space_used_size }]),
    );
    return { ...m, spaces, gc: !!gc, stats: bridge.manager.stats() };
  };
  const profileDir = Deno.env.get("BENCH_CPU_PROF");
  let profiler: Session | undefined;
  reply({ ready: true });
  let buf = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const command = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (command === "mem") reply(await memory());
      else if (command === "prof-start" && profileDir) {
        profiler ??= new Session();
        profiler.connect();
        await profiler.post("Profiler.enable");
        await profiler.post("Profiler.start");
        reply({ profiling: true });
      } else if (command.startsWith("prof-stop ") && profiler) {
        const { profile } = await profiler.post("Profiler.stop");
        profiler.disconnect();
        const file = `${profileDir}/${command.slice("prof-stop ".length)}.cpuprofile`;
        await Deno.writeTextFile(file, JSON.stringify(profile));
        reply({ profile: file });
      } else if (command === "drain") {
        await bridge.manager.bus.drain();
        reply({ drained: true });
      } else if (command === "stop") {
        await bridge.stop();
        reply({ stopped: true });
        Deno.exit(0);
      } else reply({ error: `unknown command ${command}` });
    }
  }
  await bridge.stop();
  Deno.exit(0);
}

// ---------------------------------------------------------------------------------------------------------------
// 2.–4. the real servers

interface SustainedPairs {
  mmToXmpp: { channel: string; room: string };
  xmppToMm: { channel: string; room: string };
}

interface Rig {
  world: World;
  xmpp: Watch;
  mm: Watch;
  carol: { id: string; token: string };
  /** Unmapped channel and room for the baselines. */
  baseChannel: string;
  baseRoom: string;
  /** Extra mapped pairs for the memory run, so that no stand-in channel grows huge. */
  pairs: Array<{ channel: string; room: string }>;
  /** A fresh mapped pair for each burst repetition. */
  burstPairs: Array<{ channel: string; room: string }>;
  /** One mapped pair per direction of each sustained run (the full rate, the low rate). */
  sustainedPairs: SustainedPairs[];
  mappings: string;
  closeWatchers: () => void;
}

async function startRig(): Promise<Rig> {
  const world = await startWorld();
  try {
    const { mm, alice, bob } = world;
    const carol = mm.createUser("carol");
    mm.addMember(world.channel.id, carol.id);
    const base = mm.createChannel("bench-baseline");
    mm.addMember(base.id, bob.id);
    mm.addMember(base.id, carol.id);
    const baseRoom = "bench-baseline@conference.localhost";
    await alice.joinRoom(baseRoom, "alice", { maxstanzas: 0 });
    const pairs: Array<{ channel: string; room: string }> = [];
    const mappings = [`${mm.team.name}/${world.channel.name}=${world.room}`];
    const firstSustained = SIZES.memPairs + SIZES.burstReps;
    for (let k = 0; k < firstSustained + 4; k++) {
      const channel = mm.createChannel(`bench-${k}`);
      mm.addMember(channel.id, bob.id);
      // The sustained run's MM → XMPP channel is watched on the XMPP side only: carol's websocket would only add
      // work to this process (the stand-in's fan-out, the parsing) while it paces the load.
      if (k < firstSustained || (k - firstSustained) % 2 === 1) mm.addMember(channel.id, carol.id);
      const room = `bench-${k}@conference.localhost`;
      await alice.joinRoom(room, "alice", { maxstanzas: 0 });
      pairs.push({ channel: channel.id, room });
      mappings.push(`${mm.team.name}/${channel.name}=${room}`);
    }
    const watcher = await mattermostWatcher(mm.url, carol.token);
    return {
      world,
      xmpp: xmppWatcher(world),
      mm: watcher.watch,
      carol,
      baseChannel: base.id,
      baseRoom,
      pairs: pairs.slice(0, SIZES.memPairs),
      burstPairs: pairs.slice(SIZES.memPairs, SIZES.memPairs + SIZES.burstReps),
      sustainedPairs: [0, 2].map((k) => ({
        mmToXmpp: pairs[firstSustained + k],
        xmppToMm: pairs[firstSustained + k + 1],
      })),
      mappings: mappings.join(","),
      closeWatchers: watcher.close,
    };
  } catch (err) {
    await world.stop();
    throw err;
  }
}

/** Keeps the test user's own record of messages from growing over the whole run. */
function forgetMessages(rig: Rig): void {
  rig.world.alice.messages.length = 0;
}

interface RoundTrips {
  /** The XMPP user has no unacknowledged data from Prosody outstanding. */
  mm_to_xmpp: number[];
  /** The XMPP user has just received the reflection of its own message. */
  mm_to_xmpp_receiver_busy: number[];
  /** The bridge has not written to XMPP since it last received from XMPP. */
  xmpp_to_mm: number[];
  /** Sent right after the bridge's own message to the room was reflected back to it. */
  xmpp_to_mm_after_bridge_sent: number[];
  prosody_reflection: number[];
  mm_post_to_ws: number[];
  mm_rest_post_to_ws: number[];
}

/** Sequential round trips, interleaving the bridged paths with their baselines so that drift hits all alike. */
async function roundTrips(rig: Rig, bridge: BridgeUnderTest, label: string): Promise<RoundTrips> {
  const { world } = rig;
  const nonce = crypto.randomUUID().slice(0, 8);
  const out: RoundTrips = {
    mm_to_xmpp: [],
    mm_to_xmpp_receiver_busy: [],
    xmpp_to_mm: [],
    xmpp_to_mm_after_bridge_sent: [],
    prosody_reflection: [],
    mm_post_to_ws: [],
    mm_rest_post_to_ws: [],
  };
  const restPost = async (channelId: string, message: string) => {
    const res = await fetch(`${world.mm.url}/api/v4/posts`, {
      method: "POST",
      headers: { Authorization: `Bearer ${world.bob.token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ channel_id: channelId, message }),
    });
    await res.body?.cancel();
    if (res.status !== 201) throw new Error(`REST post answered ${res.status}`);
  };
  const xmppToMm = async (text: string) => {
    const arrived = rig.mm.one(world.channel.id, text);
    const t0 = performance.now();
    await world.alice.sendGroupchat(world.room, text);
    return (await arrived) - t0;
  };
  const mmToXmpp = async (text: string) => {
    const arrived = rig.xmpp.one(world.room, `bridge\u0000<bob> ${text}`);
    const t0 = performance.now();
    await world.mm.postAs(world.bob.id, world.channel.id, text);
    return (await arrived) - t0;
  };
  // The order matters: Prosody leaves Nagle on, so a small write to a client that has unacknowledged data
  // outstanding waits for the client's delayed ACK (~40 ms on Linux). The "busy" cases provoke that on purpose;
  // the stall fires the receiver's delayed-ACK timer, so the case right after it measures an idle receiver
  // (checked against a 150 ms pause before each message: same medians).
  for (let i = -SIZES.roundTripWarmup; i < SIZES.roundTrips; i++) {
    const keep = i >= 0;
    const tag = `${label} ${nonce} ${i}`;

    // The XMPP user's own message reflected by the room: one Prosody round trip.
    let text = `reflect ${tag}`;
    let arrived = rig.xmpp.one(rig.baseRoom, `alice\u0000${text}`);
    let t0 = performance.now();
    await world.alice.sendGroupchat(rig.baseRoom, text);
    let t1 = await arrived;
    if (keep) out.prosody_reflection.push(t1 - t0);

    // Mattermost post → bridge → room → XMPP user, who has just received the reflection of its own message.
    const busy = await mmToXmpp(`m2x-busy ${tag}`);
    if (keep) out.mm_to_xmpp_receiver_busy.push(busy);
    await bridge.settle();

    // Mattermost post → bridge → room → XMPP user, idle receiver.
    const idle = await mmToXmpp(`m2x ${tag}`);
    if (keep) out.mm_to_xmpp.push(idle);
    await bridge.settle();

    // XMPP → bridge → Mattermost, a millisecond after the bridge's own message was reflected to it.
    const afterSend = await xmppToMm(`x2m-busy ${tag}`);
    if (keep) out.xmpp_to_mm_after_bridge_sent.push(afterSend);
    await bridge.settle();

    // XMPP → bridge → Mattermost, idle bridge.
    const quiet = await xmppToMm(`x2m ${tag}`);
    if (keep) out.xmpp_to_mm.push(quiet);
    await bridge.settle();

    // Mattermost post (stand-in hook) → websocket event to another user: the stand-in's own latency.
    text = `hook ${tag}`;
    arrived = rig.mm.one(rig.baseChannel, text);
    t0 = performance.now();
    await world.mm.postAs(world.bob.id, rig.baseChannel, text);
    t1 = await arrived;
    if (keep) out.mm_post_to_ws.push(t1 - t0);

    // The same over REST (how the bridge posts): HTTP + JSON on both ends.
    text = `rest ${tag}`;
    arrived = rig.mm.one(rig.baseChannel, text);
    t0 = performance.now();
    await restPost(rig.baseChannel, text);
    t1 = await arrived;
    if (keep) out.mm_rest_post_to_ws.push(t1 - t0);
  }
  forgetMessages(rig);
  return out;
}

function summarizeRoundTrips(rt: RoundTrips): Record<string, unknown> {
  const m = (xs: number[]) => summarize(xs).median;
  const prosody = m(rt.prosody_reflection);
  const hook = m(rt.mm_post_to_ws);
  const rest = m(rt.mm_rest_post_to_ws);
  return {
    mm_to_xmpp: lat(rt.mm_to_xmpp),
    mm_to_xmpp_receiver_busy: lat(rt.mm_to_xmpp_receiver_busy),
    xmpp_to_mm: lat(rt.xmpp_to_mm),
    xmpp_to_mm_after_bridge_sent: lat(rt.xmpp_to_mm_after_bridge_sent),
    baseline_prosody_reflection: lat(rt.prosody_reflection),
    baseline_mm_post_to_ws: lat(rt.mm_post_to_ws),
    baseline_mm_rest_post_to_ws: lat(rt.mm_rest_post_to_ws),
    ratios: {
      mm_to_xmpp_vs_prosody_rtt: ratio(m(rt.mm_to_xmpp), prosody),
      xmpp_to_mm_vs_prosody_rtt: ratio(m(rt.xmpp_to_mm), prosody),
      /** Bridged path vs. the sum of the two hops it cannot avoid (medians). */
      mm_to_xmpp_vs_hops: ratio(m(rt.mm_to_xmpp), hook + prosody),
      xmpp_to_mm_vs_hops: ratio(m(rt.xmpp_to_mm), prosody + rest),
      mm_to_xmpp_receiver_busy_vs_idle: ratio(m(rt.mm_to_xmpp_receiver_busy), m(rt.mm_to_xmpp)),
      xmpp_to_mm_after_bridge_sent_vs_idle: ratio(m(rt.xmpp_to_mm_after_bridge_sent), m(rt.xmpp_to_mm)),
    },
    bridge_overhead_median_ms: {
      mm_to_xmpp: round(m(rt.mm_to_xmpp) - hook - prosody, 3),
      xmpp_to_mm: round(m(rt.xmpp_to_mm) - prosody - rest, 3),
    },
  };
}

interface BurstResult {
  messages: number;
  /** Time for the sender to hand over all messages. */
  send_ms: number;
  /** First send → last arrival. */
  total_ms: number;
  msgs_per_s: number;
  in_order: boolean;
}

/** `n` messages sent as fast as possible on one side; time until all arrived on the other. */
async function burst(
  rig: Rig,
  direction: "mm_to_xmpp" | "xmpp_to_mm",
  n: number,
  pair: { channel: string; room: string },
  label: string,
): Promise<BurstResult> {
  const { world } = rig;
  const prefix = `burst ${direction} ${label} ${crypto.randomUUID().slice(0, 8)} #`;
  const arrived = direction === "mm_to_xmpp"
    ? rig.xmpp.many(pair.room, `bridge\u0000<bob> ${prefix}`, n)
    : rig.mm.many(pair.channel, prefix, n);
  return await timedBurst(
    n,
    arrived,
    (i) =>
      direction === "mm_to_xmpp"
        ? world.mm.postAs(world.bob.id, pair.channel, `${prefix}${i}`)
        : world.alice.sendGroupchat(pair.room, `${prefix}${i}`),
  );
}

/** Sends `n` messages one after the other with `send`; times them until `arrived` says all `n` came. */
async function timedBurst(
  n: number,
  arrived: Promise<{ order: number[]; at: number }>,
  send: (i: number) => Promise<unknown>,
): Promise<BurstResult> {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await send(i);
  const sent = performance.now();
  const { order, at } = await arrived;
  return {
    messages: n,
    send_ms: round(sent - t0, 1),
    total_ms: round(at - t0, 1),
    msgs_per_s: Math.round(n / ((at - t0) / 1000)),
    in_order: order.every((v, i) => v === i),
  };
}

/**
 * The stand-in's own rate: `n` REST posts by a plain client into an unmapped channel, each sent once the answer to
 * the one before came back (as a bridge that keeps a channel's order must), timed like {@link burst} until the last
 * reached the websocket. What any client posting one at a time can get from this server on this machine.
 */
async function restPostsOneAtATime(rig: Rig, n: number, label: string): Promise<BurstResult> {
  const { world } = rig;
  const prefix = `rest ${label} ${crypto.randomUUID().slice(0, 8)} #`;
  return await timedBurst(n, rig.mm.many(rig.baseChannel, prefix, n), async (i) => {
    const res = await fetch(`${world.mm.url}/api/v4/posts`, {
      method: "POST",
      headers: { Authorization: `Bearer ${world.bob.token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ channel_id: rig.baseChannel, message: `${prefix}${i}` }),
    });
    await res.body?.cancel();
    if (res.status !== 201) throw new Error(`REST post answered ${res.status}`);
  });
}

interface BurstSeries {
  msgs_per_s_median: number;
  /** The median over {@link BURST_BASELINE_MSGS_PER_S}. */
  vs_baseline: number;
  msgs_per_s_min: number;
  msgs_per_s_max: number;
  total_ms_median: number;
  in_order: boolean;
  runs: BurstResult[];
}

/**
 * The same-run ceiling of a burst into a room: the XMPP user's own `n` messages into the unmapped baseline room
 * (MAM on, as in every room), timed until the room reflected the last one back to it. What Prosody (and the XMPP
 * user's client) sustain here; the bridged burst room has one more occupant (the bridge) to reflect to.
 */
async function prosodyBurst(rig: Rig, n: number, label: string): Promise<BurstResult> {
  const prefix = `burst prosody ${label} ${crypto.randomUUID().slice(0, 8)} #`;
  const arrived = rig.xmpp.many(rig.baseRoom, `alice\u0000${prefix}`, n);
  return await timedBurst(n, arrived, (i) => rig.world.alice.sendGroupchat(rig.baseRoom, `${prefix}${i}`));
}

/** Each direction `burstReps` times, each repetition on a fresh channel pair; and Prosody's own burst as often. */
async function bursts(rig: Rig, label: string): Promise<Record<string, BurstSeries>> {
  const runs: Record<string, BurstResult[]> = {
    mm_to_xmpp: [],
    xmpp_to_mm: [],
    prosody_reflected: [],
    mm_rest_one_at_a_time: [],
  };
  for (const [k, pair] of rig.burstPairs.entries()) {
    runs.mm_to_xmpp.push(await burst(rig, "mm_to_xmpp", SIZES.burst, pair, `${label}${k}`));
    runs.xmpp_to_mm.push(await burst(rig, "xmpp_to_mm", SIZES.burst, pair, `${label}${k}`));
    runs.prosody_reflected.push(await prosodyBurst(rig, SIZES.burst, `${label}${k}`));
    runs.mm_rest_one_at_a_time.push(await restPostsOneAtATime(rig, SIZES.burst, `${label}${k}`));
    forgetMessages(rig);
  }
  const series = (rs: BurstResult[]): BurstSeries => {
    const rate = summarize(rs.map((r) => r.msgs_per_s));
    return {
      msgs_per_s_median: rate.median,
      vs_baseline: ratio(rate.median, BURST_BASELINE_MSGS_PER_S),
      msgs_per_s_min: rate.min,
      msgs_per_s_max: rate.max,
      total_ms_median: round(summarize(rs.map((r) => r.total_ms)).median, 1),
      in_order: rs.every((r) => r.in_order),
      runs: rs,
    };
  };
  return {
    mm_to_xmpp: series(runs.mm_to_xmpp),
    xmpp_to_mm: series(runs.xmpp_to_mm),
    prosody_reflected: series(runs.prosody_reflected),
    mm_rest_one_at_a_time: series(runs.mm_rest_one_at_a_time),
  };
}

/** When each of `n` messages `prefix<i>` arrived in `where` (NaN: not yet), and whether they came in order. */
function arrivals(watch: Watch, where: string, prefix: string, n: number) {
  const at = new Array<number>(n).fill(NaN);
  const state = { count: 0, duplicates: 0, inOrder: true, highest: -1 };
  let done!: () => void;
  const all = new Promise<void>((resolve) => done = resolve);
  const stop = watch.listen((a) => {
    if (a.where !== where || !a.text.startsWith(prefix)) return;
    const i = Number(a.text.slice(prefix.length));
    if (!Number.isInteger(i) || i < 0 || i >= n) return;
    if (!Number.isNaN(at[i])) {
      state.duplicates++;
      return;
    }
    at[i] = a.at;
    if (i < state.highest) state.inOrder = false;
    state.highest = Math.max(state.highest, i);
    if (++state.count === n) done();
  });
  return { at, state, all, stop };
}

/** Calls `send(i)` for i < n at `rate` per second, catching up in a batch when a timer fires late. */
async function paced(n: number, rate: number, send: (i: number) => Promise<void>): Promise<number> {
  const t0 = performance.now();
  const interval = 1000 / rate;
  let i = 0;
  while (i < n) {
    const due = Math.min(n, Math.floor((performance.now() - t0) / interval) + 1);
    while (i < due) await send(i++);
    if (i < n) await new Promise((r) => setTimeout(r, Math.max(0, t0 + i * interval - performance.now())));
  }
  return performance.now() - t0;
}

/** The XMPP user's own message reflected by an unmapped room, every `intervalMs` until `stop`: Prosody's RTT. */
async function prosodyRtt(
  rig: Rig,
  count: number,
  intervalMs: number,
  stop?: () => boolean,
): Promise<number[]> {
  const out: number[] = [];
  const nonce = crypto.randomUUID().slice(0, 8);
  for (let i = 0; i < count && !stop?.(); i++) {
    const text = `rtt ${nonce} ${i}`;
    const arrived = rig.xmpp.one(rig.baseRoom, `alice\u0000${text}`, WAIT_BURST_MS);
    const t0 = performance.now();
    await rig.world.alice.sendGroupchat(rig.baseRoom, text);
    out.push((await arrived) - t0);
    if (intervalMs > 0) await new Promise((r) => setTimeout(r, intervalMs));
  }
  return out;
}

/**
 * `sustainedMessages` each way at `sustainedRate` per second each way, both directions at once, through the child
 * bridge, each direction in its own mapped pair: the latency of every message, what was lost, whether the order
 * held; and Prosody's own round trip just before (idle) and during (under the same load).
 */
async function sustained(
  rig: Rig,
  n: number,
  rate: number,
  pairs: SustainedPairs,
): Promise<Record<string, unknown>> {
  const { world } = rig;
  const { mmToXmpp: m2xPair, xmppToMm: x2mPair } = pairs;
  const nonce = crypto.randomUUID().slice(0, 8);
  const m2xPrefix = `sustained m2x ${nonce} #`;
  const x2mPrefix = `sustained x2m ${nonce} #`;

  const rttIdle = await prosodyRtt(rig, SIZES.rttProbes, 0);
  forgetMessages(rig);

  const m2x = arrivals(rig.xmpp, m2xPair.room, `bridge\u0000<bob> ${m2xPrefix}`, n);
  const x2m = arrivals(rig.mm, x2mPair.channel, x2mPrefix, n);
  const sentM2x = new Array<number>(n).fill(NaN);
  const sentX2m = new Array<number>(n).fill(NaN);
  let sending = true;
  const rttLoaded = prosodyRtt(rig, Infinity, SIZES.rttProbeIntervalMs, () => !sending);
  const [m2xSendMs, x2mSendMs] = await Promise.all([
    paced(n, rate, async (i) => {
      sentM2x[i] = performance.now();
      await world.mm.postAs(world.bob.id, m2xPair.channel, `${m2xPrefix}${i}`);
    }),
    paced(n, rate, async (i) => {
      sentX2m[i] = performance.now();
      await world.alice.sendGroupchat(x2mPair.room, `${x2mPrefix}${i}`);
    }),
  ]);
  sending = false;
  const rttUnderLoad = await rttLoaded;
  // Whatever has not arrived 120 s after the last send is counted lost.
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    Promise.all([m2x.all, x2m.all]),
    new Promise((r) => timer = setTimeout(r, 120_000)),
  ]);
  clearTimeout(timer);
  m2x.stop();
  x2m.stop();
  forgetMessages(rig);

  const direction = (
    got: ReturnType<typeof arrivals>,
    sent: number[],
    sendMs: number,
  ) => {
    const latencies = got.at.map((at, i) => at - sent[i]).filter((x) => Number.isFinite(x));
    const lastArrival = Math.max(...got.at.filter((x) => Number.isFinite(x)));
    return {
      sent: n,
      arrived: got.state.count,
      lost: n - got.state.count,
      duplicates: got.state.duplicates,
      in_order: got.state.inOrder,
      send_rate_msgs_per_s: Math.round(n / (sendMs / 1000)),
      delivered_rate_msgs_per_s: Math.round(got.state.count / ((lastArrival - sent[0]) / 1000)),
      latency: lat(latencies),
    };
  };
  const mmToXmpp = direction(m2x, sentM2x, m2xSendMs);
  const xmppToMm = direction(x2m, sentX2m, x2mSendMs);
  const idle = summarize(rttIdle).median;
  const loaded = summarize(rttUnderLoad).median;
  return {
    messages_each_way: n,
    rate_each_way: rate,
    mm_to_xmpp: mmToXmpp,
    xmpp_to_mm: xmppToMm,
    prosody_rtt_idle: lat(rttIdle),
    prosody_rtt_under_load: lat(rttUnderLoad),
    ratios: {
      mm_to_xmpp_p50_vs_prosody_rtt_idle: ratio(mmToXmpp.latency.median_ms, idle),
      xmpp_to_mm_p50_vs_prosody_rtt_idle: ratio(xmppToMm.latency.median_ms, idle),
      mm_to_xmpp_p50_vs_prosody_rtt_under_load: ratio(mmToXmpp.latency.median_ms, loaded),
      xmpp_to_mm_p50_vs_prosody_rtt_under_load: ratio(xmppToMm.latency.median_ms, loaded),
    },
  };
}

/**
 * CPU time (user + system, all threads) a process has used so far, in ms, from /proc/PID/stat. It moves less
 * than rates when other work shares the CPUs, though contention still inflates it (per bridged message: 1.6 ms
 * at a load average of 3.5, 3.3 ms at 12, on the 2-core development machine).
 */
function cpuMs(pid: number): number {
  const fields = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].split(" ");
  const ticksPerS = 100; // USER_HZ, 100 on Linux
  return (Number(fields[11]) + Number(fields[12])) * 1000 / ticksPerS;
}

/** 10,000 messages through the child bridge in bursts, half each way, with memory samples after a forced GC. */
async function memoryRun(rig: Rig, child: ChildBridge): Promise<Record<string, unknown>> {
  const half = SIZES.memBurst / 2;
  const burstsNeeded = Math.ceil(SIZES.memMessages / SIZES.memBurst);
  const pushBurst = async (b: number) => {
    const pair = rig.pairs[(b + rig.pairs.length) % rig.pairs.length];
    const [a, c] = await Promise.all([
      burst(rig, "mm_to_xmpp", half, pair, `mem${b}`),
      burst(rig, "xmpp_to_mm", half, pair, `mem${b}`),
    ]);
    forgetMessages(rig);
    return a.in_order && c.in_order;
  };
  // Warm-up burst: connections, caches and JIT are not what we want to count.
  await pushBurst(-1);
  await child.settle();
  const samples: Array<
    {
      messages: number;
      rss: number;
      heap_used: number;
      heap_total: number;
      new_space: number;
      old_space_used: number;
      external: number;
    }
  > = [];
  const sample = async (messages: number) => {
    const m = await child.memory();
    samples.push({
      messages,
      rss: m.rss,
      heap_used: m.heapUsed,
      heap_total: m.heapTotal,
      new_space: m.spaces.new_space?.size ?? 0,
      old_space_used: m.spaces.old_space?.used ?? 0,
      external: m.external,
    });
    return m;
  };
  const before = await sample(0);
  const cpu0 = cpuMs(child.pid);
  let inOrder = true;
  const t0 = performance.now();
  let pushed = 0;
  for (let b = 0; b < burstsNeeded; b++) {
    inOrder = await pushBurst(b) && inOrder;
    pushed += SIZES.memBurst;
    if ((b + 1) % 4 === 0 && b + 1 < burstsNeeded) {
      await child.settle();
      await sample(pushed);
    }
  }
  const elapsed = performance.now() - t0;
  const cpu = cpuMs(child.pid) - cpu0;
  await child.settle();
  const after = await sample(pushed);
  return {
    where:
      `bridge in a child process (${CHILD_V8_FLAGS}; it also holds the bench's own modules), end to end ` +
      "through both servers",
    messages: pushed,
    split: `${SIZES.memBurst}-message bursts, half each way, over ${rig.pairs.length} mapped pairs`,
    gc_forced: after.gc,
    rss_before: before.rss,
    rss_after: after.rss,
    heap_used_before: before.heapUsed,
    heap_used_after: after.heapUsed,
    heap_total_before: before.heapTotal,
    heap_total_after: after.heapTotal,
    new_space_before: before.spaces.new_space?.size ?? 0,
    new_space_after: after.spaces.new_space?.size ?? 0,
    rss_bytes_per_message: round((after.rss - before.rss) / pushed, 1),
    heap_bytes_per_message: round((after.heapUsed - before.heapUsed) / pushed, 1),
    samples,
    mixed_load_msgs_per_s: Math.round(pushed / (elapsed / 1000)),
    cpu_ms_per_message: round(cpu / pushed, 3),
    all_in_order: inOrder,
    stats: after.stats,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// reporting

/** The 1-, 5- and 15-minute load averages: other work on the machine skews every number here. */
async function loadavg(): Promise<number[]> {
  const text = await Deno.readTextFile("/proc/loadavg").catch(() => "");
  return text.split(" ").slice(0, 3).map(Number);
}

async function meta(): Promise<Record<string, unknown>> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo").catch(() => "");
  const cpu = cpuinfo.match(/^model name\s*:\s*(.+)$/m)?.[1]?.trim() ?? "unknown";
  const git = async (...args: string[]) => {
    try {
      const out = await new Deno.Command("git", { args, cwd: ROOT, stdout: "piped", stderr: "null" })
        .output();
      return out.success ? new TextDecoder().decode(out.stdout).trim() : "";
    } catch {
      return "";
    }
  };
  const commit = await git("rev-parse", "HEAD");
  const dirty = (await git("status", "--porcelain", "--untracked-files=no")) !== "";
  return {
    date: new Date().toISOString(),
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    typescript: Deno.version.typescript,
    cpu,
    cpus: navigator.hardwareConcurrency,
    os: `${Deno.build.os} ${Deno.osRelease()} ${Deno.build.arch}`,
    commit: commit || "unknown",
    worktree_dirty: dirty,
    main_process_gc: typeof (globalThis as { gc?: unknown }).gc === "function",
    loadavg_start: await loadavg(),
  };
}

// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const line = (r: string[]) => `| ${r.map((cell, c) => cell.padEnd(widths[c])).join(" | ")} |`;
  return [line(rows[0]), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.slice(1).map(line)]
    .join("\n");
}

function renderTables(r: Json): string {
  const out: string[] = [];
  const bus = r.bus;
  const v = bus.variants;
  out.push("### 1. Core bus (real Store on a temp KV file, fake bridges)\n");
  out.push(table([
    ["variant", "publish→send median", "p95", "publish→done median", "p95", "burst msgs/s"],
    ...(["mapped", "mapped_no_idmap_write", "unmapped"] as const).map((k) => [
      k,
      v[k].publish_to_send ? ms(v[k].publish_to_send.median_ms) : "–",
      v[k].publish_to_send ? ms(v[k].publish_to_send.p95_ms) : "–",
      ms(v[k].publish_to_done.median_ms),
      ms(v[k].publish_to_done.p95_ms),
      String(v[k].burst_msgs_per_s),
    ]),
  ]));
  out.push("");
  out.push(table([
    ["KV op (Store method)", "median", "p95"],
    ["findLink, miss (1 get)", ms(bus.kv_ops.find_link_miss.median_ms), ms(bus.kv_ops.find_link_miss.p95_ms)],
    ["getMapping (1 get)", ms(bus.kv_ops.get_mapping.median_ms), ms(bus.kv_ops.get_mapping.p95_ms)],
    [
      "saveLink (1 atomic commit, 4 sets)",
      ms(bus.kv_ops.save_link.median_ms),
      ms(bus.kv_ops.save_link.p95_ms),
    ],
    [
      "writeBatch, 32 id-map links per commit, per link",
      ms(bus.kv_ops.save_links_32_per_link.median_ms),
      ms(bus.kv_ops.save_links_32_per_link.p95_ms),
    ],
  ]));
  out.push("");
  out.push(
    `Ratios (medians, same run): mapped / unmapped = ${bus.ratios.mapped_vs_unmapped}×; ` +
      `outbox and id-map write overhead (mapped / mapped without them) = ${bus.ratios.idmap_write_overhead}×.`,
  );

  out.push("\n### 2. End-to-end latency, real Prosody + Mattermost stand-in (sequential round trips)\n");
  const modes = Object.keys(r.e2e);
  const rows: string[][] = [["path", ...modes.flatMap((m) => [`${m} median`, "p95"])]];
  const paths: Array<[string, string]> = [
    ["MM post → XMPP user (bridged), idle", "mm_to_xmpp"],
    ["XMPP message → MM websocket (bridged), idle", "xmpp_to_mm"],
    ["MM → XMPP, XMPP user had just sent (stall)", "mm_to_xmpp_receiver_busy"],
    ["XMPP → MM, bridge had just sent (stall)", "xmpp_to_mm_after_bridge_sent"],
    ["baseline: XMPP own reflection (Prosody RTT)", "baseline_prosody_reflection"],
    ["baseline: MM post hook → websocket", "baseline_mm_post_to_ws"],
    ["baseline: MM REST post → websocket", "baseline_mm_rest_post_to_ws"],
  ];
  for (const [name, key] of paths) {
    rows.push([name, ...modes.flatMap((m) => [ms(r.e2e[m][key].median_ms), ms(r.e2e[m][key].p95_ms)])]);
  }
  out.push(table(rows));
  out.push("");
  out.push(table([
    ["ratio (medians)", ...modes],
    ["MM→XMPP / Prosody RTT", ...modes.map((m) => `${r.e2e[m].ratios.mm_to_xmpp_vs_prosody_rtt}×`)],
    ["XMPP→MM / Prosody RTT", ...modes.map((m) => `${r.e2e[m].ratios.xmpp_to_mm_vs_prosody_rtt}×`)],
    ["MM→XMPP / (MM hook hop + Prosody RTT)", ...modes.map((m) => `${r.e2e[m].ratios.mm_to_xmpp_vs_hops}×`)],
    ["XMPP→MM / (Prosody RTT + MM REST hop)", ...modes.map((m) => `${r.e2e[m].ratios.xmpp_to_mm_vs_hops}×`)],
    [
      "MM→XMPP stalled / idle",
      ...modes.map((m) => `${r.e2e[m].ratios.mm_to_xmpp_receiver_busy_vs_idle}×`),
    ],
    [
      "XMPP→MM stalled / idle",
      ...modes.map((m) => `${r.e2e[m].ratios.xmpp_to_mm_after_bridge_sent_vs_idle}×`),
    ],
    [
      "bridge's own share MM→XMPP",
      ...modes.map((m) => ms(r.e2e[m].bridge_overhead_median_ms.mm_to_xmpp)),
    ],
    [
      "bridge's own share XMPP→MM",
      ...modes.map((m) => ms(r.e2e[m].bridge_overhead_median_ms.xmpp_to_mm)),
    ],
  ]));

  out.push("\n### 3. Memory\n");
  out.push(renderIdle(r.idle_memory));
  out.push(`\n#### Under load: ${r.memory.messages} messages (${r.memory.where})\n`);
  const mem = r.memory;
  out.push(table([
    ["", "before", "after", `per message (${mem.messages})`],
    ["RSS", mib(mem.rss_before), mib(mem.rss_after), `${mem.rss_bytes_per_message} B`],
    ["heapUsed", mib(mem.heap_used_before), mib(mem.heap_used_after), `${mem.heap_bytes_per_message} B`],
    [
      "heapTotal (V8 reservation)",
      mib(mem.heap_total_before),
      mib(mem.heap_total_after),
      `${round((mem.heap_total_after - mem.heap_total_before) / mem.messages, 1)} B`,
    ],
    ["of which V8 new space (young generation)", mib(mem.new_space_before), mib(mem.new_space_after), "–"],
  ]));
  out.push("");
  out.push(
    `Samples (messages: RSS / heapTotal / new space / heapUsed): ` +
      mem.samples.map((s: Json) =>
        `${s.messages}: ${mib(s.rss)} / ${mib(s.heap_total)} / ${mib(s.new_space)} / ${mib(s.heap_used)}`
      ).join(", ") +
      `. GC forced: ${mem.gc_forced}. Mixed two-way load: ${mem.mixed_load_msgs_per_s} msgs/s, ` +
      `${mem.cpu_ms_per_message} ms of the bridge's CPU per message, ` +
      `all in order: ${mem.all_in_order}.`,
  );

  out.push(
    `\n### 4. Bursts of ${SIZES.burst} messages sent as fast as possible ` +
      `(bridge in a child process; ${SIZES.burstReps} runs each, fresh channel pair per run)\n`,
  );
  out.push(table([
    [
      "direction",
      "msgs/s median",
      "min–max",
      `× ${BURST_BASELINE_MSGS_PER_S} (before pipelining)`,
      "first send → last arrival (median)",
      "in order",
    ],
    ...(Object.keys(BURST_ROWS) as Array<keyof typeof BURST_ROWS>).filter((d) => r.burst[d]).map((d) => {
      const b = r.burst[d];
      return [
        BURST_ROWS[d],
        String(b.msgs_per_s_median),
        `${b.msgs_per_s_min}–${b.msgs_per_s_max}`,
        `${b.vs_baseline}×`,
        ms(b.total_ms_median),
        String(b.in_order),
      ];
    }),
  ]));
  const { prosody_reflected: own, mm_rest_one_at_a_time: rest } = r.burst;
  if (own && rest) {
    out.push(
      `\nRatios (medians, same run): MM → XMPP / Prosody's own burst = ` +
        `${
          ratio(r.burst.mm_to_xmpp.msgs_per_s_median, own.msgs_per_s_median)
        }×; XMPP → MM / the stand-in's ` +
        `REST posts one at a time = ${ratio(r.burst.xmpp_to_mm.msgs_per_s_median, rest.msgs_per_s_median)}×.`,
    );
  }

  out.push(
    "\n### 5. Sustained load, both directions at once, each in its own mapped pair (bridge in a child process)\n",
  );
  const susRows: string[][] = [[
    "rate each way (messages each way)",
    "direction",
    "latency median",
    "p95",
    "lost",
    "duplicates",
    "in order",
    "sent msgs/s",
    "delivered msgs/s",
  ]];
  const runs = [r.sustained_low, r.sustained];
  for (const sus of runs) {
    const label = `${sus.rate_each_way} msgs/s (${sus.messages_each_way})`;
    for (const d of ["mm_to_xmpp", "xmpp_to_mm"] as const) {
      const x = sus[d];
      susRows.push([
        label,
        d === "mm_to_xmpp" ? "MM post → XMPP user" : "XMPP message → MM websocket",
        ms(x.latency.median_ms),
        ms(x.latency.p95_ms),
        String(x.lost),
        String(x.duplicates),
        String(x.in_order),
        String(x.send_rate_msgs_per_s),
        String(x.delivered_rate_msgs_per_s),
      ]);
    }
    susRows.push([
      label,
      "baseline: Prosody RTT, idle, just before",
      ms(sus.prosody_rtt_idle.median_ms),
      ms(sus.prosody_rtt_idle.p95_ms),
      ...Array(5).fill("–"),
    ]);
    susRows.push([
      label,
      `baseline: Prosody RTT during the load (${sus.prosody_rtt_under_load.n} probes)`,
      ms(sus.prosody_rtt_under_load.median_ms),
      ms(sus.prosody_rtt_under_load.p95_ms),
      ...Array(5).fill("–"),
    ]);
  }
  out.push(table(susRows));
  out.push("");
  for (const sus of runs) {
    out.push(
      `Ratios at ${sus.rate_each_way} msgs/s each way (medians, same run): MM→XMPP p50 / Prosody RTT p50 = ` +
        `${sus.ratios.mm_to_xmpp_p50_vs_prosody_rtt_idle}× (idle RTT), ` +
        `${sus.ratios.mm_to_xmpp_p50_vs_prosody_rtt_under_load}× (RTT under the load); XMPP→MM = ` +
        `${sus.ratios.xmpp_to_mm_p50_vs_prosody_rtt_idle}× (idle), ` +
        `${sus.ratios.xmpp_to_mm_p50_vs_prosody_rtt_under_load}× (under the load).`,
    );
  }
  if (r.ghosts) {
    const g = r.ghosts;
    out.push("");
    out.push(
      `### IBR ghosts brought online (${g.first_login.ghosts} each, 10 at a time, fresh process each)\n`,
    );
    out.push(table([
      ["phase", "wall", "CPU ms per ghost", "RSS KiB per ghost"],
      ...([
        ["first login (XEP-0077 registration, then login)", g.first_login],
        ["warm, XMPP_CA_FILE alone (what ghosts do)", g.warm_ca_alone],
        ["warm, system CAs + XMPP_CA_FILE (before)", g.warm_with_system_cas],
        ["warm, then each joins one room and says one message", g.warm_joined_one_room],
      ] as const).map((
        [label, p],
      ) => [label, ms(p.wall_ms), String(p.cpu_ms_per_ghost), String(p.rss_kib_per_ghost)]),
      ["ratio (before / now)", "", `${g.cpu_ratio}×`, `${g.rss_ratio}×`],
    ]));
  }
  if (r.scale) {
    out.push("");
    out.push(renderScale(r.scale));
  }
  if (r.scram) {
    out.push("");
    out.push(`### Login CPU (SCRAM-SHA-1, ${r.scram.iterations} iterations, median of ${r.scram.runs})\n`);
    out.push(table([
      ["key derivation", "CPU ms per login"],
      ["sasl-scram-sha-1 (awaited HMAC per iteration)", String(r.scram.library_cpu_ms)],
      ["native PBKDF2 (src/xmpp/session/scram.ts)", String(r.scram.native_cpu_ms)],
      ["ratio", `${r.scram.speedup}×`],
    ]));
    out.push("");
  }
  out.push(
    `Section 2's Prosody RTT (sequential, in-process bridge) was ` +
      `${ms(r.e2e["in-process"].baseline_prosody_reflection.median_ms)}.`,
  );
  return out.join("\n");
}

/** True when other processes kept the CPUs busy before the run (the 1-minute load exceeded half the CPUs). */
function busy(r: Json): boolean {
  return r.meta.loadavg_start[0] > r.meta.cpus / 2;
}

function renderMarkdown(r: Json): string {
  const m = r.meta;
  return [
    "# mmxmpp benchmark results",
    "",
    "Written by `deno task bench` (scripts/bench.ts); overwritten on every run. See bench/README.md for what " +
    "each number means.",
    "",
    `- date: ${m.date}`,
    `- deno ${m.deno} (V8 ${m.v8}, TypeScript ${m.typescript})`,
    `- CPU: ${m.cpu}, ${m.cpus} logical CPUs; ${m.os}`,
    `- commit: ${m.commit}${m.worktree_dirty ? " (work tree has uncommitted changes)" : ""}`,
    `- wall time of the run: ${r.wall_s} s; load average (1/5/15 min) at start ${
      m.loadavg_start.join(" ")
    }, ` +
    `at end ${m.loadavg_end.join(" ")}${busy(r) ? " (**the machine was busy: numbers are skewed**)" : ""}`,
    "",
    renderTables(r),
    "",
  ].join("\n");
}

// ---------------------------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const started = performance.now();
  const result: Json = { meta: await meta(), sizes: SIZES };
  if (PROFILE_DIR) await Deno.mkdir(PROFILE_DIR, { recursive: true });

  if (runs("bus")) {
    progress(`1/5 core bus: ${SIZES.busMessages} messages × 3 variants, sequential and burst`);
    result.bus = await benchBus();
  }
  if (runs("scram")) {
    progress("SCRAM-SHA-1 login CPU: the library's key derivation vs the native one");
    result.scram = await benchScram();
  }
  if (runs("ghosts")) {
    progress(
      "IBR ghosts: CPU and memory per ghost brought online, first and warm, CA alone vs with the system's CAs",
    );
    result.ghosts = await benchGhosts(SIZES.ghosts);
  }

  // @mattermost/client's websocket chats on console.log ("websocket connecting to …"); keep stdout for the table.
  const quiet = { log: console.log, info: console.info, debug: console.debug };
  console.log = console.info = console.debug = () => {};
  if (runs("scale")) {
    progress(
      "scale: IBR ghosts, component puppets, stops and start-ups, the bridge as a process (bench_scale.ts)",
    );
    result.scale = await benchScale(progress);
  }
  progress("starting Prosody, the Mattermost stand-in and the XMPP user");
  const rig = await startRig();
  result.e2e = {};
  try {
    const { world } = rig;
    const env = (kvName: string) =>
      world.env({
        BRIDGE_MAPPINGS: rig.mappings,
        BRIDGE_KV_PATH: world.kvPath.replace(/[^/]+$/, kvName),
        BRIDGE_HTTP_ADDR: `127.0.0.1:${freePort()}`,
      });

    if (runs("idle")) {
      progress("3/5 idle memory: bare Deno, the bridge as `deno task start` runs it, imports step by step");
      let idleRuns = 0;
      const idleLoad = SIZES.memBurst * 4;
      result.idle_memory = await idleMemory(() => env(`idle${idleRuns++}.kv`), async () => {
        for (let b = 0; b < idleLoad / SIZES.memBurst; b++) {
          const pair = rig.pairs[b % rig.pairs.length];
          await Promise.all([
            burst(rig, "mm_to_xmpp", SIZES.memBurst / 2, pair, `idle${b}`),
            burst(rig, "xmpp_to_mm", SIZES.memBurst / 2, pair, `idle${b}`),
          ]);
          forgetMessages(rig);
        }
      }, idleLoad);
    }

    if (runs("latency")) {
      progress(
        `2/5 latency: ${SIZES.roundTrips} sequential round trips of each kind (bridge in this process)`,
      );
      const running = await world.startBridge(Object.fromEntries(
        Object.entries(env("inproc.kv")).filter(([k]) => k.startsWith("BRIDGE_")),
      ));
      const inproc = inProcess(running);
      result.e2e["in-process"] = summarizeRoundTrips(await roundTrips(rig, inproc, "inproc"));
      await inproc.settle();
      result.e2e["in-process"].stats = await inproc.stats();
      await inproc.stop();
    }

    if (runs("bursts") || runs("sustained") || runs("memory")) {
      progress("4/5 bursts, bridge in a child process (own event loop, --expose-gc)");
      const child = await spawnChild(env("child.kv"));
      try {
        if (runs("bursts")) result.burst = await child.profiled("bursts", () => bursts(rig, "child"));
        if (runs("sustained")) {
          progress(
            `5/5 sustained: ${SIZES.sustainedLowMessages} messages each way at ${SIZES.sustainedLowRate} ` +
              `msgs/s each way, then ${SIZES.sustainedMessages} at ${SIZES.sustainedRate}`,
          );
          result.sustained_low = await sustained(
            rig,
            SIZES.sustainedLowMessages,
            SIZES.sustainedLowRate,
            rig.sustainedPairs[1],
          );
          await child.settle();
          result.sustained = await child.profiled(
            "sustained",
            () =>
              profiledHere(
                "sustained-bench",
                () => sustained(rig, SIZES.sustainedMessages, SIZES.sustainedRate, rig.sustainedPairs[0]),
              ),
          );
          await child.settle();
        }
        if (runs("memory")) {
          progress(`3/5 memory: ${SIZES.memMessages} messages through the child bridge`);
          result.memory = await memoryRun(rig, child);
        }
        progress("done; stopping");
      } finally {
        await child.stop();
      }
    }
  } finally {
    rig.closeWatchers();
    await rig.world.stop();
    Object.assign(console, quiet);
  }
  result.wall_s = round((performance.now() - started) / 1000, 1);
  result.meta.loadavg_end = await loadavg();
  if (ONLY) {
    // A partial run: its numbers, not a results file that would lack the other phases.
    console.log(JSON.stringify(result, null, 1));
    return 0;
  }

  await Deno.mkdir(`${ROOT}/bench`, { recursive: true });
  await Deno.writeTextFile(`${ROOT}/bench/results.json`, JSON.stringify(result, null, 2) + "\n");
  await Deno.writeTextFile(`${ROOT}/bench/results.md`, renderMarkdown(result));
  const m = result.meta;
  console.log(
    `mmxmpp bench — ${m.date}, deno ${m.deno}, ${m.cpu} ×${m.cpus}, commit ${String(m.commit).slice(0, 12)}` +
      `${m.worktree_dirty ? "+dirty" : ""}, ${result.wall_s} s, load ${m.loadavg_start[0]} → ` +
      `${m.loadavg_end[0]}${busy(result) ? " (BUSY MACHINE: numbers skewed)" : ""}\n`,
  );
  console.log(renderTables(result));
  console.log("\nwrote bench/results.json and bench/results.md");
  const sus = result.sustained;
  const lost = !result.burst.mm_to_xmpp.in_order || !result.burst.xmpp_to_mm.in_order ||
    [sus, result.sustained_low].flatMap((x: Json) => [x.mm_to_xmpp, x.xmpp_to_mm])
      .some((d: Json) => d.lost > 0 || d.duplicates > 0 || !d.in_order);
  return lost || !result.memory.all_in_order ? 1 : 0;
}

if (import.meta.main) {
  if (Deno.args.includes(CHILD_FLAG)) await childMain();
  else Deno.exit(await main());
}
