/**
 * `deno task bench` scale phase (issue 13): the bridge as its own process (`main.ts` with the start task's flags)
 * against a real Prosody and the Mattermost stand-in, with many users at once. Every number of the bridge and of
 * Prosody is read from outside, from /proc/PID/status (RSS) and /proc/PID/stat (CPU, user + system, all threads).
 *
 * - `ibr`: N Mattermost users each post once in one mapped channel; each comes online as an IBR ghost (a
 *   registration, then a connection of its own) and joins the room. RSS and cumulative CPU every step of ghosts.
 *   Then the bridge is stopped with SIGTERM (exit code, time until the room is empty), started again on the same
 *   store, and every user posts once more: "from warm", the stored accounts logging in again.
 * - direct-path baseline, same run: as many plain XMPP clients (the bridge's session layer, no bridge) log in, join
 *   a room of their own on the same Prosody and say one message each, one after another as the bridge does.
 * - start-up: time from spawn to `/healthz` ready with no stored ghost, with the N real ones, and with 2,000+.
 * - `component`: P users post once each in rooms of a mapped channel each; each is a puppet of the component. RSS
 *   and CPU every step, then SIGTERM (exit code, time until every room is empty).
 * - Mattermost puppets: M stored puppets (XMPP users' Mattermost users), none with a direct conversation: how many
 *   websockets the bridge opens, its RSS and its time to ready.
 *
 * Sizes come from `BENCH_SCALE_*` environment variables (see {@link SCALE}); the defaults keep the bench short.
 *
 * @module
 */
import xml from "@xmpp/xml";
import type { Element } from "@xmpp/xml";
import { SecretBox } from "../src/core/secretbox.ts";
import { Store } from "../src/core/store.ts";
import { createXmppClient, type XmppClient } from "../src/xmpp/session/client.ts";
import { register } from "../src/xmpp/xeps/xep0077.ts";
import { type BridgeProcess, spawnBridge } from "../tests/helpers/bridge_process.ts";
import { componentEnv, startWorld, type World } from "../tests/helpers/harness.ts";
import { startCommand } from "./bench_memory.ts";

/** A whole number from the environment, or `fallback`. */
function sizeFrom(name: string, fallback: number): number {
  const text = Deno.env.get(name);
  if (text === undefined || text === "") return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) {
    throw new Error(`${name} must be a whole number, not ${JSON.stringify(text)}`);
  }
  return n;
}

/** Sizes of the scale phase; each can be set with its environment variable. */
export const SCALE = {
  /** IBR ghosts, each a Mattermost user posting once (`BENCH_SCALE_GHOSTS`; issue 13's goal is about 1,000). */
  ghosts: sizeFrom("BENCH_SCALE_GHOSTS", 200),
  /** Ghosts between two samples (`BENCH_SCALE_GHOST_STEP`). */
  ghostStep: sizeFrom("BENCH_SCALE_GHOST_STEP", 100),
  /** Component puppets (`BENCH_SCALE_PUPPETS`; the goal is about 10,000). */
  puppets: sizeFrom("BENCH_SCALE_PUPPETS", 500),
  /** Puppets per room, one mapped channel each (`BENCH_SCALE_PUPPETS_PER_ROOM`). */
  puppetsPerRoom: sizeFrom("BENCH_SCALE_PUPPETS_PER_ROOM", 100),
  /** Puppets between two samples (`BENCH_SCALE_PUPPET_STEP`). */
  puppetStep: sizeFrom("BENCH_SCALE_PUPPET_STEP", 250),
  /** Stored ghosts for the start-up time (`BENCH_SCALE_STORED_GHOSTS`; the goal says 2,000+). */
  storedGhosts: sizeFrom("BENCH_SCALE_STORED_GHOSTS", 2_000),
  /** Stored Mattermost puppets for their websockets (`BENCH_SCALE_MM_PUPPETS`). */
  mmPuppets: sizeFrom("BENCH_SCALE_MM_PUPPETS", 1_000),
  /** Fresh starts per start-up variant; the median is reported. */
  startReps: 3,
};

const SECRET_KEY = "bench-scale-secret-key-0123456789abcdef";
/** How long a step's messages may take to arrive, per message. */
const WAIT_PER_MESSAGE_MS = 2_000;
/** How long a stopped bridge's occupants may take to leave before the bench gives up counting. */
const EMPTY_WAIT_MS = 60_000;
const CHILD = "--scale-direct-clients";
/**
 * Quiet time before the last RSS sample of a pass: V8 gives back the heap it grew under load once it has been quiet
 * for a while (12-17 s after a load on this machine, see the idle memory section), so this sample is what the
 * bridge keeps, where the others include what it was still working with.
 */
const SETTLE_MS = 25_000;

// ---------------------------------------------------------------------------------------------------------------
// processes, seen from outside

/** Resident memory (VmRSS) of `pid`, in bytes. */
function rssOf(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(status.match(/^VmRSS:\s+(\d+) kB/m)?.[1] ?? 0) * 1024;
}

/** CPU time (user + system, all threads) `pid` has used so far, in ms. */
function cpuMsOf(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 1000 / 100; // USER_HZ is 100 on Linux
}

/** The processes whose command line names `dir` (Prosody's, started from its config there). */
function processesIn(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      if (Deno.readTextFileSync(`/proc/${entry.name}/cmdline`).includes(dir)) pids.push(Number(entry.name));
    } catch { /* exited meanwhile */ }
  }
  return pids;
}

/** Prosody's CPU so far, in ms (its processes summed). */
function prosodyCpuMs(w: World): number {
  return processesIn(w.prosody.dir).reduce((sum, pid) => {
    try {
      return sum + cpuMsOf(pid);
    } catch {
      return sum;
    }
  }, 0);
}

const mib = (bytes: number) => Math.round(bytes / 1048576 * 10) / 10;
const secs = (ms: number) => Math.round(ms / 100) / 10;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];

/**
 * The bridge as `deno task start` runs it (its flags), with `--allow-all` for the bench's temp paths; with
 * `BENCH_CPU_PROF=<dir>`, each bridge process writes a V8 CPU profile there when it exits.
 */
function startArgs(): string[] {
  const start = startCommand();
  const profileDir = Deno.env.get("BENCH_CPU_PROF");
  return [
    ...start.denoFlags.filter((f) => !f.startsWith("--allow-")),
    ...(start.v8Flags.length > 0 ? [`--v8-flags=${start.v8Flags.join(",")}`] : []),
    ...(profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : []),
  ];
}

/** Spawns the bridge and resolves once `/healthz` says ready, with the time that took (polled every 10 ms). */
async function spawnTimed(
  env: Record<string, string>,
  port: number,
): Promise<{ bridge: BridgeProcess; readyMs: number }> {
  const t0 = performance.now();
  const bridge = spawnBridge({ ...env, LOG_LEVEL: "warn" }, port, startArgs());
  const until = t0 + 120_000;
  while (performance.now() < until) {
    if (!bridge.running()) throw new Error(`the bridge exited (${await bridge.exited}):\n${bridge.log()}`);
    const health = await bridge.healthz().catch(() => null);
    if (health?.status === 200 && health.body.ready) return { bridge, readyMs: performance.now() - t0 };
    await new Promise((r) => setTimeout(r, 10));
  }
  await bridge.kill();
  throw new Error(`the bridge was not ready within 120 s:\n${bridge.log().slice(-3_000)}`);
}

/** Occupants of `rooms` as the XMPP user sees them, other than herself and the bridge's own nick. */
function occupancy(w: World, rooms: string[]): { count(): number; stop(): void } {
  const present = new Set<string>();
  const stop = w.alice.onStanza((s: Element) => {
    const from = String(s.attrs.from ?? "");
    if (!s.is("presence") || !rooms.some((room) => from.startsWith(`${room}/`))) return;
    if (/\/(alice|bridge)$/.test(from)) return;
    if (s.attrs.type === "unavailable") present.delete(from);
    else if (s.attrs.type === undefined) present.add(from);
  });
  return { count: () => present.size, stop };
}

/** Waits until `predicate` holds, polling every 20 ms; false when `timeoutMs` passed first. */
async function until(predicate: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = performance.now() + timeoutMs;
  while (!predicate()) {
    if (performance.now() > end) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

/** What a SIGTERM did: the exit code, and when the rooms were empty (null: not within {@link EMPTY_WAIT_MS}). */
export interface StopResult {
  online: number;
  exit_code: number;
  exit_s: number;
  rooms_empty_s: number | null;
  uncaught: boolean;
}

async function stopAndWatch(
  bridge: BridgeProcess,
  seen: { count(): number },
): Promise<StopResult> {
  const online = seen.count();
  const t0 = performance.now();
  const stopping = bridge.stop();
  const empty = until(() => seen.count() === 0, EMPTY_WAIT_MS).then((ok) =>
    ok ? performance.now() - t0 : null
  );
  const code = await stopping;
  const exitMs = performance.now() - t0;
  const emptyMs = await empty;
  return {
    online,
    exit_code: code,
    exit_s: secs(exitMs),
    rooms_empty_s: emptyMs === null ? null : secs(emptyMs),
    uncaught: /Uncaught/.test(bridge.log()),
  };
}

/** One sample: how many are online, and what the bridge and Prosody have cost since the bridge was ready. */
export interface Sample {
  online: number;
  wall_s: number;
  bridge_rss_mib: number;
  bridge_cpu_s: number;
  prosody_cpu_s: number;
}

/** A sample after {@link SETTLE_MS} of quiet. */
async function settledSample(sample: (online: number) => Sample, online: number): Promise<Sample> {
  await new Promise((r) => setTimeout(r, SETTLE_MS));
  return sample(online);
}

/** Takes samples against the bridge `pid` from now on. */
function sampler(w: World, pid: number): (online: number) => Sample {
  const t0 = performance.now();
  const cpu0 = cpuMsOf(pid);
  const prosody0 = prosodyCpuMs(w);
  return (online) => ({
    online,
    wall_s: secs(performance.now() - t0),
    bridge_rss_mib: mib(rssOf(pid)),
    bridge_cpu_s: secs(cpuMsOf(pid) - cpu0),
    prosody_cpu_s: secs(prosodyCpuMs(w) - prosody0),
  });
}

/**
 * Posts `text i` as each of `users[from..to)` in their channel, then waits until the XMPP user has seen each in its
 * room from the user's own nick (a ghost or puppet, not the bot's relay).
 */
async function postAndSee(
  w: World,
  users: Array<{ id: string; username: string; channel: string; room: string }>,
  from: number,
  to: number,
  text: string,
): Promise<void> {
  const wanted = new Set<string>();
  for (let i = from; i < to; i++) wanted.add(`${users[i].room}/${users[i].username}\u0000${text} ${i}`);
  const stop = w.alice.onStanza((s: Element) => {
    if (s.is("message") && s.attrs.type === "groupchat") {
      wanted.delete(`${s.attrs.from}\u0000${s.getChildText("body")}`);
    }
  });
  try {
    for (let i = from; i < to; i++) await w.mm.postAs(users[i].id, users[i].channel, `${text} ${i}`);
    const ok = await until(() => wanted.size === 0, (to - from) * WAIT_PER_MESSAGE_MS + 10_000);
    if (!ok) {
      throw new Error(
        `${wanted.size} of ${to - from} messages did not arrive from their own nick: ${[...wanted][0]}`,
      );
    }
  } finally {
    stop();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// ibr

async function ghostPass(
  w: World,
  env: Record<string, string>,
  users: Array<{ id: string; username: string; channel: string; room: string }>,
  text: string,
  progress: (text: string) => void,
): Promise<{ ready_s: number; samples: Sample[]; settled: Sample; stop: StopResult }> {
  const seen = occupancy(w, [w.room]);
  const { bridge, readyMs } = await spawnTimed(env, w.httpPort);
  try {
    const sample = sampler(w, bridge.pid);
    const samples = [sample(0)];
    for (let k = 0; k < users.length; k += SCALE.ghostStep) {
      const to = Math.min(users.length, k + SCALE.ghostStep);
      await postAndSee(w, users, k, to, text);
      samples.push(sample(seen.count()));
      progress(`scale ibr ${text}: ${JSON.stringify(samples.at(-1))}`);
    }
    const settled = await settledSample(sample, seen.count());
    progress(`scale ibr ${text}: settled ${JSON.stringify(settled)}`);
    const stop = await stopAndWatch(bridge, seen);
    progress(`scale ibr ${text}: SIGTERM ${JSON.stringify(stop)}`);
    return { ready_s: secs(readyMs), samples, settled, stop };
  } finally {
    seen.stop();
    await bridge.stop();
  }
}

/** Median time to ready of {@link SCALE.startReps} fresh starts on the store as it is. */
async function startUp(
  w: World,
  env: Record<string, string>,
): Promise<{ median_s: number; runs_s: number[] }> {
  const runs: number[] = [];
  for (let i = 0; i < SCALE.startReps; i++) {
    const { bridge, readyMs } = await spawnTimed(env, w.httpPort);
    runs.push(secs(readyMs));
    await bridge.stop();
  }
  return { median_s: median(runs), runs_s: runs };
}

async function ibrPhase(progress: (text: string) => void): Promise<Record<string, unknown>> {
  const w = await startWorld({ room: "scale-ibr" });
  try {
    const users = Array.from({ length: SCALE.ghosts }, (_, i) => {
      const user = w.mm.createUser(`g${i}`);
      w.mm.addMember(w.channel.id, user.id);
      return { id: user.id, username: user.username, channel: w.channel.id, room: w.room };
    });
    const env = w.env({
      BRIDGE_GHOST_MODE: "ibr",
      BRIDGE_SECRET_KEY: SECRET_KEY,
      BRIDGE_GHOST_IDLE_MINUTES: "600",
    });
    progress(`scale: start-up with no stored ghost (${SCALE.startReps} starts)`);
    const startEmpty = await startUp(w, env);
    progress(`scale ibr: ${SCALE.ghosts} Mattermost users post once each (first registration)`);
    const first = await ghostPass(w, env, users, "first", progress);
    progress(`scale ibr: restart on the same store; every user posts again (warm)`);
    const warm = await ghostPass(w, env, users, "again", progress);
    progress(`scale: start-up with the ${SCALE.ghosts} real stored ghosts`);
    const startReal = await startUp(w, env);
    const extra = Math.max(0, SCALE.storedGhosts - SCALE.ghosts);
    const store = await Store.open(w.kvPath);
    try {
      const box = await SecretBox.create(SECRET_KEY);
      const password = await box.seal("stored-ghost-password");
      for (let i = 0; i < extra; i++) {
        const ghost = { network: "mattermost", userId: `stored-${i}`, jid: `mm_stored${i}@localhost` };
        await store.createGhost({ ...ghost, password, createdAt: Date.now() });
      }
    } finally {
      store.close();
    }
    progress(`scale: start-up with ${SCALE.ghosts + extra} stored ghosts`);
    const startMany = await startUp(w, env);
    progress(`scale: direct-path baseline, ${SCALE.ghosts} plain XMPP clients log in, join and speak`);
    const direct = await directClients(w, SCALE.ghosts);
    return {
      ghosts: SCALE.ghosts,
      first,
      warm,
      direct,
      start_up: {
        no_stored_ghost: startEmpty,
        real_stored_ghosts: { ghosts: SCALE.ghosts, ...startReal },
        many_stored_ghosts: { ghosts: SCALE.ghosts + extra, ...startMany },
      },
    };
  } finally {
    await w.stop();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// direct-path baseline: plain XMPP clients, no bridge

/** What the plain clients cost: their own process and Prosody, for registration and for the warm pass. */
export interface DirectResult {
  clients: number;
  register: { wall_s: number; cpu_s: number; prosody_cpu_s: number };
  warm: { wall_s: number; cpu_s: number; rss_mib: number; prosody_cpu_s: number };
}

async function directClients(w: World, n: number): Promise<DirectResult> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      ...startArgs(),
      import.meta.filename!,
      CHILD,
      String(n),
      w.prosody.service,
      w.prosody.caFile,
      `scale-direct@${w.prosody.mucDomain}`,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  const line = async () => {
    while (!buf.includes("\n")) {
      const { value, done } = await lines.read();
      if (done) throw new Error(`the direct clients' process ended early (${(await child.status).code})`);
      buf += value;
    }
    const nl = buf.indexOf("\n");
    const text = buf.slice(0, nl);
    buf = buf.slice(nl + 1);
    return text;
  };
  const writer = child.stdin.getWriter();
  const go = () => writer.write(new TextEncoder().encode("go\n"));
  try {
    const measure = async () => {
      const cpu0 = cpuMsOf(child.pid), prosody0 = prosodyCpuMs(w), t0 = performance.now();
      await go();
      if ((await line()) !== "done") throw new Error("the direct clients' process failed");
      return {
        wall_s: secs(performance.now() - t0),
        cpu_s: secs(cpuMsOf(child.pid) - cpu0),
        prosody_cpu_s: secs(prosodyCpuMs(w) - prosody0),
      };
    };
    if ((await line()) !== "ready") throw new Error("the direct clients' process did not start");
    const registered = await measure();
    const warm = { ...await measure(), rss_mib: mib(rssOf(child.pid)) };
    await go();
    await child.status;
    return { clients: n, register: registered, warm };
  } finally {
    await writer.close().catch(() => {});
    try {
      child.kill("SIGKILL");
    } catch { /* ended */ }
    await child.status;
  }
}

/**
 * The child: waits for "go" on stdin three times: registers `n` accounts (XEP-0077), then logs each in, joins
 * `room` and says one message there (one after another, as the bridge brings ghosts online), then logs them out.
 */
async function directChild([nArg, service, caFile, room]: string[]): Promise<void> {
  const n = Number(nArg);
  const tls = { ca: await Deno.readTextFile(caFile), caOnly: true };
  const input = Deno.stdin.readable.pipeThrough(new TextDecoderStream()).getReader();
  const next = async () => {
    const { done } = await input.read();
    if (done) Deno.exit(0);
  };
  const password = "direct-client-password";
  const name = (i: number) => `direct${i}`;
  console.log("ready");
  await next();
  for (let i = 0; i < n; i++) {
    await register({ service, domain: "localhost", tls, username: name(i), password });
  }
  console.log("done");
  await next();
  const clients: XmppClient[] = [];
  for (let i = 0; i < n; i++) {
    const client = createXmppClient({
      service,
      domain: "localhost",
      username: name(i),
      password,
      resource: "b",
      tls,
    });
    client.on("error", () => {});
    clients.push(client);
    await client.start();
    const nick = name(i);
    const joined = new Promise<void>((resolve) => {
      client.on("stanza", (s: Element) => {
        if (s.is("presence") && s.attrs.from === `${room}/${nick}` && s.attrs.type === undefined) resolve();
      });
    });
    await client.send(xml(
      "presence",
      { to: `${room}/${nick}` },
      xml("x", { xmlns: "http://jabber.org/protocol/muc" }, xml("history", { maxstanzas: "0" })),
    ));
    await joined;
    const reflected = new Promise<void>((resolve) => {
      client.on("stanza", (s: Element) => {
        if (s.is("message") && s.attrs.from === `${room}/${nick}` && s.getChildText("body") === `hi ${i}`) {
          resolve();
        }
      });
    });
    await client.send(
      xml("message", { to: room, type: "groupchat", id: `d${i}` }, xml("body", {}, `hi ${i}`)),
    );
    await reflected;
  }
  console.log("done");
  await next();
  await Promise.all(clients.map((c) => c.stop().catch(() => {})));
  Deno.exit(0);
}

// ---------------------------------------------------------------------------------------------------------------
// component

async function componentPhase(progress: (text: string) => void): Promise<Record<string, unknown>> {
  const w = await startWorld({ room: "scale-c0" });
  try {
    const roomCount = Math.max(1, Math.ceil(SCALE.puppets / SCALE.puppetsPerRoom));
    const pairs = [{ channel: w.channel, room: w.room }];
    for (let r = 1; r < roomCount; r++) {
      const channel = w.mm.createChannel(`scale-c${r}`);
      w.mm.addMember(channel.id, w.mm.bot.id);
      pairs.push({ channel, room: `scale-c${r}@${w.prosody.mucDomain}` });
      await w.alice.joinRoom(pairs[r].room, "alice", { maxstanzas: 0 });
    }
    const users = Array.from({ length: SCALE.puppets }, (_, i) => {
      const pair = pairs[Math.floor(i / SCALE.puppetsPerRoom)];
      const user = w.mm.createUser(`p${i}`);
      w.mm.addMember(pair.channel.id, user.id);
      return { id: user.id, username: user.username, channel: pair.channel.id, room: pair.room };
    });
    const env = w.env({
      BRIDGE_MAPPINGS: pairs.map((p) => `${w.mm.team.name}/${p.channel.name}=${p.room}`).join(","),
      ...componentEnv(w.prosody),
    });
    const seen = occupancy(w, pairs.map((p) => p.room));
    progress(`scale component: ${SCALE.puppets} puppets in ${roomCount} rooms`);
    const { bridge, readyMs } = await spawnTimed(env, w.httpPort);
    try {
      const sample = sampler(w, bridge.pid);
      const samples = [sample(0)];
      for (let k = 0; k < users.length; k += SCALE.puppetStep) {
        const to = Math.min(users.length, k + SCALE.puppetStep);
        await postAndSee(w, users, k, to, "hello");
        samples.push(sample(seen.count()));
        progress(`scale component: ${JSON.stringify(samples.at(-1))}`);
      }
      const settled = await settledSample(sample, seen.count());
      progress(`scale component: settled ${JSON.stringify(settled)}`);
      progress(`scale component: SIGTERM with ${seen.count()} puppets online`);
      const stop = await stopAndWatch(bridge, seen);
      return { puppets: SCALE.puppets, rooms: roomCount, ready_s: secs(readyMs), samples, settled, stop };
    } finally {
      seen.stop();
      await bridge.stop();
    }
  } finally {
    await w.stop();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Mattermost puppets' websockets

async function mmPuppetsPhase(progress: (text: string) => void): Promise<Record<string, unknown>> {
  const w = await startWorld({ room: "scale-mmp" });
  try {
    const env = w.env({
      BRIDGE_SECRET_KEY: SECRET_KEY,
      ...componentEnv(w.prosody),
      BRIDGE_MM_PUPPETS: "true",
      MM_ADMIN_TOKEN: w.mm.admin.token,
    });
    const measure = async (label: string) => {
      const { bridge, readyMs } = await spawnTimed(env, w.httpPort);
      try {
        // The background work of the start (a puppet's websocket each, as it was) has 5 s to settle.
        await new Promise((r) => setTimeout(r, 5_000));
        return {
          label,
          ready_s: secs(readyMs),
          websockets: w.mm.websocketCount() - 1, // the bot's own
          bridge_rss_mib: mib(rssOf(bridge.pid)),
          bridge_cpu_s: secs(cpuMsOf(bridge.pid)),
        };
      } finally {
        await bridge.stop();
      }
    };
    progress("scale: Mattermost puppets' websockets, none stored");
    const none = await measure("no stored puppet");
    const store = await Store.open(w.kvPath);
    try {
      const box = await SecretBox.create(SECRET_KEY);
      for (let i = 0; i < SCALE.mmPuppets; i++) {
        const user = w.mm.createUser(`xmpp-u${i}`);
        await store.createPuppet({
          network: "xmpp",
          identity: `u${i}@localhost`,
          userId: user.id,
          username: user.username,
          displayName: `u${i}`,
          token: await box.seal(user.token),
          channels: [],
          createdAt: Date.now(),
        });
      }
    } finally {
      store.close();
    }
    progress(
      `scale: Mattermost puppets' websockets, ${SCALE.mmPuppets} stored, none in a direct conversation`,
    );
    const many = await measure(`${SCALE.mmPuppets} stored puppets`);
    return { puppets: SCALE.mmPuppets, none, many };
  } finally {
    await w.stop();
  }
}

// ---------------------------------------------------------------------------------------------------------------

/** `BENCH_SCALE_ONLY=ibr,component,mm_puppets`: the parts of the phase to run (all by default). */
const PARTS = Deno.env.get("BENCH_SCALE_ONLY")?.split(",").map((p) => p.trim()).filter(Boolean);

/** Runs the scale phase; `progress` reports each step. */
export async function benchScale(progress: (text: string) => void): Promise<Record<string, unknown>> {
  const t0 = performance.now();
  const runs = (part: string) => !PARTS || PARTS.includes(part);
  // The bench's own XMPP user and servers meet resets at this scale; one must not end a run of many minutes unseen.
  const uncaught: string[] = [];
  const onError = (e: ErrorEvent) => {
    uncaught.push(String(e.error?.stack ?? e.message).slice(0, 500));
    progress(`scale: uncaught in the bench process (counted): ${uncaught.at(-1)}`);
    e.preventDefault();
  };
  addEventListener("error", onError);
  try {
    const part = async <T>(name: string, run: (p: (text: string) => void) => Promise<T>) => {
      if (!runs(name)) return undefined;
      const result = await run(progress);
      progress(`scale ${name} done: ${JSON.stringify(result)}`);
      return result;
    };
    const ibr = await part("ibr", ibrPhase);
    const component = await part("component", componentPhase);
    const mmPuppets = await part("mm_puppets", mmPuppetsPhase);
    return {
      sizes: { ...SCALE },
      ibr,
      component,
      mm_puppets: mmPuppets,
      uncaught_in_bench: uncaught,
      wall_s: secs(performance.now() - t0),
    };
  } finally {
    removeEventListener("error", onError);
  }
}

// deno-lint-ignore no-explicit-any
type Json = any;

function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const line = (r: string[]) => `| ${r.map((cell, c) => cell.padEnd(widths[c])).join(" | ")} |`;
  return [line(rows[0]), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.slice(1).map(line)]
    .join("\n");
}

const stopText = (s: StopResult) =>
  `${s.online} online; exit code ${s.exit_code} after ${s.exit_s} s; rooms empty ${
    s.rooms_empty_s === null ? `not within ${EMPTY_WAIT_MS / 1000} s` : `after ${s.rooms_empty_s} s`
  }${s.uncaught ? "; **Uncaught in the log**" : ""}`;

/** The scale phase's results as Markdown sub-tables. */
export function renderScale(r: Json): string {
  const out: string[] = [];
  out.push(`### Scale: the bridge as a process, many users at once (phase wall time ${r.wall_s} s)\n`);
  if (r.ibr) out.push(renderIbr(r.ibr));
  if (r.component) out.push(renderComponent(r.component));
  if (r.mm_puppets) out.push(renderMmPuppets(r.mm_puppets));
  return out.join("\n");
}

function renderIbr(ibr: Json): string {
  const out: string[] = [];
  out.push(`#### IBR ghosts: each of ${ibr.ghosts} Mattermost users posts once in one mapped channel\n`);
  const rows: string[][] = [[
    "ghosts online",
    "first: bridge RSS",
    "bridge CPU (cumulative)",
    "Prosody CPU",
    "wall",
    "warm: bridge RSS",
    "bridge CPU (cumulative)",
    "Prosody CPU",
    "wall",
  ]];
  const firstRows: Sample[] = [...ibr.first.samples, ...(ibr.first.settled ? [ibr.first.settled] : [])];
  const warmRows: Sample[] = [...ibr.warm.samples, ...(ibr.warm.settled ? [ibr.warm.settled] : [])];
  firstRows.forEach((f: Sample, i: number) => {
    const w: Sample | undefined = warmRows[i];
    const settled = ibr.first.settled && i === firstRows.length - 1;
    rows.push([
      settled ? `${f.online}, after ${SETTLE_MS / 1000} s quiet` : String(f.online),
      `${f.bridge_rss_mib} MiB`,
      `${f.bridge_cpu_s} s`,
      `${f.prosody_cpu_s} s`,
      `${f.wall_s} s`,
      ...(w
        ? [`${w.bridge_rss_mib} MiB`, `${w.bridge_cpu_s} s`, `${w.prosody_cpu_s} s`, `${w.wall_s} s`]
        : []),
    ]);
  });
  out.push(table(rows));
  const d: DirectResult = ibr.direct;
  const lastFirst: Sample = ibr.first.samples.at(-1);
  const lastWarm: Sample = ibr.warm.samples.at(-1);
  const perGhost = (s: number) => Math.round(s * 1000 / ibr.ghosts * 10) / 10;
  out.push("");
  out.push(table([
    ["same run, per ghost / client", "CPU ms (own process)", "Prosody CPU ms", "wall"],
    [
      "bridge, first (registration, login, join, one message)",
      String(perGhost(lastFirst.bridge_cpu_s)),
      String(perGhost(lastFirst.prosody_cpu_s)),
      `${lastFirst.wall_s} s`,
    ],
    [
      "bridge, warm (login, join, one message)",
      String(perGhost(lastWarm.bridge_cpu_s)),
      String(perGhost(lastWarm.prosody_cpu_s)),
      `${lastWarm.wall_s} s`,
    ],
    [
      "baseline: plain clients, registration only",
      String(perGhost(d.register.cpu_s)),
      String(perGhost(d.register.prosody_cpu_s)),
      `${d.register.wall_s} s`,
    ],
    [
      "baseline: plain clients, login, join, one message",
      String(perGhost(d.warm.cpu_s)),
      String(perGhost(d.warm.prosody_cpu_s)),
      `${d.warm.wall_s} s`,
    ],
  ]));
  out.push("");
  out.push(
    `Warm bridge CPU / plain clients' CPU = ${
      Math.round(lastWarm.bridge_cpu_s / d.warm.cpu_s * 100) / 100
    }×; ` +
      `the plain clients' process held ${d.warm.rss_mib} MiB with ${d.clients} online. ` +
      `SIGTERM after the first pass: ${stopText(ibr.first.stop)}; after the warm pass: ${
        stopText(ibr.warm.stop)
      }.`,
  );
  const s = ibr.start_up;
  out.push("");
  out.push(table([
    ["start-up to /healthz ready", "median", "runs"],
    ...([
      ["no stored ghost", s.no_stored_ghost],
      [`${s.real_stored_ghosts.ghosts} stored ghosts (real accounts)`, s.real_stored_ghosts],
      [`${s.many_stored_ghosts.ghosts} stored ghosts`, s.many_stored_ghosts],
    ] as Array<[string, Json]>).map(([label, x]) => [label, `${x.median_s} s`, x.runs_s.join(", ")]),
  ]));
  return out.join("\n");
}

function renderComponent(c: Json): string {
  const out: string[] = [];
  out.push(`\n#### Component puppets: ${c.puppets} users post once each, ${c.rooms} rooms\n`);
  out.push(table([
    ["puppets online", "bridge RSS", "bridge CPU (cumulative)", "Prosody CPU", "wall"],
    ...[...c.samples, ...(c.settled ? [c.settled] : [])].map((x: Sample, i: number) => [
      i === c.samples.length ? `${x.online}, after ${SETTLE_MS / 1000} s quiet` : String(x.online),
      `${x.bridge_rss_mib} MiB`,
      `${x.bridge_cpu_s} s`,
      `${x.prosody_cpu_s} s`,
      `${x.wall_s} s`,
    ]),
  ]));
  out.push("");
  out.push(`Ready after ${c.ready_s} s. SIGTERM: ${stopText(c.stop)}.`);
  return out.join("\n");
}

function renderMmPuppets(m: Json): string {
  const out: string[] = [];
  out.push(
    `\n#### Mattermost puppets' websockets (${m.puppets} stored puppets, none in a direct conversation)\n`,
  );
  out.push(table([
    ["stored", "websockets opened", "bridge RSS 5 s after ready", "bridge CPU from spawn to then", "ready"],
    ...[m.none, m.many].map((x: Json) => [
      x.label,
      String(x.websockets),
      `${x.bridge_rss_mib} MiB`,
      `${x.bridge_cpu_s} s`,
      `${x.ready_s} s`,
    ]),
  ]));
  return out.join("\n");
}

if (import.meta.main) {
  if (Deno.args[0] === CHILD) await directChild(Deno.args.slice(1));
  else {
    const quiet = console.log;
    console.log = console.info = console.debug = () => {};
    const r = await benchScale((t) => console.error(`[scale] ${t}`));
    console.log = quiet;
    console.log(JSON.stringify(r, null, 1));
    console.log(renderScale(r));
  }
}
